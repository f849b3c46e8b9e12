"""The metric regression gate: directions, tolerances, matching, exit codes."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchtool.cli import main
from benchtool.errors import UsageError
from benchtool.results import CaseResult, Record, write_json
from benchtool.comparison import MetricPolicy, Policies, Tolerance, compare, default_policy, judge
from benchtool.store.db import ResultStore
from benchtool.store.load import ResultSet


def rec(metric: str, value: float, *, kind: str = "estimators", case: str = "softmax-lenet-digits",
        params: dict | None = None, unit: str = "", suite: str = "uncertainty") -> Record:
    return Record(suite, f"test_x[{case}]", kind, case.split("-")[0], "lenet", "digits", params or {}, metric,
                  value, unit, 0, "cpu")


def results(label: str, *records: Record, cases: list[CaseResult] | None = None) -> ResultSet:
    return ResultSet(label, list(records), cases=cases or [])


def statuses(base: ResultSet, cand: ResultSet, policies: Policies | None = None) -> dict[str, str]:
    comparison = compare(base, cand, policies or Policies())
    return {c.metric + (f"[{c.params}]" if c.params else ""): c.status for c in comparison.changes}


def test_directions_are_the_plugins_point_of_view() -> None:
    assert default_policy("attacks", "robust_accuracy").direction == "lower"  # stronger attack
    assert default_policy("models", "robust_accuracy").direction == "higher"
    assert default_policy("estimators", "ece").direction == "lower"
    assert default_policy("estimators", "auroc-max-prob").direction == "higher"
    assert default_policy("strategies", "test_regret").direction == "lower"
    assert default_policy("", "seconds_per_evaluation").direction == "lower"  # a timing: reported, never gated
    assert not default_policy("", "seconds_per_evaluation").gated
    assert default_policy("", "accuracy", unit="s").direction == "higher"  # a catalogued name wins over the unit


def test_unknown_names_have_the_documented_default() -> None:
    """No guessing from substrings: an unknown name is reported, not gated, unless its unit is a time."""
    for name in ("robust_accuracy_top5", "test_error_rate", "queries", "my_accuracy_ci95"):
        policy = default_policy("attacks", name)
        assert (policy.direction, policy.kind, policy.gated) == ("none", "unknown", False), name
    assert default_policy("", "my_latency", unit="ms").kind == "timing"
    assert default_policy("", "rmse_ci95").kind == "interval"  # a derived form of a catalogued metric


def test_tolerance_absolute_and_relative() -> None:
    assert Tolerance.parse("0.01", "x") == Tolerance(0.01)
    assert Tolerance.parse("5%", "x") == Tolerance(0.05, relative=True)
    assert Tolerance(0.05, relative=True).allowed(-2.0) == pytest.approx(0.1)
    assert str(Tolerance(0.05, True)) == "5%" and str(Tolerance(0.01)) == "0.01"
    for bad in ("x", "-1", "nan", "inf%"):
        with pytest.raises(UsageError, match="invalid tolerance"):
            Tolerance.parse(bad, "--tol m=" + bad)


@given(base=st.floats(-10, 10), delta=st.floats(-5, 5), tol=st.floats(0, 3),
       direction=st.sampled_from(["higher", "lower"]))
def test_judge_agrees_with_its_definition(base: float, delta: float, tol: float, direction: str) -> None:
    cand = base + delta
    verdict = judge(base, cand, MetricPolicy(direction, Tolerance(tol)))  # type: ignore[arg-type]
    change = cand - base
    worse = change < 0 if direction == "higher" else change > 0
    if cand == base:
        assert verdict == "unchanged"
    elif abs(change) <= tol:
        assert verdict == "within"
    else:
        assert verdict == ("REGRESSED" if worse else "improved")


def test_nan_candidate_is_a_regression_and_none_direction_never_is() -> None:
    gated = MetricPolicy("higher", Tolerance(0.01))
    assert judge(0.9, math.nan, gated) == "REGRESSED"
    assert judge(math.nan, math.nan, gated) == "unchanged"
    assert judge(1.0, 100.0, MetricPolicy("none", Tolerance(0))) == "changed"


def test_matching_by_case_params_metric() -> None:
    base = results("a", rec("ece", 0.05), rec("auroc_max_prob", 0.9), rec("nll", 0.3, params={"split": "ood"}),
                   rec("ece", 0.05, case="mc-dropout-lenet-digits"))
    cand = results("b", rec("ece", 0.052), rec("auroc_max_prob", 0.7), rec("nll", 0.2, params={"split": "ood"}),
                   rec("brier", 0.1))
    found = statuses(base, cand)
    assert found["ece"] == "within" and found["auroc_max_prob"] == "REGRESSED" and found["nll[split=ood]"] == "improved"
    assert found["brier"] == "new"
    comparison = compare(base, cand, Policies())
    assert [c.status for c in comparison.changes if c.case == "mc-dropout-lenet-digits"] == ["missing"]
    assert comparison.only_baseline_cases == ["uncertainty::mc-dropout-lenet-digits"]
    assert len(comparison.regressions) == 1


def test_overrides_change_tolerance_and_direction() -> None:
    base, cand = results("a", rec("ece", 0.05)), results("b", rec("ece", 0.07))
    assert statuses(base, cand)["ece"] == "REGRESSED"
    assert statuses(base, cand, Policies.from_args(["ece=0.05"]))["ece"] == "within"
    assert statuses(base, cand, Policies.from_args(["estimators:ece=50%"]))["ece"] == "within"
    assert statuses(base, cand, Policies.from_args([], ["ece=higher"]))["ece"] == "improved"
    assert statuses(base, cand, Policies.from_args([], ["ece=none"]))["ece"] == "changed"
    with pytest.raises(UsageError, match="invalid direction 'up'.*higher, lower, none"):
        Policies.from_args([], ["ece=up"])
    with pytest.raises(UsageError, match="expected METRIC=VALUE"):
        Policies.from_args(["ece"])


def test_a_case_that_starts_failing_is_a_regression() -> None:
    nodeid = "suites/test_uncertainty.py::test_x[softmax-lenet-digits]"
    base = results("a", rec("ece", 0.05), cases=[CaseResult(nodeid, "uncertainty", "passed", 1.0, [])])
    cand = results("b", cases=[CaseResult(nodeid, "uncertainty", "failed", 1.0, [], "ContractViolation: boom")])
    comparison = compare(base, cand, Policies())
    (failed,) = comparison.regressions
    assert failed.status == "FAILED" and "ContractViolation: boom" in failed.describe()


def test_no_common_case_is_bad_input() -> None:
    with pytest.raises(UsageError, match="no matching cases between a .* and b"):
        compare(results("a", rec("ece", 0.1)), results("b", rec("ece", 0.1, case="other-x-y")), Policies())


def _store_two_runs(path: Path, base: list[Record], cand: list[Record]) -> None:
    with ResultStore(path) as store:
        for run_id, records in (("base", base), ("cand", cand)):
            store.begin_run(run_id, time.time(), {}, command="c", cwd=".", pytest_args=[], budget="small", seed=0)
            store.add_case(run_id, CaseResult("suites/test_uncertainty.py::test_x[softmax-lenet-digits]",
                                              "uncertainty", "passed", 1.0, records))
            store.finish_run(run_id, 0)
            time.sleep(0.002)


OLD_SPELLINGS = {"auroc-max-prob": "auroc_max_prob", "mean-mi": "mean_mi", "coverage-90": "coverage_90",
                 "band-lower": "predictive_mean_lower"}  # stored runs before one spelling -> today's names


def test_a_run_stored_with_old_names_compares_with_a_new_run(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """History keeps comparing: each old name matches its catalogued name, as one metric."""
    db = tmp_path / "results.db"
    def curve(name: str) -> Record:
        return replace(rec(name, 0), value=None, series={"x": [0.5, 1.0], "y": [0.0, 0.1]})

    _store_two_runs(db, [rec(old, 0.9) for old in OLD_SPELLINGS] + [rec("auroc-entropy", 0.9), curve("risk-coverage")],
                    [rec(new, 0.9) for new in OLD_SPELLINGS.values()] + [rec("auroc_entropy", 0.5),
                                                                        curve("risk_coverage")])
    assert main(["compare", "base", "cand", "--store", str(db), "--all", "--json", str(tmp_path / "c.json")]) == 1
    assert "5 metric(s): 1 regressed, 4 unchanged" in capsys.readouterr().out
    changes = json.loads((tmp_path / "c.json").read_text())["changes"]
    assert {c["metric"]: c["status"] for c in changes} == {
        **{new: "unchanged" for new in OLD_SPELLINGS.values()}, "auroc_entropy": "REGRESSED"}
    from benchtool.report.html import render_report
    from benchtool.store.load import load_result_set

    html = render_report(load_result_set("cand", db), load_result_set("base", db))
    assert 'class="delta regressed"' in html and "auroc-" not in html and "mean-mi" not in html
    assert re.findall(r'alt="uncertainty: (risk.coverage)"', html) == ["risk_coverage"]  # one figure, both runs


def test_compare_command_exit_codes_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "results.db"
    _store_two_runs(db, [rec("ece", 0.05), rec("auroc_max_prob", 0.9)], [rec("ece", 0.08), rec("auroc_max_prob", 0.9)])
    assert main(["compare", "base", "cand", "--store", str(db)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED uncertainty softmax-lenet-digits ece: 0.05 -> 0.08 (+0.03; lower is better for estimators" in out
    assert "2 metric(s): 1 regressed, 1 unchanged" in out
    assert "auroc_max_prob" not in out  # unchanged metrics are counted, not listed (unless --all)
    assert main(["compare", "base", "cand", "--store", str(db), "--tol", "ece=0.05", "--all",
                 "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "within" in out and "auroc_max_prob" in out  # --all lists unchanged metrics
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["regressed"] == 0 and {c["metric"] for c in data["changes"]} == {"ece", "auroc_max_prob"}
    assert main(["compare", "latest~1", "latest", "--store", str(db)]) == 1
    capsys.readouterr()
    assert main(["compare", "base", "nope", "--store", str(db)]) == 2
    assert "unknown run 'nope'" in capsys.readouterr().err
    assert main(["compare", "base", "cand", "--store", str(db), "--tol", "ece"]) == 2
    assert main(["compare", "base", str(tmp_path / "missing.json"), "--store", str(db)]) == 2
    assert "no such results file" in capsys.readouterr().err


def test_compare_json_files_against_a_stored_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "results.db"
    _store_two_runs(db, [rec("ece", 0.05)], [rec("ece", 0.05)])
    baseline = tmp_path / "baseline.json"
    write_json(baseline, [rec("ece", 0.01)])
    assert main(["compare", str(baseline), "cand", "--store", str(db)]) == 1
    assert "baseline baseline.json vs candidate cand" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text('{"not": "a list"}')
    assert main(["compare", str(tmp_path / "bad.json"), "cand", "--store", str(db)]) == 2
    assert "not a benchtool results file" in capsys.readouterr().err


def test_a_changed_verdict_is_a_regression_whatever_the_tolerances(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from benchtool.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Verdict

    def run(verdict: str, accuracy: float) -> list[Record]:
        claim = Verdict("zhang2017-random-labels", "generalization", "digits", verdict, "train 1.000",
                        needed="more seeds" if verdict == INCONCLUSIVE else "", model="mlp")
        return [rec("test_accuracy", accuracy, kind="", suite="generalization"), claim.to_record()]

    same = compare(results("a", *run(REPRODUCED, 0.1)), results("b", *run(REPRODUCED, 0.1)), Policies())
    assert same.regressions == []
    flipped = compare(results("a", *run(REPRODUCED, 0.1)), results("b", *run(NOT_REPRODUCED, 0.1)), Policies())
    assert [(c.metric, c.case, c.params, c.status) for c in flipped.regressions] == [
        ("claim", "claim[zhang2017-random-labels]", "digits (mlp)", "REGRESSED")]
    assert flipped.regressions[0].describe() == (
        "REGRESSED generalization claim[zhang2017-random-labels] digits (mlp): the verdict changed: "
        "reproduced -> not reproduced")
    # a verdict is not a metric: it neither matches cases nor is judged by a tolerance
    assert {c.metric for c in flipped.changes} == {"test_accuracy", "claim"}

    base, cand = tmp_path / "base.json", tmp_path / "cand.json"
    write_json(base, run(REPRODUCED, 0.1))
    write_json(cand, run(INCONCLUSIVE, 0.1))
    assert main(["compare", str(base), str(cand)]) == 1
    out = capsys.readouterr().out
    assert "reproduced" in out and "inconclusive" in out and "REGRESSED" in out


# --- the metric catalog's vocabulary (issue 16): the names the suites really record ------------


@pytest.mark.parametrize(("metric", "kind", "worse", "better"), [
    ("survival_rate", "attacks", 0.5, 0.9),  # fraction still adversarial: the attack wants it high
    ("auroc_max_prob", "estimators", 0.7, 0.95),
    ("fpr95_entropy", "estimators", 0.6, 0.2),
    ("test_regret", "strategies", 0.02, 0.001),
    ("attack_success_rate", "attacks", 0.3, 0.9),
    ("delta_m", "loss_weightings", -5.0, 3.0),
])
def test_recorded_names_are_gated_in_their_direction(metric: str, kind: str, worse: float, better: float) -> None:
    middle = (worse + better) / 2
    base = results("a", rec(metric, middle, kind=kind))
    assert statuses(base, results("b", rec(metric, worse, kind=kind)))[metric] == "REGRESSED"
    assert statuses(base, results("b", rec(metric, better, kind=kind)))[metric] == "improved"


def test_intervals_and_band_edges_are_never_regressions() -> None:
    for metric in ("final_test_accuracy_ci95", "test_regret_ci95", "predictive_mean_lower", "examples"):
        base, cand = results("a", rec(metric, 0.01)), results("b", rec(metric, 0.5))
        assert statuses(base, cand)[metric] == "changed", metric


def test_coverage_is_better_closer_to_its_target() -> None:
    base = results("a", rec("coverage_90", 0.85))
    assert statuses(base, results("b", rec("coverage_90", 0.95)))["coverage_90"] == "within"  # as far off
    assert statuses(base, results("b", rec("coverage_90", 0.70)))["coverage_90"] == "REGRESSED"
    assert statuses(base, results("b", rec("coverage_90", 0.90)))["coverage_90"] == "improved"
    change = compare(base, results("b", rec("coverage_90", 0.7)), Policies()).regressions[0]
    assert "closer to 0.9 is better" in change.describe()


def test_timing_noise_is_not_listed_as_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Wall time varies run to run: within its noise tolerance it is counted, not listed; a
    real slowdown is reported apart from the metrics, and never fails the gate."""
    from benchtool.comparison import comparison_rows, summary_line

    base = results("a", rec("ece", 0.05), rec("seconds", 10.0, unit="s"), rec("forward_queries", 20.0))
    noisy = results("b", rec("ece", 0.05), rec("seconds", 13.0, unit="s"), rec("forward_queries", 20.0))
    comparison = compare(base, noisy, Policies())
    assert {c.metric: c.status for c in comparison.changes}["seconds"] == "noise"
    assert comparison_rows(comparison) == [] and comparison.regressions == []
    assert summary_line(comparison) == ("1 metric(s): 1 unchanged; "
                                        "timing and cost (not gated): 1 within noise, 1 unchanged")
    assert [row[-1] for row in comparison_rows(comparison, show_all=True)] == ["unchanged", "noise", "unchanged"]

    slow = results("b", rec("ece", 0.05), rec("seconds", 40.0, unit="s"), rec("forward_queries", 30.0))
    comparison = compare(base, slow, Policies())
    assert {c.metric: c.status for c in comparison.changes} == {
        "ece": "unchanged", "seconds": "slower", "forward_queries": "costlier"}
    assert comparison.regressions == []
    rows = comparison_rows(comparison)
    assert [(row[3], row[-1]) for row in rows] == [("seconds", "slower"), ("forward_queries", "costlier")]
    assert "timing and cost (not gated): 1 slower, 1 costlier" in summary_line(comparison)

    tiny = compare(results("a", rec("seconds", 0.0002, unit="s per example")),
                   results("b", rec("seconds", 0.004, unit="s per example")), Policies())
    assert [c.status for c in tiny.changes] == ["noise"]  # 20x of a fraction of a millisecond: a busy machine

    db = tmp_path / "results.db"
    _store_two_runs(db, base.records, slow.records)
    assert main(["compare", "base", "cand", "--store", str(db)]) == 0  # speed is pytest-benchmark's job
    out = capsys.readouterr().out
    assert "slower" in out and not any(line.rstrip().endswith(" changed") for line in out.splitlines())


def test_unknown_names_are_named_in_the_summary() -> None:
    from benchtool.comparison import summary_line

    base = results("a", rec("ece", 0.05), rec("my_score", 1.0))
    cand = results("b", rec("ece", 0.05), rec("my_score", 2.0))
    comparison = compare(base, cand, Policies())
    assert {c.metric: c.status for c in comparison.changes}["my_score"] == "changed"
    assert "1 metric name(s) not in the catalog, reported but not gated: my_score" in summary_line(comparison)
    gated = compare(base, cand, Policies.from_args([], ["my_score=lower"]))
    assert [c.metric for c in gated.regressions] == ["my_score"]
    assert "not in the catalog" not in summary_line(gated)


def test_the_old_store_compare_module_forwards_with_a_deprecation_warning() -> None:
    import benchtool.comparison
    from benchtool.store import compare as old

    with pytest.warns(DeprecationWarning, match=r"benchtool.store.compare.judge moved to benchtool.comparison.judge"):
        assert old.judge is benchtool.comparison.judge
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        old.nothing_here  # noqa: B018
