"""Old import paths of names that moved: they keep working, with a
DeprecationWarning naming the new place.

The new place is given as a dotted module name and imported only when an old path is used.
An old module does not depend on its new home (the new module usually imports the old one,
as a harness imports its contract), so the forward is deliberately not an import edge.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def moved_names(old_module: str, moves: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``old_module``: each name of ``moves`` (name -> the module
    it moved to) comes from its new module, with a DeprecationWarning."""

    def __getattr__(name: str) -> Any:
        if name not in moves:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        return _forward(old_module, moves[name], name)

    return __getattr__


def _forward(old_module: str, new_module: str, name: str) -> Any:
    value = getattr(importlib.import_module(new_module), name)
    warnings.warn(f"{old_module}.{name} moved to {new_module}.{name}: import it from {new_module}",
                  DeprecationWarning, stacklevel=3)
    return value
