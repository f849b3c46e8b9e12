"""The report reads the metric catalog: a band's edges are drawn as one band around its
centre curve (whatever the spelling), an interval is a band and never "best", and the
leaderboard's best follows each metric's direction among comparable cells."""

from __future__ import annotations

import re

import numpy as np
import pytest

from benchtool.report.figures import render_figures, series_plans, sweep_plans
from benchtool.report.html import best_values, render_report
from benchtool.results import CaseResult, Record
from benchtool.comparison import Policies, scalar_values
from benchtool.store.load import ResultSet


def _rec(suite: str, metric: str, value: float | None = None, *, plugin: str = "a", kind: str = "estimators",
         model: str = "mlp", dataset: str = "toy-regression", x=None, y=None, unit: str = "", **params) -> Record:
    series = None if x is None else {"x": [float(v) for v in x], "y": [float(v) for v in y], "x_label": "x",
                                     "y_label": "y"}
    return Record(suite, f"test_{suite}[{plugin}-{model}-{dataset}]", kind, plugin, model, dataset, params, metric,
                  value, unit, 0, "cpu", series)


def _band_records(mean: str, lower: str, upper: str, extra: tuple[str, ...] = ()) -> list[Record]:
    grid = np.linspace(-1, 1, 9)
    records = [_rec("uncertainty", mean, x=grid, y=np.sin(grid)),
               _rec("uncertainty", lower, x=grid, y=np.sin(grid) - 0.3),
               _rec("uncertainty", upper, x=grid, y=np.sin(grid) + 0.5)]
    return records + [_rec("uncertainty", name, x=grid, y=np.full(9, 0.1)) for name in extra]


@pytest.mark.parametrize("names", [
    ("band-mean", "band-lower", "band-upper", ("epistemic-std", "aleatoric-std")),  # what older runs recorded
    ("predictive_mean", "predictive_mean_lower", "predictive_mean_upper", ("epistemic_std", "aleatoric_std")),
])
def test_regression_band_is_one_band_around_the_mean(names: tuple) -> None:
    mean, lower, upper, extra = names
    runs = [("run", _band_records(mean, lower, upper, extra))]
    plans = {p.metric: p for p in series_plans(runs)}
    assert sorted(plans) == sorted([mean, *extra])  # the edges are not curves of their own
    (line,) = plans[mean].panels["mlp / toy-regression"].lines["run"]
    assert np.allclose(line.y - line.lower, 0.3) and np.allclose(line.upper - line.y, 0.5)
    assert line.band == f"{lower} to {upper}"
    figures = {f.title: f for f in render_figures(runs)}
    assert sorted(figures) == sorted(f"uncertainty: {m}" for m in (mean, *extra))
    assert f"bands: {lower} to {upper}" in figures[f"uncertainty: {mean}"].caption


def test_a_ci_half_width_is_drawn_as_a_band_not_a_figure() -> None:
    steps = np.arange(1, 6)
    records = []
    for plugin, level in (("random-search", 0.03), ("regularized-evolution", 0.02)):
        records += [
            _rec("nas", "test_regret", plugin=plugin, kind="strategies", model="", dataset="digits", x=steps,
                 y=level / steps, seeds=5),
            _rec("nas", "test_regret_ci95", plugin=plugin, kind="strategies", model="", dataset="digits", x=steps,
                 y=np.full(5, 0.004), seeds=5),
        ]
        for k, acc in ((10, 0.90), (50, 0.93)):
            records += [_rec("nas", "final_test_accuracy", acc + level, plugin=plugin, kind="strategies", model="",
                             dataset="digits", evaluations=k),
                        _rec("nas", "final_test_accuracy_ci95", 0.01, plugin=plugin, kind="strategies", model="",
                             dataset="digits", evaluations=k)]
    runs = [("run", records)]
    curves = series_plans(runs)
    assert [p.metric for p in curves] == ["test_regret"]
    lines = curves[0].panels["digits"].lines["run"]
    assert all(np.allclose(line.upper - line.y, 0.004) and line.band == "± test_regret_ci95" for line in lines)
    sweeps = {p.metric: p for p in sweep_plans(runs, {("nas", "test_regret")})}
    assert sorted(sweeps) == ["final_test_accuracy"]  # its interval is its band, not a figure
    line = sweeps["final_test_accuracy"].panels["digits"].lines["run"][0]
    assert np.allclose(line.upper - line.y, 0.01) and line.band == "± final_test_accuracy_ci95"


