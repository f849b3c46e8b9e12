"""The default executor: every call runs here, in this process, one after another."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from benchtool.executors.base import Executor, Resources, check_retries
from benchtool.executors.devices import log_task


class LocalExecutor(Executor):
    """Runs each call at once in the calling process: deterministic, no extra processes,
    exactly what a run without an executor does. One slot, so an ask/tell search stays serial."""

    name = "local"
    runs_cells = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, resources: Resources | None = None,
               retries: int = 0, **kwargs: Any) -> Future:
        check_retries(retries)  # a call cannot lose its worker here: nothing to retry
        future: Future = Future()
        future.set_running_or_notify_cancel()
        log_task(fn, "local")
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - reported through the future, like any executor
            future.set_exception(exc)
        return future

    def capacity(self) -> Resources:
        import torch

        return Resources(cpus=float(os.cpu_count() or 1), gpus=float(torch.cuda.device_count()))

    def slots(self, resources: Resources | None = None) -> int:
        return 1
