"""The HTML report: figures for every suite's records, self-contained, rendered by Chromium.

The records are synthetic but shaped like the suites' (robust accuracy vs eps, EOT
survival per transformation, reliability diagrams, OOD score histograms, the regression
band, NAS regret over seeds, memorization curves, approximation error vs width, task
weights), so the report's layouts are checked without running the suites.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex

from benchtool.cli import main
from benchtool.report.chromium import check_rendering, find_chromium, screenshot
from benchtool.report.figures import draw, draw_boxes, series_plans, shift_box_plans, suite_colors, sweep_plans
from benchtool.report.html import render_report
from benchtool.results import CaseResult, Record
from benchtool.store.db import ResultStore
from benchtool.store.load import load_result_set

# one figure per (suite, metric) that the synthetic run below must produce
EXPECTED_FIGURES = {
    "robustness: robust_accuracy", "robustness: survival", "uncertainty: reliability",
    "uncertainty: ood_score_histogram", "uncertainty: regression_mean", "nas: regret",
    "generalization: train_accuracy", "generalization: test_accuracy", "approximation: rms_error",
    "multitask: task_weight", "uncertainty: accuracy_vs_rotation", "uncertainty: shift_intensity (lenet / digits)",
}
SHIFTS = ("fog", "rotate", "shot-noise")  # the synthetic run's corruptions, at intensities 1-5


def _record(suite: str, case: str, kind: str, plugin: str, metric: str, value: float | None = None, *,
            model: str = "", dataset: str = "digits", params: dict | None = None, x=None, y=None,
            x_label: str = "", y_label: str = "", unit: str = "") -> Record:
    series = None if x is None else {"x": [float(v) for v in x], "y": [float(v) for v in y],
                                     "x_label": x_label, "y_label": y_label}
    return Record(suite, f"test_{suite}[{case}]", kind, plugin, model, dataset, params or {}, metric,
                  value, unit, 0, "cpu", series)


def synthetic_cases(shift: float = 0.0) -> list[CaseResult]:
    """A run's cases shaped like every suite's records; ``shift`` makes the attacks weaker."""
    rng = np.random.default_rng(0)
    cases: list[CaseResult] = []

    def case(suite: str, name: str, records: list[Record], outcome: str = "passed") -> None:
        cases.append(CaseResult(f"suites/test_{suite}.py::test_{suite}[{name}]", suite, outcome, 0.5, records))

    eps_grid = [0.0, 0.05, 0.1, 0.2, 0.3]
    for attack, strength in (("fgsm", 2.5), ("pgd", 5.0)):
        for model, clean in (("lenet", 0.97), ("mlp", 0.95)):
            name = f"{attack}-{model}-digits"
            records = [_record("robustness", name, "attacks", attack, "robust_accuracy",
                               min(clean, clean * math.exp(-strength * e) + shift), model=model, params={"eps": e})
                       for e in eps_grid]
            records.append(_record("robustness", name, "attacks", attack, "clean_accuracy", clean, model=model))
            case("robustness", name, records)
    for attack, survive in (("pgd", 0.25), ("eot", 0.8)):
        records = [_record("robustness", f"{attack}-transforms", "attacks", attack, "survival",
                           survive - 0.1 * i, model="lenet", params={"transform": t})
                   for i, t in enumerate(("rotation", "translation", "brightness", "noise"))]
        case("robustness", f"{attack}-transforms", records)

    centres = np.linspace(0.05, 0.95, 10)
    grid = np.linspace(-3, 3, 40)
    for estimator, sharp in (("softmax", 0.7), ("mc-dropout", 0.9), ("deep-ensemble", 0.95)):
        name = f"{estimator}-lenet-digits"
        records = [
            _record("uncertainty", name, "estimators", estimator, "ece", 0.1 * (1 - sharp) + 0.01, model="lenet"),
            _record("uncertainty", name, "estimators", estimator, "ood_auroc", 0.6 + 0.3 * sharp, model="lenet"),
            _record("uncertainty", name, "estimators", estimator, "reliability", x=centres,
                    y=centres ** (1 / sharp), x_label="confidence", y_label="accuracy", model="lenet"),
            _record("uncertainty", name, "estimators", estimator, "accuracy", 0.9 + 0.1 * sharp, model="lenet"),
            _record("uncertainty", name, "estimators", estimator, "accuracy_vs_rotation", x=range(0, 181, 15),
                    y=[0.2 + 0.8 * sharp * math.cos(math.radians(d)) ** 2 for d in range(0, 181, 15)],
                    params={"shift": "rotation"}, x_label="degrees rotated", y_label="accuracy", model="lenet"),
        ]
        for i, corruption in enumerate(SHIFTS):  # Ovadia's Figure 2: a box over SHIFTS per intensity
            for level in range(1, 6):
                records += [
                    _record("uncertainty", name, "estimators", estimator, "accuracy", sharp - 0.1 * level - 0.05 * i,
                            model="lenet", params={"shift": corruption, "intensity": level}),
                    _record("uncertainty", name, "estimators", estimator, "ece", 0.02 * level * (2 - sharp) + 0.01 * i,
                            model="lenet", params={"shift": corruption, "intensity": level}),
                ]
        for split, mean in (("in", 0.3), ("out", 0.3 + 0.6 * sharp)):
            density = np.exp(-((centres - mean) ** 2) / 0.02)
            records.append(_record("uncertainty", name, "estimators", estimator, "ood_score_histogram",
                                   x=centres, y=density / density.sum(), params={"split": split},
                                   x_label="predictive entropy", y_label="fraction", model="lenet"))
        mean = np.sin(grid)
        std = 0.1 + sharp * 0.5 * (np.abs(grid) < 1)  # wider in the gap
        records += [
            _record("uncertainty", name, "estimators", estimator, "regression_mean", x=grid, y=mean,
                    x_label="x", y_label="y", model="mlp", dataset="toy-regression"),
            _record("uncertainty", name, "estimators", estimator, "regression_mean_std", x=grid, y=std,
                    model="mlp", dataset="toy-regression"),
        ]
        case("uncertainty", name, records)

    evaluations = np.arange(1, 51)
    for strategy, speed in (("random-search", 0.05), ("regularized-evolution", 0.09), ("reinforce", 0.04)):
        records = [
            _record("nas", f"{strategy}-tabular", "strategies", strategy, "regret",
                    x=evaluations, y=0.08 * np.exp(-speed * evaluations) + rng.uniform(0, 0.01, 50),
                    params={"seed": s}, x_label="evaluations", y_label="regret", dataset="tabular")
            for s in range(5)
        ]
        case("nas", f"{strategy}-tabular", records)

    epochs = np.arange(1, 31)
    for p in (0.0, 0.4, 1.0):
        name = f"lenet-noise{p}"
        case("generalization", name, [
            _record("generalization", name, "", "", "train_accuracy", x=epochs,
                    y=1 - 0.9 * np.exp(-epochs / (3 + 10 * p)), model="lenet", params={"label_noise": p},
                    x_label="epoch", y_label="train accuracy"),
            _record("generalization", name, "", "", "test_accuracy", 0.97 - 0.87 * p, model="lenet",
                    params={"label_noise": p}),
        ])

    for target in ("sine", "abs"):
        records = [
            _record("approximation", target, "target_functions", target, "rms_error", err / w ** 0.8, model="",
                    dataset="", params={"width": w, "region": region})
            for w in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) for region, err in (("inside", 0.5), ("outside", 2.0))
        ]
        case("approximation", target, records)

    steps = np.arange(0, 200, 10)
    case("multitask", "uncertainty", [
        _record("multitask", "uncertainty", "loss_weightings", "uncertainty", "task_weight", x=steps,
                y=np.exp(-steps / scale) + floor, params={"task": task}, x_label="step", y_label="weight")
        for task, scale, floor in (("class", 80, 0.5), ("centre-of-mass", 50, 0.2), ("reconstruction", 120, 1.0))
    ])
    case("multitask", "broken", [], outcome="failed")
    return cases


def store_run(store: ResultStore, run_id: str, cases: list[CaseResult]) -> None:
    store.begin_run(run_id, time.time(), {"device": "cpu", "host": "test", "torch": "x"},
                    command="benchtool run", cwd=".", pytest_args=[], budget="small", seed=0)
    for case in cases:
        store.add_case(run_id, case)
    store.finish_run(run_id, 1)


@pytest.fixture(scope="module")
def report_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "results.db"
    with ResultStore(path) as store:
        store_run(store, "run-base", synthetic_cases(shift=0.0))
        store_run(store, "run-weak", synthetic_cases(shift=0.15))
    return path


@pytest.fixture(scope="module")
def base_html(report_store: Path) -> str:
    return render_report(load_result_set("run-base", report_store))


@pytest.fixture(scope="module")
def compare_html(report_store: Path) -> str:
    return render_report(load_result_set("run-weak", report_store), load_result_set("run-base", report_store))


def _titles(html: str) -> list[str]:
    return re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="([^"]+)"', html)


def test_every_suite_layout_becomes_a_figure(base_html: str) -> None:
    html = base_html
    assert set(_titles(html)) == EXPECTED_FIGURES
    assert "http://" not in html and "https://" not in html and "<script" not in html  # self-contained
    for suite in ("robustness", "uncertainty", "nas", "generalization", "approximation", "multitask"):
        assert f'id="suite-{suite}"' in html
    assert "<h3>Failed cases</h3>" in html and "test_multitask[broken]" in html


def test_layouts_pick_sweeps_bands_and_seed_intervals(report_store: Path) -> None:
    records = load_result_set("run-base", report_store).records
    runs = [("run-base", records)]
    plans = {(p.suite, p.metric): p for p in series_plans(runs) + sweep_plans(runs)}
    robust = plans[("robustness", "robust_accuracy")]
    assert robust.kind == "line" and robust.x_label == "eps"
    assert sorted(robust.panels) == ["lenet / digits", "mlp / digits"]  # one panel per model
    assert [line.label for line in robust.panels["lenet / digits"].lines["run-base"]] == ["fgsm", "pgd"]
    assert plans[("robustness", "survival")].kind == "bars"
    assert plans[("robustness", "survival")].categories == ["brightness", "noise", "rotation", "translation"]
    assert plans[("uncertainty", "reliability")].kind == "reliability"
    assert plans[("uncertainty", "ood_score_histogram")].kind == "histogram"
    band = plans[("uncertainty", "regression_mean")].panels["mlp / toy-regression"].lines["run-base"][0]
    assert band.lower is not None and np.allclose(band.upper - band.y, 2 * (band.y - band.lower) / 2)
    assert ("uncertainty", "regression_mean_std") not in plans  # drawn as the band, not a figure
    regret = plans[("nas", "regret")].panels["tabular"].lines["run-base"]
    assert {line.members for line in regret} == {5}  # five seeds -> mean and 95% CI
    assert all(np.all(line.lower <= line.y) and np.all(line.y <= line.upper) for line in regret)
    width = plans[("approximation", "rms_error")]
    assert width.x_label == "width"
    assert sorted(line.label for line in width.panels[""].lines["run-base"]) == [
        "abs region=inside", "abs region=outside", "sine region=inside", "sine region=outside"]


def test_shift_intensities_are_boxes_per_intensity_and_estimator(report_store: Path, base_html: str,
                                                                 compare_html: str) -> None:
    """Ovadia et al. 2019's Figure 2: per intensity (and the clean test value first) a box over
    the corruptions for each estimator; the shift cells make no sweep figure of their own."""
    records = load_result_set("run-base", report_store).records
    (plan,) = shift_box_plans([("run-base", records)])
    assert (plan.suite, plan.panel) == ("uncertainty", "lenet / digits")
    assert plan.groups == ["test", "1", "2", "3", "4", "5"] and plan.corruptions == sorted(SHIFTS)
    assert list(plan.metrics) == ["accuracy", "ece"]  # the SHIFT_BOX_METRICS recorded, in their order
    boxes = plan.metrics["accuracy"]["run-base"]
    assert sorted(boxes) == ["deep-ensemble", "mc-dropout", "softmax"]
    assert plan.box_count("accuracy", "run-base") == plan.box_count("ece", "run-base") == 3 * 6
    assert sorted(boxes["softmax"]["2"]) == pytest.approx([0.7 - 0.2 - 0.05 * i for i in (2, 1, 0)])
    assert boxes["softmax"]["test"] == pytest.approx([0.97])  # the clean record of the same cell
    assert "uncertainty: accuracy" not in _titles(base_html)  # not swept over intensity
    assert "3 estimators, 18 boxes per panel" in base_html and "3 corruptions (fog, rotate, shot-noise)" in base_html
    (compared,) = shift_box_plans([("run-weak", records), ("run-base", records)])
    assert compared.box_count("accuracy", "run-base") == 18  # the baseline's boxes, drawn dashed
    assert "18 boxes per panel); test: the clean test split; run-weak solid, run-base dashed" in compare_html


def test_a_plugin_keeps_its_colour_in_every_figure_of_its_suite(report_store: Path) -> None:
    """One colour map per suite over all its figures: an estimator drawn in the curves and in
    the shift boxes, or an attack in two sweeps, has one colour everywhere."""
    runs = [("run-base", load_result_set("run-base", report_store).records)]
    plans, boxes = series_plans(runs) + sweep_plans(runs), shift_box_plans(runs)
    colors = suite_colors(plans, boxes)
    drawn: dict[tuple[str, str], set[str]] = {}
    for plan in plans:
        for ax in draw(plan, ["run-base"], colors[plan.suite]).axes:
            for line in ax.get_lines():
                if line.get_label() in colors[plan.suite]:
                    drawn.setdefault((plan.suite, line.get_label()), set()).add(line.get_color())
    assert len({label for _, label in drawn}) >= 3
    assert all(found == {colors[suite][label]} for (suite, label), found in drawn.items()), drawn
    (box,) = boxes
    edges = {to_hex(p.get_edgecolor()) for ax in draw_boxes(box, ["run-base"], colors[box.suite]).axes
             for p in ax.patches}
    assert {colors["uncertainty"][e] for e in ("softmax", "mc-dropout", "deep-ensemble")} <= edges


def test_seed_interval_is_student_t() -> None:
    from benchtool.report.figures import aggregate

    x = np.arange(3.0)
    curves = [(x, np.array([1.0, 2.0, 3.0]) + d, None, None) for d in (-1.0, 0.0, 1.0)]
    line = aggregate("s", curves)
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert np.allclose(line.y, [1, 2, 3]) and np.allclose(line.upper - line.y, half)


def test_compare_overlay_and_deltas(compare_html: str) -> None:
    html = compare_html
    assert "run-weak vs run-base" in html
    assert 'class="delta regressed"' in html  # weaker attacks: robust accuracy up is worse for attacks
    assert 'class="delta same"' in html
    assert set(_titles(html)) == EXPECTED_FIGURES
    assert html.count("run-weak solid, run-base dashed") == len(EXPECTED_FIGURES)


def _one_suite(cases: list[CaseResult], suite: str) -> list[CaseResult]:
    return [case for case in cases if case.suite == suite]


def test_report_command_writes_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store_path = tmp_path / "results.db"
    with ResultStore(store_path) as store:
        store_run(store, "a", _one_suite(synthetic_cases(), "multitask"))
        store_run(store, "b", _one_suite(synthetic_cases(), "multitask"))
    out = tmp_path / "sub" / "report.html"
    assert main(["report", "b", "--compare", "a", "-o", str(out), "--store", str(store_path)]) == 0
    assert out.is_file() and "report written to" in capsys.readouterr().out
    assert _titles(out.read_text()) == ["multitask: task_weight"]
    assert main(["report", "nope", "-o", str(out), "--store", str(store_path)]) == 2
    assert "unknown run 'nope'" in capsys.readouterr().err
    assert main(["report", "a", "-o", str(tmp_path), "--store", str(store_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_report_of_a_json_file(tmp_path: Path) -> None:
    from benchtool.results import write_json

    path = tmp_path / "records.json"
    write_json(path, [r for case in _one_suite(synthetic_cases(), "nas") for r in case.records])
    html = render_report(load_result_set(str(path)))
    assert _titles(html) == ["nas: regret"] and "records.json" in html


chromium_missing = pytest.mark.skipif(find_chromium() is None,
                                      reason="Chromium not installed (apt-get install -y chromium)")


@chromium_missing
def test_report_renders_in_chromium_with_every_figure(compare_html: str, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(compare_html)
    check = check_rendering(report)
    assert check.images == len(EXPECTED_FIGURES)
    assert check.decoded == check.data_url_images == check.images
    assert check.page_errors == [] and check.console_lines == []
    assert check.ok
    shots = Path(os.environ.get("BENCHTOOL_SCREENSHOT_DIR", tmp_path))
    png = screenshot(report, shots / "report.png", height=2400)
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@chromium_missing
def test_chromium_check_catches_a_broken_figure(tmp_path: Path) -> None:
    """The check can fail: a corrupt image is counted as not decoded and reported as a page error."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                    '<img src="data:image/png;base64,iVBORw0KGgoAAAA"></body></html>')
    check = check_rendering(page)
    assert (check.images, check.decoded) == (1, 0)
    assert check.page_errors and not check.ok


