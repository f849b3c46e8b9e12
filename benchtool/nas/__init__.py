"""Deprecated path: the NAS harness moved to :mod:`benchtool.harness.nas`. Importing from
here (``benchtool.nas``, ``benchtool.nas.search``, ...) still works, with a DeprecationWarning."""

from benchtool._moved import moved_package

__getattr__ = moved_package(__name__, "benchtool.harness.nas")
