"""The uncertainty harness: fit an estimator on what it may see, predict through the
contract's guards, and measure how well it knows what it does not know.

The plugin's side is :class:`benchtool.contracts.uncertainty.UncertaintyEstimator` (``fit``,
``sample``, guarded by ``fit_checked``/``predict``/``own_score``); this module is the
harness's side: the :func:`estimation_task`, the OOD scores, the figures of a labelled set,
an OOD set, the shift intensities (Ovadia et al. 2019) and the regression band. The suite
passes its recorder (``bt_record``); every figure is written here, by the ``evaluate_*`` and
``record_*`` functions, so the recorded names are read in one place.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from benchtool import metrics
from benchtool.contracts.data import DataBundle, Split
from benchtool.contracts.uncertainty import EstimationTask, UncertaintyEstimator
from benchtool.data.shift import corrupted_test_sets, rotation_sets, translation_sets
from benchtool.kernels import calibration_bins
from benchtool.kernels._arrays import host as host_array
from benchtool.models.trained import ensemble_member, own_network

if TYPE_CHECKING:
    from benchtool.config import RunConfig
    from benchtool.registry import Registry

NUM_SAMPLES = {"small": 10, "default": 30, "full": 100}  # T stochastic passes per budget
ZERO_MI = 1e-6  # below this everywhere, an estimator has no epistemic part (T = 1)
BAND_POINTS = 200
CURVE_POINTS = 100  # risk-coverage curves are thinned to this many points
host = partial(host_array, dtype=np.float64)  # predictions and targets as float64 NumPy
# shift intensities: the shifted sets are built from the first this many test examples (None: all)
SHIFT_EXAMPLES = {"small": 100, "default": 1000, "full": None}
SHIFT_METRICS = ("accuracy", "nll", "brier", "ece")
SHIFT_SERIES = ("rotation", "translation")  # Ovadia et al. 2019's curves: x in degrees, pixels
SHIFTED_KEPT = 3  # datasets whose shifted sets are kept: every estimator's cell reuses them


class Recorder(Protocol):
    """What the harness records through: the suite's ``bt_record`` fixture."""

    def __call__(self, metric: str, value: float, unit: str = "", *, params: dict[str, Any] | None = None) -> Any: ...

    def series(self, metric: str, x: Any, y: Any, *, x_label: str = "", y_label: str = "", unit: str = "",
               params: dict[str, Any] | None = None) -> Any: ...


# --- fitting and predicting ------------------------------------------------------------------------


def estimation_task(bundle: DataBundle, model: torch.nn.Module, model_name: str, config: RunConfig,
                    registry: Registry) -> EstimationTask:
    """What an estimator may fit on: the train and validation splits, never the test split."""
    spec = registry.create("models", model_name)
    info = bundle.info
    outputs_field = "num_classes" if info.task == "classification" else "output_dim"

    def build_network(outputs: int) -> torch.nn.Module:
        return spec.build(dataclasses.replace(info, **{outputs_field: outputs}))

    recipe = spec.recipe(info, config.budget)
    return EstimationTask(
        info=info, train=bundle.train, val=bundle.val, model=model, model_name=model_name,
        train_member=partial(ensemble_member, spec, bundle, budget=config.budget, device=config.device),
        device=config.device, seed=config.seed, num_samples=config.pick(**NUM_SAMPLES),
        budget=config.budget, build_network=build_network, recipe=recipe,
        own_network=partial(own_network, model_name, info, config.seed, recipe, device=config.device),
    )


def fit(estimator: UncertaintyEstimator, bundle: DataBundle, model: torch.nn.Module, model_name: str,
        config: RunConfig, registry: Registry) -> UncertaintyEstimator:
    """``estimator`` fitted (through its guard) on the :func:`estimation_task` of the cell."""
    estimator.fit_checked(estimation_task(bundle, model, model_name, config, registry))
    return estimator


def predict(estimator: UncertaintyEstimator, split: Split, config: RunConfig) -> Any:
    return estimator.predict(split.x.to(config.device), seed=config.seed)


