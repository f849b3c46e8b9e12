"""Which device a process or a task computes on: one GPU per pytest-xdist worker, and
the GPU an executor gave a task."""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections.abc import Iterator

import torch

from benchtool.errors import UsageError

_task_device: contextvars.ContextVar[str | None] = contextvars.ContextVar("benchtool_task_device", default=None)


def parse_gpus(value: str | None) -> list[int] | None:
    """``--bt-gpus 0,1,3``: GPU indices to spread workers over; None when not given."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise UsageError(f"invalid --bt-gpus {value!r}; expected comma-separated GPU indices like 0,1,3")
    gpus = [int(p) for p in parts]
    if len(set(gpus)) != len(gpus):
        raise UsageError(f"invalid --bt-gpus {value!r}: an index is listed twice")
    return gpus


def xdist_worker_index(workerid: str | None) -> int | None:
    """``gw3`` -> 3 (pytest-xdist's worker ids); None outside xdist."""
    if workerid is None:
        return None
    match = re.fullmatch(r"gw(\d+)", workerid)
    if match is None:
        raise UsageError(f"unexpected pytest-xdist worker id {workerid!r}; expected gw<N>")
    return int(match.group(1))


def worker_device(spec: str, device: torch.device, gpus: list[int] | None, worker: int | None) -> torch.device:
    """The device of worker ``worker`` (0 outside xdist): ``cuda:gpus[k % len(gpus)]``, where
    ``gpus`` defaults to every visible GPU, when ``spec`` (``--bt-device``) is ``auto`` or
    ``cuda``; ``cpu`` and a pinned ``cuda:N`` are kept as they are."""
    if gpus is not None:
        if device.type != "cuda":
            raise UsageError(f"--bt-gpus needs a CUDA device, but --bt-device {spec} resolved to {device}")
        if spec.startswith("cuda:"):
            raise UsageError(f"give either --bt-device {spec} or --bt-gpus, not both")
        count = torch.cuda.device_count()
        bad = [g for g in gpus if g >= count]
        if bad:
            raise UsageError(f"--bt-gpus: GPU {bad[0]} does not exist; this machine has cuda:0..cuda:{count - 1}")
    if device.type != "cuda" or spec.startswith("cuda:"):
        return device
    pool = gpus or list(range(torch.cuda.device_count()))
    return torch.device("cuda", pool[(worker or 0) % len(pool)])


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity, e.g. under ``taskset``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_threads(workers: int, current: int) -> int:
    """Intra-op threads for one of ``workers`` processes sharing this machine: its share of
    the cores, never more than ``current`` (N workers with a thread per core each would
    oversubscribe the CPU N times over and run slower than one process)."""
    return max(1, min(current, usable_cpus() // max(1, workers)))


@contextlib.contextmanager
def in_task(device: str) -> Iterator[None]:
    """Mark the code inside as an executor task computing on ``device``."""
    token = _task_device.set(device)
    try:
        yield
    finally:
        _task_device.reset(token)


def task_device(default: torch.device | str) -> torch.device:
    """The device a call submitted to an executor should compute on: the GPU the executor
    gave it (``cuda:0`` in a Ray task with a GPU; ``cpu`` without), else ``default``."""
    assigned = _task_device.get()
    return torch.device(assigned if assigned is not None else default)


TASK_LOG_ENV = "BENCHTOOL_TASK_LOG"  # a file: one line per executor task, for debugging and tests


def log_task(fn: object, task_id: str) -> None:
    """With ``$BENCHTOOL_TASK_LOG`` set, append ``PID TASK_ID FUNCTION`` for a task that
    starts here (which process ran which NAS trial or ensemble member)."""
    path = os.environ.get(TASK_LOG_ENV)
    if not path:
        return
    fn = getattr(fn, "func", fn)  # a functools.partial: the function it calls
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    with open(path, "a") as handle:
        handle.write(f"{os.getpid()} {task_id or '-'} {name}\n")
