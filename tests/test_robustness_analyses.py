"""The robustness suite's run-level analyses: the worst case over attacks per example, the
gradient-masking checks and the gradient probe, on hand-made records and models, and end to
end on the suite as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from benchtool.analyses import Analysis
from benchtool.claims.stats import at_least_as_strong, wilson_interval
from benchtool.harness.robustness import gradient_probe
from benchtool.harness.robustness_analyses import (
    MASKING_METRICS, MASKING_RULES, PER_EXAMPLE, WORST_CASE_METRIC, WORST_CASE_METRICS, gradient_masking, worst_case,
)
from benchtool.results import Record
from benchtool.tables import checks_table, leaderboards
from benchtool.testing.attacks import INPUT_SHAPE, NUM_CLASSES, tiny_model

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "tests" / "plugin_zoo"
sys.path.insert(0, str(ZOO))

from masked_models import Quantized  # noqa: E402  (the zoo's model plugin: one quantizing layer for both tests)


def outcome_records(attack: str, robust: dict[float, list[int]], *, gradient: float = 10.0, norm: str = "linf",
                    threat: str = "perturbation", model: str = "net") -> list[Record]:
    """The records one attack cell makes that the analyses read: per eps > 0 its per-example
    outcomes and its query costs."""
    case = f"test_robust_accuracy[{attack}-{model}-digits]"
    made = []
    for eps, ys in robust.items():
        params = {"eps": eps}

        def scalar(metric: str, value: float, params=params) -> Record:
            return Record("robustness", case, "attacks", attack, model, "digits", params, metric, value,
                          "per example", 0, "cpu")

        made += [scalar("gradient_queries", gradient), scalar("forward_queries", gradient + 1),
                 Record("robustness", case, "attacks", attack, model, "digits",
                        {**params, "norm": norm, "threat": threat}, PER_EXAMPLE, None, "", 0, "cpu",
                        {"x": [float(i * 3) for i in range(len(ys))], "y": [float(v) for v in ys]})]
    return made


def probe_records(masked_share: float, large_eps_robust: float, n: int = 100, model: str = "net") -> list[Record]:
    case = f"test_gradient_probes[{model}-digits]"

    def rec(metric: str, value: float, params: dict | None = None, plugin: str = "") -> Record:
        return Record("robustness", case, "probes", plugin, model, "digits", params or {}, metric, value,
                      "fraction", 0, "cpu")

    return [rec("gradient_masked_share", masked_share), rec("examples", n),
            rec("large_eps_robust_accuracy", large_eps_robust, {"eps": 0.5}, "pgd"),
            rec("examples", n, {"eps": 0.5}, "pgd")]


def by(records: list[Record], metric: str, **params: object) -> list[Record]:
    return [r for r in records if r.metric == metric and all(r.params.get(k) == v for k, v in params.items())]


def test_worst_case_counts_an_example_robust_only_if_every_attack_failed() -> None:
    records = (outcome_records("fgsm", {0.1: [1, 1, 0, 1, 1, 0]}, gradient=1)
               + outcome_records("pgd", {0.1: [1, 0, 0, 1, 1, 1]}, gradient=40)
               + outcome_records("square", {0.1: [0, 1, 1, 1, 1, 1]}, gradient=0))
    made = worst_case(records)
    (headline,) = by(made, WORST_CASE_METRIC)
    assert headline.value == pytest.approx(2 / 6) and headline.params == {"eps": 0.1, "norm": "linf"}
    low, high = wilson_interval(2, 6)
    assert by(made, WORST_CASE_METRIC + "_ci_low")[0].value == pytest.approx(low)
    assert by(made, WORST_CASE_METRIC + "_ci_high")[0].value == pytest.approx(high)
    assert by(made, "examples")[0].value == 6 and by(made, "attacks_combined")[0].value == 3
    # cheapest first: square (0 gradients) breaks example 0, fgsm examples 2 and 5, pgd example 1
    first = {r.params["attack"]: r.value for r in by(made, "broken_first")}
    only = {r.params["attack"]: r.value for r in by(made, "broken_only")}
    assert first == {"square": 1, "fgsm": 2, "pgd": 1}
    assert only == {"square": 1, "fgsm": 1, "pgd": 1}  # example 2 fgsm and pgd both broke: neither alone


def test_worst_case_keeps_norms_and_models_apart() -> None:
    records = (outcome_records("pgd", {0.1: [1, 0]}) + outcome_records("pgd-l2", {0.5: [0, 0]}, norm="l2")
               + outcome_records("pgd", {0.1: [1, 1]}, model="other"))
    made = by(worst_case(records), WORST_CASE_METRIC)
    assert sorted((r.model, r.params["norm"], r.value) for r in made) == [
        ("net", "l2", 0.0), ("net", "linf", 0.5), ("other", "linf", 1.0)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=12, max_size=12), min_size=1, max_size=5))
def test_worst_case_is_the_intersection_and_never_above_any_attack(outcomes: list[list[bool]]) -> None:
    records = [r for i, ys in enumerate(outcomes)
               for r in outcome_records(f"attack{i}", {0.2: [int(v) for v in ys]}, gradient=float(i))]
    (headline,) = by(worst_case(records), WORST_CASE_METRIC)
    expected = sum(all(column) for column in zip(*outcomes)) / 12
    assert headline.value == pytest.approx(expected)
    assert all(headline.value <= sum(ys) / 12 + 1e-12 for ys in outcomes)
    assert sum(r.value for r in by(worst_case(records), "broken_first")) == 12 - round(expected * 12)


def flags(records: list[Record]) -> dict[str, float]:
    return {r.params["rule"]: r.value for r in gradient_masking(records) if r.metric == "gradient_masking"}


HEALTHY = ([1] * 40 + [0] * 60, [1] * 20 + [0] * 80)  # robust at eps 0.1 and 0.2, nested


def test_a_healthy_model_passes_every_masking_rule() -> None:
    records = (outcome_records("fgsm", {0.1: [1] * 60 + [0] * 40, 0.2: [1] * 45 + [0] * 55}, gradient=1)
               + outcome_records("pgd", {0.1: HEALTHY[0], 0.2: HEALTHY[1]}, gradient=40)
               + outcome_records("square", {0.1: [1] * 45 + [0] * 55, 0.2: [1] * 25 + [0] * 75}, gradient=0)
               + outcome_records("eot", {0.1: [1] * 70 + [0] * 30, 0.2: [1] * 50 + [0] * 50}, gradient=400,
                                 threat="transformation")
               + probe_records(0.0, 0.0))
    found = flags(records)
    assert set(found) == set(MASKING_RULES)
    assert found == {rule: 0.0 for rule in MASKING_RULES}


@pytest.mark.parametrize(("rule", "records"), [
    ("eps-monotone", outcome_records("pgd", {0.1: [0] * 100, 0.2: [1] * 30 + [0] * 70})),
    ("iterative-vs-single-step", outcome_records("fgsm", {0.1: [0] * 100}, gradient=1)
     + outcome_records("pgd", {0.1: [1] * 50 + [0] * 50}, gradient=40)),
    ("white-vs-black-box", outcome_records("square", {0.1: [0] * 100}, gradient=0)
     + outcome_records("pgd", {0.1: [1] * 50 + [0] * 50}, gradient=40)),
    ("eot-vs-plain", outcome_records("eot", {0.1: [0] * 100}, gradient=400, threat="transformation")
     + outcome_records("pgd", {0.1: [1] * 50 + [0] * 50}, gradient=40)),
    ("first-order", outcome_records("pgd", {0.1: [0] * 100}) + probe_records(0.9, 0.0)),
    ("large-eps", outcome_records("pgd", {0.1: [0] * 100}) + probe_records(0.0, 0.3)),
])
def test_each_masking_rule_fires_on_its_violation(rule: str, records: list[Record]) -> None:
    found = flags(records)
    assert found[rule] == 1.0
    assert [r for r, v in found.items() if v] == [rule]
    evidence = next(r.params["evidence"] for r in gradient_masking(records) if r.params.get("rule") == rule)
    assert "p=" in evidence


def test_sampling_noise_does_not_fire_a_rule() -> None:
    # FGSM breaks 3 examples PGD misses, PGD 1 that FGSM misses: p = 0.31, not significant
    fgsm = [1] * 50 + [0] * 3 + [1] * 1 + [0] * 46
    pgd = [1] * 50 + [1] * 3 + [0] * 1 + [0] * 46
    records = outcome_records("fgsm", {0.1: fgsm}, gradient=1) + outcome_records("pgd", {0.1: pgd}, gradient=40)
    assert flags(records)["iterative-vs-single-step"] == 0.0


def test_an_attack_far_behind_its_peers_is_underpowered_not_the_model() -> None:
    records = (outcome_records("pgd-l2", {0.5: [1] * 10 + [0] * 90}, norm="l2")
               + outcome_records("cw-l2", {0.5: [1] * 40 + [0] * 60}, norm="l2")
               + outcome_records("deepfool", {0.5: [1] * 12 + [0] * 88}, norm="l2"))
    made = gradient_masking(records)
    underpowered = {r.plugin: r.value for r in made if r.metric == "attack_underpowered"}
    assert underpowered == {"cw-l2": 1.0, "deepfool": 0.0}  # 2 points behind is within UNDERPOWERED_GAP
    assert not any(r.value for r in made if r.metric == "gradient_masking")


def test_checks_table_lists_flags_first_and_leaderboards_leave_them_out() -> None:
    from benchtool.results import CaseResult

    records = outcome_records("pgd", {0.1: [0] * 100}) + probe_records(0.9, 0.0)
    cases = [CaseResult("suites/test_robustness.py::test_robust_accuracy[pgd-net-digits]", "robustness", "passed",
                        1.0, [r for r in records if r.kind == "attacks"]),
             Analysis("gradient-masking", "robustness", gradient_masking, MASKING_METRICS).case(records)]
    lines = checks_table(cases)
    assert "gradient_masking: first-order" in lines[2] and "FLAGGED" in lines[2]
    assert lines[-1].startswith("1 of 6 checks flagged on 1 model(s)")
    text = "\n".join(line for _, table in leaderboards(cases) for line in table)
    assert "evidence" not in text and "gradient_masking" not in text and PER_EXAMPLE not in text


def test_a_failing_analysis_fails_its_own_case() -> None:
    def broken(records):
        raise KeyError("eps")

    case = Analysis("broken", "robustness", broken, ()).case([])
    assert case.outcome == "failed" and case.nodeid == "analysis::robustness::broken"
    assert case.message == "analysis broken failed: KeyError: 'eps'"
    with pytest.raises(ValueError, match="one word"):
        Analysis("two words", "robustness", broken, ())


def test_an_analysis_records_only_what_it_declares() -> None:
    records = outcome_records("pgd", {0.1: [1, 0]})
    case = Analysis("worst", "robustness", worst_case, (WORST_CASE_METRIC,)).case(records)
    assert case.outcome == "failed" and "undeclared metric(s) ['attacks_combined'," in case.message
    assert Analysis("worst", "robustness", worst_case, WORST_CASE_METRICS).case(records).outcome == "passed"
    assert Analysis("masking", "robustness", gradient_masking, MASKING_METRICS).case(records).outcome == "passed"


def test_paired_comparison_counts_discordant_examples() -> None:
    c = at_least_as_strong([True, True, False, True], [False, True, False, False])
    assert (c.n, c.only_a, c.only_b) == (4, 2, 0) and c.p_value == pytest.approx(0.25)
    with pytest.raises(ValueError, match="one outcome per example on both sides, got 2 and 1"):
        at_least_as_strong([True, False], [True])


# --- the gradient probe ------------------------------------------------------------------------------------


class Shattered(nn.Module):
    """Fresh noise on every call (a randomized defense without a seed discipline)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x + 0.3 * torch.randn_like(x))


