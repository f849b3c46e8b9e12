"""Deprecated: the metric regression gate is analysis over records, not storage; it lives in
:mod:`benchtool.comparison`. Importing a name from here still works, with a DeprecationWarning."""

from benchtool._moved import moved_module

__getattr__ = moved_module(__name__, "benchtool.comparison")
