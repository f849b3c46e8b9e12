"""Deprecated path: the limits harness moved to :mod:`benchtool.harness.limits`. Importing from
here (``benchtool.limits.memorization``, ...) still works, with a DeprecationWarning."""

from benchtool._moved import moved_package

__getattr__ = moved_package(__name__, "benchtool.harness.limits")