def probe_inputs(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, *INPUT_SHAPE, generator=g), torch.randint(0, NUM_CLASSES, (n,), generator=g)


def test_the_probe_passes_a_smooth_model_and_flags_quantized_and_shattered_ones() -> None:
    x, y = probe_inputs()
    assert gradient_probe(tiny_model(), x, y, bounds=(0.0, 1.0)).masked_share <= 0.05
    quantized = gradient_probe(Quantized(tiny_model()), x, y, bounds=(0.0, 1.0))
    assert quantized.zero_gradient.all() and quantized.masked_share == 1.0
    torch.manual_seed(0)
    assert gradient_probe(Shattered(tiny_model()), x, y, bounds=(0.0, 1.0)).masked_share > 0.5


def test_the_probe_is_deterministic_and_leaves_its_inputs_alone() -> None:
    x, y = probe_inputs()
    before = x.clone()
    one = gradient_probe(tiny_model(), x, y, bounds=(0.0, 1.0))
    two = gradient_probe(tiny_model(), x, y, bounds=(0.0, 1.0))
    assert torch.equal(one.relative_error, two.relative_error) and torch.equal(x, before)


def test_the_probe_predicts_a_28x28_relu_networks_change_along_the_gradient_sign() -> None:
    """Healthy piecewise-linear networks at Fashion-MNIST's size (an MLP and the zoo's LeNet
    with max pooling) are not masked; the step goes against the gradient's sign, where the
    first-order term is the gradient's L1 norm times the step."""
    from benchtool.data.local import FashionMnist
    from benchtool.models.nets import LeNet

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                        nn.Linear(256, 10))
    x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))
    for net in (mlp, LeNet(FashionMnist().info()).eval()):
        probe = gradient_probe(net, x, y, bounds=(0.0, 1.0))
        assert probe.masked_share <= 0.02 and probe.relative_error.median() < 0.05


