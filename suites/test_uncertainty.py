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
band (mean +- 2 sigma on a grid) are recorded as series.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pytest
import torch

from benchtool import metrics
from benchtool.claims import NOT_REPRODUCED, REPRODUCED, Claim, Outcome, inconclusive
from benchtool.claims.core import value, values
from benchtool.claims.references import Bound, meets, no_worse_than
from benchtool.claims.stats import auroc_greater, n_for_auroc
from benchtool.contracts.data import DataBundle, Split
from benchtool.contracts.uncertainty import EstimationTask, UncertaintyEstimator
from benchtool.data.shift import corrupted_test_sets, rotation_sets, translation_sets
from benchtool.kernels import calibration_bins
from benchtool.kernels._arrays import host as host_array
from benchtool.models.trained import ensemble_member, own_network

NUM_SAMPLES = {"small": 10, "default": 30, "full": 100}  # T stochastic passes per budget
ZERO_MI = 1e-6  # below this everywhere, an estimator has no epistemic part (T = 1)
BAND_POINTS = 200
CURVE_POINTS = 100  # risk-coverage curves are thinned to this many points
host = partial(host_array, dtype=np.float64)  # predictions and targets as float64 NumPy
# shift intensities: the shifted sets are built from the first this many test examples (None: all)
SHIFT_EXAMPLES = {"small": 100, "default": 1000, "full": None}
SHIFT_METRICS = ("accuracy", "nll", "brier", "ece")
SHIFT_SERIES = ("rotation", "translation")  # Ovadia et al. 2019's curves: x in degrees, pixels

pytestmark = pytest.mark.bt(
    estimators=["softmax", "mc-dropout", "deep-ensemble", "temperature-scaling", "laplace-last-layer",
                "heteroscedastic", "ddu", "evidential"],
)


def decide_mi_separates_ood(claim: Claim, records: list) -> Outcome:
    """For every OOD set: mean MI off-distribution above in-distribution, and the MI's
    AUROC above 0.5 (one-sided Mann-Whitney test, Bonferroni over the OOD sets). An AUROC
    interval entirely at or below 0.5 on any set is "not reproduced"."""
    n_in = value(records, "examples", split="test")
    mi_in = next((r.value for r in values(records, "mean-mi") if "ood" not in r.params), None)
    sets = sorted({r.params["ood"] for r in values(records, "auroc-mi") if "ood" in r.params})
    if n_in is None or mi_in is None or not sets:
        return inconclusive("no MI AUROC with example counts recorded",
                            "a run of test_classification_uncertainty with mc-dropout")
    k, parts, weakest = len(sets), [], None
    for name in sets:
        auroc = value(records, "auroc-mi", ood=name)
        n_out, mi_out = value(records, "examples", ood=name), value(records, "mean-mi", ood=name)
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
        suite="uncertainty", metrics=("mean-mi", "auroc-mi", "examples"),
        test="one-sided Mann-Whitney test of AUROC > 0.5 per OOD set (Bonferroni); Hanley-McNeil interval",
        rule=decide_mi_separates_ood, where=lambda r: r.plugin == "mc-dropout", figure="auroc-mi",
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


def estimation_task(
    bundle: DataBundle, model: torch.nn.Module, model_name: str, bt_config: Any, bt_host: Any
) -> EstimationTask:
    """What an estimator may fit on: the train and validation splits, never the test split."""
    spec = bt_host.registry.create("models", model_name)
    info = bundle.info
    outputs_field = "num_classes" if info.task == "classification" else "output_dim"

    def build_network(outputs: int) -> torch.nn.Module:
        return spec.build(dataclasses.replace(info, **{outputs_field: outputs}))

    recipe = spec.recipe(info, bt_config.budget)
    return EstimationTask(
        info=info, train=bundle.train, val=bundle.val, model=model, model_name=model_name,
        train_member=partial(ensemble_member, spec, bundle, budget=bt_config.budget, device=bt_config.device),
        device=bt_config.device, seed=bt_config.seed, num_samples=bt_config.pick(**NUM_SAMPLES),
        budget=bt_config.budget, build_network=build_network, recipe=recipe,
        own_network=partial(own_network, model_name, info, bt_config.seed, recipe, device=bt_config.device),
    )


