"""How many pytest-xdist worker processes a ``benchtool run`` spreads its cells over.

Given ``-n``, the run uses that. Otherwise a CPU run on a machine with several cores uses one
worker per core, up to ``MAX_DEFAULT_WORKERS`` and one per ``WORKER_MEMORY_BYTES`` of available
memory, each computing with its share of the cores
(``--bt-torch-threads``): the suites' networks are small, so one thread per process beats
several threads in one. A GPU run stays in one process (its workers would share the GPU;
``-n`` with ``--bt-gpus`` spreads them over several). ``BENCHTOOL_WORKERS`` sets the default
(``0``: one process), as does any option that chooses how pytest distributes the cells.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence

from benchtool.config import resolve_device
from benchtool.errors import UsageError
from benchtool.executors import devices

WORKERS_ENV = "BENCHTOOL_WORKERS"
# Cells that share a trained model run on one worker (loadgroup), so beyond a few workers the
# longest model's cells, not the cores, bound the wall time, while each worker holds its own
# copy of torch, the data and the models. Past this, ``-n auto`` asks for one per core.
MAX_DEFAULT_WORKERS = 4
# Memory one worker may need: measured here, 0.75-0.94 GB on Fashion-MNIST's uncertainty cells
# (the built-in data: about 0.5). The default gives a worker no less than this of the memory
# available when the run starts.
WORKER_MEMORY_BYTES = 1 << 30
# Options that already choose how the cells are run: the run adds no ``-n`` of its own.
_DISTRIBUTION_OPTIONS = ("-n", "--numprocesses", "--dist", "--maxprocesses", "--bt-executor", "--pdb", "--trace")


def check_numprocesses(value: str, option: str = "-n") -> str:
    """A worker count (0 = no workers) or ``auto``/``logical``; needs pytest-xdist."""
    if not (value.isdigit() or value in ("auto", "logical")):
        raise UsageError(f"invalid {option} {value!r}; expected a number of worker processes (0, 1, 2, ...) or auto")
    if importlib.util.find_spec("xdist") is None:
        raise UsageError(f"{option} needs pytest-xdist, which is not installed here; "
                         "install it with: pip install pytest-xdist")
    return value


def distribution_chosen(argv: Sequence[str]) -> bool:
    """Whether the pytest command line already says how to run the cells: ``-n``/``-nN``,
    ``--dist``, an executor, a debugger (which needs one process), or pytest-xdist blocked."""
    for previous, arg in zip(["", *argv], argv):
        name = arg.split("=", 1)[0]
        if name in _DISTRIBUTION_OPTIONS or (arg.startswith("-n") and arg[2:].isdigit()):
            return True
        if arg == "-pno:xdist" or (previous == "-p" and arg == "no:xdist"):
            return True
    return False


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux's ``MemAvailable``); None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def device_option(argv: Sequence[str]) -> str:
    """The last ``--bt-device`` value of a pytest command line (``auto`` when there is none)."""
    spec = "auto"
    for previous, arg in zip(["", *argv], argv):
        if previous == "--bt-device":
            spec = arg
        elif arg.startswith("--bt-device="):
            spec = arg.split("=", 1)[1]
    return spec


def default_workers(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """The options a run adds to its pytest command line ``argv`` (empty: it runs in one
    process): ``-n`` and, unless ``argv`` sets it, ``--bt-torch-threads`` with each worker's
    share of the cores. Without the share every worker computes with the thread count of
    the process that started the run (so that an explicit ``-n`` records what a serial run
    records): N workers with all the cores each, which on this project's 2-core CPU made
    cells up to 15x slower. Resolves ``argv``'s device: call it where CUDA may be initialised."""
    if distribution_chosen(argv):
        return []
    given = environ.get(WORKERS_ENV, "").strip()
    if given:
        workers = check_numprocesses(given, WORKERS_ENV)
        count = devices.usable_cpus() if workers in ("auto", "logical") else int(workers)
    elif resolve_device(device_option(argv)).type != "cpu" or importlib.util.find_spec("xdist") is None:
        return []
    else:
        memory = available_memory()
        count = min(devices.usable_cpus(), MAX_DEFAULT_WORKERS,
                    MAX_DEFAULT_WORKERS if memory is None else memory // WORKER_MEMORY_BYTES)
        if count <= 1:
            return []
        workers = str(count)
    if count == 0 or any(arg.split("=", 1)[0] == "--bt-torch-threads" for arg in argv):
        return ["-n", workers]
    return ["-n", workers, "--bt-torch-threads", str(devices.worker_threads(count, devices.usable_cpus()))]
