"""The executor kind: executors by name, each declaring its own options.

``local`` and ``ray`` are built in; a plugin adds one (a Dask or Slurm executor, say) from
the bridge's ``pytest_benchtool_register_executors(registry)`` hook
(:mod:`benchtool.pytest.hookspecs`), and its options then appear under ``--bt-executor``.
"""

from __future__ import annotations

import inspect
from typing import Any

from benchtool.errors import UsageError, choices_error
from benchtool.executors.base import Executor
from benchtool.executors.local import LocalExecutor
from benchtool.executors.ray_executor import RayExecutor

BUILTIN_EXECUTORS: tuple[type[Executor], ...] = (LocalExecutor, RayExecutor)


class ExecutorRegistry:
    """Executor classes by name; adding one declares its options on ``group`` (when given)."""

    def __init__(self, group: Any = None) -> None:
        self._group = group
        self._executors: dict[str, type[Executor]] = {}

    def add(self, executor: type[Executor]) -> None:
        """Register ``executor``: a concrete :class:`Executor` subclass with a new ``name``."""
        if not (isinstance(executor, type) and issubclass(executor, Executor)) or inspect.isabstract(executor):
            raise UsageError(f"executor {executor!r}: expected a concrete subclass of benchtool.executors.Executor")
        name = getattr(executor, "name", None)
        if not isinstance(name, str) or not name:
            raise UsageError(f"executor {executor.__qualname__}: its class must set a name (a string)")
        if name in self._executors:
            raise UsageError(f"executor {name!r} is registered twice: by {self._executors[name].__module__} "
                             f"and by {executor.__module__}")
        self._executors[name] = executor
        if self._group is not None:
            executor.add_options(self._group)

    def names(self) -> tuple[str, ...]:
        return tuple(self._executors)

    def get(self, name: str) -> type[Executor]:
        """The executor class registered as ``name``; a UsageError listing them otherwise."""
        if name not in self._executors:
            raise choices_error("executor", name, self.names())
        return self._executors[name]


def builtin_executors(group: Any = None) -> ExecutorRegistry:
    """A registry of the built-in executors (``local``, ``ray``)."""
    registry = ExecutorRegistry(group)
    for executor in BUILTIN_EXECUTORS:
        registry.add(executor)
    return registry