def uncertainty_scores(stats: Any) -> dict[str, np.ndarray]:
    """Higher = more likely OOD: 1 - max prob, predictive entropy and mutual information."""
    return {
        "max_prob": 1.0 - host(stats.mean).max(1),
        "entropy": host(stats.entropy),
        "mi": host(stats.mutual_information),
    }


def own_score(estimator: UncertaintyEstimator, split: Split, config: RunConfig) -> np.ndarray | None:
    """The estimator's own OOD score (higher = more OOD; ``UncertaintyEstimator.score``), or None."""
    score = estimator.own_score(split.x.to(config.device), seed=config.seed)
    return None if score is None else host(score)


# --- classification --------------------------------------------------------------------------------


def record_labelled(bt_record: Recorder, probs: np.ndarray, labels: np.ndarray, params: dict[str, str]) -> None:
    """Accuracy, NLL, Brier, ECE, AURC and the reliability diagram on a labelled set."""
    confidence, correct = metrics.top_label(probs, labels)
    bins, curve = calibration_bins(confidence, correct), metrics.risk_coverage(confidence, correct)
    bt_record("accuracy", float(correct.mean()), params=params)
    bt_record("nll", metrics.nll(probs, labels), "nats", params=params)
    bt_record("brier", metrics.brier(probs, labels), params=params)
    bt_record("ece", metrics.ece_from_bins(bins), params=params)
    bt_record("aurc", curve.aurc, params=params)
    bt_record("e_aurc", curve.e_aurc, params=params)
    diagram = metrics.ReliabilityDiagram.from_bins(bins)
    filled = diagram.count > 0
    bt_record.series("reliability", diagram.confidence[filled], diagram.accuracy[filled],
                  x_label="confidence", y_label="accuracy", params=params)
    bt_record.series("reliability_count", diagram.confidence[filled], diagram.count[filled],
                  x_label="confidence", y_label="examples per bin", unit="examples", params=params)
    keep = np.unique(np.linspace(0, len(curve.coverage) - 1, CURVE_POINTS).round().astype(int))
    bt_record.series("risk_coverage", curve.coverage[keep], curve.risk[keep],
                  x_label="coverage", y_label="risk", params=params)


def evaluate_classification(bt_record: Recorder, estimator: UncertaintyEstimator, dataset: DataBundle,
                            config: RunConfig) -> None:
    """A fitted estimator on the test split and every OOD set of ``dataset``: the labelled
    figures, per OOD set the AUROC and FPR at 95% TPR of each score (OOD positive), mean MI in
    and out, and on images the shift intensities."""
    stats = predict(estimator, dataset.test, config)
    probs, labels = host(stats.mean), host(dataset.test.y).astype(np.int64)
    assert probs.shape == (len(labels), dataset.info.num_classes)
    record_labelled(bt_record, probs, labels, {})
    bt_record("examples", len(labels), "examples", params={"split": "test"})
    scores_in = uncertainty_scores(stats)
    bt_record("mean_mi", float(scores_in["mi"].mean()), "nats")
    has_epistemic = bool(scores_in["mi"].max() > ZERO_MI)
    own_in = own_score(estimator, dataset.test, config)  # the estimator's own OOD score, if it has one
    for name, split in sorted(dataset.ood.items()):
        params = {"ood": name}
        ood_stats = predict(estimator, split, config)
        scores_out = uncertainty_scores(ood_stats)
        bt_record("examples", len(split), "examples", params=params)
        bt_record("mean_mi", float(scores_out["mi"].mean()), "nats", params=params)
        for score, s_in in scores_in.items():
            if score == "mi" and not (has_epistemic or scores_out["mi"].max() > ZERO_MI):
                continue  # a deterministic estimator: MI is identically zero, its AUROC 0.5 by ties
            bt_record(f"auroc_{score}", metrics.ood_auroc(s_in, scores_out[score]), params=params)
            bt_record(f"fpr95_{score}", metrics.fpr_at_95_tpr(s_in, scores_out[score]), params=params)
        if own_in is not None:  # auroc_own / fpr95_own: each estimator's own score, named in params
            own_out, own_params = own_score(estimator, split, config), {**params, "score": estimator.score_name}
            bt_record("auroc_own", metrics.ood_auroc(own_in, own_out), params=own_params)
            bt_record("fpr95_own", metrics.fpr_at_95_tpr(own_in, own_out), params=own_params)
        ood_labels = host(split.y).astype(np.int64)
        if (ood_labels >= 0).all():  # a covariate shift of in-distribution classes
            record_labelled(bt_record, host(ood_stats.mean), ood_labels, params)
    if len(dataset.info.input_shape) == 3:
        record_shift_intensities(bt_record, estimator, dataset, config)