def test_crowded_panels_split_by_plugin_and_curves_win_over_sweeps() -> None:
    from benchtool.report.figures import render_figures, split_crowded

    steps = np.arange(5)
    records = [_record("approximation", f"{t}-w{w}", "target_functions", t, "train_curve", x=steps, y=steps / w,
                       params={"width": w}, dataset="") for t in ("abs", "sine") for w in (1, 2, 4, 8, 16, 32)]
    records += [_record("approximation", f"{t}-w{w}", "target_functions", t, "rms_error", 1 / w, params={"width": w},
                        dataset="") for t in ("abs", "sine") for w in (1, 2, 4)]
    records += [_record("approximation", f"{t}-w{w}", "target_functions", t, "rms_error", 1 / w, x=[w], y=[1 / w],
                        params={"width": w}, dataset="") for t in ("abs",) for w in (1,)]
    # a parameter that differs between cases but not along any line is no sweep
    records += [_record("nas", f"{s}-x", "strategies", s, "final_accuracy", 0.9, params={"evaluations": n})
                for s, n in (("a", 10), ("b", 20))]
    runs = [("r", records)]
    (curve,) = [p for p in series_plans(runs) if p.metric == "train_curve"]
    assert sorted(split_crowded(curve).panels) == ["abs", "sine"]  # 12 lines: one panel per plugin
    assert [line.label for line in curve.panels["abs"].lines["r"]][:2] == ["width=1", "width=2"]
    titles = [f.title for f in render_figures(runs)]
    assert titles.count("approximation: rms_error") == 1 and "nas: final_accuracy" not in titles
