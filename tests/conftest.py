"""Fixtures of the project's own tests only (suites/ does not load this file)."""

from __future__ import annotations

import os

import pytest

# Hermetic data: the tests never find datasets a distribution installed (Debian's
# dataset-fashion-mnist in /usr/share/datasets), so a suite's optional datasets stay out and
# no test trains on real data. Set in os.environ so the benchtool subprocesses inherit it.
os.environ["BENCHTOOL_SYSTEM_DATA"] = ""


@pytest.fixture(autouse=True)
def _no_xdist_role_for_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``-n N`` this process is an xdist worker, and its environment says so
    (``PYTEST_XDIST_WORKER``...). A benchtool or pytest process a test starts must not inherit
    that: it would think itself a worker too (pytest-benchmark then disables benchmarks)."""
    for name in [k for k in os.environ if k.startswith("PYTEST_XDIST_")]:
        monkeypatch.delenv(name)