# --- shift intensities (Ovadia et al. 2019) --------------------------------------------------------


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


def shifted_sets(dataset: DataBundle, n: int | None, seed: int) -> ShiftedSets:
    """The shifted sets of the first ``n`` test examples (all for None), built once per
    dataset, ``n`` and seed in this process (they are read-only; :data:`SHIFTED_KEPT` kept)."""
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


def record_shift_intensities(bt_record: Recorder, estimator: UncertaintyEstimator, dataset: DataBundle,
                             config: RunConfig) -> None:
    """Ovadia et al. 2019 on the first :data:`SHIFT_EXAMPLES` test examples: the four
    :data:`SHIFT_METRICS` per MNIST-C corruption and intensity (Mu & Gilmer 2019,
    ``benchtool.data.shift.CORRUPTIONS``), and as curves against rotation and translation,
    from one prediction over all the shifted sets."""
    sets = shifted_sets(dataset, config.pick(**SHIFT_EXAMPLES), config.seed)
    probs = host(predict(estimator, sets.joined, config).mean)
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


# --- regression ------------------------------------------------------------------------------------


def evaluate_regression(bt_record: Recorder, estimator: UncertaintyEstimator, dataset: DataBundle,
                        config: RunConfig) -> None:
    """A fitted estimator on the test split and every OOD region: the regression figures, the
    epistemic ratio out/in per region, and on 1-D inputs the predictive band."""
    inside = record_regression(bt_record, predict(estimator, dataset.test, config), dataset.test, {})
    for name, split in sorted(dataset.ood.items()):
        outside = record_regression(bt_record, predict(estimator, split, config), split, {"ood": name})
        bt_record("epistemic_ratio", outside / max(inside, 1e-30), params={"ood": name})
    if dataset.info.input_shape == (1,):
        record_band(bt_record, estimator, dataset, config)


def record_regression(bt_record: Recorder, moments: Any, split: Split, params: dict[str, str]) -> float:
    """Gaussian NLL, RMSE, 90% coverage, mean epistemic and aleatoric variance; returns the
    mean epistemic variance."""
    mean, total = host(moments.mean), host(moments.total_variance)
    target = host(split.y).reshape(mean.shape)
    assert np.isfinite(mean).all() and (total >= 0).all()
    total = np.maximum(total, np.finfo(np.float64).tiny)  # a zero variance gives an infinite NLL, not an error
    bt_record("gaussian_nll", metrics.gaussian_nll(mean, total, target), "nats", params=params)
    bt_record("rmse", metrics.rmse(mean, target), params=params)
    bt_record("coverage_90", metrics.interval_coverage(mean, total, target, 0.9), params=params)
    epistemic = float(host(moments.epistemic_variance).mean())
    bt_record("epistemic_variance", epistemic, params=params)
    bt_record("aleatoric_variance", float(host(moments.aleatoric_variance).mean()), params=params)
    return epistemic


def record_band(bt_record: Recorder, estimator: UncertaintyEstimator, dataset: DataBundle,
                config: RunConfig) -> None:
    """The predictive band over a grid of the input box: mean, mean +- 2 sigma, and the
    epistemic and aleatoric standard deviations."""
    low, high = dataset.info.bounds
    grid = torch.linspace(low, high, BAND_POINTS).reshape(-1, 1)
    moments = predict(estimator, Split(grid, torch.zeros(BAND_POINTS, 1)), config)
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