def fitted(estimator: UncertaintyEstimator, dataset: DataBundle, model: Any, bt_case: Any, bt_config: Any,
           bt_host: Any) -> UncertaintyEstimator:
    estimator.fit_checked(estimation_task(dataset, model, bt_case.model, bt_config, bt_host))
    return estimator


def predict(estimator: UncertaintyEstimator, split: Split, bt_config: Any) -> Any:
    return estimator.predict(split.x.to(bt_config.device), seed=bt_config.seed)


def uncertainty_scores(stats: Any) -> dict[str, np.ndarray]:
    """Higher = more likely OOD: 1 - max prob, predictive entropy and mutual information."""
    return {
        "max-prob": 1.0 - host(stats.mean).max(1),
        "entropy": host(stats.entropy),
        "mi": host(stats.mutual_information),
    }


def own_score(estimator: UncertaintyEstimator, split: Split, bt_config: Any) -> np.ndarray | None:
    """The estimator's own OOD score (higher = more OOD; ``UncertaintyEstimator.score``), or None."""
    score = estimator.own_score(split.x.to(bt_config.device), seed=bt_config.seed)
    return None if score is None else host(score)


def record_labelled(bt_record: Any, probs: np.ndarray, labels: np.ndarray, params: dict[str, str]) -> None:
    """Accuracy, NLL, Brier, ECE, AURC and the reliability diagram on a labelled set."""
    confidence, correct = metrics.top_label(probs, labels)
    bins, curve = calibration_bins(confidence, correct), metrics.risk_coverage(confidence, correct)
    bt_record("accuracy", float(correct.mean()), params=params)
    bt_record("nll", metrics.nll(probs, labels), "nats", params=params)
    bt_record("brier", metrics.brier(probs, labels), params=params)
    bt_record("ece", metrics.ece_from_bins(bins), params=params)
    bt_record("aurc", curve.aurc, params=params)
    bt_record("e-aurc", curve.e_aurc, params=params)
    diagram = metrics.ReliabilityDiagram.from_bins(bins)
    filled = diagram.count > 0
    bt_record.series("reliability", diagram.confidence[filled], diagram.accuracy[filled],
                     x_label="confidence", y_label="accuracy", params=params)
    bt_record.series("reliability_count", diagram.confidence[filled], diagram.count[filled],
                     x_label="confidence", y_label="examples per bin", unit="examples", params=params)
    keep = np.unique(np.linspace(0, len(curve.coverage) - 1, CURVE_POINTS).round().astype(int))
    bt_record.series("risk-coverage", curve.coverage[keep], curve.risk[keep],
                     x_label="coverage", y_label="risk", params=params)


@pytest.mark.bt(models=["lenet"], datasets=["digits-holdout"],
                optional_datasets=["fashion-mnist", "fashion-mnist-holdout"],  # where their files are found
                small=dict(optional_datasets=[]),  # a smoke run stays on digits (--bt-datasets adds them)
                task="classification")
