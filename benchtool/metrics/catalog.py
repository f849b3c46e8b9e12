"""The metric catalog: what every recorded metric name means, in one place.

One :class:`MetricSpec` per metric the built-in suites and claims record: its direction
(``higher`` or ``lower`` is better, or ``none``), unit, kind (a quality figure, a timing, a
cost, a sample size, an interval or band around another metric, ...), the tolerance
``benchtool compare`` allows by default, and its relations (the central metric a band or
interval bounds, the metric a curve draws, the count that is a proportion's n). Every
consumer reads it: ``benchtool compare`` (directions, tolerances, timing reported apart),
the report's leaderboards (best by direction; intervals, counts and timings are never
"best") and figures (bands drawn around their centre curve, Wilson bands from counts).

Looking a name up (:meth:`MetricCatalog.spec`) never fails; in this order it finds

1. the name, one of its aliases, or the same name in the other spelling (``e-aurc`` and
   ``e_aurc`` are one metric: ``-`` and ``_`` are not told apart);
2. a form derived from a catalogued name: ``<m>_ci95`` (the half-width of m's 95% interval),
   ``<m>_lower`` / ``<m>_upper`` (a band around m), ``<m>_std`` (m's standard deviation,
   drawn as a +-2 sigma band), ``<m>_count`` (m's n per point), ``<m>_curve`` and
   ``<m>_vs_<x>`` (m as a curve), ``<m>_seed`` (m for one seed);
3. a family of names (``weight_<task>``, ``sigma_<task>``);
4. for an unknown name recorded with a time unit (``s``, ``ms``, ``s per example``): a timing;
5. otherwise the documented default for an unknown name (:func:`unknown_spec`): no direction,
   so it is recorded, stored, listed by ``compare`` as ``changed`` and drawn, but never gated
   and never highlighted as best. A plugin or a third-party suite gives its own metrics a
   direction with :func:`register` (or a user with ``compare --direction METRIC=higher``).

``python -m benchtool.metrics.catalog`` prints the catalog as the Markdown table of
``docs/metrics.md``.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from benchtool.errors import UsageError

Direction = Literal["higher", "lower", "none"]
DIRECTIONS: tuple[Direction, ...] = ("higher", "lower", "none")

Kind = Literal["quality", "timing", "cost", "count", "interval", "bound", "diagnostic", "setting", "verdict",
               "flag", "per_example", "unknown"]
KINDS: Mapping[str, str] = MappingProxyType({
    "quality": "a figure a plugin is judged on: has a direction, gated by compare, highlighted when best",
    "timing": "wall-clock time: never gated (speed is pytest-benchmark's job); compare reports it apart, "
              "as slower/faster beyond its noise tolerance",
    "cost": "work per example (model queries): never gated; compare reports it apart, as costlier/cheaper",
    "count": "a sample size, e.g. the n of a proportion: reported, never gated, never best",
    "interval": "the spread of another metric (a 95% CI half-width, a standard deviation): never gated, "
                "never best; the report draws it as a band around that metric",
    "bound": "the lower or upper edge of a band around another metric: drawn as one band around it",
    "diagnostic": "a measured figure with no better direction (a perturbation norm, a learned task weight)",
    "setting": "a number the run was configured with, recorded for context",
    "verdict": "a claim's verdict (1 / 0.5 / 0); compare judges a changed verdict on its own terms",
    "flag": "a sanity check's outcome (1 flagged, 0 passed) with its rule and evidence in params: listed in "
            "the checks table, not in leaderboards; never gated, never best",
    "per_example": "one value per test example (x: its index in the split), kept for the run-level analyses "
                   "(e.g. the worst case over attacks): stored, never drawn, gated or best",
    "unknown": "a name the catalog does not know: reported, never gated, never best",
})
GATED_KINDS = ("quality", "unknown")  # kinds whose direction (catalogued or given by the user) gates compare
RESOURCE_KINDS = ("timing", "cost")  # reported apart by compare, within a noise tolerance
BEST_KINDS = ("quality", "unknown")  # kinds a leaderboard may highlight as best (given a direction)

Role = Literal["", "lower", "upper", "half_width", "std", "count", "curve", "per_seed"]
ROLES: tuple[Role, ...] = ("", "lower", "upper", "half_width", "std", "count", "curve", "per_seed")
BAND_ROLES = ("lower", "upper", "half_width", "std", "count")  # drawn with the centre curve, not on their own
Shape = Literal["scalar", "curve", "both"]

TIME_UNITS = ("s", "ms", "us", "ns", "seconds", "minutes", "hours")


@dataclass(frozen=True)
class Tolerance:
    """How much a metric may get worse before it counts as a regression."""

    amount: float
    relative: bool = False
    floor: float = 0.0  # a relative tolerance never allows less than this (timings of a few ms)

    @classmethod
    def parse(cls, text: str, what: str) -> Tolerance:
        """``0.01`` (absolute) or ``5%`` (relative to the baseline value)."""
        raw = text.strip()
        relative = raw.endswith("%")
        try:
            amount = float(raw[:-1] if relative else raw)
        except ValueError:
            raise UsageError(
                f"invalid tolerance {text!r} for {what}; expected a number like 0.01 or a percentage like 5%"
            ) from None
        if amount < 0 or not math.isfinite(amount):
            raise UsageError(f"invalid tolerance {text!r} for {what}; expected a finite number >= 0")
        return cls(amount / 100 if relative else amount, relative)

    def allowed(self, baseline: float) -> float:
        return max(self.amount * abs(baseline), self.floor) if self.relative else self.amount

    def __str__(self) -> str:
        if not self.relative:
            return f"{self.amount:g}"
        return f"{self.amount * 100:g}%" + (f" (>= {self.floor:g})" if self.floor else "")


EXACT = Tolerance(0.0)


@dataclass(frozen=True)
class MetricSpec:
    """What one metric name means."""

    name: str
    direction: Direction = "none"
    unit: str = ""
    kind: Kind = "quality"
    tolerance: Tolerance = EXACT
    description: str = ""
    of: str = ""  # the central metric this one bounds, spreads, counts or draws as a curve
    role: Role = ""  # how it relates to ``of``
    shape: Shape = "scalar"  # recorded as a number, a curve (series), or both
    x: str = ""  # a curve's x axis
    by_kind: Mapping[str, Direction] = field(default_factory=dict)  # direction from a plugin kind's view
    target: float | None = None  # better is closer to this value (``coverage-90``: 0.9); direction "none"
    sample_size: str = ""  # a proportion: the count metric recorded beside it that is its n
    aliases: tuple[str, ...] = ()  # other spellings recorded by older runs or suites

    def __post_init__(self) -> None:
        problems = []
        if not self.name or self.name != self.name.strip():
            problems.append("a name without surrounding spaces is required")
        if self.direction not in DIRECTIONS:
            problems.append(f"direction {self.direction!r} is not one of {', '.join(DIRECTIONS)}")
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.role not in ROLES:
            problems.append(f"role {self.role!r} is not one of {', '.join(r for r in ROLES if r)}")
        if bool(self.role) != bool(self.of):
            problems.append("'of' and 'role' go together (the central metric and how this one relates to it)")
        if self.kind in ("interval", "bound", "count", "diagnostic", "setting", "verdict", "flag", "per_example") and (
                self.direction != "none" or self.by_kind or self.target is not None):
            problems.append(f"{'an' if self.kind[0] in 'aeiou' else 'a'} {self.kind} metric has no better direction")
        if self.kind in ("interval", "bound") and self.role not in BAND_ROLES:
            problems.append(f"{'an' if self.kind[0] in 'aeiou' else 'a'} {self.kind} metric needs 'of' and a role "
                            f"among {', '.join(BAND_ROLES)}")
        if self.target is not None and self.direction != "none":
            problems.append("a metric with a target has direction 'none' (better is closer to the target)")
        if self.shape not in ("scalar", "curve", "both"):
            problems.append(f"shape {self.shape!r} is not scalar, curve or both")
        bad_kinds = {k: d for k, d in self.by_kind.items() if d not in DIRECTIONS}
        if bad_kinds:
            problems.append(f"by_kind directions {bad_kinds} are not among {', '.join(DIRECTIONS)}")
        if problems:
            raise ValueError(f"metric spec {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "by_kind", MappingProxyType(dict(self.by_kind)))

    def direction_for(self, plugin_kind: str = "") -> Direction:
        """Which way is better from the point of view of a plugin of ``plugin_kind`` (for an
        attack a lower ``robust_accuracy`` is better: it is the stronger attack)."""
        return self.by_kind.get(plugin_kind, self.direction)

    @property
    def known(self) -> bool:
        return self.kind != "unknown"

    @property
    def gated(self) -> bool:
        """Whether ``compare`` fails a run when this metric gets worse beyond its tolerance."""
        return self.kind in GATED_KINDS and (self.direction != "none" or self.target is not None
                                             or any(d != "none" for d in self.by_kind.values()))

    @property
    def may_be_best(self) -> bool:
        """Whether a leaderboard may highlight a best value of this metric (given a direction)."""
        return self.kind in BEST_KINDS

    def better_text(self, plugin_kind: str = "") -> str:
        if self.target is not None:
            return f"closer to {self.target:g} is better"
        direction = self.direction_for(plugin_kind)
        return "no better direction" if direction == "none" else f"{direction} is better"


def _spell(name: str) -> str:
    """The spelling-blind key of a name: ``e-aurc`` and ``e_aurc`` are one metric."""
    return name.replace("-", "_")


# --- the built-in metrics ------------------------------------------------------------------------

PROPORTION = Tolerance(0.01)  # one point of a proportion (accuracy, AUROC, success rate)
# wall time on a shared machine varies by tens of percent, and a few milliseconds by several times
WALL_NOISE = Tolerance(0.5, relative=True, floor=0.01)
QUERY_NOISE = Tolerance(0.01, relative=True)  # query counts are deterministic for a seed


def _quality(name: str, direction: Direction, tolerance: Tolerance, description: str, **more) -> MetricSpec:
    return MetricSpec(name, direction, kind="quality", tolerance=tolerance, description=description, **more)


@dataclass(frozen=True)
class _Like:
    """A built-in metric that is another one drawn as a curve or taken per seed: its kind,
    direction, tolerance, unit and n are the other's (resolved when the catalog is built)."""

    name: str
    of: str
    role: Role
    x: str = ""
    description: str = ""


