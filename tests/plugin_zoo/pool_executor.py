"""A third-party executor as a pytest plugin: ``--bt-executor pool`` runs the cells in a pool
of spawned processes, as many as its own option ``--bt-pool-workers`` says."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from benchtool.errors import UsageError
from benchtool.executors import Executor, ExecutorRegistry, Resources
from benchtool.executors.devices import log_task


class PoolExecutor(Executor):
    """Each call in one of ``workers`` processes on this machine."""

    name = "pool"

    @classmethod
    def add_options(cls, group: Any) -> None:
        group.addoption("--bt-pool-workers", type=int, default=1, metavar="N",
                        help="processes of --bt-executor pool (default: 1)")

    @classmethod
    def settings(cls, getoption: Callable[[str], Any]) -> dict[str, Any]:
        workers = getoption("--bt-pool-workers")
        if workers < 1:
            raise UsageError(f"--bt-pool-workers {workers}: expected at least 1")
        return {"workers": workers}

    @classmethod
    def create(cls, settings: Mapping[str, Any]) -> PoolExecutor:
        return cls(settings["workers"])

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable[..., Any], /, *args: Any, resources: Resources | None = None,
               retries: int = 0, **kwargs: Any) -> Future:
        log_task(fn, f"pool-of-{self.workers}")
        return self._pool.submit(fn, *args, **kwargs)

    def capacity(self) -> Resources:
        return Resources(cpus=float(self.workers))

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def pytest_benchtool_register_executors(registry: ExecutorRegistry) -> None:
    registry.add(PoolExecutor)
