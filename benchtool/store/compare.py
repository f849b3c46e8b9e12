"""Deprecated: the metric regression gate is analysis over records, not storage; it lives in
:mod:`benchtool.comparison`. Importing a name from here still works, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    comparison = importlib.import_module("benchtool.comparison")
    if name.startswith("__") or not hasattr(comparison, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"benchtool.store.compare.{name} moved to benchtool.comparison.{name}",
                  DeprecationWarning, stacklevel=2)
    return getattr(comparison, name)