def _curve(name: str, of: str, x: str, description: str) -> _Like:
    return _Like(name, of, "curve", x, description)


def _seconds(name: str, description: str, unit: str = "s") -> MetricSpec:
    return MetricSpec(name, "lower", unit, "timing", WALL_NOISE, description)


ATTACKS_VIEW = {"models": "lower", "estimators": "lower"}  # a figure an attack wants high, a model low

_BUILTIN: tuple[MetricSpec | _Like, ...] = (
    # robustness (suites/test_robustness.py)
    _quality("clean_accuracy", "higher", PROPORTION, "accuracy on the unperturbed examples of the cell",
             unit="fraction", sample_size="examples"),
    _quality("robust_accuracy", "higher", PROPORTION,
             "accuracy on the adversarial examples; for an attack lower is better (the stronger attack)",
             unit="fraction", by_kind={"attacks": "lower"}, sample_size="examples"),
    _curve("robust_accuracy_vs_eps", "robust_accuracy", "eps", "robust accuracy against the perturbation budget"),
    _quality("attack_success_rate", "higher", PROPORTION,
             "fraction of the correctly classified examples the attack fools (the attack's view)",
             unit="fraction", by_kind=ATTACKS_VIEW),
    _quality("robust_accuracy_gap", "lower", PROPORTION,
             "PGD's robust accuracy minus FGSM's at the same eps (<= 0: PGD is not weaker)", unit="pgd - fgsm"),
    MetricSpec("robust_by_example", unit="robust (1) or broken (0)", kind="per_example", shape="curve", x="example",
               description="per attacked example (x: its index in the test split): 1 if it stayed correctly "
                           "classified, 0 if the attack broke it (read by the worst case and the masking checks)"),
    _quality("worst_case_robust_accuracy", "higher", PROPORTION,
             "fraction of the examples every attack of the norm failed on (AutoAttack's worst case over attacks)",
             unit="fraction", sample_size="examples"),
    MetricSpec("attacks_combined", unit="attacks", kind="count", description="attacks the worst case combines"),
    MetricSpec("broken_first", unit="examples", kind="diagnostic",
               description="examples this attack broke before any cheaper one did (attacks ordered by queries)"),
    MetricSpec("broken_only", unit="examples", kind="diagnostic",
               description="examples this attack alone broke (0: every one it broke, another attack broke too)"),
    MetricSpec("large_eps_robust_accuracy", unit="fraction", kind="diagnostic", sample_size="examples",
               description="PGD's robust accuracy at an Linf eps of half the data range (should be about 0)"),
    MetricSpec("gradient_masked_share", unit="fraction", kind="diagnostic", sample_size="examples",
               description="share of examples whose input gradient is zero or mispredicts the margin one tiny "
                           "step away (the first-order probe of the masking checks)"),
    MetricSpec("gradient_masking", unit="flag", kind="flag",
               description="a gradient-masking rule of Carlini et al. 2019 / Athalye et al. 2018 broken (1) or "
                           "kept (0) on a model; params: rule, evidence, alpha, p_value"),
    MetricSpec("attack_underpowered", unit="flag", kind="flag",
               description="the attack trails the strongest peer of its norm beyond noise (1) or not (0): its "
                           "budget, not the model; params: rule, evidence, alpha, p_value"),
    MetricSpec("examples", unit="examples", kind="count",
               description="examples the cell evaluated (the n of its accuracies)"),
    MetricSpec("mean_perturbation", unit="norm", kind="diagnostic",
               description="mean norm of the perturbation, in the attack's norm (the record's unit: linf, l2)"),
    MetricSpec("max_perturbation", unit="norm", kind="diagnostic",
               description="largest norm of the perturbation (at most eps, checked by the harness)"),
    MetricSpec("forward_queries", "lower", "per example", "cost", QUERY_NOISE,
               "model forward passes the attack made per example"),
    MetricSpec("gradient_queries", "lower", "per example", "cost", QUERY_NOISE,
               "input gradients the attack took per example"),
    _seconds("seconds", "wall-clock seconds of the case (robustness: per example; the record's unit says)"),
    # transformations (suites/test_transformations.py)
    _quality("transformed_clean_accuracy", "higher", PROPORTION,
             "the model's accuracy on clean inputs under the EOT transformations", unit="fraction"),
    _quality("survival_rate", "higher", Tolerance(0.02),
             "fraction of the fooled examples still adversarial under random transformations (attack's view)",
             unit="fraction", by_kind=ATTACKS_VIEW, sample_size="fooled_examples"),
    _quality("survival_rate_where_clean_survives", "higher", Tolerance(0.02),
             "survival rate counted only on draws whose transformed clean input is still classified right",
             unit="fraction", by_kind=ATTACKS_VIEW, sample_size="fooled_examples"),
    _curve("survival_rate_vs_eps", "survival_rate_where_clean_survives", "eps",
           "survival_rate_where_clean_survives against eps (Linf)"),
    MetricSpec("fooled_examples", unit="examples", kind="count",
               description="examples the attack fooled (the n of the survival rates)"),
    # uncertainty, classification (suites/test_uncertainty.py, recorded by benchtool/harness/uncertainty.py)
    _quality("accuracy", "higher", PROPORTION, "top-1 accuracy of the predictive mean", unit="fraction",
             sample_size="examples"),
    _quality("nll", "lower", Tolerance(0.02, relative=True), "negative log-likelihood of the labels", unit="nats"),
    _quality("brier", "lower", Tolerance(0.005), "Brier score of the predictive mean"),
    _quality("ece", "lower", Tolerance(0.005), "expected calibration error (15 equal-width bins, top label)"),
    _quality("aurc", "lower", Tolerance(0.005), "area under the risk-coverage curve (selective prediction)"),
    _quality("e_aurc", "lower", Tolerance(0.005), "AURC minus the AURC of an oracle ranking",
             aliases=("e-aurc",)),
    MetricSpec("reliability", unit="fraction", kind="diagnostic", shape="curve", x="confidence",
               description="reliability diagram: accuracy per confidence bin", sample_size="reliability_count"),
    MetricSpec("reliability_count", unit="examples", kind="count", of="reliability", role="count", shape="curve",
               x="confidence", description="examples per reliability bin (each bin's n)"),
    MetricSpec("risk_coverage", kind="diagnostic", shape="curve", x="coverage",
               description="selective risk against coverage (its area is aurc)", aliases=("risk-coverage",)),
    MetricSpec("mean_mi", unit="nats", kind="diagnostic",
               description="mean mutual information (epistemic part), in distribution or per OOD set",
               aliases=("mean-mi",)),
    *(_quality(f"auroc_{_spell(score)}", "higher", PROPORTION,
               f"AUROC of {what} separating an OOD set (positive) from the test split",
               aliases=(f"auroc-{score}",)) for score, what in (
        ("max-prob", "1 - max probability"), ("entropy", "the predictive entropy"),
        ("mi", "the mutual information"), ("own", "the estimator's own OOD score (named in params)"))),
    *(_quality(f"fpr95_{_spell(score)}", "lower", Tolerance(0.02),
               f"false-positive rate at 95% TPR of {what} (OOD positive)",
               aliases=(f"fpr95-{score}",)) for score, what in (
        ("max-prob", "1 - max probability"), ("entropy", "the predictive entropy"),
        ("mi", "the mutual information"), ("own", "the estimator's own OOD score"))),
    # uncertainty, regression
    _quality("gaussian_nll", "lower", Tolerance(0.05, relative=True), "Gaussian negative log-likelihood",
             unit="nats", aliases=("gaussian-nll",)),
    _quality("rmse", "lower", Tolerance(0.02, relative=True), "root mean squared error of the predictive mean"),
    MetricSpec("coverage_90", kind="quality", target=0.9, tolerance=Tolerance(0.02), unit="fraction",
               description="fraction of targets inside the central 90% predictive interval (0.9 is calibrated)",
               aliases=("coverage-90",)),
    _quality("epistemic_ratio", "higher", Tolerance(0.1, relative=True),
             "mean epistemic variance on an OOD region over that inside the data (higher: knows the gap)",
             aliases=("epistemic-ratio",)),
    MetricSpec("epistemic_variance", kind="diagnostic", description="mean epistemic variance",
               aliases=("epistemic-variance",)),
    MetricSpec("aleatoric_variance", kind="diagnostic", description="mean aleatoric variance",
               aliases=("aleatoric-variance",)),
    MetricSpec("predictive_mean", kind="diagnostic", shape="curve", x="x",
               description="the predictive mean on a grid of the input box", aliases=("band-mean",)),
    MetricSpec("predictive_mean_lower", kind="bound", of="predictive_mean", role="lower", shape="curve", x="x",
               description="predictive mean - 2 sigma", aliases=("band-lower",)),
    MetricSpec("predictive_mean_upper", kind="bound", of="predictive_mean", role="upper", shape="curve", x="x",
               description="predictive mean + 2 sigma", aliases=("band-upper",)),
    MetricSpec("epistemic_std", kind="diagnostic", shape="curve", x="x",
               description="epistemic standard deviation on the grid", aliases=("epistemic-std",)),
    MetricSpec("aleatoric_std", kind="diagnostic", shape="curve", x="x",
               description="aleatoric standard deviation on the grid", aliases=("aleatoric-std",)),
    # generalization (suites/test_generalization.py)
    _quality("train_accuracy", "higher", PROPORTION, "final training accuracy (on the labels trained on)",
             unit="fraction", sample_size="train_examples"),
    _quality("best_train_accuracy", "higher", PROPORTION, "best training accuracy over the epochs",
             unit="fraction", sample_size="train_examples"),
    _quality("test_accuracy", "higher", PROPORTION, "final test accuracy (true labels)", unit="fraction",
             sample_size="test_examples"),
    _quality("zoo_test_accuracy", "higher", PROPORTION, "test accuracy of the zoo model before the experiment",
             unit="fraction"),
    _curve("train_accuracy_curve", "train_accuracy", "epoch", "training accuracy per epoch"),
    _curve("test_accuracy_curve", "test_accuracy", "epoch", "test accuracy per epoch"),
    _curve("train_accuracy_vs_p", "train_accuracy", "p", "final training accuracy against label corruption p"),
    _curve("test_accuracy_vs_p", "test_accuracy", "p", "final test accuracy against label corruption p"),
    MetricSpec("epochs_to_fit", unit="epochs", kind="diagnostic",
               description="epochs until the training set is fitted (inf: never)"),
    MetricSpec("steps_to_fit", unit="steps", kind="diagnostic",
               description="optimizer steps until the training set is fitted (inf: never)"),
    MetricSpec("wrong_label_fraction", unit="fraction", kind="diagnostic",
               description="fraction of training labels that differ from the true ones after corruption"),
    MetricSpec("train_examples", unit="examples", kind="count", description="training examples fitted"),
    MetricSpec("test_examples", unit="examples", kind="count", description="test examples evaluated"),
    MetricSpec("num_classes", kind="setting", description="classes of the dataset (chance = 1 / num_classes)"),
    MetricSpec("epochs_max", unit="epochs", kind="setting", description="the recipe's epoch budget"),
    MetricSpec("batch_size", kind="setting", description="the recipe's batch size"),
    MetricSpec("lr", kind="setting", description="the recipe's learning rate"),
    # multitask (suites/test_multitask.py)
    _quality("delta_m", "higher", Tolerance(1.0),
             "mean relative gain over all tasks against equal weights (Maninis et al. 2019), test split",
             unit="%"),
    _quality("val_delta_m", "higher", Tolerance(1.0), "Delta_m on the validation split (a grid setting)", unit="%"),
    _quality("test_delta_m", "higher", Tolerance(1.0), "Delta_m on the test split (a grid setting)", unit="%"),
    _quality("oracle_delta_m", "higher", Tolerance(1.0), "best test Delta_m of the grid (an oracle)", unit="%"),
    _Like("delta_m_seed", "delta_m", "per_seed", description="Delta_m of one seed (the claim's paired test)"),
    _quality("digit_accuracy", "higher", PROPORTION, "digit task: test accuracy", unit="fraction"),
    _quality("centre_rmse_px", "lower", Tolerance(0.05, relative=True), "centre task: test RMSE in pixels",
             unit="px"),
    _quality("reconstruction_rmse", "lower", Tolerance(0.05, relative=True), "reconstruction task: test RMSE"),
    MetricSpec("centre_noise_injected", unit="px", kind="setting",
               description="std of the noise added to the centre targets (what sigma_centre should learn)"),
    # approximation (suites/test_approximation.py)
    *(_quality(f"{where}_{stat}_error", "lower", Tolerance(0.05, relative=True),
               f"{'max' if stat == 'max' else 'RMS'} absolute error on a dense grid {place}", shape="both",
               x="hidden units")
      for where, place in (("inside", "inside the training box"), ("outside", "on the band around the box"))
      for stat in ("max", "rms")),
    _quality("train_rmse", "lower", Tolerance(0.05, relative=True), "training RMSE at the end of the fit"),
    MetricSpec("train_mse_curve", kind="diagnostic", shape="curve", x="Adam step",
               description="training MSE over the optimizer steps, one curve per width"),
    MetricSpec("width_needed", unit="hidden units", kind="diagnostic",
               description="smallest width whose max error inside is within the tolerance of the target's range"),
    # nas (suites/test_nas.py)
    _quality("best_val_accuracy", "higher", PROPORTION, "best validation accuracy found so far (anytime curve)",
             unit="fraction", shape="curve", x="evaluations"),
    _curve("best_val_accuracy_vs_time", "best_val_accuracy", "seconds",
           "best validation accuracy against (simulated) training seconds"),
    _quality("test_regret", "lower", Tolerance(0.001),
             "test accuracy of the table's optimum minus the incumbent's (mean over seeds)", shape="both",
             x="evaluations"),
    MetricSpec("test_regret_ci95", kind="interval", of="test_regret", role="half_width", shape="both",
               x="evaluations", description="half-width of the 95% CI of test_regret over seeds"),
    _quality("final_test_accuracy", "higher", PROPORTION, "test accuracy of the incumbent (mean over seeds)",
             unit="fraction"),
    MetricSpec("final_test_accuracy_ci95", kind="interval", of="final_test_accuracy", role="half_width",
               description="half-width of the 95% CI of final_test_accuracy over seeds"),
    _seconds("seconds_per_evaluation", "mean training seconds per evaluated architecture"),
    # claims (benchtool/claims)
    MetricSpec("claim", unit="verdict", kind="verdict",
               description="a claim's verdict: 1 reproduced, 0.5 inconclusive, 0 not reproduced"),
)


