"""The Ray executor: calls run as Ray tasks on a cluster, each with its CPU/GPU request.

Ray (Moritz et al., "Ray: A Distributed Framework for Emerging AI Applications",
OSDI 2018) schedules the tasks, retries those whose worker died, and sets each task's
``CUDA_VISIBLE_DEVICES`` to the GPUs it was given. Ray is imported only when this
executor is chosen (``--bt-executor ray``); it ships with ``pip install 'benchtool[ray]'``.
Its one option, ``--bt-ray-address``, is declared here.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from types import ModuleType
from typing import Any

from benchtool.errors import UsageError
from benchtool.executors.base import Executor, Resources, check_retries
from benchtool.executors.devices import in_task, log_task

RAY_INSTALL = "pip install 'benchtool[ray]'"
ENV_PREFIX = "BENCHTOOL_"


def import_ray() -> ModuleType:
    """The ``ray`` module, or a UsageError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--bt-executor ray needs Ray, which is not installed here; install it with: {RAY_INSTALL}") \
            from None
    return ray


def job_env() -> dict[str, str]:
    """What this driver's environment lends every task: ``PYTHONPATH`` (local plugin modules)
    and benchtool's own ``BENCHTOOL_*`` settings (cache, data, disabled plugins, ...)."""
    return {k: v for k, v in os.environ.items() if k == "PYTHONPATH" or k.startswith(ENV_PREFIX)}


def init_kwargs(address: str | None) -> dict[str, Any]:
    """``ray.init`` arguments: connect to ``address`` (host:port, or ``auto`` for the cluster
    ``ray start`` began on this machine); ``local`` starts a private cluster, and None does
    what Ray does (``$RAY_ADDRESS``, else a private cluster)."""
    kwargs: dict[str, Any] = {"address": address, "include_dashboard": False,
                              "logging_level": logging.WARNING}
    env = job_env()
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    return kwargs


def _run_task(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], state: Any = None) -> Any:
    """The body of every Ray task: ``fn`` with :func:`~benchtool.executors.task_device` set,
    under the submitter's torch settings (``state``: thread count, deterministic flags,
    default dtype; Ray's workers start with ``OMP_NUM_THREADS=1``), put back afterwards for
    the next task on this worker."""
    import ray

    from benchtool.reproducibility import GlobalState

    device = "cuda:0" if ray.get_gpu_ids() else "cpu"  # Ray narrowed CUDA_VISIBLE_DEVICES to ours
    log_task(fn, ray.get_runtime_context().get_task_id() or "")
    before = GlobalState.current()
    if state is not None:
        state.apply()
    try:
        with in_task(device):
            return fn(*args, **kwargs)
    finally:
        before.apply()


class RayExecutor(Executor):
    """Runs each call as a Ray task on the cluster at ``address``."""

    name = "ray"

    @classmethod
    def add_options(cls, group: Any) -> None:
        group.addoption("--bt-ray-address", default=None, metavar="ADDR",
                        help="Ray cluster for --bt-executor ray: host:port, or auto (default: start a local one)")

    @classmethod
    def settings(cls, getoption: Callable[[str], Any]) -> dict[str, Any]:
        import_ray()  # a missing extra is a usage error now, not after collection
        return {"address": getoption("--bt-ray-address")}

    @classmethod
    def create(cls, settings: Mapping[str, Any]) -> RayExecutor:
        return cls(settings.get("address"))

    def __init__(self, address: str | None = None) -> None:
        self._ray = import_ray()
        if not self._ray.is_initialized():
            try:
                self._ray.init(**init_kwargs(address))
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise UsageError(f"--bt-ray-address {address}: cannot connect to a Ray cluster: {exc}") from None
        self._task = self._ray.remote(_run_task)
        self._lock = threading.Lock()
        self._running: dict[Future, Any] = {}  # future -> ObjectRef, until it finishes

    def submit(self, fn: Callable[..., Any], /, *args: Any, resources: Resources | None = None,
               retries: int = 0, **kwargs: Any) -> Future:
        need = resources or Resources()
        task = self._task.options(num_cpus=need.cpus, num_gpus=need.gpus, max_retries=check_retries(retries),
                                  retry_exceptions=False)
        from benchtool.reproducibility import GlobalState

        ref = task.remote(fn, args, kwargs, GlobalState.current())
        future = ref.future()
        with self._lock:
            self._running[future] = ref
        future.add_done_callback(self._finished)
        return future

    def _finished(self, future: Future) -> None:
        with self._lock:
            self._running.pop(future, None)

    def capacity(self) -> Resources:
        total = self._ray.cluster_resources()
        return Resources(cpus=float(total.get("CPU", 0.0)), gpus=float(total.get("GPU", 0.0)))

    def close(self) -> None:
        with self._lock:
            refs = list(self._running.values())
        for ref in refs:
            self._ray.cancel(ref)
