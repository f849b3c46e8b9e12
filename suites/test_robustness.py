"""Adversarial robustness: every attack x model x dataset x eps, measured by the harness.

At ``--bt-budget small`` (a smoke test) the cells are every attack on lenet, fgsm on
lenet-at, pgd and eot-pgd on lenet-randomized, on digits at eps 0 and the one the claims read (0.2).
Per eps it records clean and robust accuracy and the attack success rate on originally
correct points, each with its 95% Wilson interval, mean and max perturbation norm, forward
and gradient queries and wall time per example, the outcome of every example, plus a
robust-accuracy-vs-eps curve per case. A probe cell per model measures its gradients (the
first-order probe) and PGD at half the data range. When the run ends, two analyses read
those records (:mod:`benchtool.harness.robustness_analyses`): the worst case over every
attack per example, and the gradient-masking checks. The figures are records; the asserts
are only the sanity rules no plugin can talk its way past: eps=0 leaves every prediction as
it was, robust accuracy never exceeds clean accuracy, and PGD is at least as strong as FGSM
at the same eps (Madry et al. 2018) up to sampling noise.
"""

from __future__ import annotations

import math

import pytest

from benchtool.claims import NOT_REPRODUCED, REPRODUCED, Claim, Outcome, inconclusive
from benchtool.claims.core import count, value, values
from benchtool.analyses import Analysis
from benchtool.claims.stats import (
    Estimate, at_least_as_strong, binomial_greater, n_for_proportion, n_for_two_proportions, two_proportions_greater,
)
from benchtool.harness.robustness import RobustnessReport, evaluate, gradient_probe
from benchtool.harness.robustness_analyses import (
    MASKING_METRICS, PER_EXAMPLE, WORST_CASE_METRICS, gradient_masking, worst_case,
)
from benchtool_suites._attack_inputs import (
    HEADLINE_EPS, attack_batch_size, attack_eps, attack_indices, attack_subset,
)

# lenet-at (adversarially trained) and lenet-randomized (input randomization) run once the zoo has them
DEFENDED, RANDOMIZED = "lenet-at", "lenet-randomized"
# The small budget is a smoke test: every attack on lenet, and on each pitfall model only the
# attacks its claims read (fgsm on the defended model; pgd and eot-pgd on the randomized one).
EOT_PGD = "eot-pgd"  # EOT over the model's own draws: the attack that breaks the randomized model
SMALL_PAIRS = {DEFENDED: {"fgsm"}, RANDOMIZED: {"pgd", EOT_PGD}}


def small_cell(cell: dict[str, str]) -> bool:
    """Whether a (attack, model, dataset) cell runs at ``--bt-budget small``; a cell of no
    attack (test_pgd_not_weaker_than_fgsm) runs on lenet alone."""
    model = cell.get("models")
    return model not in SMALL_PAIRS or cell.get("attacks") in SMALL_PAIRS[model]


pytestmark = pytest.mark.bt(models=["lenet", "mlp", DEFENDED, RANDOMIZED], datasets=["digits"],
                            task="classification",
                            optional_datasets=["fashion-mnist"],  # where its files are found
                            small=dict(models=["lenet", DEFENDED, RANDOMIZED], optional_datasets=[],
                                       cells=small_cell))

# PGD may leave more examples robust than FGSM only at this one-sided significance (exact McNemar).
PAIRED_ALPHA = 0.001
PROBE_EXAMPLES = 256  # examples of the first-order gradient probe

MIN_EFFECT = 0.1  # a defence "resists" / EOT "recovers" when accuracy differs by at least this much


def _headline(records: list, plugin: str, model: str,
              prefer: float | None = None) -> tuple[float, float, float, int] | None:
    """(eps, clean accuracy, robust accuracy, n) of ``plugin`` on ``model`` at ``prefer`` where
    it was run, else at the headline eps."""
    mine = [r for r in records if r.plugin == plugin and r.model == model]
    eps = [r.params["eps"] for r in values(mine, "examples") if 0 < r.params.get("eps", 0) <= HEADLINE_EPS]
    if not eps:
        return None
    at = prefer if prefer in eps else max(eps)
    clean, robust, n = (value(mine, m, eps=at) for m in ("clean_accuracy", "robust_accuracy", "examples"))
    if None in (clean, robust, n):
        return None
    return at, clean, robust, int(n)


