"""Executors: where benchtool runs independent calls — suite cells, ensemble members,
NAS trials. ``local`` (the default) runs them here one after another; ``ray`` spreads
them over a Ray cluster (``--bt-executor ray --bt-ray-address ADDR``).

Code that fans out work asks for the run's executor and waits on standard futures::

    executor = get_executor(bt_config)
    futures = [executor.submit(train_member, k, resources=Resources(gpus=1)) for k in range(5)]
    outcomes = [Outcome.of(f) for f in futures]   # after concurrent.futures.wait(futures)
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING

from benchtool.errors import choices_error
from benchtool.executors.base import Executor, Outcome, Resources, describe_failure
from benchtool.executors.devices import task_device
from benchtool.executors.local import LocalExecutor

if TYPE_CHECKING:
    from benchtool.config import RunConfig

EXECUTOR_NAMES = ("local", "ray")

__all__ = [
    "EXECUTOR_NAMES", "Executor", "LocalExecutor", "Outcome", "Resources", "cell_executor", "check_executor",
    "create_executor", "describe_failure", "get_executor", "running_cell", "task_device",
]


def check_executor(name: str) -> str:
    """``name`` if it is a known executor; a UsageError listing them otherwise."""
    if name not in EXECUTOR_NAMES:
        raise choices_error("executor", name, EXECUTOR_NAMES)
    return name


def create_executor(name: str = "local", address: str | None = None) -> Executor:
    """A new executor by name; ``ray`` connects to ``address`` (Ray is imported only here)."""
    if check_executor(name) == "ray":
        from benchtool.executors.ray_executor import RayExecutor

        return RayExecutor(address)
    return LocalExecutor()


def get_executor(config: RunConfig | None = None) -> Executor:
    """The executor the run selected (``--bt-executor``); local without a run config."""
    if config is None:
        return LocalExecutor()
    return create_executor(config.executor, config.ray_address)


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
