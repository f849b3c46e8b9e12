"""Old import paths of names and modules that moved: they keep working, with a
DeprecationWarning naming the new place.

The new place is given as a dotted module name and imported only when an old path is used.
An old module does not depend on its new home (the new module usually imports the old one,
as a harness imports its contract), so the forward is deliberately not an import edge.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any


def moved_names(old_module: str, moves: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``old_module``: each name of ``moves`` (name -> the module
    it moved to) comes from its new module, with a DeprecationWarning."""

    def __getattr__(name: str) -> Any:
        if name not in moves:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        return _forward(old_module, moves[name], name)

    return __getattr__


def moved_package(old: str, new: str) -> Callable[[str], Any]:
    """Make package ``old`` an alias of package ``new``: ``import old.sub`` gives the module
    ``new.sub`` and ``old.name`` gives ``new.name``, each with a DeprecationWarning.
    Returns the ``__getattr__`` of ``old``'s ``__init__``."""
    _FINDER.moves[old] = new
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    return moved_module(old, new)


def moved_module(old: str, new: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``old``, whose every public name moved to module ``new``:
    ``old.name`` gives ``new.name``, with a DeprecationWarning."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__") or not hasattr(importlib.import_module(new), name):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        return _forward(old, new, name)

    return __getattr__


def _forward(old_module: str, new_module: str, name: str) -> Any:
    value = getattr(importlib.import_module(new_module), name)
    warnings.warn(f"{old_module}.{name} moved to {new_module}.{name}: import it from {new_module}",
                  DeprecationWarning, stacklevel=3)
    return value


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds a submodule of a moved package under its old name; loading it puts the module
    of the new name in its place (``sys.modules[old] is sys.modules[new]``)."""

    def __init__(self) -> None:
        self.moves: dict[str, str] = {}  # old package -> new package

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        for old, new in self.moves.items():
            moved = new + fullname[len(old):]
            if fullname.startswith(f"{old}.") and importlib.util.find_spec(moved):
                return importlib.machinery.ModuleSpec(fullname, self, loader_state=moved)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a placeholder, replaced by the new module in exec_module

    def exec_module(self, module: ModuleType) -> None:
        new = module.__spec__.loader_state
        sys.modules[module.__name__] = importlib.import_module(new)
        warnings.warn(f"module {module.__name__} moved to {new}: import {new}", DeprecationWarning, stacklevel=2)


_FINDER = _MovedModules()
