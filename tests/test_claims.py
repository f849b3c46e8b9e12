"""Claims: each seed claim decided from synthetic records where it holds, where it fails
and where it cannot be decided; the record encoding, compare's verdict changes, the
Claims table, and the pytest bridge end to end on a toy suite."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import benchtool_suites.test_approximation as approximation
import benchtool_suites.test_generalization as generalization
import benchtool_suites.test_multitask as multitask
import benchtool_suites.test_nas as nas
import benchtool_suites.test_robustness as robustness
import benchtool_suites.test_transformations as transformations
import benchtool_suites.test_uncertainty as uncertainty
from benchtool.claims import (
    INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Claim, ClaimSet, Outcome, Verdict, compare_verdicts, inconclusive,
    verdict_cases, verdicts_from_records,
)
from benchtool.claims import stats
from benchtool.claims.references import Bound
from benchtool.results import Record
from benchtool.tables import claims_table, leaderboards


def rec(suite: str, metric: str, value: float | None, *, plugin: str = "", model: str = "", dataset: str = "digits",
        case: str = "", series: dict | None = None, unit: str = "", **params) -> Record:
    return Record(suite, case or f"test_{suite}[{plugin}-{model}-{dataset}]", "", plugin, model, dataset, params,
                  metric, value, unit, 0, "cpu", series)


def claim(module, claim_id: str) -> Claim:
    return next(c for c in module.CLAIMS if c.id == claim_id)


def verdicts(module, claim_id: str, records: list[Record]) -> list[Verdict]:
    return claim(module, claim_id).decide(records)


def only(module, claim_id: str, records: list[Record]) -> Verdict:
    found = verdicts(module, claim_id, records)
    assert len(found) == 1, found
    return found[0]


# --- Zhang et al. 2017 -----------------------------------------------------------------------


def memorization(train: float, test: float, n_train: int = 256, n_test: int = 360, model: str = "mlp") -> list:
    at = {"corruption": "labels", "p": 1.0, "dropout": False}
    sizes = {"train_examples": n_train, "test_examples": n_test, "num_classes": 10}
    out = [rec("generalization", m, v, model=model, recipe="memorization") for m, v in sizes.items()]
    return out + [rec("generalization", "train_accuracy", train, model=model, **at),
                  rec("generalization", "test_accuracy", test, model=model, **at)]


def test_zhang_random_labels() -> None:
    cid = "zhang2017-random-labels"
    held = only(generalization, cid, memorization(1.0, 0.106))
    assert held.verdict == REPRODUCED and held.model == "mlp" and "vs chance 0.100" in held.evidence
    assert only(generalization, cid, memorization(0.6, 0.1)).verdict == NOT_REPRODUCED  # did not fit
    assert only(generalization, cid, memorization(1.0, 0.45)).verdict == NOT_REPRODUCED  # generalizes
    few = only(generalization, cid, memorization(1.0, 0.12, n_test=40))
    assert few.verdict == INCONCLUSIVE and "test examples" in few.needed
    both = verdicts(generalization, cid, memorization(1.0, 0.1) + memorization(1.0, 0.1, model="lenet"))
    assert [v.subject for v in both] == ["digits (lenet)", "digits (mlp)"]


# --- Hornik et al. 1989 ----------------------------------------------------------------------


def widths(inside, outside, target: str = "sine", span: float = 2.0) -> list:
    out = [rec("approximation", "width_needed", 16, plugin=target, dataset="", tolerance="5% of range", range=span)]
    for i, (a, b) in enumerate(zip(inside, outside)):
        out += [rec("approximation", "inside_max_error", a, plugin=target, dataset="", width=2 ** i),
                rec("approximation", "outside_max_error", b, plugin=target, dataset="", width=2 ** i)]
    return out


def test_hornik_inside_not_outside() -> None:
    cid = "hornik1989-inside-not-outside"
    falling = [1.2, 1.1, 0.8, 0.7, 0.04, 0.03, 0.006, 0.02, 0.001, 0.004]
    held = only(approximation, cid, widths(falling, [1.5] * 10))
    assert held.verdict == REPRODUCED and held.dataset == "sine"
    assert only(approximation, cid, widths(falling, [0.01] * 10)).verdict == NOT_REPRODUCED  # fits outside too
    assert only(approximation, cid, widths([0.5] * 10, [1.0] * 10)).verdict == NOT_REPRODUCED  # no trend
    slow = only(approximation, cid, widths([1.2, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2], [1.5] * 10))
    assert slow.verdict == INCONCLUSIVE and "wider nets" in slow.needed


# --- Goodfellow et al. 2015 and Athalye et al. 2018 (robustness) ------------------------------


def attack(plugin: str, model: str, clean: float, robust: float, n: int = 128, eps: float = 0.2) -> list:
    correct = round(clean * n)
    success = (correct - round(robust * n)) / correct
    return [rec("robustness", m, v, plugin=plugin, model=model, eps=eps)
            for m, v in (("clean_accuracy", clean), ("robust_accuracy", robust), ("attack_success_rate", success),
                         ("examples", n))]


def test_fgsm_fools_an_undefended_net() -> None:
    cid = "goodfellow2015-fgsm-fools"
    held = only(robustness, cid, attack("fgsm", "lenet", 0.98, 0.10) + attack("pgd", "lenet", 0.98, 0.0))
    assert held.verdict == REPRODUCED and held.model == "lenet" and "eps 0.2" in held.evidence
    assert only(robustness, cid, attack("fgsm", "lenet", 0.98, 0.90)).verdict == NOT_REPRODUCED
    undecided = only(robustness, cid, attack("fgsm", "lenet", 0.9, 0.4, n=10))
    assert undecided.verdict == INCONCLUSIVE and "correct examples" in undecided.needed
    # the defended model is another claim's
    assert [v.model for v in verdicts(robustness, cid, attack("fgsm", "mlp", 1, 0) + attack("fgsm", "lenet-at", 1, 1))
            ] == ["mlp"]


def test_adversarial_training_resists() -> None:
    cid = "goodfellow2015-adversarial-training"
    missing = only(robustness, cid, attack("fgsm", "lenet", 0.98, 0.1))
    assert missing.verdict == INCONCLUSIVE and "no adversarially trained model (lenet-at)" in missing.evidence
    held = attack("fgsm", "lenet", 0.98, 0.1) + attack("fgsm", "lenet-at", 0.95, 0.8)
    assert only(robustness, cid, held).verdict == REPRODUCED
    failed = attack("fgsm", "lenet", 0.98, 0.1, n=1000) + attack("fgsm", "lenet-at", 0.98, 0.1, n=1000)
    assert only(robustness, cid, failed).verdict == NOT_REPRODUCED
    few = attack("fgsm", "lenet", 1.0, 0.4, n=10) + attack("fgsm", "lenet-at", 1.0, 0.6, n=10)
    assert only(robustness, cid, few).verdict == INCONCLUSIVE


def test_randomization_masks_gradients() -> None:
    cid, eot = "athalye2018-randomization-masks-gradients", "eot-pgd"
    missing = only(robustness, cid, attack("pgd", "lenet", 0.98, 0.0) + attack(eot, "lenet", 0.98, 0.0))
    assert missing.verdict == INCONCLUSIVE and "lenet-randomized" in missing.evidence
    held = attack("pgd", "lenet-randomized", 0.95, 0.7) + attack(eot, "lenet-randomized", 0.95, 0.05)
    assert only(robustness, cid, held).verdict == REPRODUCED
    failed = attack("pgd", "lenet-randomized", 0.95, 0.1, 1000) + attack(eot, "lenet-randomized", 0.95, 0.1, 1000)
    assert only(robustness, cid, failed).verdict == NOT_REPRODUCED
    few = attack("pgd", "lenet-randomized", 1, 0.5, 8) + attack(eot, "lenet-randomized", 1, 0.3, 8)
    assert only(robustness, cid, few).verdict == INCONCLUSIVE
    # significant and large, but EOT keeps more than half of PGD's robust accuracy
    partly = attack("pgd", "lenet-randomized", 0.95, 0.5, 1000) + attack(eot, "lenet-randomized", 0.95, 0.3, 1000)
    partial = only(robustness, cid, partly)
    assert partial.verdict == NOT_REPRODUCED and "less than half" in partial.evidence


def test_randomization_is_decided_at_the_datasets_reference_eps() -> None:
    cid, model = "athalye2018-randomization-masks-gradients", "lenet-randomized"
    at_reference = attack("pgd", model, 0.95, 0.6, 1000, eps=0.1) + attack("eot-pgd", model, 0.95, 0.1, 1000, eps=0.1)
    at_headline = attack("pgd", model, 0.95, 0.1, 1000) + attack("eot-pgd", model, 0.95, 0.1, 1000)
    decided = only(robustness, cid, at_reference + at_headline)  # digits' reference eps is 0.1
    assert decided.verdict == REPRODUCED and decided.evidence.startswith("eps 0.1 ")
    assert only(robustness, cid, at_headline).evidence.startswith("eps 0.2 ")  # smoke runs have no 0.1


# --- Athalye et al. 2018 (transformations) ---------------------------------------------------


def survival(eot: float, pgd: float, m: int, eps_list=(0.1, 0.2)) -> list:
    out = []
    for eps in eps_list:
        for name, rate in (("eot", eot), ("pgd", pgd)):
            out += [rec("transformations", "survival_rate_where_clean_survives", rate, plugin=name, model="lenet",
                        attack=name, eps=eps),
                    rec("transformations", "fooled_examples", m, plugin=name, model="lenet", attack=name, eps=eps)]
    return out


def test_eot_survives_transformations() -> None:
    cid = "athalye2018-eot-survives"
    held = only(transformations, cid, survival(0.87, 0.60, 120))
    assert held.verdict == REPRODUCED and "x2 eps" in held.evidence
    assert only(transformations, cid, survival(0.5, 0.7, 500)).verdict == NOT_REPRODUCED
    few = only(transformations, cid, survival(0.8, 0.7, 15))
    assert few.verdict == INCONCLUSIVE and "fooled examples" in few.needed


# --- Gal & Ghahramani 2016 -------------------------------------------------------------------


def mi_records(aurocs: dict, n: int = 360, mi_in: float = 0.04, mi_out: float = 0.15) -> list:
    kw = {"plugin": "mc-dropout", "model": "lenet", "dataset": "digits-holdout"}
    out = [rec("uncertainty", "mean_mi", mi_in, **kw), rec("uncertainty", "examples", n, split="test", **kw),
           rec("uncertainty", "auroc_mi", 0.99, **{**kw, "plugin": "deep-ensemble"}, ood="noise")]
    for name, auroc in aurocs.items():
        out += [rec("uncertainty", "auroc_mi", auroc, ood=name, **kw),
                rec("uncertainty", "mean_mi", mi_out, ood=name, **kw),
                rec("uncertainty", "examples", n, ood=name, **kw)]
    return out


def test_mc_dropout_mutual_information() -> None:
    cid = "gal2016-mc-dropout-mi"
    held = only(uncertainty, cid, mi_records({"heldout-classes": 0.87, "noise": 0.89}))
    assert held.verdict == REPRODUCED and held.dataset == "digits-holdout"
    assert only(uncertainty, cid, mi_records({"noise": 0.3})).verdict == NOT_REPRODUCED
    assert only(uncertainty, cid, mi_records({"noise": 0.9}, mi_out=0.01)).verdict == NOT_REPRODUCED
    few = only(uncertainty, cid, mi_records({"noise": 0.6}, n=20))
    assert few.verdict == INCONCLUSIVE and "examples per set" in few.needed
    absent = only(uncertainty, cid, [rec("uncertainty", "auroc_mi", 0.9, plugin="deep-ensemble", ood="noise")])
    assert absent.verdict == INCONCLUSIVE and "mc-dropout did not run" in absent.evidence


def clean(plugin: str, dataset: str = "fashion-mnist", n: int = 10000, **figures: float) -> list:
    kw = {"plugin": plugin, "model": "lenet", "dataset": dataset}
    return [rec("uncertainty", "examples", n, split="test", **kw),
            rec("uncertainty", "accuracy", 0.2, ood="rotated", **kw),  # a shifted set's figure is not read
            *(rec("uncertainty", metric, v, **kw) for metric, v in figures.items())]


def test_published_figures_on_fashion_mnist() -> None:
    cid = "nado2021-lenet-fashion-mnist"
    met = only(uncertainty, cid, clean("softmax", accuracy=0.9041, nll=0.2604))
    assert met.verdict == REPRODUCED and met.dataset == "fashion-mnist"
    assert "accuracy 0.904 [0.898, 0.910] (target >= 0.9, published 0.91)" in met.evidence
    assert "nll 0.260 (target <= 0.33, published 0.321)" in met.evidence
    assert only(uncertainty, cid, clean("softmax", accuracy=0.91, nll=0.34)).verdict == NOT_REPRODUCED
    assert only(uncertainty, cid, clean("softmax", accuracy=0.89, nll=0.30)).verdict == NOT_REPRODUCED
    partial = only(uncertainty, cid, clean("softmax", accuracy=0.91))
    assert partial.verdict == INCONCLUSIVE and "nll not recorded" in partial.evidence
    ensemble = "lakshminarayanan2017-ensemble-fashion-mnist"
    assert only(uncertainty, ensemble, clean("deep-ensemble", nll=0.22, ece=0.015)).verdict == REPRODUCED
    assert only(uncertainty, ensemble, clean("deep-ensemble", nll=0.22, ece=0.025)).verdict == NOT_REPRODUCED
    scaling = "guo2017-temperature-scaling"
    both = clean("softmax", ece=0.03) + clean("temperature-scaling", ece=0.01)
    assert only(uncertainty, scaling, both).verdict == REPRODUCED
    worse = clean("softmax", ece=0.01) + clean("temperature-scaling", ece=0.03)
    assert only(uncertainty, scaling, worse).verdict == NOT_REPRODUCED
    # a claim about Fashion-MNIST says nothing about a run without it
    assert verdicts(uncertainty, cid, clean("softmax", dataset="digits-holdout", accuracy=0.5, nll=2.0)) == []
    assert verdicts(uncertainty, cid, clean("softmax", dataset="fashion-mnist-holdout", accuracy=0.5, nll=2.0)) == []
    missing = only(uncertainty, cid, clean("mc-dropout", accuracy=0.91, nll=0.3))
    assert missing.verdict == INCONCLUSIVE and "softmax did not run" in missing.evidence


def test_reference_bounds_check_their_comparison() -> None:
    with pytest.raises(ValueError, match="op must be one of"):
        Bound("nll", "<", 0.3, 0.3)
    assert Bound("nll", "<=", 0.33, 0.32).met(0.33) and not Bound("accuracy", ">=", 0.9, 0.91).met(0.8999)


# --- Kendall, Gal & Cipolla 2018 -------------------------------------------------------------


def per_seed(unc: list[float], fixed: list[float]) -> list:
    return [rec("multitask", "delta_m_seed", v, plugin=name, seed=i)
            for name, vs in (("uncertainty", unc), ("fixed", fixed)) for i, v in enumerate(vs)]


def test_uncertainty_weights_match_fixed() -> None:
    cid = "kendall2018-uncertainty-weights"
    one = only(multitask, cid, per_seed([16.4], [8.5]))
    assert one.verdict == INCONCLUSIVE and "3 or more seeds" in one.needed
    assert only(multitask, cid, per_seed([16.0, 15.0, 17.0], [8.0, 9.0, 8.5])).verdict == REPRODUCED
    assert only(multitask, cid, per_seed([1.0, 0.5, 1.5], [9.0, 8.5, 9.5])).verdict == NOT_REPRODUCED
    wide = only(multitask, cid, per_seed([10.0, 2.0, 14.0], [9.0, 9.0, 9.0]))
    assert wide.verdict == INCONCLUSIVE and "seeds" in wide.needed


# --- Real et al. 2019, White et al. 2021 -----------------------------------------------------


def searches(regrets: dict[str, tuple[float, float]], seeds: int = 20, k: int = 50) -> list:
    out = []
    for name, (mean, half) in regrets.items():
        case = f"test_search_on_table[{name}-conv-chain-small]"
        kw = {"plugin": name, "dataset": "", "case": case}
        out += [rec("nas", "test_regret", None, series={"x": [1], "y": [mean]}, seeds=seeds, **kw),
                rec("nas", "test_regret", mean, evaluations=k, **kw),
                rec("nas", "test_regret_ci95", half, evaluations=k, **kw)]
    return out


def test_nas_orderings() -> None:
    cid, reinforce = "real2019-evolution-beats-random", "white2021-reinforce-needs-larger-budget"
    table = {"random-search": (0.010, 0.001), "regularized-evolution": (0.006, 0.001),
             "local-search": (0.005, 0.001), "reinforce": (0.012, 0.001)}
    held = only(nas, cid, searches(table))
    assert held.verdict == REPRODUCED and held.dataset == "conv-chain-small"
    assert only(nas, reinforce, searches(table)).verdict == REPRODUCED
    reversed_ = {**table, "random-search": (0.002, 0.0005)}
    assert only(nas, cid, searches(reversed_)).verdict == NOT_REPRODUCED
    tie = {k: (0.0067, 0.0023) for k in table}
    small = only(nas, cid, searches(tie, seeds=5, k=10))
    assert small.verdict == INCONCLUSIVE and "more evaluations" in small.needed
    assert only(nas, cid, searches({"random-search": (0.01, 0.001)})).verdict == INCONCLUSIVE  # RE, LS missing
    equivalent = {k: (0.0050, 0.0002) for k in table}  # a tight tie: no advantage worth the margin
    tied = only(nas, cid, searches(equivalent, seeds=200))
    assert tied.verdict == NOT_REPRODUCED and "margin 0.001" in tied.evidence


# --- the machinery ---------------------------------------------------------------------------


def test_verdict_records_round_trip_and_compare() -> None:
    v = Verdict("x2020-claim", "nas", "digits", REPRODUCED, "a 1.0 [0.9, 1.0]", test="binomial", p_value=0.01,
                figure="test_regret")
    record = v.to_record(seed=3, device="cpu")
    assert (record.metric, record.value, record.kind, record.case) == ("claim", 1.0, "claims", "claim[x2020-claim]")
    back = Record.from_json(json.loads(json.dumps(record.to_json())))
    assert verdicts_from_records([back]) == [v]
    worse = Verdict("x2020-claim", "nas", "digits", INCONCLUSIVE, "a 0.8 [0.4, 1.0]", needed="more seeds")
    changes = compare_verdicts([record], [worse.to_record()])
    assert [c.describe() for c in changes] == ["CLAIM x2020-claim on digits: reproduced -> inconclusive"]
    assert compare_verdicts([record], [record]) == []


def test_outcomes_must_say_what_would_decide() -> None:
    with pytest.raises(ValueError, match="needed"):
        Outcome(INCONCLUSIVE, "few examples")
    with pytest.raises(ValueError, match="verdict must be"):
        Outcome("maybe", "x")


def test_claim_sets_reject_duplicates_and_decide_only_suites_that_ran() -> None:
    rule = lambda claim, records: Outcome(REPRODUCED, "ok")  # noqa: E731
    a = Claim("a2020-x", "A, 2020", "x", "nas", ("m",), "none", rule)
    claims = ClaimSet()
    claims.add(a, "one")
    claims.add(a, "one")  # the same object twice is fine (a module seen twice)
    with pytest.raises(ValueError, match="declared twice"):
        claims.add(Claim("a2020-x", "A", "y", "nas", ("m",), "none", rule), "two")
    assert claims.decide([], ["robustness"]) == []
    absent = claims.decide([], ["nas"])
    assert absent[0].verdict == INCONCLUSIVE and "recorded none of m" in absent[0].evidence
    broken = Claim("b2020-x", "B", "x", "nas", ("m",), "none", lambda c, r: 1 / 0)
    assert broken.decide([rec("nas", "m", 1.0)])[0].evidence.startswith("decision rule failed: ZeroDivisionError")


def test_claims_table_and_leaderboards() -> None:
    verdicts_ = [Verdict("z2017-x", "generalization", "digits", REPRODUCED, "train 1.000, test 0.106", model="mlp"),
                 Verdict("a2018-y", "robustness", "digits", INCONCLUSIVE, "no lenet-at", needed="lenet-at")]
    lines = claims_table(verdicts_)
    assert lines[0].split() == ["claim", "dataset", "verdict", "evidence"]
    assert "digits (mlp)" in lines[2] and "no lenet-at; needs lenet-at" in lines[3]
    assert lines[-1] == "1 reproduced, 1 inconclusive (of 2)"
    cases = verdict_cases(verdicts_)
    assert [c.nodeid for c in cases] == ["claims::z2017-x", "claims::a2018-y"]
    assert leaderboards(cases) == []  # verdicts are not leaderboard rows


def test_statistics() -> None:
    ci = stats.proportion(38, 360)
    assert ci.low < 38 / 360 < ci.high and ci.high - ci.low < 0.07
    assert stats.binomial_greater(112, 125, 0.5).p_value < 1e-10
    assert stats.mcnemar_exact(10, 0) == pytest.approx(0.5 ** 10)
    diff = stats.two_proportions_greater(90, 100, 60, 100)
    assert diff.low < 0.3 < diff.high and diff.p_value < 1e-5
    auc = stats.auroc_greater(0.5, 100, 100)
    assert auc.p_value == pytest.approx(0.5) and auc.low < 0.5 < auc.high
    assert stats.welch_less(1.0, 0.1, 10, 2.0, 0.1, 10).p_value < 1e-10
    assert stats.sd_from_ci_half_width(0.0, 5) == 0.0
    assert math.isinf(stats.mean_interval([1.0]).high)
    boot = stats.mean_interval([float(i) for i in range(10)])
    assert boot.low < 4.5 < boot.high
    assert 600 < stats.n_for_proportion(0.55, 0.5) < 640  # (z_.95 + z_.8)^2 * 0.25 / 0.05^2


TOY_SUITE = '''
import pytest
from benchtool.claims import REPRODUCED, NOT_REPRODUCED, Claim, Outcome
from benchtool.claims.core import value

def rule(claim, records):
    v = value(records, "score")
    return Outcome(REPRODUCED if v > 0.5 else NOT_REPRODUCED, f"score {v:.3f} [0.0, 1.0] vs 0.5")

CLAIMS = [Claim("toy2024-score", "Toy et al., NeurIPS 2024", "The score beats 0.5.", "toy", ("score",),
                "none (a toy)", rule, figure="score")]

@pytest.mark.bt(datasets=["digits"])
def test_score(dataset, bt_record):
    bt_record("score", 0.75)
'''


def test_bridge_prints_the_table_and_records_verdicts(tmp_path: Path) -> None:
    (tmp_path / "test_toy.py").write_text(textwrap.dedent(TOY_SUITE))
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "benchtool.claims.bridge", str(tmp_path / "test_toy.py"),
         "--bt-json", str(out), "--bt-store", str(tmp_path / "store.db"), "--bt-device", "cpu", "--bt-budget",
         "small", "-W", "ignore"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    assert "benchtool claims" in text and "toy2024-score  digits   reproduced  score 0.750" in text
    assert text.index("benchtool claims") < text.index("benchtool leaderboard")
    records = json.loads(out.read_text())
    verdict = [r for r in records if r["metric"] == "claim"]
    assert len(verdict) == 1 and verdict[0]["params"]["verdict"] == REPRODUCED and verdict[0]["value"] == 1.0


def test_a_suite_file_the_controller_never_imported_loads_like_an_import(tmp_path: Path) -> None:
    """A pytest-xdist controller imports a suite only to read its CLAIMS: a dataclass in the
    suite (which looks up its own module in sys.modules) must load as under a real import."""
    from benchtool.claims.bridge import _module_for

    suite = tmp_path / "test_with_dataclass.py"
    suite.write_text(textwrap.dedent('''
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Shifted:
            size: int

        CLAIMS = []
    '''))
    module = _module_for(suite)
    assert module is not None and module.Shifted(3).size == 3 and module.CLAIMS == []
    assert _module_for(suite) is module  # found again, not loaded twice
