"""Architecture search: every strategy on the tabulated space over many seeds, and one
short search that really trains its children.

On a table (conv-chain-small, every architecture trained on digits with 2 seeds) each
strategy searches with ``N`` seeds (small: 10 evaluations x 5 seeds, default: 50 x 20,
full: 200 x 50). Records: the anytime curves (best validation accuracy vs evaluations
and vs simulated training seconds; test regret of the incumbent vs evaluations, with
its 95% CI half-width as a second curve), and at 10, 50, 100, 150 and 200 evaluations
the incumbent's test accuracy and its regret to the table's optimum, mean and 95% CI
across seeds (White et al. 2021, BANANAS, report the same at 150). Asserts only what a
strategy cannot fake: it kept its contract, every search used its whole budget, and
every regret is >= 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchtool.claims import NOT_REPRODUCED, REPRODUCED, Claim, Outcome, inconclusive
from benchtool.claims.core import value, values
from benchtool.claims.stats import n_for_means, sd_from_ci_half_width, welch_less
from benchtool.contracts.model import TrainRecipe
from benchtool.harness.nas import (
    Budget, TabularEvaluator, TrainingEvaluator, best_val_at_times, best_val_curve, incumbent_test_matrix, mean_ci,
    run_search,
)
from benchtool.testing import fresh

pytestmark = pytest.mark.bt(search_spaces=["conv-chain-small"], datasets=["digits"], task="classification")

CHECKPOINTS = (10, 50, 100, 150, 200)
TIME_POINTS = 40


def _regret_at_budget(records: list, strategy: str) -> tuple[int, float, float, int] | None:
    """(evaluations, mean test regret, its sd over seeds, seeds) at the strategy's full budget."""
    mine = [r for r in records if r.plugin == strategy]
    budgets = [r.params["evaluations"] for r in values(mine, "test_regret") if "evaluations" in r.params]
    seeds = [r.params.get("seeds") for r in mine if r.metric == "test_regret" and r.series is not None]
    if not budgets or not seeds:
        return None
    k = max(budgets)
    mean, half = value(mine, "test_regret", evaluations=k), value(mine, "test_regret_ci95", evaluations=k)
    return k, mean, sd_from_ci_half_width(half, int(seeds[0])), int(seeds[0])


REGRET_MARGIN = 0.001  # 0.1 point of test accuracy: under half BANANAS's RE-RS gap (6.34 - 6.11)


def _lower_regret(claim: Claim, records: list, better: list[str], worse: str, wording: str) -> Outcome:
    """Each of ``better`` has a lower mean final test regret than ``worse`` (Welch's t-test,
    one-sided, Bonferroni over the comparisons); one whose interval lies entirely above
    ``-REGRET_MARGIN`` (it is not better by a margin that matters, or is worse) makes the claim
    "not reproduced"."""
    found = {s: _regret_at_budget(records, s) for s in [*better, worse]}
    missing = [s for s, f in found.items() if f is None]
    if missing:
        return inconclusive(f"no table search of {', '.join(missing)} in this run", "those strategies in the run")
    k_tests = len(better)
    kw, mw, sw, nw = found[worse]
    parts, needed = [], 0
    verdicts = []
    for name in better:
        k, m, sd, n = found[name]
        test = welch_less(m, sd, n, mw, sw, nw, claim.alpha)
        p = min(1.0, test.p_value * k_tests) if math.isfinite(test.p_value) else math.nan
        parts.append(f"{name} {m:.4f} ({test.value:+.4f} {test.interval('.4f')}, p={p:.2g})")
        verdicts.append((test, p))
        if test.value < 0:
            needed = max(needed, n_for_means(abs(test.value), math.hypot(sd, sw) / math.sqrt(2), claim.alpha / k_tests))
    evidence = f"test regret at {kw} evaluations over {nw} seeds: {worse} {mw:.4f} vs " + "; ".join(parts) + wording
    if all(math.isfinite(p) and p < claim.alpha for _, p in verdicts):
        return Outcome(REPRODUCED, evidence, max(p for _, p in verdicts))
    if any(t.low > -REGRET_MARGIN for t, _ in verdicts):
        return Outcome(NOT_REPRODUCED, evidence + f"; margin {REGRET_MARGIN:g}", max(p for _, p in verdicts))
    how = f"about {needed} seeds per strategy" if needed else "no difference at this budget: more evaluations"
    return inconclusive(evidence, how + " (BANANAS compares at 150 evaluations)")


def decide_evolution_beats_random(claim: Claim, records: list) -> Outcome:
    return _lower_regret(claim, records, ["regularized-evolution", "local-search"], "random-search", "")


def decide_reinforce_needs_more(claim: Claim, records: list) -> Outcome:
    return _lower_regret(claim, records, ["regularized-evolution", "local-search"], "reinforce", "")


NAS_METRICS = ("test_regret", "test_regret_ci95")
BANANAS = "White, Neiswanger & Savani, AAAI 2021 (BANANAS, Table 1: LS 5.93, RE 6.11, RS 6.34, REINFORCE 6.44 %)"
TABLE_CLAIM = dict(  # both claims read the table searches, one verdict per search space
    suite="nas", metrics=NAS_METRICS, figure="test_regret",
    test="Welch's t-test over seeds, one-sided, Bonferroni over the 2 comparisons",
    subject=lambda r: r.case.split("[", 1)[-1].rstrip("]").removeprefix(f"{r.plugin}-"),
    where=lambda r: r.case.startswith("test_search_on_table"),
)
CLAIMS = [
    Claim(
        id="real2019-evolution-beats-random",
        paper=f"Real, Aggarwal, Huang & Le, AAAI 2019; {BANANAS}",
        statement="Regularized evolution and local search reach a lower test regret than random search at a "
                  "fixed evaluation budget.",
        rule=decide_evolution_beats_random, **TABLE_CLAIM,
    ),
    Claim(
        id="white2021-reinforce-needs-larger-budget",
        paper=BANANAS,
        statement="At the same fixed budget REINFORCE is still behind regularized evolution and local search "
                  "(it needs a larger budget).",
        rule=decide_reinforce_needs_more, **TABLE_CLAIM,
    ),
]