@dataclass(frozen=True)
class MetricFamily:
    """Names built from a variable part (``weight_<task>``): one spec for all of them."""

    pattern: str  # a regular expression matched against the whole name (spelling-blind)
    template: MetricSpec  # its name is the family's display name (``weight_<task>``)

    def match(self, name: str) -> MetricSpec | None:
        if re.fullmatch(self.pattern, _spell(name)):
            return replace(self.template, name=name, aliases=())
        return None


BUILTIN_FAMILIES: tuple[MetricFamily, ...] = (
    MetricFamily(r"weight_[a-z0-9]+", MetricSpec(
        "weight_<task>", kind="diagnostic", description="multitask: a task's final loss weight (mean over seeds)")),
    MetricFamily(r"sigma_[a-z0-9]+", MetricSpec(
        "sigma_<task>", kind="diagnostic",
        description="multitask, uncertainty weighting: a task's learned sigma (homoscedastic noise)")),
)

# derived forms: suffix -> role (checked longest first, after the ``_vs_<x>`` curve form)
DERIVED_SUFFIXES: tuple[tuple[str, Role], ...] = (
    ("_half_width", "half_width"), ("_ci95", "half_width"), ("_lower", "lower"), ("_upper", "upper"),
    ("_count", "count"), ("_curve", "curve"), ("_seed", "per_seed"), ("_std", "std"), ("_lo", "lower"),
    ("_hi", "upper"), ("_ci_low", "lower"), ("_ci_high", "upper"),
)
_VS = re.compile(r"(?P<base>.+?)_vs_(?P<x>[A-Za-z0-9_]+)")