def decide_fgsm_fools(claim: Claim, records: list) -> Outcome:
    """FGSM's success rate on the correctly classified examples exceeds 1/2 (exact
    one-sided binomial test); its interval entirely below 1/2 is "not reproduced"."""
    model = records[0].model
    found = _headline(records, "fgsm", model)
    if found is None:
        return inconclusive(f"no fgsm records with example counts at eps <= {HEADLINE_EPS} on {model}",
                            "the fgsm attack in the run")
    eps, clean, robust, n = found
    correct = count(clean, n)
    rate = value([r for r in records if r.model == model], "attack_success_rate", eps=eps)
    fooled = count(rate, correct) if rate is not None else correct - count(robust, n)
    test = binomial_greater(fooled, correct, 0.5, claim.alpha)
    evidence = (f"eps {eps:g}: fgsm fools {test.value:.3f} {test.interval()} of {correct} correct "
                f"(clean {clean:.3f} -> robust {robust:.3f}) vs 0.5")
    if test.p_value < claim.alpha:
        return Outcome(REPRODUCED, evidence, test.p_value)
    if test.high < 0.5:
        return Outcome(NOT_REPRODUCED, evidence, test.p_value)
    return inconclusive(evidence, f"about {n_for_proportion(test.value, 0.5, claim.alpha)} correct examples")


def decide_adversarial_training(claim: Claim, records: list) -> Outcome:
    """FGSM's success rate on ``lenet`` exceeds that on ``lenet-at`` (Fisher's exact test,
    one-sided); a difference interval below MIN_EFFECT is "not reproduced"."""
    plain, defended = _headline(records, "fgsm", "lenet"), _headline(records, "fgsm", DEFENDED)
    if defended is None:
        return inconclusive(f"no adversarially trained model ({DEFENDED}) in this run",
                            f"the zoo's {DEFENDED} model (another issue adds it)")
    if plain is None:
        return inconclusive("no fgsm records of the undefended lenet in this run", "lenet in the run")
    (eps, c1, r1, n1), (eps2, c2, r2, n2) = plain, defended
    k1, m1 = count(c1, n1) - count(r1, n1), count(c1, n1)
    k2, m2 = count(c2, n2) - count(r2, n2), count(c2, n2)
    test = two_proportions_greater(k1, m1, k2, m2, claim.alpha)
    evidence = (f"eps {eps:g}: fgsm fools lenet {k1 / max(m1, 1):.3f} vs {DEFENDED} {k2 / max(m2, 1):.3f}, "
                f"difference {test.value:+.3f} {test.interval()}")
    needed = n_for_two_proportions(k1 / max(m1, 1), max(0.0, k1 / max(m1, 1) - MIN_EFFECT), claim.alpha)
    return _difference_outcome(claim, test, evidence, f"about {needed} correct examples per model")


def reference_eps(dataset: str) -> float | None:
    """A built-in dataset's reference Linf eps (``DatasetInfo.reference_eps``; Fashion-MNIST:
    0.1, Wong & Kolter 2018), or None."""
    from benchtool.data.plugin import BUILTIN_DATASETS

    found = [d().info().reference_eps for d in BUILTIN_DATASETS if d.name == dataset]
    return found[0] if found else None


def decide_randomization(claim: Claim, records: list) -> Outcome:
    """On the input-randomization model at the dataset's reference eps (else the headline eps),
    PGD's robust accuracy exceeds that of EOT over the model's own draws (``eot-pgd``; Fisher's
    exact test, one-sided) by at least MIN_EFFECT and EOT's is at most half of PGD's: PGD's
    gradients were masked, and EOT takes most of the robustness it reports back."""
    prefer = reference_eps(records[0].dataset)
    pgd = _headline(records, "pgd", RANDOMIZED, prefer)
    eot = _headline(records, EOT_PGD, RANDOMIZED, prefer)
    if pgd is None or eot is None:
        missing = "input-randomization model" if not any(r.model == RANDOMIZED for r in records) else "pgd and eot"
        return inconclusive(f"no {missing} ({RANDOMIZED}) records in this run",
                            f"the zoo's {RANDOMIZED} model with the pgd and {EOT_PGD} attacks")
    (eps, _, r1, n1), (eps2, _, r2, n2) = pgd, eot
    if eps != eps2:
        return inconclusive(f"pgd ran at eps {eps:g} and {EOT_PGD} at {eps2:g} on {RANDOMIZED}", "both at one eps")
    test = two_proportions_greater(count(r1, n1), n1, count(r2, n2), n2, claim.alpha)
    evidence = (f"eps {eps:g} on {RANDOMIZED}: robust accuracy pgd {r1:.3f} vs {EOT_PGD} {r2:.3f} "
                f"({r2 / r1 if r1 else float('nan'):.2f} of pgd's), difference {test.value:+.3f} {test.interval()}")
    if test.p_value < claim.alpha and test.value >= MIN_EFFECT and r2 > r1 / 2:
        return Outcome(NOT_REPRODUCED, evidence + "; EOT takes back less than half", test.p_value)
    needed = n_for_two_proportions(r1, max(0.0, r1 - MIN_EFFECT), claim.alpha)
    return _difference_outcome(claim, test, evidence, f"about {needed} examples")


