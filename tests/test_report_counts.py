"""Every proportion in the report carries its n and a 95% Wilson band: counts come from the
suites' count records (``examples``, ``fooled_examples``, ``test_examples``) or, per bin, from
``reliability_count``; the per-OOD-set bars start with the in-distribution value."""

from __future__ import annotations

import numpy as np
import pytest

from benchtool.claims.stats import wilson_interval
from benchtool.report.figures import count_for, count_index, render_figures, series_plans, sweep_plans
from benchtool.results import Record


def _rec(suite: str, metric: str, value=None, *, case="test_x[a-lenet-digits]", plugin="a", unit="", x=None, y=None,
         x_label="", **params) -> Record:
    series = None if x is None else {"x": list(map(float, x)), "y": list(map(float, y)), "x_label": x_label,
                                     "y_label": ""}
    return Record(suite, case, "k", plugin, "lenet", "digits", params, metric, value, unit, 0, "cpu", series)


def robustness() -> list[Record]:
    eps, robust, n = [0.0, 0.1, 0.2], [0.9, 0.5, 0.2], [100, 100, 80]
    records = [_rec("robustness", "robust_accuracy_vs_eps", x=eps, y=robust, x_label="eps (linf)")]
    for e, r, k in zip(eps, robust, n):
        records += [_rec("robustness", "robust_accuracy", r, eps=e),
                    _rec("robustness", "examples", k, unit="examples", eps=e)]
    return records


def uncertainty() -> list[Record]:
    records = [_rec("uncertainty", "accuracy", 0.96), _rec("uncertainty", "examples", 180, unit="examples", split="test")]
    for ood, acc, n in (("corrupted", 0.88, 180), ("rotated", 0.6, 90)):
        records += [_rec("uncertainty", "accuracy", acc, ood=ood),
                    _rec("uncertainty", "examples", n, unit="examples", ood=ood)]
    conf = [0.35, 0.65, 0.95]
    records += [_rec("uncertainty", "reliability", x=conf, y=[0.3, 0.5, 0.97], x_label="confidence"),
                _rec("uncertainty", "reliability_count", x=conf, y=[4, 20, 156], x_label="confidence",
                     unit="examples")]
    return records


def test_count_records_match_by_params_and_conventions() -> None:
    index = count_index(robustness() + uncertainty())
    assert count_for(_rec("robustness", "robust_accuracy", 0.2, eps=0.2), index) == 80
    assert count_for(_rec("uncertainty", "accuracy", 0.96), index) == 180  # the split="test" count
    assert count_for(_rec("uncertainty", "accuracy", 0.6, ood="rotated"), index) == 90
    assert count_for(_rec("uncertainty", "nll", 0.3), index) is None  # not a proportion
    fooled = [_rec("transformations", "fooled_examples", 40, plugin="eot", unit="examples", attack="eot", eps=0.1)]
    survival = _rec("transformations", "survival_rate", 0.7, plugin="eot", attack="eot", eps=0.1)
    assert count_for(survival, count_index(fooled)) == 40


def test_curve_gets_per_point_n_and_wilson_band() -> None:
    line = series_plans([("run", robustness())])[0].panels["lenet / digits"].lines["run"][0]
    assert list(line.n) == [100, 100, 80] and line.wilson and line.n_text() == "n=80..100"
    low, high = wilson_interval(0.2 * 80, 80, 0.05)
    assert np.isclose(line.lower[2], low) and np.isclose(line.upper[2], high)


def test_ood_bars_start_in_distribution_with_error_bars() -> None:
    plan = next(p for p in sweep_plans([("run", uncertainty())]) if p.metric == "accuracy")
    assert plan.kind == "bars" and plan.categories == ["in-distribution", "corrupted", "rotated"]
    bars = plan.panels["lenet / digits"].lines["run"][0]
    assert np.allclose(bars.y, [0.96, 0.88, 0.6]) and bars.wilson
    assert np.isclose(bars.lower[2], wilson_interval(0.6 * 90, 90, 0.05)[0])
    assert bars.n_text() == "n=90..180"


def test_reliability_diagram_draws_bin_counts() -> None:
    plans = {p.metric: p for p in series_plans([("run", uncertainty())])}
    assert "reliability_count" not in plans  # a sibling of the diagram, not a figure
    line = plans["reliability"].panels["lenet / digits"].lines["run"][0]
    assert list(line.n) == [4, 20, 156] and line.lower is not None
    figures = {f.title: f for f in render_figures([("run", uncertainty())])}
    assert "examples per bin" in figures["uncertainty: reliability"].caption
    assert "Wilson" in figures["uncertainty: accuracy"].caption


@pytest.mark.parametrize("seeds", [2])
def test_seed_lines_keep_the_student_band(seeds: int) -> None:
    records = []
    for seed in range(seeds):
        records += [_rec("robustness", "robust_accuracy", 0.5 + 0.1 * seed - e, eps=e, seed=seed) for e in (0.1, 0.2)]
        records += [_rec("robustness", "examples", 100, unit="examples", eps=e, seed=seed) for e in (0.1, 0.2)]
    line = sweep_plans([("run", records)])[0].panels["lenet / digits"].lines["run"][0]
    assert line.members == seeds and not line.wilson
