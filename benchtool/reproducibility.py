"""Every cell starts from the same process-wide state, whatever ran before it or where.

A cell's records (timings aside) are a function of the code, the plugin and its
hyper-parameters, model, dataset, params, the run seed, the budget, the device type and
torch's intra-op thread count — never of the cells that ran before it, the process or worker
it ran in (serial, ``-n N``, ``--bt-executor ray``) or a ``-k`` selection. This plugin, one
of the bridge's feature modules, makes that so for every suite cell:

- at setup (before the cell's fixtures run, a trained model included) it seeds torch (CPU
  and CUDA), NumPy's legacy global RNG and :mod:`random` with the **cell seed**, derived from
  (run seed, cell id) by :func:`cell_seed`, and puts back the run's torch thread count,
  deterministic-algorithm flags and default dtype (:class:`GlobalState`);
- at teardown it checks the cell left them as it found them: one that did not fails with
  rule ``global-state-unchanged`` naming what changed (and the state is put back, so the
  next cell is not affected).

The run's thread count is ``--bt-torch-threads`` or, without it, the budget's
(:data:`benchtool.config.BUDGET_TORCH_THREADS`: 1 at ``small``), else torch's count in the
process that started the run: pytest-xdist workers (which the bridge gives a share of the
cores) and Ray cell workers (where Ray sets ``OMP_NUM_THREADS=1``) compute each cell with the
controller's count, so ``-n 2`` and Ray records equal a serial run's value for value.
``--bt-torch-threads 1`` gives each worker one thread (faster under ``-n`` on a small
machine); a serial run with the same flag then records the same values.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest

RULE = "global-state-unchanged"
WORKERINPUT_KEY = "benchtool_torch_threads"
run_state_key = pytest.StashKey["GlobalState"]()
cell_state_key = pytest.StashKey["GlobalState"]()


def cell_seed(run_seed: int, cell_id: str) -> int:
    """The seed of one cell: a hash of (run seed, cell id), in [0, 2**32)."""
    digest = hashlib.sha256(f"{int(run_seed)}\0{cell_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def cell_id(item: pytest.Item) -> str:
    """``file.py::test_name[params]``: the same wherever pytest runs the cell (no rootdir,
    no ``@group`` suffix of pytest-xdist)."""
    return f"{Path(str(item.path)).name}::{item.name}"


@dataclass(frozen=True)
class GlobalState:
    """The process-wide torch settings a cell's figures depend on."""

    torch_threads: int
    deterministic_algorithms: bool
    deterministic_warn_only: bool
    cudnn_deterministic: bool
    cudnn_benchmark: bool
    default_dtype: str

    @classmethod
    def current(cls) -> GlobalState:
        import torch

        return cls(
            torch_threads=torch.get_num_threads(),
            deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
            deterministic_warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
            cudnn_deterministic=bool(torch.backends.cudnn.deterministic),
            cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
            default_dtype=str(torch.get_default_dtype()).removeprefix("torch."),
        )

    def apply(self) -> None:
        """Make this the process's state (each setting only where it differs)."""
        import torch

        now = GlobalState.current()
        if now.torch_threads != self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        if (now.deterministic_algorithms, now.deterministic_warn_only) != (
                self.deterministic_algorithms, self.deterministic_warn_only):
            torch.use_deterministic_algorithms(self.deterministic_algorithms, warn_only=self.deterministic_warn_only)
        torch.backends.cudnn.deterministic = self.cudnn_deterministic
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        if now.default_dtype != self.default_dtype:
            torch.set_default_dtype(getattr(torch, self.default_dtype))

    def changes(self, other: GlobalState) -> list[str]:
        """``name a -> b`` for every setting that differs in ``other``."""
        return [f"{f.name} {getattr(self, f.name)} -> {getattr(other, f.name)}"
                for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


def seed_globals(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), NumPy's legacy global RNG and :mod:`random`."""
    import numpy as np
    import torch

    torch.manual_seed(seed)  # seeds every CUDA device too
    np.random.seed(seed)
    random.seed(seed)


# --- the pytest plugin ----------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchtool", "benchtool benchmark harness")
    group.addoption("--bt-torch-threads", type=int, default=None, metavar="N",
                    help="torch's intra-op threads in every cell, on every worker (default: 1 at budget small, "
                         "else torch's count in the process that starts the run); records depend on it")


def start_numba_threads() -> None:
    """Start numba's OpenMP thread pool now, keeping torch's thread count. The pool's start
    sets the OpenMP thread count that torch reads (to ``NUMBA_NUM_THREADS``, the CPU count by
    default): left to the first parallel kernel, it changed torch's count inside whichever
    cell called one (rule ``global-state-unchanged``) whenever the run's count differs."""
    try:
        import numba
    except ImportError:  # pragma: no cover - a dependency; nothing to start without it
        return
    import torch

    threads = torch.get_num_threads()
    numba.get_num_threads()  # launches the threading layer once per process
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def pytest_configure(config: pytest.Config) -> None:
    start_numba_threads()
    threads = config.getoption("--bt-torch-threads", None)
    if threads is not None and threads < 1:
        raise pytest.UsageError(f"--bt-torch-threads must be >= 1, got {threads}")
    workerinput = getattr(config, "workerinput", None) or {}
    if threads is None:
        threads = workerinput.get(WORKERINPUT_KEY)
    if threads is None:  # the budget's own count (small: 1), where it has one
        from benchtool.config import BUDGET_TORCH_THREADS

        threads = BUDGET_TORCH_THREADS.get(str(config.getoption("--bt-budget", "default")))
    base = GlobalState.current()
    if threads is not None:
        base = GlobalState(**{**base.__dict__, "torch_threads": int(threads)})
    config.stash[run_state_key] = base
    config.addinivalue_line("markers", "bt_fanout: the cell spreads its own work (trials, members) over the run's "
                                       "executor, so --bt-executor runs it on the driver")


def run_state(config: pytest.Config) -> GlobalState | None:
    """The run's global state (what every cell starts from); None when this plugin is off."""
    return config.stash.get(run_state_key, None)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist controller: workers compute with the run's thread count."""
    state = run_state(node.config)
    if state is not None:
        node.workerinput[WORKERINPUT_KEY] = state.torch_threads


def _run_seed(config: pytest.Config) -> int:
    from benchtool.pytest.session import session_key

    bench = config.stash.get(session_key, None)
    return bench.config.seed if bench is not None else int(config.getoption("--bt-seed", 0) or 0)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Before the cell's fixtures: the run's state, and the cell's seed."""
    from benchtool.pytest.records import is_bench_case

    state = run_state(item.config)
    if state is not None and is_bench_case(item):
        state.apply()
        seed_globals(cell_seed(_run_seed(item.config), cell_id(item)))
        item.stash[cell_state_key] = state
    return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the cell's own teardown: it must have left the state as it found it."""
    result = yield
    expected = item.stash.get(cell_state_key, None)
    if expected is None:
        return result
    now = GlobalState.current()
    if now == expected:
        return result
    expected.apply()  # the next cell starts clean either way
    from benchtool.errors import ContractViolation
    from benchtool.pytest.records import case_info

    info = case_info(item)
    detail = "the cell left process-wide state changed: " + ", ".join(expected.changes(now))
    if info.plugin:
        raise ContractViolation(info.plugin, RULE, detail)
    pytest.fail(f"broke rule {RULE!r}: {detail}", pytrace=False)
