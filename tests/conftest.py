"""Fixtures of the project's own tests only (suites/ does not load this file)."""

from __future__ import annotations

import os

# Hermetic data: the tests never find datasets a distribution installed (Debian's
# dataset-fashion-mnist in /usr/share/datasets), so a suite's optional datasets stay out and
# no test trains on real data. Set in os.environ so the benchtool subprocesses inherit it.
os.environ["BENCHTOOL_SYSTEM_DATA"] = ""