def test_classification_uncertainty(estimator, model, dataset, bt_case, bt_config, bt_host,
                                    bt_record) -> None:
    fitted(estimator, dataset, model, bt_case, bt_config, bt_host)
    stats = predict(estimator, dataset.test, bt_config)
    probs, labels = host(stats.mean), host(dataset.test.y).astype(np.int64)
    assert probs.shape == (len(labels), dataset.info.num_classes)
    record_labelled(bt_record, probs, labels, {})
    bt_record("examples", len(labels), "examples", params={"split": "test"})
    scores_in = uncertainty_scores(stats)
    bt_record("mean-mi", float(scores_in["mi"].mean()), "nats")
    has_epistemic = bool(scores_in["mi"].max() > ZERO_MI)
    own_in = own_score(estimator, dataset.test, bt_config)  # the estimator's own OOD score, if it has one
    for name, split in sorted(dataset.ood.items()):
        params = {"ood": name}
        ood_stats = predict(estimator, split, bt_config)
        scores_out = uncertainty_scores(ood_stats)
        bt_record("examples", len(split), "examples", params=params)
        bt_record("mean-mi", float(scores_out["mi"].mean()), "nats", params=params)
        for score, s_in in scores_in.items():
            if score == "mi" and not (has_epistemic or scores_out["mi"].max() > ZERO_MI):
                continue  # a deterministic estimator: MI is identically zero, its AUROC 0.5 by ties
            bt_record(f"auroc-{score}", metrics.ood_auroc(s_in, scores_out[score]), params=params)
            bt_record(f"fpr95-{score}", metrics.fpr_at_95_tpr(s_in, scores_out[score]), params=params)
        if own_in is not None:  # auroc-own / fpr95-own: each estimator's own score, named in params
            own_out, own_params = own_score(estimator, split, bt_config), {**params, "score": estimator.score_name}
            bt_record("auroc-own", metrics.ood_auroc(own_in, own_out), params=own_params)
            bt_record("fpr95-own", metrics.fpr_at_95_tpr(own_in, own_out), params=own_params)
        ood_labels = host(split.y).astype(np.int64)
        if (ood_labels >= 0).all():  # a covariate shift of in-distribution classes
            record_labelled(bt_record, host(ood_stats.mean), ood_labels, params)
    if len(dataset.info.input_shape) == 3:
        record_shift_intensities(bt_record, estimator, dataset, bt_config)