# --- end to end: the suite as a user runs it ---------------------------------------------------------------


def test_the_suite_flags_the_randomized_model_and_not_the_others(tmp_path: Path) -> None:
    """The small robustness suite on digits: the worst case per model is below every attack's
    robust accuracy, lenet-randomized is flagged by the first-order probe, lenet and lenet-at
    by no masking rule; the checks table is printed."""
    out = tmp_path / "out.json"
    env = {**os.environ, "BENCHTOOL_CACHE": str(tmp_path / "cache"), "BENCHTOOL_SYSTEM_DATA": ""}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "suites" / "test_robustness.py"), "-q", "-p", "no:cacheprovider",
         "--bt-budget", "small", "--bt-device", "cpu", "--bt-json", str(out), "--bt-store", str(tmp_path / "s.db")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "benchtool checks (gradient masking, attack budgets)" in done.stdout
    records = [Record.from_json(r) for r in json.loads(out.read_text())]
    masking = {(r.model, r.params["rule"]): r.value for r in records if r.metric == "gradient_masking"}
    assert masking[("lenet-randomized", "first-order")] == 1.0
    assert not [key for key, flagged in masking.items() if flagged and key[0] in ("lenet", "lenet-at")]
    for worst in (r for r in records if r.metric == WORST_CASE_METRIC):
        attacks = [r.value for r in records if r.metric == "robust_accuracy" and r.model == worst.model
                   and r.params == {"eps": worst.params["eps"]} and r.kind == "attacks"
                   and any(p.metric == PER_EXAMPLE and p.plugin == r.plugin and p.params.get("norm")
                           == worst.params["norm"] for p in records)]
        assert attacks and worst.value <= min(attacks) + 1e-9
    robust = [r for r in records if r.metric == "robust_accuracy" and r.model == "lenet"]
    assert all(any(s.metric == "robust_accuracy_ci_low" and s.case == r.case and s.params == r.params
                   and s.value <= r.value for s in records) for r in robust)


