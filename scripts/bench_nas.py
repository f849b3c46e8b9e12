"""NAS on the tabular benchmark (conv-chain-small): harness speed and the comparison of
strategies, measured side by side in one run.

    python scripts/bench_nas.py              # 100 seeds x 300 evaluations x {RS, RE, REINFORCE}
    python scripts/bench_nas.py --compare    # also local search (and TPE, fewer seeds):
                                             # mean test regret +- 95% CI at several budgets

Timing prints wall and CPU seconds (this machine is shared: CPU seconds are the steadier
figure) and the median ask + tell of each strategy over one 300-evaluation search.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time

import numpy as np

from benchtool.host import load_host
from benchtool.harness.nas import Budget, TabularEvaluator, incumbent_test_curve, mean_ci, regret_matrix, run_search
from benchtool.tables import format_table

TIMED = ("random-search", "regularized-evolution", "reinforce")
COMPARED = ("local-search", "tpe")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--evaluations", type=int, default=300)
    parser.add_argument("--compare", action="store_true", help="add local search and TPE and print regrets")
    parser.add_argument("--tpe-seeds", type=int, default=20, help="seeds for TPE (Optuna is slow per ask)")
    parser.add_argument("--budgets", default="10,50,100,150,300", help="evaluation counts of the regret table")
    return parser.parse_args(argv)


def median_ask_tell_us(host, name: str, space, evaluator, evaluations: int) -> float:  # noqa: ANN001
    """Median wall time of one ask + tell over one search (the evaluation excluded)."""
    strategy = host.registry.create("strategies", name)
    strategy.start(space, 0)
    timings = []
    for _ in range(evaluations):
        started = time.perf_counter()
        trial = strategy.ask()
        asked = time.perf_counter()
        reward = evaluator.evaluate(trial.arch, trial_seed=trial.number).reward
        told = time.perf_counter()
        strategy.tell(trial, reward)
        timings.append((asked - started) + (time.perf_counter() - told))
    return float(np.median(timings) * 1e6)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host = load_host()
    space = host.registry.create("search_spaces", "conv-chain-small")
    evaluator = TabularEvaluator(space)
    optimum = evaluator.table.best_test
    names = list(TIMED)
    if args.compare:
        names += [n for n in COMPARED if n in host.registry.names("strategies")]
        if "tpe" not in names:
            print("tpe: not registered (install benchtool[optuna]); left out", file=sys.stderr)
    for name in names:  # warm-up: the controller's kernels load (or compile) once
        run_search(host.registry.create("strategies", name), space, evaluator, Budget(evaluations=2))

    rows, results = [], {}
    for name in names:
        seeds = args.tpe_seeds if name == "tpe" else args.seeds
        wall, cpu = time.perf_counter(), time.process_time()
        results[name] = [run_search(host.registry.create("strategies", name), space, evaluator,
                                    Budget(evaluations=args.evaluations), seed=seed) for seed in range(seeds)]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        failed = [r for r in results[name] if r.error is not None]
        if failed:
            raise SystemExit(f"{name} seed {failed[0].seed}: {failed[0].error}")
        ask_tell = median_ask_tell_us(host, name, space, evaluator, args.evaluations)
        rows.append([name, seeds, args.evaluations, f"{wall:.1f}", f"{cpu:.1f}", f"{ask_tell:.0f}"])
    print(f"conv-chain-small: {space.size} architectures; table optimum test accuracy {optimum:.4f}")
    timed_wall = sum(float(r[3]) for r in rows if r[0] in TIMED)
    timed_cpu = sum(float(r[4]) for r in rows if r[0] in TIMED)
    for line in format_table(["strategy", "seeds", "evaluations", "wall s", "cpu s", "median ask+tell us"], rows):
        print(line)
    print(f"RS + RE + REINFORCE: {timed_wall:.1f} s wall, {timed_cpu:.1f} s CPU "
          f"({args.seeds} seeds x {args.evaluations} evaluations each)")

    if args.compare:
        budgets = [b for b in (int(v) for v in args.budgets.split(",")) if b <= args.evaluations]
        table = []
        for name in names:
            summary = mean_ci(regret_matrix(results[name], args.evaluations, optimum) * 100)
            error = mean_ci([100 * (1 - incumbent_test_curve(r, args.evaluations)) for r in results[name]])
            k = min(150, args.evaluations) - 1
            table.append([name, len(results[name])]
                         + [f"{summary.mean[b - 1]:.3f} +- {summary.half_width[b - 1]:.3f}" for b in budgets]
                         + [f"{error.mean[k]:.2f} +- {error.half_width[k]:.2f}"])
        print("\nmean test regret of the incumbent (percentage points) +- 95% CI, by evaluations")
        header = ["strategy", "seeds", *[f"@{b}" for b in budgets], f"test error % @{min(150, args.evaluations)}"]
        for line in format_table(header, table):
            print(line)
    return 0


if __name__ == "__main__":
    if importlib.util.find_spec("benchtool") is None:
        raise SystemExit("install benchtool first: pip install -e .")
    sys.exit(main())
