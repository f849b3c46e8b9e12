"""The executor kind: executors by name, each declaring its own options.

``local`` and ``ray`` are built in; a plugin adds one (a Dask or Slurm executor, say) from
the bridge's ``pytest_benchtool_register_executors(registry)`` hook
(:mod:`benchtool.pytest.hookspecs`), and its options then appear under ``--bt-executor``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from importlib.metadata import entry_points
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


@dataclass(frozen=True)
class ExecutorInfo:
    """An executor as ``benchtool list executors`` shows it: where it comes from, its options."""

    executor: type[Executor]
    plugin: str  # the module whose hook registered it (the bridge's for the built-ins)
    distribution: str
    version: str
    options: tuple[str, ...]  # "--bt-pool-workers N", ...

    @property
    def description(self) -> str:
        doc = " ".join((inspect.getdoc(self.executor) or "").split("\n\n")[0].split())
        return doc + (f" (options: {', '.join(self.options)})" if self.options else "")


class _OptionNames:
    """Stands in for the pytest option group: collects what an executor declares."""

    def __init__(self) -> None:
        self.options: list[str] = []

    def addoption(self, *names: str, **kwargs: Any) -> None:
        metavar = kwargs.get("metavar") or ("" if kwargs.get("action") in ("store_true", "store_false") else "VALUE")
        self.options.append(" ".join(filter(None, ["/".join(names), metavar])))


def discover_executors(modules: Iterable[str] = ()) -> tuple[list[ExecutorInfo], list[str]]:
    """Every executor a run could select, without starting pytest: the built-ins, then those of
    the installed pytest plugins (``pytest11`` entry points) and of ``modules`` (``-p``) that
    implement ``pytest_benchtool_register_executors``; and a warning line per plugin whose
    import or registration failed."""
    from benchtool import __version__

    registry = builtin_executors()
    origin = {name: ("benchtool.pytest.dispatch", "benchtool", __version__) for name in registry.names()}
    warnings: list[str] = []
    sources = [(ep.value.partition(":")[0], ep.load, ep.dist.name if ep.dist else "unknown",
                ep.dist.version if ep.dist else "unknown") for ep in entry_points(group="pytest11")]
    sources += [(module, partial(importlib.import_module, module), "local", "-") for module in modules]
    for module, load, distribution, version in sources:
        try:
            hook = getattr(load(), "pytest_benchtool_register_executors", None)
            if hook is not None:
                before = set(registry.names())
                hook(registry=registry)
                origin.update({name: (module, distribution, version) for name in registry.names() if name not in before})
        except Exception as exc:  # noqa: BLE001 - that plugin's fault: the run would report it too
            warnings.append(f"pytest plugin {module!r} ({distribution}): cannot list its executors: "
                            f"{type(exc).__name__}: {exc}")
    infos = []
    for name in registry.names():
        executor, group = registry.get(name), _OptionNames()
        executor.add_options(group)
        infos.append(ExecutorInfo(executor, *origin[name], tuple(group.options)))
    return infos, warnings
