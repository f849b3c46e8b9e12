"""The per-cell harness of :mod:`benchtool.reproducibility`, and the causes of the NAS
drift it fixes: torch's thread count (which numba's OpenMP layer used to change) and the
order in which a parallel search's results arrive."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import torch

from benchtool.executors.base import Executor, Resources
from benchtool.executors.local import LocalExecutor
from benchtool.reproducibility import GlobalState, cell_seed

pytest_plugins = ["pytester"]


def test_cell_seed_depends_on_run_seed_and_cell_only() -> None:
    a = cell_seed(0, "test_x.py::test_a[p]")
    assert a == cell_seed(0, "test_x.py::test_a[p]")
    assert len({a, cell_seed(1, "test_x.py::test_a[p]"), cell_seed(0, "test_x.py::test_a[q]")}) == 3
    assert 0 <= a < 2**32


def test_numba_first_parallel_kernel_leaves_torch_threads_alone() -> None:
    """numba's OpenMP layer calls omp_set_num_threads(NUMBA_NUM_THREADS) when its pool starts,
    which is torch's thread count too: the kernels put it back (a fresh process: first launch)."""
    code = textwrap.dedent("""
        import numpy as np, torch
        torch.set_num_threads(1)
        from benchtool.kernels import predictive_stats
        predictive_stats(np.full((64, 1000, 10), 0.1, np.float32))
        print(torch.get_num_threads())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "NUMBA_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "1"


class _OutOfOrder(Executor):
    """Threads where later calls finish first: what a busy cluster does."""

    name = "out-of-order"

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(3)
        self.calls = 0
        self.lock = threading.Lock()

    def submit(self, fn, /, *args, resources: Resources | None = None, retries: int = 0, **kwargs) -> Future:  # noqa: ANN001
        with self.lock:
            self.calls += 1
            delay = 0.03 if self.calls % 2 else 0.0

        def slow() -> object:
            time.sleep(delay)
            return fn(*args, **kwargs)

        return self.pool.submit(slow)

    def capacity(self) -> Resources:
        return Resources(cpus=3.0)

    def close(self) -> None:
        self.pool.shutdown()


def test_parallel_search_tells_in_ask_order_whatever_finishes_first() -> None:
    """The asynchronous search is a function of its seed: the same trials told in the same
    order through a serial executor and through one whose workers finish out of order."""
    from benchtool.harness.nas import Budget, TabularEvaluator, run_search
    from benchtool_nas.regularized_evolution import RegularizedEvolution
    from benchtool_nas.spaces import ConvChainSmall

    space = ConvChainSmall()
    evaluator = TabularEvaluator(space)

    def search(executor: Executor) -> list[tuple]:
        result = run_search(RegularizedEvolution(population_size=4, sample_size=2), space, evaluator,
                            Budget(evaluations=16), seed=5, workers=3, executor=executor)
        assert result.error is None
        return [(t.number, t.key, t.val_accuracy) for t in result.trials]

    serial = search(LocalExecutor())
    with _OutOfOrder() as executor:
        assert search(executor) == serial


SUITE = """
import random

import numpy as np
import torch


def test_changes_threads(bt_record):
    bt_record("x", 1.0)
    torch.set_num_threads(1 if torch.get_num_threads() > 1 else 2)


def test_changes_dtype(bt_record):
    bt_record("x", 1.0)
    torch.set_default_dtype(torch.float64)


def test_draws(bt_record):
    bt_record("torch", float(torch.rand(())))
    bt_record("numpy", float(np.random.rand()))
    bt_record("random", random.random())
    bt_record("threads", float(torch.get_num_threads()))
    bt_record("dtype64", float(torch.get_default_dtype() == torch.float64))
"""


def test_cells_start_seeded_and_a_cell_that_changes_global_state_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_cells=SUITE)
    args = ["-p", "benchtool.reproducibility", "-p", "no:store", "--bt-torch-threads", "2", "-p", "no:cacheprovider"]
    first = pytester.runpytest_subprocess(*args, "--bt-json", "all.json")
    first.assert_outcomes(passed=3, errors=2)
    first.stdout.fnmatch_lines(["*global-state-unchanged*torch_threads 2 -> 1*",
                                "*global-state-unchanged*default_dtype float32 -> float64*"])
    alone = pytester.runpytest_subprocess(*args, "--bt-json", "alone.json", "-k", "test_draws")
    alone.assert_outcomes(passed=1)
    import json

    def draws(name: str) -> dict:
        return {r["metric"]: r["value"] for r in json.loads((pytester.path / name).read_text())
                if r["case"] == "test_draws"}

    assert draws("all.json") == draws("alone.json")
    assert draws("all.json")["threads"] == 2.0 and draws("all.json")["dtype64"] == 0.0


def test_global_state_round_trips() -> None:
    before = GlobalState.current()
    changed = GlobalState(**{**before.__dict__, "default_dtype": "float64"})
    try:
        changed.apply()
        assert torch.get_default_dtype() == torch.float64
        assert before.changes(GlobalState.current()) == ["default_dtype float32 -> float64"]
    finally:
        before.apply()
    assert GlobalState.current() == before
