"""How well does each uncertainty estimator know what it does not know?

Classification (digits with held-out classes; Fashion-MNIST, whole and with held-out classes,
where its files are found): accuracy, NLL, Brier, ECE
(15 bins, top-label), AURC and E-AURC (selective prediction), and per OOD set the AUROC
and FPR at 95% TPR of three scores (1 - max prob, predictive entropy, mutual information;
OOD is the positive class), mean MI in and out of distribution, and accuracy/NLL/ECE on
the sets that keep their labels (rotations, corruptions). Shift intensities (Ovadia et al.
2019): accuracy, NLL, Brier and ECE per MNIST-C corruption (Mu & Gilmer 2019) and intensity
1-5 (params ``shift`` and ``intensity``; the report's box plots of Ovadia's Figure 2), and the
same four against rotation (0-180 degrees) and translation (pixels rolled) as curves.
Regression (the 1-D toy with a gap): Gaussian NLL, RMSE, 90% interval coverage, and
epistemic variance inside the data vs in the gap. Reliability diagrams and the regression
band (mean +- 2 sigma on a grid) are recorded as series. The harness
(:mod:`benchtool.harness.uncertainty`) fits, predicts and records; this module parametrizes
the cells and declares the claims.
"""

from __future__ import annotations

import pytest

from benchtool.claims import NOT_REPRODUCED, REPRODUCED, Claim, Outcome, inconclusive
from benchtool.claims.core import value, values
from benchtool.claims.references import Bound, meets, no_worse_than
from benchtool.claims.stats import auroc_greater, n_for_auroc
from benchtool.harness import uncertainty

pytestmark = pytest.mark.bt(
    estimators=["softmax", "mc-dropout", "deep-ensemble", "temperature-scaling", "laplace-last-layer",
                "heteroscedastic", "ddu", "evidential"],
)


def decide_mi_separates_ood(claim: Claim, records: list) -> Outcome:
    """For every OOD set: mean MI off-distribution above in-distribution, and the MI's
    AUROC above 0.5 (one-sided Mann-Whitney test, Bonferroni over the OOD sets). An AUROC
    interval entirely at or below 0.5 on any set is "not reproduced"."""
    n_in = value(records, "examples", split="test")
    mi_in = next((r.value for r in values(records, "mean_mi") if "ood" not in r.params), None)
    sets = sorted({r.params["ood"] for r in values(records, "auroc_mi") if "ood" in r.params})
    if n_in is None or mi_in is None or not sets:
        return inconclusive("no MI AUROC with example counts recorded",
                            "a run of test_classification_uncertainty with mc-dropout")
    k, parts, weakest = len(sets), [], None
    for name in sets:
        auroc = value(records, "auroc_mi", ood=name)
        n_out, mi_out = value(records, "examples", ood=name), value(records, "mean_mi", ood=name)
        if None in (auroc, n_out, mi_out):
            return inconclusive(f"OOD set {name}: AUROC, MI or count missing", "complete records")
        test = auroc_greater(auroc, int(n_out), int(n_in), claim.alpha)
        p = min(1.0, test.p_value * k)
        parts.append((name, auroc, test, p, mi_out))
        if weakest is None or p > weakest[3]:
            weakest = parts[-1]
    name, auroc, test, p, mi_out = weakest
    evidence = (f"weakest of {k} OOD sets ({name}): MI AUROC {auroc:.3f} {test.interval()} vs 0.5, p={p:.2g}; "
                f"mean MI {mi_in:.3g} in vs {mi_out:.3g} out")
    if any(t.high <= 0.5 or mi <= mi_in for _, _, t, _, mi in parts):
        return Outcome(NOT_REPRODUCED, evidence, p)
    if all(pp < claim.alpha for *_, pp, _ in parts):
        return Outcome(REPRODUCED, evidence, p)
    return inconclusive(evidence, f"about {n_for_auroc(auroc, claim.alpha / k)} examples per set")