def _leaderboard_html(records: list[Record], suite: str = "nas") -> str:
    cases = [CaseResult(f"suites/test_{suite}.py::{r.case}", suite, "passed", 1.0, []) for r in records]
    html = render_report(ResultSet("run", records, cases=cases))
    start = html.index(f'id="suite-{suite}-leaderboard"')
    return html[start:html.index("</table>", start)]


def _bold(table: str) -> list[tuple[str, str]]:
    """(row's case, value) of every cell highlighted as best."""
    rows = re.findall(r"<tr><td>([^<]*)</td>(.*?)</tr>", table)
    return [(case, value) for case, cells in rows for value in re.findall(r'<td class="num best">([^<]*)', cells)]


def test_a_ci_half_width_is_never_best() -> None:
    """The larger ``final_test_accuracy_ci95`` is the less certain one, not the best."""
    records = [
        _rec("nas", "final_test_accuracy", 0.93, plugin="regularized-evolution", kind="strategies", evaluations=50),
        _rec("nas", "final_test_accuracy_ci95", 0.004, plugin="regularized-evolution", kind="strategies",
             evaluations=50),
        _rec("nas", "test_regret", 0.002, plugin="regularized-evolution", kind="strategies", evaluations=50),
        _rec("nas", "final_test_accuracy", 0.91, plugin="random-search", kind="strategies", evaluations=50),
        _rec("nas", "final_test_accuracy_ci95", 0.02, plugin="random-search", kind="strategies", evaluations=50),
        _rec("nas", "test_regret", 0.004, plugin="random-search", kind="strategies", evaluations=50),
        _rec("nas", "seconds_per_evaluation", 0.1, plugin="random-search", kind="strategies", unit="s",
             evaluations=50),
        _rec("nas", "seconds_per_evaluation", 0.3, plugin="regularized-evolution", kind="strategies", unit="s",
             evaluations=50),
    ]
    best = best_values(list(scalar_values(records)), scalar_values(records), Policies())
    assert sorted(key[3] for key in best) == ["final_test_accuracy", "test_regret"]
    table = _leaderboard_html(records)
    assert sorted(_bold(table)) == [("regularized-evolution-mlp-toy-regression", "0.002"),
                                    ("regularized-evolution-mlp-toy-regression", "0.93")]
    assert 'title="half-width of the 95% CI of final_test_accuracy over seeds; interval; no better direction"' in table


def test_best_follows_the_plugins_view_and_compares_like_with_like() -> None:
    """For attacks the lower robust accuracy is best, per eps and per model; an eps sweep is
    not a contest between its own rows."""
    records = []
    for attack, drop in (("fgsm", 0.3), ("pgd", 0.6)):
        for model in ("lenet", "mlp"):
            for eps in (0.1, 0.2):
                records.append(_rec("robustness", "robust_accuracy", round(0.9 - drop * eps * 4, 3), plugin=attack,
                                    kind="attacks", model=model, dataset="digits", eps=eps))
    records.append(_rec("robustness", "robust_accuracy", 0.5, plugin="square", kind="attacks", model="cnn",
                        dataset="digits", eps=0.1))  # alone on its model: no contest, no best
    bold = _bold(_leaderboard_html(records, "robustness"))
    assert sorted(bold) == [("pgd-lenet-digits", "0.42"), ("pgd-lenet-digits", "0.66"),
                            ("pgd-mlp-digits", "0.42"), ("pgd-mlp-digits", "0.66")]


def test_a_direction_given_by_the_user_highlights_an_unknown_metric() -> None:
    records = [_rec("nas", "my_score", v, plugin=p, kind="strategies") for p, v in (("a", 1.0), ("b", 2.0))]
    values = scalar_values(records)
    assert best_values(list(values), values, Policies()) == {}
    chosen = best_values(list(values), values, Policies.from_args([], ["my_score=lower"]))
    assert [values[key][1].plugin for key in chosen] == ["a"]