def test_the_leaderboard_says_which_attacks_target_another_threat_model() -> None:
    from benchtool.results import CaseResult

    records = outcome_records("eot", {0.1: [1, 0]}, threat="transformation") + outcome_records("pgd", {0.1: [0, 0]})
    case = CaseResult("suites/test_robustness.py::test_robust_accuracy[eot-net-digits]", "robustness", "passed",
                      1.0, records)
    (_, table), = leaderboards([case])
    notes = [line for line in table if line.startswith("note:")]
    assert notes == ["note: eot is an attack for the transformation threat model (it optimizes for adversarial "
                     "examples that survive random transformations); scored here on plain inputs, it is not at "
                     "its best"]


def test_the_suite_flags_a_quantizing_input_layer(tmp_path: Path) -> None:
    """A model with zero input gradients everywhere (tests/plugin_zoo/masked_models.py), run
    through the robustness suite as a user would: the first-order probe flags it, and the
    gradient-free attack beats every gradient attack."""
    out = tmp_path / "out.json"
    env = {**os.environ, "BENCHTOOL_CACHE": str(tmp_path / "cache"), "BENCHTOOL_SYSTEM_DATA": "",
           "PYTHONPATH": str(ZOO)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "suites" / "test_robustness.py"), "-q", "-p", "no:cacheprovider",
         "-p", "masked_models", "--bt-models", "lenet-quantized", "--bt-attacks", "fgsm,pgd,square",
         "--bt-budget", "small", "--bt-device", "cpu", "--bt-json", str(out), "--bt-store", str(tmp_path / "s.db")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [Record.from_json(r) for r in json.loads(out.read_text())]
    masking = {r.params["rule"]: r for r in records if r.metric == "gradient_masking"}
    assert masking["first-order"].value == 1.0, masking["first-order"].params["evidence"]
    assert masking["white-vs-black-box"].value == 1.0, masking["white-vs-black-box"].params["evidence"]
    assert "gradient_masking: first-order" in done.stdout and "lenet-quantized" in done.stdout