def _derived(name: str, base: MetricSpec, role: Role, x: str = "") -> MetricSpec:
    """The spec of ``name``, a derived form of the catalogued ``base``."""
    if role in ("curve", "per_seed"):
        return replace(base, name=name, of=base.name, role=role, aliases=(),
                       shape="curve" if role == "curve" else base.shape, x=x or base.x,
                       description=f"{base.name} " + ("as a curve" + (f" against {x}" if x else "")
                                                      if role == "curve" else "for one seed"))
    if role == "count":
        return MetricSpec(name, unit="examples", kind="count", of=base.name, role="count", shape=base.shape,
                          x=base.x, description=f"n of each point of {base.name}")
    what = {"half_width": "95% confidence-interval half-width", "std": "standard deviation",
            "lower": "lower edge of a band", "upper": "upper edge of a band"}[role]
    if name.endswith(("_ci_low", "_ci_high")):
        what = f"{'lower' if role == 'lower' else 'upper'} edge of the 95% (Wilson) confidence interval"
    return MetricSpec(name, unit=base.unit, kind="interval" if role in ("half_width", "std") else "bound",
                      of=base.name, role=role, shape=base.shape, x=base.x, description=f"{what} of {base.name}")


def _resolve(entries: Iterable[MetricSpec | _Like]) -> tuple[MetricSpec, ...]:
    built: dict[str, MetricSpec] = {}
    for entry in entries:
        if isinstance(entry, _Like):
            spec = _derived(entry.name, built[entry.of], entry.role, entry.x)
            spec = replace(spec, description=entry.description or spec.description)
        else:
            spec = entry
        built[spec.name] = spec
    return tuple(built.values())