def test_search_on_table(strategy, search_space, bt_config, bt_record):
    if search_space.table_path() is None:
        pytest.skip(f"search space {search_space.name!r} has no table")
    evaluations = bt_config.pick(small=10, default=50, full=150)
    seeds = [bt_config.seed * 10_000 + i for i in range(bt_config.pick(small=5, default=200, full=500))]
    evaluator = TabularEvaluator(search_space)
    results = [run_search(fresh(strategy), search_space, evaluator, Budget(evaluations=evaluations), seed=seed)
               for seed in seeds]
    broken = [r for r in results if r.error is not None]
    if broken:
        pytest.fail(f"seed {broken[0].seed}: {broken[0].error}", pytrace=False)

    steps = np.arange(1, evaluations + 1)
    params = {"seeds": len(seeds)}
    best_val = mean_ci([best_val_curve(r, evaluations) for r in results])
    bt_record.series("best_val_accuracy", steps, best_val.mean, x_label="evaluations",
                     y_label="best validation accuracy (mean over seeds)", params=params)
    test_curves = incumbent_test_matrix(results, evaluations)
    regret = evaluator.table.best_test - test_curves  # regret_matrix, from the curves the suite also records
    summary = mean_ci(regret)
    bt_record.series("test_regret", steps, summary.mean, x_label="evaluations",
                     y_label="test regret of the incumbent (mean over seeds)", params=params)
    bt_record.series("test_regret_ci95", steps, summary.half_width, x_label="evaluations",
                     y_label="95% CI half-width of the test regret", params=params)
    times = np.linspace(0.0, max(r.clock for r in results), TIME_POINTS + 1)[1:]
    by_time = mean_ci([best_val_at_times(r, times) for r in results])
    bt_record.series("best_val_accuracy_vs_time", times, np.nan_to_num(by_time.mean), unit="s",
                     x_label="simulated training seconds", y_label="best validation accuracy (mean over seeds)",
                     params=params)
    tests = mean_ci(test_curves)
    for k in [c for c in CHECKPOINTS if c < evaluations] + [evaluations]:
        at = {"evaluations": k}
        bt_record("test_regret", summary.mean[k - 1], params=at)
        bt_record("test_regret_ci95", summary.half_width[k - 1], params=at)
        bt_record("final_test_accuracy", tests.mean[k - 1], params=at)
        bt_record("final_test_accuracy_ci95", tests.half_width[k - 1], params=at)

    for result in results:
        assert len(result.trials) == evaluations and result.failed_evaluations == 0, (
            f"seed {result.seed}: {len(result.trials)} trials told, {result.failed_evaluations} failed")
    assert np.all(regret >= 0), "an incumbent beat the table's optimum"


SEARCH_WORKERS = 2  # trials in flight; fixed, so the trajectory is the same on any executor


@pytest.mark.bt_fanout
@pytest.mark.bt(strategies=["random-search"], search_spaces=["conv-chain"])
def test_search_with_training(strategy, search_space, dataset, bt_config, bt_record):
    """The real path: a short search whose children are trained on the run's device, two at
    a time through the run's executor (``--bt-executor ray``: each child a Ray task; local:
    one after another). Trials are told in the order they were asked, so the records do not
    depend on which child finished first (only the seconds do)."""
    from benchtool.executors import Resources, get_executor

    recipe = TrainRecipe(epochs=bt_config.pick(small=1, default=3, full=10), batch_size=128, lr=3e-3)
    evaluations = bt_config.pick(small=2, default=8, full=30)
    evaluator = TrainingEvaluator(search_space, dataset, recipe, device=bt_config.device, train_seed=bt_config.seed)
    with get_executor(bt_config) as executor:
        gpus = 1.0 if bt_config.device.type == "cuda" and executor.capacity().gpus >= 1 else 0.0
        result = run_search(strategy, search_space, evaluator, Budget(evaluations=evaluations), seed=bt_config.seed,
                            workers=SEARCH_WORKERS, executor=executor, resources=Resources(cpus=1.0, gpus=gpus),
                            eval_timeout=bt_config.pick(small=300.0, default=900.0, full=3600.0))
    if result.error is not None:
        pytest.fail(str(result.error), pytrace=False)
    steps = np.arange(1, evaluations + 1)
    best_val = best_val_curve(result, evaluations)
    bt_record.series("best_val_accuracy", steps, best_val, x_label="evaluations", y_label="best validation accuracy")
    bt_record.series("best_val_accuracy_vs_time", [t.finished for t in result.trials], best_val, unit="s",
                     x_label="training seconds", y_label="best validation accuracy")
    incumbent = result.incumbent()
    seconds = [t.cost_seconds for t in result.trials]
    bt_record("final_test_accuracy", incumbent.test_accuracy, params={"evaluations": evaluations})
    bt_record("seconds_per_evaluation", float(np.mean(seconds)), unit="s", params={"evaluations": evaluations})
    failed = [f"{t.key}: {t.status} {t.detail}" for t in result.trials if t.status != "ok"]
    assert not failed, f"child trainings failed: {failed}"
    chance = 1.0 / dataset.info.num_classes
    assert incumbent.val_accuracy > chance, f"the best child ({incumbent.key}) is no better than chance"
