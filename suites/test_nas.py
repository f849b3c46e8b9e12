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

import numpy as np
import pytest

from benchtool.contracts.model import TrainRecipe
from benchtool.nas import (
    Budget, TabularEvaluator, TrainingEvaluator, best_val_at_times, best_val_curve, incumbent_test_matrix, mean_ci,
    run_search,
)
from benchtool.testing import fresh

pytestmark = pytest.mark.bt(search_spaces=["conv-chain-small"], datasets=["digits"])

CHECKPOINTS = (10, 50, 100, 150, 200)
TIME_POINTS = 40


def test_search_on_table(strategy, search_space, bt_config, bt_record):
    if search_space.table_path() is None:
        pytest.skip(f"search space {search_space.name!r} has no table")
    evaluations = bt_config.pick(small=10, default=50, full=200)
    seeds = [bt_config.seed * 10_000 + i for i in range(bt_config.pick(small=5, default=20, full=50))]
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


@pytest.mark.bt(strategies=["random-search"], search_spaces=["conv-chain"])
def test_search_with_training(strategy, search_space, dataset, bt_config, bt_record):
    """The real path: a short search whose children are trained on the run's device."""
    recipe = TrainRecipe(epochs=bt_config.pick(small=1, default=3, full=10), batch_size=128, lr=3e-3)
    evaluations = bt_config.pick(small=2, default=8, full=30)
    evaluator = TrainingEvaluator(search_space, dataset, recipe, device=bt_config.device, train_seed=bt_config.seed)
    result = run_search(strategy, search_space, evaluator, Budget(evaluations=evaluations), seed=bt_config.seed,
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