BUILTIN_SPECS: tuple[MetricSpec, ...] = _resolve(_BUILTIN)


def split_derived(name: str) -> Iterator[tuple[str, Role, str]]:
    """Every way to read ``name`` as a derived form of another name: (that name, role, curve
    x), in either spelling (``band-lower`` reads as ``band`` + ``lower``)."""
    name = _spell(name)
    match = _VS.fullmatch(name)
    if match:
        yield match["base"], "curve", match["x"]
    for suffix, role in DERIVED_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            yield name[: -len(suffix)], role, ""


def unknown_spec(name: str, unit: str = "") -> MetricSpec:
    """The documented default for a name the catalog does not know: a timing when its unit is
    a time unit, else no direction (recorded, reported as ``changed``, never gated, never best)."""
    if unit in TIME_UNITS or unit.startswith(tuple(f"{u} per " for u in TIME_UNITS)):
        return MetricSpec(name, "lower", unit, "timing", WALL_NOISE, "not catalogued; a timing by its unit")
    return MetricSpec(name, unit=unit, kind="unknown", description="not catalogued: no better direction")


class MetricCatalog:
    """Metric specs by name (aliases and both spellings), with families and derived forms."""

    def __init__(self, specs: Iterable[MetricSpec] = (), families: Iterable[MetricFamily] = ()) -> None:
        self._specs: dict[str, MetricSpec] = {}
        self._keys: dict[str, str] = {}  # spelling-blind name or alias -> canonical name
        self._families: list[MetricFamily] = list(families)
        for spec in specs:
            self.register(spec)

    def register(self, spec: MetricSpec, *, replace_existing: bool = False) -> MetricSpec:
        """Add ``spec`` (a plugin's or a third-party suite's own metric). A name or alias that
        another spec already uses is an error unless ``replace_existing``; registering the
        same spec again is a no-op."""
        keys = [_spell(n) for n in (spec.name, *spec.aliases)]
        for key in keys:
            owner = self._keys.get(key)
            if owner is not None and owner != spec.name and not replace_existing:
                raise ValueError(f"metric {spec.name!r}: the name {key!r} is already catalogued as {owner!r}")
        current = self._specs.get(spec.name)
        if current is not None and current != spec and not replace_existing:
            raise ValueError(f"metric {spec.name!r} is already catalogued with another spec: {current}")
        if current is not None:
            for alias in current.aliases:
                self._keys.pop(_spell(alias), None)
        self._specs[spec.name] = spec
        for key in keys:
            self._keys[key] = spec.name
        return spec

    def __iter__(self) -> Iterator[MetricSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.spec(name).known

    @property
    def families(self) -> tuple[MetricFamily, ...]:
        return tuple(self._families)

    def get(self, name: str) -> MetricSpec | None:
        """The catalogued spec of ``name`` (or of one of its aliases, in either spelling)."""
        canonical = self._keys.get(_spell(name))
        return None if canonical is None else self._specs[canonical]

    def spec(self, name: str, unit: str = "") -> MetricSpec:
        """What ``name`` means (see the module's lookup order); never fails."""
        found = self._known(name, self._lookup_base)
        return found if found is not None else unknown_spec(name, unit)

    def _lookup_base(self, name: str) -> MetricSpec | None:
        found = self.get(name)
        if found is not None:
            return found
        for family in self._families:
            matched = family.match(name)
            if matched is not None:
                return matched
        return None

    def _known(self, name: str, base_of: Callable[[str], MetricSpec | None]) -> MetricSpec | None:
        found = base_of(name)
        if found is not None:
            return found
        for base_name, role, x in split_derived(name):
            base = base_of(base_name)
            if base is not None and (role in ("curve", "per_seed") or base.kind not in ("interval", "bound", "count")):
                return _derived(name, base, role, x)
        return None

    def canonical(self, name: str) -> str:
        """The catalogued spelling of ``name`` (``band-lower`` -> ``predictive_mean_lower``);
        a derived or unknown name comes back as given."""
        found = self.get(name)
        return found.name if found is not None else name

    def relation(self, name: str, siblings: Iterable[str]) -> tuple[str, Role] | None:
        """How ``name`` belongs to another metric recorded beside it: (that metric's recorded
        name, role) when ``name`` is a band edge, an interval, a spread or a per-point count of
        one of ``siblings`` (the metric names recorded by the same case), else None. The
        catalog's relations come first (``band-lower`` bounds ``band-mean``, the old spelling
        of ``predictive_mean``); a name the catalog does not know relates by its suffix
        (``<m>_lower``, ``<m>-upper``, ``<m>_std``, ``<m>_ci95``, ``<m>_count``) to a sibling
        ``<m>`` (or ``<m>_mean``, ``<m>-mean``)."""
        recorded = {_spell(self.canonical(s)): s for s in siblings if s != name}
        spec = self.get(name)
        if spec is not None:
            if spec.role in BAND_ROLES and _spell(spec.of) in recorded:
                return recorded[_spell(spec.of)], spec.role
            if spec.role not in BAND_ROLES:
                return None  # a catalogued metric in its own right (epistemic_std is no band of "epistemic")
        for base, role, _ in split_derived(name):
            if role not in BAND_ROLES:
                continue
            for candidate in (base, f"{base}_mean"):
                if _spell(candidate) in recorded:
                    return recorded[_spell(candidate)], role
        return None

    def sample_size(self, name: str) -> str:
        """The count metric that is the n of the proportion ``name`` (following curves and
        per-seed forms to their metric), or ``""``."""
        spec, seen = self.spec(name), set()
        while not spec.sample_size and spec.role in ("curve", "per_seed") and spec.of and spec.of not in seen:
            seen.add(spec.of)
            spec = self.spec(spec.of)
        return spec.sample_size

    def count_names(self) -> set[str]:
        """Every catalogued count metric and every name a proportion's n is recorded under."""
        return {s.name for s in self if s.kind == "count"} | {s.sample_size for s in self if s.sample_size}

    def markdown(self) -> str:
        """The catalog as the Markdown table of ``docs/metrics.md``."""
        rows = ["| metric | kind | better | unit | compare tolerance | relation | description |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        for spec in sorted(self, key=lambda s: s.name):
            rows.append(_markdown_row(spec))
        for family in self._families:
            rows.append(_markdown_row(family.template))
        return "\n".join(rows) + "\n"


def _markdown_row(spec: MetricSpec) -> str:
    better = spec.better_text().removesuffix(" is better") if spec.direction != "none" or spec.target else "-"
    if spec.by_kind:
        better += " (" + ", ".join(f"{k}: {d}" for k, d in sorted(spec.by_kind.items())) + ")"
    relation = []
    against = f" vs {spec.x}" if spec.x else ""
    if spec.role == "curve":
        relation.append(f"curve of `{spec.of}`{against}")
    else:
        if spec.of:
            relation.append(f"{spec.role.replace('_', ' ')} of `{spec.of}`")
        if spec.shape != "scalar":
            relation.append({"curve": "curve", "both": "scalar and curve"}[spec.shape] + against)
    if spec.sample_size:
        relation.append(f"n: `{spec.sample_size}`")
    gated = spec.gated or spec.kind in RESOURCE_KINDS
    tolerance = (str(spec.tolerance) + (" (noise)" if spec.kind in RESOURCE_KINDS else "")) if gated else "-"
    names = f"`{spec.name}`" + "".join(f" (`{a}`)" for a in spec.aliases)
    cells = [names, spec.kind, better, spec.unit or "-", tolerance, "; ".join(relation) or "-",
             spec.description.replace("|", "\\|")]
    return "| " + " | ".join(cells) + " |"


CATALOG = MetricCatalog(BUILTIN_SPECS, BUILTIN_FAMILIES)


KEPT_APART_KINDS = ("flag", "per_example")  # left out of leaderboards and figures


def kept_apart(name: str, unit: str = "") -> bool:
    """Whether leaderboards and figures leave the metric out: a ``flag`` has the checks table
    of its own, a ``per_example`` record is only read by the run-level analyses."""
    return CATALOG.spec(name, unit).kind in KEPT_APART_KINDS


def spec_for(name: str, unit: str = "") -> MetricSpec:
    """What ``name`` means in the default catalog (never fails; see the module docstring)."""
    return CATALOG.spec(name, unit)


def register(spec: MetricSpec, *, replace_existing: bool = False) -> MetricSpec:
    """Catalogue a plugin's or third-party suite's own metric in the default catalog."""
    return CATALOG.register(spec, replace_existing=replace_existing)


class UnknownMetricWarning(UserWarning):
    """A metric name the catalog does not know was recorded (it is kept, but never gated)."""


_warned: set[str] = set()


def warn_if_unknown(name: str, unit: str = "", stacklevel: int = 2) -> bool:
    """Warn once per name (per process) when a recorded metric is not catalogued; returns
    whether ``name`` is known. For the recorder of a suite's figures (``stacklevel`` points
    the warning at the suite's line that recorded it)."""
    spec = CATALOG.spec(name, unit)
    if spec.kind != "unknown":
        return True
    if name not in _warned:
        _warned.add(name)
        warnings.warn(UnknownMetricWarning(
            f"metric {name!r} is not in the metric catalog: it is recorded and reported, but compare never "
            "gates it and no leaderboard highlights it; catalogue it with benchtool.metrics.catalog.register("
            "MetricSpec(...)) (see docs/metrics.md)"), stacklevel=stacklevel)
    return False


if __name__ == "__main__":  # pragma: no cover - the docs' table
    print(CATALOG.markdown(), end="")