CLAIMS = [
    Claim(
        id="gal2016-mc-dropout-mi",
        paper="Gal & Ghahramani, ICML 2016",
        statement="MC-dropout's mutual information is higher off-distribution and separates OOD inputs "
                  "better than chance.",
        suite="uncertainty", metrics=("mean_mi", "auroc_mi", "examples"),
        test="one-sided Mann-Whitney test of AUROC > 0.5 per OOD set (Bonferroni); Hanley-McNeil interval",
        rule=decide_mi_separates_ood, where=lambda r: r.plugin == "mc-dropout", figure="auroc_mi",
        absent="mc-dropout did not run on a classification dataset with OOD sets",
    ),
    Claim(
        id="nado2021-lenet-fashion-mnist",
        paper="Nado et al. 2021, Uncertainty Baselines (deterministic LeNet-5 on Fashion-MNIST)",
        statement="A deterministic LeNet-5 (softmax) reaches test accuracy >= 0.90 and NLL <= 0.33 on "
                  "Fashion-MNIST (published: 0.910 and 0.321).",
        suite="uncertainty", metrics=("accuracy", "nll", "examples"), datasets=("fashion-mnist",),
        test="point estimates on the full test split against the targets (accuracy with its Wilson interval)",
        rule=meets("softmax", Bound("accuracy", ">=", 0.90, 0.910), Bound("nll", "<=", 0.33, 0.321)),
        where=lambda r: r.plugin == "softmax" and r.model == "lenet", figure="nll",
        absent="softmax did not run with lenet on fashion-mnist",
    ),
    Claim(
        id="lakshminarayanan2017-ensemble-fashion-mnist",
        paper="Lakshminarayanan, Pritzel & Blundell, NeurIPS 2017; Uncertainty Baselines' ensemble (Nado et al. 2021)",
        statement="A deep ensemble of 5 LeNet-5s is sharper and better calibrated than one network: NLL <= 0.25 "
                  "and ECE <= 0.02 on Fashion-MNIST (published, 10 members: 0.200 and 0.010).",
        suite="uncertainty", metrics=("nll", "ece", "examples"), datasets=("fashion-mnist",),
        test="point estimates on the full test split against the targets",
        rule=meets("deep-ensemble", Bound("nll", "<=", 0.25, 0.200), Bound("ece", "<=", 0.02, 0.010)),
        where=lambda r: r.plugin == "deep-ensemble" and r.model == "lenet", figure="ece",
        absent="deep-ensemble did not run with lenet on fashion-mnist",
    ),
    Claim(
        id="guo2017-temperature-scaling",
        paper="Guo, Pleiss, Sun & Weinberger, ICML 2017",
        statement="Temperature scaling, fit on the validation split, lowers the test ECE of the network it "
                  "rescales.",
        suite="uncertainty", metrics=("ece",), datasets=("fashion-mnist",),
        test="point estimates of ECE (15 bins) on the full test split",
        rule=no_worse_than("ece", "temperature-scaling", "softmax"),
        where=lambda r: r.plugin in ("temperature-scaling", "softmax"), figure="ece",
        absent="temperature-scaling and softmax did not both run on fashion-mnist",
    ),
]


@pytest.mark.bt(models=["lenet"], datasets=["digits-holdout"],
                optional_datasets=["fashion-mnist", "fashion-mnist-holdout"],  # where their files are found
                small=dict(optional_datasets=[]),  # a smoke run stays on digits (--bt-datasets adds them)
                task="classification")
def test_classification_uncertainty(estimator, model, dataset, bt_case, bt_config, bt_host,
                                    bt_record) -> None:
    uncertainty.fit(estimator, dataset, model, bt_case.model, bt_config, bt_host.registry)
    uncertainty.evaluate_classification(bt_record, estimator, dataset, bt_config)


@pytest.mark.bt(models=["mlp"], datasets=["toy-regression"], task="regression")
def test_regression_uncertainty(estimator, model, dataset, bt_case, bt_config, bt_host,
                                bt_record) -> None:
    uncertainty.fit(estimator, dataset, model, bt_case.model, bt_config, bt_host.registry)
    uncertainty.evaluate_regression(bt_record, estimator, dataset, bt_config)