def _difference_outcome(claim: Claim, test: Estimate, evidence: str, needed: str) -> Outcome:
    """Reproduced when the difference is significant and at least MIN_EFFECT; not reproduced
    when its whole interval lies below MIN_EFFECT; else inconclusive, saying what is needed."""
    if test.p_value < claim.alpha and test.value >= MIN_EFFECT:
        return Outcome(REPRODUCED, evidence, test.p_value)
    if test.high < MIN_EFFECT:
        return Outcome(NOT_REPRODUCED, evidence, test.p_value)
    return inconclusive(evidence, needed)


ATTACK_METRICS = ("clean_accuracy", "robust_accuracy", "attack_success_rate", "examples")
CLAIMS = [
    Claim(
        id="goodfellow2015-fgsm-fools",
        paper="Goodfellow, Shlens & Szegedy, ICLR 2015",
        statement=f"A signed-gradient step of eps <= {HEADLINE_EPS} (Linf) fools an undefended net on most "
                  "correctly classified examples.",
        suite="robustness", metrics=ATTACK_METRICS,
        test="exact one-sided binomial test of the success rate > 0.5",
        rule=decide_fgsm_fools, per_model=True, figure="robust_accuracy",
        where=lambda r: r.plugin == "fgsm" and r.model not in (DEFENDED, RANDOMIZED),
    ),
    Claim(
        id="goodfellow2015-adversarial-training",
        paper="Goodfellow, Shlens & Szegedy, ICLR 2015",
        statement="Adversarial training resists signed-gradient steps: FGSM fools the trained net less often.",
        suite="robustness", metrics=ATTACK_METRICS,
        test=f"Fisher's exact test, one-sided, and a Newcombe interval; effect >= {MIN_EFFECT}",
        rule=decide_adversarial_training, figure="robust_accuracy", where=lambda r: r.plugin == "fgsm",
    ),
    Claim(
        id="athalye2018-randomization-masks-gradients",
        paper="Athalye, Carlini & Wagner, ICML 2018 (Obfuscated Gradients)",
        statement="Input randomization masks gradients: PGD overstates the robustness that EOT over the "
                  "defense's own draws exposes (EOT leaves at most half of PGD's robust accuracy).",
        suite="robustness", metrics=ATTACK_METRICS,
        test=f"Fisher's exact test, one-sided, and a Newcombe interval, at the dataset's reference eps; "
             f"effect >= {MIN_EFFECT} and EOT <= half of PGD",
        rule=decide_randomization, figure="robust_accuracy", where=lambda r: r.plugin in ("pgd", EOT_PGD),
    ),
]


ANALYSES = [
    Analysis("worst-case", "robustness", worst_case, WORST_CASE_METRICS,
             "per model, dataset, norm and eps: the examples every attack failed on (AutoAttack's protocol)"),
    Analysis("gradient-masking", "robustness", gradient_masking, MASKING_METRICS,
             "the sanity rules of Carlini et al. 2019 and Athalye et al. 2018, as paired tests"),
]


def record_report(bt_record, report: RobustnessReport, indices, threat: str, **context: str) -> None:
    """Every figure of one eps, as records with ``params={"eps": eps}``; ``indices`` are the
    attacked examples' indices in the test split (the x of the per-example outcomes)."""
    params = {"eps": report.eps}
    n = report.n
    correct = int(report.clean_correct.sum())
    bt_record.proportion("clean_accuracy", correct, n, params=params, **context)
    bt_record.proportion("robust_accuracy", int(report.robust_correct.sum()), n, params=params, **context)
    bt_record("examples", n, unit="examples", params=params, **context)
    if not math.isnan(report.success_rate):
        bt_record.proportion("attack_success_rate", correct - int(report.robust_correct.sum()), correct, params=params,
                             **context)
    bt_record("mean_perturbation", report.mean_norm, unit=report.norm, params=params, **context)
    bt_record("max_perturbation", report.max_norm, unit=report.norm, params=params, **context)
    bt_record("forward_queries", report.forward_queries / n, unit="per example", params=params, **context)
    bt_record("gradient_queries", report.gradient_queries / n, unit="per example", params=params, **context)
    bt_record("seconds", report.seconds / n, unit="s per example", params=params, **context)
    bt_record.series(PER_EXAMPLE, indices, report.robust_correct.int().tolist(), x_label="example",
                     y_label="robust", params={**params, "norm": report.norm, "threat": threat}, **context)