def test_a_suite_declaring_something_else_as_an_analysis_fails_that_case_only(tmp_path: Path) -> None:
    suite = tmp_path / "test_toy.py"
    suite.write_text("import pytest\nANALYSES = ['not an analysis']\n\n"
                     "@pytest.mark.bt(datasets=['digits'])\ndef test_score(dataset, bt_record):\n"
                     "    bt_record('accuracy', 0.5)\n")
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", str(suite), "-p", "no:cacheprovider", "--bt-json", str(out),
         "--bt-store", str(tmp_path / "s.db"), "--bt-device", "cpu", "--bt-budget", "small"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr  # the cell passed, the analysis did not
    assert "1 passed" in done.stdout and "benchtool: analysis invalid-declaration failed: TypeError" in done.stdout
    assert [r["metric"] for r in json.loads(out.read_text())] == ["accuracy"]  # the cell's records are kept
    import sqlite3

    with sqlite3.connect(tmp_path / "s.db") as db:
        (outcome, message), = db.execute("SELECT outcome, message FROM cases WHERE nodeid LIKE 'analysis::%'")
    assert outcome == "failed" and "ANALYSES holds 'not an analysis', expected benchtool.analyses.Analysis" in message


def test_the_report_opens_the_suite_with_the_worst_case_and_lists_its_checks() -> None:
    import re

    from benchtool.report.html import render_report
    from benchtool.results import CaseResult
    from benchtool.store.load import ResultSet

    records = (outcome_records("fgsm", {0.1: [1, 1, 0, 1]}, gradient=1) + outcome_records("pgd", {0.1: [1, 0, 0, 1]})
               + probe_records(0.9, 0.0))
    cases = [CaseResult("suites/test_robustness.py::test_robust_accuracy[pgd-net-digits]", "robustness", "passed",
                        1.0, records),
             Analysis("worst-case", "robustness", worst_case, WORST_CASE_METRICS).case(records),
             Analysis("gradient-masking", "robustness", gradient_masking, MASKING_METRICS).case(records)]
    html = render_report(ResultSet("run-1", [r for c in cases for r in c.records], None, cases))
    text = re.sub(r"<[^>]+>", " ", html)
    section = text[text.index("Worst case over attacks"):]
    assert re.search(r"net\s+digits\s+linf\s+0\.1\s+0\.5 \[0\.15", section)  # 2 of 4 robust, Wilson interval
    assert "Checks: 1 of 6 flagged" in section and section.index("Checks:") < section.index("Leaderboard")
    assert "gradient_masking: first-order" in section and PER_EXAMPLE not in html
