"""Scale-out figures, measured side by side in one run (not a timed test).

1. pytest-xdist: wall time of the tiny 8-cell suite (2 models x 4 noise levels, each cell
   doing ``--work`` extra forward passes) with ``-n 0`` and ``-n N``, each from an empty
   checkpoint cache (so both train their two models); the ratio, and whether the records match.
2. NAS: random search with ``TrainingEvaluator`` (conv-chain-small on digits) through the
   local executor (inline, one evaluation at a time) and through the Ray executor with 2
   workers on a private loopback cluster: evaluations per minute.

    python scripts/bench_scaleout.py [--workers 2] [--work 4000] [--evals 12] [--skip-ray | --skip-xdist]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray servers on 127.0.0.1 only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "scaleout_tiny"))

import numpy as np  # noqa: E402
from scaleout_harness import CELLS, make_suite, run_suite, suite_env  # noqa: E402

from benchtool.contracts.model import TrainRecipe  # noqa: E402
from benchtool.harness.nas import Budget, Evaluation, Evaluator, TrainingEvaluator, run_search  # noqa: E402

NAS_RECIPE = TrainRecipe(epochs=10, batch_size=64, optimizer="adam", lr=3e-3)  # as scripts/generate_nas_table.py


def bench_xdist(workers: int, work: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = make_suite(Path(folder))
        times, runs = {}, {}
        for n in (0, workers):
            env = suite_env(root, BENCHTOOL_CACHE=str(root / f"cache-n{n}"), BENCHTOOL_TEST_WORK=str(work),
                            BENCHTOOL_TEST_EPOCHS="20")
            start = time.perf_counter()
            runs[n] = run_suite(root, "-n", str(n), name=f"n{n}", env=env)
            times[n] = time.perf_counter() - start
            if runs[n].returncode != 0:
                raise SystemExit(f"-n {n} failed:\n{runs[n].output[-3000:]}")
        same = runs[0].record_keys() == runs[workers].record_keys()
        print(f"xdist: {CELLS} cells, -n 0 {times[0]:.1f} s, -n {workers} {times[workers]:.1f} s, "
              f"speed-up x{times[0] / times[workers]:.2f}, records identical: {same}")


class WorkerTrainingEvaluator(Evaluator):
    """A TrainingEvaluator made where the evaluation runs (it holds a lock, so it cannot
    travel to a Ray worker itself), on the device the executor gave the task."""

    def __init__(self, space: Any, device: str = "cpu") -> None:
        self.space = space
        self.device = device

    def evaluate(self, arch: Any, *, trial_seed: int = 0, timeout: float | None = None) -> Evaluation:
        from benchtool.data import load_dataset
        from benchtool.data.digits import Digits
        from benchtool.executors import task_device

        bundle = load_dataset(Digits(), root=Path(tempfile.gettempdir()), seed=0)
        evaluator = TrainingEvaluator(self.space, bundle, NAS_RECIPE, device=task_device(self.device))
        return evaluator.evaluate(arch, trial_seed=trial_seed, timeout=timeout)


def _warm_up(evaluator: WorkerTrainingEvaluator) -> int:
    """One untimed evaluation: imports, the digits bundle and first-call costs, per process."""
    time.sleep(1.0)  # long enough that each of the warm-up calls lands on its own worker
    evaluator.evaluate(evaluator.space.draw(np.random.default_rng(0)))
    return os.getpid()


def bench_nas(evals: int, ray_workers: int) -> None:
    from benchtool.executors import Resources
    from benchtool.executors.ray_executor import RayExecutor
    from benchtool_nas.random_search import RandomSearch
    from benchtool_nas.spaces import ConvChainSmall

    space = ConvChainSmall()
    evaluator = WorkerTrainingEvaluator(space)
    _warm_up(evaluator)
    import torch

    rates = {}
    threads = torch.get_num_threads()
    for label, count in ((f"local ({threads} threads)", threads), ("local (1 thread, as each Ray worker)", 1)):
        torch.set_num_threads(count)
        start = time.perf_counter()
        local = run_search(RandomSearch(), space, evaluator, Budget(evaluations=evals), seed=0)
        rates[label] = evals / (time.perf_counter() - start) * 60
    torch.set_num_threads(threads)
    import ray

    ray.init(num_cpus=ray_workers, include_dashboard=False, logging_level="WARNING")
    try:
        executor = RayExecutor()
        pids = {o.value for o in executor.map(_warm_up, [evaluator] * ray_workers)}
        assert len(pids) == ray_workers, f"warm-up reached {len(pids)} of {ray_workers} workers"
        start = time.perf_counter()
        remote = run_search(RandomSearch(), space, evaluator, Budget(evaluations=evals), seed=0,
                            workers=ray_workers, executor=executor, resources=Resources(cpus=1))
        rates["ray"] = evals / (time.perf_counter() - start) * 60
    finally:
        ray.shutdown()
    ok = sum(t.status == "ok" for t in remote.trials)
    found = [sorted((t.key, t.val_accuracy) for t in result.trials) for result in (local, remote)]
    print(f"nas: {evals} TrainingEvaluator evaluations per search ({space.name}, digits, {NAS_RECIPE.epochs} "
          f"epochs), evaluations/min: ray with {ray_workers} workers {rates['ray']:.1f}; ray trials ok "
          f"{ok}/{len(remote.trials)}, same results as local: {found[0] == found[1]}")
    for label, rate in rates.items():
        if label != "ray":
            print(f"nas:   {label} {rate:.1f}/min; ray / this x{rates['ray'] / rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (-n)")
    parser.add_argument("--work", type=int, default=4000, help="extra forward passes per cell")
    parser.add_argument("--evals", type=int, default=12, help="NAS evaluations per search")
    parser.add_argument("--skip-ray", action="store_true", help="only the pytest-xdist figure")
    parser.add_argument("--skip-xdist", action="store_true", help="only the NAS figure")
    args = parser.parse_args()
    if not args.skip_xdist:
        bench_xdist(args.workers, args.work)
    if not args.skip_ray:
        bench_nas(args.evals, ray_workers=2)


if __name__ == "__main__":
    main()