def shift_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, NLL, Brier and ECE (the :data:`SHIFT_METRICS`) of predictions on one set."""
    confidence, correct = metrics.top_label(probs, labels)
    return {"accuracy": float(correct.mean()), "nll": metrics.nll(probs, labels),
            "brier": metrics.brier(probs, labels),
            "ece": metrics.ece_from_bins(calibration_bins(confidence, correct))}


@dataclass(frozen=True)
class ShiftedSets:
    """Every shifted copy of a test subset (each corruption and intensity, then each point of
    the rotation and translation series), joined into one split for one prediction."""

    corrupted: list[tuple[str, int]]  # (corruption, intensity), in the order of ``joined``
    series: dict[str, list[float]]  # axis -> its x values, after the corruptions, in order
    joined: Split
    size: int  # examples in each set


_SHIFTED: OrderedDict[tuple[str, int, int | None], ShiftedSets] = OrderedDict()
SHIFTED_KEPT = 3  # datasets whose shifted sets are kept: every estimator's cell reuses them


def shifted_sets(dataset: DataBundle, n: int | None, seed: int) -> ShiftedSets:
    """The shifted sets of the first ``n`` test examples (all for None), built once per
    dataset, ``n`` and seed in this process (they are read-only)."""
    key = (dataset.info.name, seed, n)
    if key in _SHIFTED:
        _SHIFTED.move_to_end(key)
        return _SHIFTED[key]
    test = dataset.test if n is None else Split(dataset.test.x[:n], dataset.test.y[:n])
    corrupted = list(corrupted_test_sets(dataset.info, test, seed))
    series = {"rotation": list(rotation_sets(dataset.info, test)), "translation": list(translation_sets(test))}
    splits = [s for *_, s in corrupted] + [s for axis in SHIFT_SERIES for _, s in series[axis]]
    joined = Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))
    _SHIFTED[key] = ShiftedSets([(name, intensity) for name, intensity, _ in corrupted],
                                {axis: [float(x) for x, _ in series[axis]] for axis in SHIFT_SERIES}, joined, len(test))
    while len(_SHIFTED) > SHIFTED_KEPT:
        _SHIFTED.popitem(last=False)
    return _SHIFTED[key]


def record_shift_intensities(bt_record: Any, estimator: UncertaintyEstimator, dataset: DataBundle,
                             bt_config: Any) -> None:
    """Ovadia et al. 2019 on the first :data:`SHIFT_EXAMPLES` test examples: the four
    :data:`SHIFT_METRICS` per MNIST-C corruption and intensity (Mu & Gilmer 2019,
    ``benchtool.data.shift.CORRUPTIONS``), and as curves against rotation and translation,
    from one prediction over all the shifted sets."""
    sets = shifted_sets(dataset, bt_config.pick(**SHIFT_EXAMPLES), bt_config.seed)
    probs = host(predict(estimator, sets.joined, bt_config).mean)
    labels = host(sets.joined.y).astype(np.int64)
    results = iter(shift_metrics(probs[start:start + sets.size], labels[start:start + sets.size])
                   for start in range(0, len(labels), sets.size))
    for name, intensity in sets.corrupted:
        found = next(results)
        for metric in SHIFT_METRICS:
            bt_record(metric, found[metric], params={"shift": name, "intensity": intensity})
    for name in sorted({name for name, _ in sets.corrupted}):
        bt_record("examples", sets.size, "examples", params={"shift": name})
    for axis in SHIFT_SERIES:
        xs = np.array(sets.series[axis], dtype=float)
        found_series = [next(results) for _ in xs]
        bt_record("examples", sets.size, "examples", params={"shift": axis})
        for metric in SHIFT_METRICS:
            bt_record.series(f"{metric}_vs_{axis}", xs, [found[metric] for found in found_series],
                             x_label="degrees rotated" if axis == "rotation" else "pixels translated",
                             y_label=metric, params={"shift": axis})


@pytest.mark.bt(models=["mlp"], datasets=["toy-regression"], task="regression")
def test_regression_uncertainty(estimator, model, dataset, bt_case, bt_config, bt_host,
                                bt_record) -> None:
    fitted(estimator, dataset, model, bt_case, bt_config, bt_host)
    inside = record_regression(bt_record, predict(estimator, dataset.test, bt_config), dataset.test, {})
    for name, split in sorted(dataset.ood.items()):
        outside = record_regression(bt_record, predict(estimator, split, bt_config), split, {"ood": name})
        bt_record("epistemic-ratio", outside / max(inside, 1e-30), params={"ood": name})
    if dataset.info.input_shape == (1,):
        record_band(bt_record, estimator, dataset, bt_config)


def record_regression(bt_record: Any, moments: Any, split: Split, params: dict[str, str]) -> float:
    """Gaussian NLL, RMSE, 90% coverage, mean epistemic and aleatoric variance; returns the
    mean epistemic variance."""
    mean, total = host(moments.mean), host(moments.total_variance)
    target = host(split.y).reshape(mean.shape)
    assert np.isfinite(mean).all() and (total >= 0).all()
    total = np.maximum(total, np.finfo(np.float64).tiny)  # a zero variance gives an infinite NLL, not an error
    bt_record("gaussian-nll", metrics.gaussian_nll(mean, total, target), "nats", params=params)
    bt_record("rmse", metrics.rmse(mean, target), params=params)
    bt_record("coverage-90", metrics.interval_coverage(mean, total, target, 0.9), params=params)
    epistemic = float(host(moments.epistemic_variance).mean())
    bt_record("epistemic-variance", epistemic, params=params)
    bt_record("aleatoric-variance", float(host(moments.aleatoric_variance).mean()), params=params)
    return epistemic


def record_band(bt_record: Any, estimator: UncertaintyEstimator, dataset: DataBundle, bt_config: Any) -> None:
    """The predictive band over a grid of the input box: mean, mean +- 2 sigma, and the
    epistemic and aleatoric standard deviations."""
    low, high = dataset.info.bounds
    grid = torch.linspace(low, high, BAND_POINTS).reshape(-1, 1)
    moments = predict(estimator, Split(grid, torch.zeros(BAND_POINTS, 1)), bt_config)
    x = grid[:, 0].numpy()
    mean, total = host(moments.mean)[:, 0], host(moments.total_variance)[:, 0]
    two_sigma = 2.0 * np.sqrt(total)
    for metric, y in (
        # <metric>_lower / _upper: the report draws them as one band around the mean
        ("predictive_mean", mean), ("predictive_mean_lower", mean - two_sigma),
        ("predictive_mean_upper", mean + two_sigma),
        ("epistemic_std", np.sqrt(host(moments.epistemic_variance)[:, 0])),
        ("aleatoric_std", np.sqrt(host(moments.aleatoric_variance)[:, 0])),
    ):
        bt_record.series(metric, x, y, x_label="x", y_label="y")
