"""What the harness computes from searches (anytime curves, regret, CIs), and the
shipped tabular benchmark itself."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from benchtool.contracts.data import DatasetInfo
from benchtool.harness.nas import (
    Budget, SearchResult, TabularEvaluator, TrialRecord, best_val_at_times, best_val_curve, incumbent_test_curve,
    mean_ci, regret_matrix,
)
from benchtool_nas.spaces import ConvChainSmall


def make_result(rows: list[tuple[float | None, float | None, float]]) -> SearchResult:
    """Trials from (val, test, finished) rows, in tell order."""
    result = SearchResult("s", "toy", 0, Budget(evaluations=max(len(rows), 1)), 1)
    for i, (val, test, finished) in enumerate(rows):
        status = "ok" if val is not None else "failed"
        result.trials.append(TrialRecord(i, (i,), str(i), status, val, test, 1.0, finished - 1.0, finished))
    return result


def test_anytime_curves_follow_the_incumbent() -> None:
    result = make_result([(None, None, 1.0), (0.5, 0.6, 2.0), (0.7, 0.65, 3.0), (0.6, 0.9, 4.5), (0.7, 0.1, 5.0)])
    np.testing.assert_array_equal(best_val_curve(result, 6), [np.nan, 0.5, 0.7, 0.7, 0.7, 0.7])
    # ties keep the earlier incumbent; a better test accuracy behind a worse validation one is not taken
    np.testing.assert_array_equal(incumbent_test_curve(result, 5), [np.nan, 0.6, 0.65, 0.65, 0.65])
    np.testing.assert_array_equal(best_val_at_times(result, np.array([0.5, 1.0, 2.5, 4.4, 4.5, 99.0])),
                                  [np.nan, np.nan, 0.5, 0.7, 0.7, 0.7])
    assert result.incumbent().number == 2 and result.incumbent(upto=2).number == 1
    np.testing.assert_allclose(regret_matrix([result, result], 5, 0.95)[:, -1], [0.3, 0.3])
    assert np.isnan(best_val_at_times(make_result([]), np.array([1.0]))).all()


@given(arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(1, 5)),
              elements=st.floats(-1e3, 1e3, allow_nan=False)))
def test_mean_ci_matches_scipy(data: np.ndarray) -> None:
    summary = mean_ci(data)
    for column in range(data.shape[1]):
        values = data[:, column]
        np.testing.assert_allclose(summary.mean[column], values.mean(), rtol=1e-9, atol=1e-9)
        if np.ptp(values) > 1e-9:
            low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
            np.testing.assert_allclose(summary.half_width[column], (high - low) / 2, rtol=1e-6)


def test_mean_ci_ignores_nans_and_needs_two_seeds() -> None:
    summary = mean_ci([[1.0, np.nan, np.nan], [3.0, 2.0, np.nan]])
    np.testing.assert_array_equal(summary.n, [2, 1, 0])
    assert summary.mean[0] == 2.0 and summary.mean[1] == 2.0 and np.isnan(summary.mean[2])
    assert summary.half_width[0] == pytest.approx(stats.t.ppf(0.975, 1) * np.std([1, 3], ddof=1) / np.sqrt(2))
    assert np.isnan(summary.half_width[1]) and np.isnan(summary.half_width[2])


def test_shipped_table_covers_conv_chain_small_with_two_seeds() -> None:
    space = ConvChainSmall()
    path = space.table_path()
    assert path.stat().st_size < 2_000_000  # it ships in the wheel
    table = TabularEvaluator(space).table  # checks: the right space, every architecture
    meta = table.meta
    assert meta["dataset"] == "digits" and meta["split"]["seed"] == 0 and len(meta["training_seeds"]) >= 2
    assert meta["recipe"]["epochs"] >= 1 and meta["generated_by"] == "scripts/generate_nas_table.py"
    for values in (table.val_accuracy, table.test_accuracy):
        assert np.all((values >= 0) & (values <= 1)) and values.std() > 0.01
    assert np.all(table.train_seconds > 0)
    info = DatasetInfo("digits", "classification", (1, 8, 8), 10, (0.0, 1.0))
    rng = np.random.default_rng(0)
    for arch in (space.draw(rng) for _ in range(5)):  # recorded sizes are those space.build makes
        model = space.build(arch, info)
        assert table.params[table.row(space.key(arch))] == sum(p.numel() for p in model.parameters())