def test_robust_accuracy(attack, model, dataset, bt_config, bt_record):
    attack = attack.at_budget(bt_config.budget)
    x, y = attack_subset(dataset.test, bt_config)
    indices = attack_indices(dataset.test, bt_config).tolist()
    eps_list = attack_eps(bt_config, dataset.info, attack.norm)
    reports = evaluate(attack, model, x, y, eps_list, bounds=dataset.info.bounds, seed=bt_config.seed,
                       batch_size=attack_batch_size(bt_config))
    for report in reports:
        record_report(bt_record, report, indices, attack.threat_model)
    bt_record.series("robust_accuracy_vs_eps", [r.eps for r in reports], [r.robust_accuracy for r in reports],
                     x_label=f"eps ({attack.norm})", y_label="robust accuracy")
    for report in reports:
        assert report.robust_accuracy <= report.clean_accuracy, f"eps={report.eps}: robust exceeds clean accuracy"
        if report.eps == 0:
            changed = int((report.adversarial_correct != report.clean_correct).sum())
            assert changed == 0, f"eps=0 changed the correctness of {changed} of {report.n} examples"


@pytest.mark.bt(small=dict(cells=None))  # cheap: every model of the smoke test gets its probes
def test_gradient_probes(model, dataset, bt_config, bt_host, bt_record):
    """The model-side probes of the gradient-masking checks: the first-order probe of its
    input gradients, and PGD at an Linf eps of half the data range (Carlini et al. 2019, §5:
    an unbounded attack must leave about nothing robust)."""
    x, y = attack_subset(dataset.test, bt_config)
    low, high = dataset.info.bounds
    probe = gradient_probe(model, x[:PROBE_EXAMPLES], y[:PROBE_EXAMPLES], bounds=(low, high))
    bt_record("gradient_masked_share", probe.masked_share, unit="fraction", kind="probes")
    bt_record("examples", probe.n, unit="examples", kind="probes")
    if "pgd" not in bt_host.registry.names("attacks"):
        pytest.skip("the pgd attack is not loaded: no large-eps probe")
    pgd = bt_host.registry.create("attacks", "pgd").at_budget(bt_config.budget)
    eps = (high - low) / 2
    (report,) = evaluate(pgd, model, x, y, [eps], bounds=(low, high), seed=bt_config.seed,
                         batch_size=attack_batch_size(bt_config), determinism_examples=0)
    params = {"eps": eps}
    bt_record("large_eps_robust_accuracy", report.robust_accuracy, unit="fraction", params=params,
              kind="probes", plugin="pgd")
    bt_record("examples", report.n, unit="examples", params=params, kind="probes", plugin="pgd")


def test_pgd_not_weaker_than_fgsm(model, dataset, bt_config, bt_host, bt_record):
    registry = bt_host.registry
    missing = {"pgd", "fgsm"} - set(registry.names("attacks"))
    if missing:
        pytest.skip(f"attack(s) {sorted(missing)} not loaded")
    x, y = attack_subset(dataset.test, bt_config)
    eps_list = [e for e in attack_eps(bt_config, dataset.info, "linf") if e > 0]
    runs = {
        name: evaluate(registry.create("attacks", name).at_budget(bt_config.budget), model, x, y, eps_list,
                       bounds=dataset.info.bounds, seed=bt_config.seed, batch_size=attack_batch_size(bt_config),
                       determinism_examples=0)
        for name in ("fgsm", "pgd")
    }
    for fgsm, pgd in zip(runs["fgsm"], runs["pgd"]):
        bt_record("robust_accuracy_gap", pgd.robust_accuracy - fgsm.robust_accuracy, unit="pgd - fgsm",
                  params={"eps": pgd.eps}, kind="attacks", plugin="pgd")
        paired = at_least_as_strong(pgd.robust_correct.tolist(), fgsm.robust_correct.tolist())
        assert not paired.weaker(PAIRED_ALPHA), (
            f"eps={pgd.eps}: PGD robust accuracy {pgd.robust_accuracy:.3f} > FGSM's {fgsm.robust_accuracy:.3f} "
            f"beyond sampling noise: {paired.describe('pgd', 'fgsm')}")
