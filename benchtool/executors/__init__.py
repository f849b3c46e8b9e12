"""Executors: where benchtool runs independent calls — suite cells, ensemble members,
NAS trials. ``local`` (the default) runs them here one after another; ``ray`` spreads
them over a Ray cluster (``--bt-executor ray --bt-ray-address ADDR``); a plugin may
register more (:mod:`benchtool.executors.registry`).

Code that fans out work asks for the run's executor and waits on standard futures::

    executor = get_executor(bt_config)
    futures = [executor.submit(train_member, k, resources=Resources(gpus=1)) for k in range(5)]
    outcomes = [Outcome.of(f) for f in futures]   # after concurrent.futures.wait(futures)
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from benchtool.executors.base import Executor, Outcome, Resources, describe_failure
from benchtool.executors.devices import task_device
from benchtool.executors.local import LocalExecutor
from benchtool.executors.registry import ExecutorRegistry, builtin_executors

if TYPE_CHECKING:
    from benchtool.config import RunConfig

__all__ = [
    "Executor", "ExecutorRegistry", "LocalExecutor", "Outcome", "Resources", "builtin_executors", "cell_executor",
    "create_executor", "describe_failure", "get_executor", "running_cell", "task_device",
]


def create_executor(name: str = "local", settings: Mapping[str, Any] | None = None) -> Executor:
    """A new built-in executor by name, with its option values ``settings`` (``ray``:
    ``{"address": ...}``; Ray is imported only then)."""
    return builtin_executors().get(name).create(settings or {})


def get_executor(config: RunConfig | None = None) -> Executor:
    """The executor the run selected (``--bt-executor``, a plugin's included); local without a run config."""
    if config is None:
        return LocalExecutor()
    executor = config.executor_class or builtin_executors().get(config.executor)
    return executor.create(config.executor_settings)


_cell_config: contextvars.ContextVar[RunConfig | None] = contextvars.ContextVar("benchtool_cell_config", default=None)


@contextlib.contextmanager
def running_cell(config: RunConfig | None) -> Iterator[None]:
    """Mark the code inside as a cell of the run ``config`` (the harness does, per cell), so
    plugin code that fans out work finds the run's executor with :func:`cell_executor`."""
    token = _cell_config.set(config)
    try:
        yield
    finally:
        _cell_config.reset(token)


def cell_executor() -> Executor:
    """The executor for work the running cell fans out (ensemble members, NAS trials): the
    run's on the driver, local inside a cell that itself runs on an executor's worker (and
    outside any cell)."""
    return get_executor(_cell_config.get())
