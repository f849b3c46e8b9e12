"""The metric regression gate: match two runs' records and judge each metric's change.

Each metric has a direction (higher or lower is better, or none: reported, never gated)
and a tolerance, absolute (``0.01``) or relative (``5%``). Defaults live in
``METRIC_POLICIES`` (exact names, optionally per plugin kind) and ``NAME_RULES`` (name
patterns); ``--tol`` and ``--direction`` override them. The direction is the plugin's
point of view, given by the record's ``kind``: for an attack a *lower* robust accuracy is
better (it is the stronger attack); for a model or an estimator a higher accuracy is.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from benchtool.claims import CLAIM_METRIC, compare_verdicts, is_verdict
from benchtool.claims.core import VERDICT_NODEID_PREFIX, VERDICT_VALUE
from benchtool.errors import UsageError
from benchtool.results import Record
from benchtool.store.load import ResultSet
from benchtool.tables import case_label, format_params, nodeid_label

Direction = Literal["higher", "lower", "none"]
DIRECTIONS: tuple[Direction, ...] = ("higher", "lower", "none")


@dataclass(frozen=True)
class Tolerance:
    """How much a metric may get worse before it counts as a regression."""

    amount: float
    relative: bool = False

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
        return self.amount * abs(baseline) if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.amount * 100:g}%" if self.relative else f"{self.amount:g}"


@dataclass(frozen=True)
class MetricPolicy:
    direction: Direction
    tolerance: Tolerance


def _higher(tol: float) -> MetricPolicy:
    return MetricPolicy("higher", Tolerance(tol))


def _lower(tol: float, relative: bool = False) -> MetricPolicy:
    return MetricPolicy("lower", Tolerance(tol, relative))


NOT_GATED = MetricPolicy("none", Tolerance(0.0))

# (kind, metric) -> policy; kind "" applies to every kind without its own entry
METRIC_POLICIES: dict[tuple[str, str], MetricPolicy] = {
    ("", "accuracy"): _higher(0.01),
    ("", "clean_accuracy"): _higher(0.01),
    ("", "test_accuracy"): _higher(0.01),
    ("", "robust_accuracy"): _higher(0.01),
    ("attacks", "robust_accuracy"): _lower(0.01),  # the attack's view: lower is a stronger attack
    ("attacks", "success_rate"): _higher(0.01),
    ("attacks", "attack_success_rate"): _higher(0.01),
    ("attacks", "survival"): _higher(0.02),  # fraction still adversarial under transformations
    ("attacks", "eot_survival"): _higher(0.02),
    ("", "ece"): _lower(0.005),
    ("", "brier"): _lower(0.005),
    ("", "nll"): _lower(0.02, relative=True),
    ("", "auroc"): _higher(0.01),
    ("", "ood_auroc"): _higher(0.01),
    ("", "fpr95"): _lower(0.02),
    ("", "fpr_at_95_tpr"): _lower(0.02),
    ("", "aurc"): _lower(0.005),
    ("", "rmse"): _lower(0.02, relative=True),
    ("", "regret"): _lower(0.005),
}

# fallbacks by name: the first pattern that matches the metric's name wins
NAME_RULES: tuple[tuple[str, str, MetricPolicy], ...] = (
    ("", r"(seconds|_time|time_|wall|duration|_s$)", NOT_GATED),  # speed: pytest-benchmark's job
    ("attacks", r"robust.*accuracy", _lower(0.01)),
    ("attacks", r"success", _higher(0.01)),
    ("", r"(accuracy|auroc|auc$|coverage_gain)", _higher(0.01)),
    ("", r"(error|regret|loss|nll|ece|brier|aurc|rmse|fpr)", _lower(0.05, relative=True)),
)
TIME_UNITS = ("s", "ms", "us", "seconds")


def default_policy(kind: str, metric: str, unit: str = "") -> MetricPolicy:
    """The built-in policy for ``metric`` recorded by a plugin of ``kind``."""
    for key in ((kind, metric), ("", metric)):
        if key in METRIC_POLICIES:
            return METRIC_POLICIES[key]
    if unit in TIME_UNITS:
        return NOT_GATED
    for rule_kind, pattern, policy in NAME_RULES:
        if rule_kind in ("", kind) and re.search(pattern, metric):
            return policy
    return NOT_GATED


@dataclass
class Policies:
    """Default policies with the user's ``--tol``/``--direction`` overrides
    (keys ``metric`` or ``kind:metric``)."""

    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    directions: dict[str, Direction] = field(default_factory=dict)

    @classmethod
    def from_args(cls, tolerances: Sequence[str] = (), directions: Sequence[str] = ()) -> Policies:
        policies = cls()
        for item in tolerances:
            name, value = _split_assignment(item, "--tol", "robust_accuracy=0.01")
            policies.tolerances[name] = Tolerance.parse(value, f"--tol {item}")
        for item in directions:
            name, value = _split_assignment(item, "--direction", "robust_accuracy=higher")
            if value not in DIRECTIONS:
                raise UsageError(
                    f"invalid direction {value!r} in --direction {item}; expected one of: higher, lower, none"
                )
            policies.directions[name] = value  # type: ignore[assignment]
        return policies

    def policy(self, kind: str, metric: str, unit: str = "") -> MetricPolicy:
        base = default_policy(kind, metric, unit)
        direction = self._lookup(self.directions, kind, metric) or base.direction
        tolerance = self._lookup(self.tolerances, kind, metric) or base.tolerance
        return MetricPolicy(direction, tolerance)

    @staticmethod
    def _lookup(table: dict, kind: str, metric: str):
        return table.get(f"{kind}:{metric}") or table.get(metric)


def _split_assignment(item: str, option: str, example: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise UsageError(f"invalid {option} {item!r}; expected METRIC=VALUE, e.g. {option} {example}")
    return name.strip(), value.strip()


# --- matching and judging ------------------------------------------------------------------

MetricKey = tuple[str, str, str, str]  # suite, case label, params, metric


def scalar_values(records: Iterable[Record]) -> dict[MetricKey, tuple[float, Record]]:
    """Each scalar metric by (suite, case, params, metric); repeats within a run are averaged."""
    groups: dict[MetricKey, list[Record]] = defaultdict(list)
    for record in records:
        if record.value is None:
            continue
        key = (record.suite, case_label(record.case), format_params(record.params), record.metric)
        groups[key].append(record)
    return {key: (sum(r.value for r in group) / len(group), group[0]) for key, group in groups.items()}


@dataclass(frozen=True)
class Change:
    """One metric of one case, in both runs, and the verdict."""

    suite: str
    case: str
    params: str
    metric: str
    kind: str
    baseline: float | None
    candidate: float | None
    policy: MetricPolicy
    status: str  # REGRESSED | improved | within | unchanged | changed | new | missing | FAILED
    note: str = ""  # FAILED: the candidate's failure message

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.candidate is None:
            return None
        return self.candidate - self.baseline

    def describe(self) -> str:
        where = " ".join(x for x in (self.suite, self.case, self.params) if x)
        if self.status == "FAILED":
            return f"FAILED {where}: the case passed in the baseline and fails now: {self.note}"
        if self.metric == CLAIM_METRIC:
            return f"{self.status} {where}: the verdict changed: {self.note}"
        better = f"{self.policy.direction} is better" + (f" for {self.kind}" if self.kind else "")
        return (f"{self.status} {where} {self.metric}: {_fmt(self.baseline)} -> {_fmt(self.candidate)} "
                f"({_signed(self.delta)}; {better}, tolerance {self.policy.tolerance})")


def judge(baseline: float, candidate: float, policy: MetricPolicy) -> str:
    if baseline == candidate or (math.isnan(baseline) and math.isnan(candidate)):
        return "unchanged"
    if policy.direction == "none":
        return "changed"
    if math.isnan(candidate) or math.isnan(baseline):
        return "REGRESSED" if math.isnan(candidate) else "improved"
    delta = candidate - baseline
    worse = delta < 0 if policy.direction == "higher" else delta > 0
    if not worse:
        return "improved" if abs(delta) > policy.tolerance.allowed(baseline) else "within"
    return "REGRESSED" if abs(delta) > policy.tolerance.allowed(baseline) else "within"


@dataclass
class Comparison:
    baseline: str
    candidate: str
    changes: list[Change]
    only_baseline_cases: list[str]
    only_candidate_cases: list[str]

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.status in ("REGRESSED", "FAILED")]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for change in self.changes:
            counts[change.status] += 1
        return counts


def compare(baseline: ResultSet, candidate: ResultSet, policies: Policies) -> Comparison:
    """Match the two runs' scalar metrics (and case outcomes) and judge every change."""
    base_values = scalar_values(r for r in baseline.records if not is_verdict(r))
    cand_values = scalar_values(r for r in candidate.records if not is_verdict(r))
    changes: list[Change] = []
    for key in sorted(base_values.keys() | cand_values.keys()):
        base, cand = base_values.get(key), cand_values.get(key)
        record = (base or cand)[1]  # type: ignore[index]
        policy = policies.policy(record.kind, record.metric, record.unit)
        if base is None or cand is None:
            status = "new" if base is None else "missing"
        else:
            status = judge(base[0], cand[0], policy)
        changes.append(Change(*key, record.kind, base and base[0], cand and cand[0], policy, status))
    changes += _failed_cases(baseline, candidate)
    changes += _changed_verdicts(baseline, candidate)
    base_cases, cand_cases = _case_labels(baseline), _case_labels(candidate)
    if not (base_cases & cand_cases):
        raise UsageError(
            f"no matching cases between {baseline.label} ({len(base_cases)} cases) and "
            f"{candidate.label} ({len(cand_cases)} cases); compare runs of the same suites"
        )
    return Comparison(baseline.label, candidate.label, changes,
                      sorted(base_cases - cand_cases), sorted(cand_cases - base_cases))


def _case_labels(results: ResultSet) -> set[str]:
    """The suite cases of a run (claims' verdicts are not cases)."""
    labels = {f"{r.suite}::{case_label(r.case)}" for r in results.records if not is_verdict(r)}
    for case in results.cases:
        if not case.nodeid.startswith(VERDICT_NODEID_PREFIX):
            labels.add(f"{case.suite}::{nodeid_label(case.nodeid)}")
    return labels


def _changed_verdicts(baseline: ResultSet, candidate: ResultSet) -> list[Change]:
    """A claim decided in both runs whose verdict differs is a regression, whatever the
    metric tolerances say: the finding the suite exists to test no longer reads the same."""
    return [
        Change(c.after.suite, f"claim[{c.after.claim}]", c.after.subject, CLAIM_METRIC, "claims",
               VERDICT_VALUE[c.before.verdict], VERDICT_VALUE[c.after.verdict], NOT_GATED, "REGRESSED",
               f"{c.before.verdict} -> {c.after.verdict}")
        for c in compare_verdicts(baseline.records, candidate.records)
    ]


def _failed_cases(baseline: ResultSet, candidate: ResultSet) -> list[Change]:
    """A case that passed in the baseline and fails in the candidate is a regression."""
    before = baseline.outcomes()
    failed = []
    for key, case in sorted(candidate.outcomes().items()):
        if case.outcome == "failed" and key in before and before[key].outcome == "passed":
            label = nodeid_label(key)
            failed.append(Change(case.suite, label, "", OUTCOME_METRIC, "", None, None, NOT_GATED, "FAILED",
                                 case.message or "failed"))
    return failed


# --- output ------------------------------------------------------------------------------

OUTCOME_METRIC = "(case outcome)"
STATUS_ORDER = ("FAILED", "REGRESSED", "improved", "within", "changed", "new", "missing", "unchanged")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.4g}"


def comparison_rows(comparison: Comparison, show_all: bool = False) -> list[list[str]]:
    shown = [c for c in comparison.changes if show_all or c.status != "unchanged"]
    shown.sort(key=lambda c: (STATUS_ORDER.index(c.status), c.suite, c.case, c.params, c.metric))
    return [
        [c.suite, c.case, c.params, c.metric, _fmt(c.baseline), _fmt(c.candidate), _signed(c.delta),
         c.policy.direction, str(c.policy.tolerance), c.status]
        if c.status != "FAILED" and c.metric != CLAIM_METRIC
        else [c.suite, c.case, c.params, c.metric, *_outcome_words(c), "", "", "", c.status]
        for c in shown
    ]


def _outcome_words(change: Change) -> list[str]:
    """Baseline and candidate of a change that is not a number: a case outcome, a verdict."""
    if change.metric == CLAIM_METRIC:
        return change.note.split(" -> ", 1)
    return ["passed", "failed"]


COMPARISON_HEADERS = ["suite", "case", "params", "metric", "baseline", "candidate", "change", "better",
                      "tolerance", "status"]


def summary_line(comparison: Comparison) -> str:
    counts = comparison.counts()
    parts = [f"{counts.get(s, 0)} {s.lower()}" for s in STATUS_ORDER if counts.get(s)]
    text = ", ".join(parts) or "nothing to compare"
    extra = []
    if comparison.only_baseline_cases:
        extra.append(f"{len(comparison.only_baseline_cases)} case(s) only in the baseline")
    if comparison.only_candidate_cases:
        extra.append(f"{len(comparison.only_candidate_cases)} case(s) only in the candidate")
    return f"{len(comparison.changes)} metric(s): {text}" + (f"; {'; '.join(extra)}" if extra else "")


def _json_number(value: float | None) -> float | str | None:
    return str(value) if value is not None and not math.isfinite(value) else value


def to_json(comparison: Comparison) -> str:
    """The comparison as JSON, for CI systems that annotate pull requests."""
    return json.dumps({
        "baseline": comparison.baseline, "candidate": comparison.candidate,
        "regressed": len(comparison.regressions),
        "changes": [
            {"suite": c.suite, "case": c.case, "params": c.params, "metric": c.metric, "kind": c.kind,
             "baseline": _json_number(c.baseline), "candidate": _json_number(c.candidate),
             "direction": c.policy.direction, "note": c.note,
             "tolerance": str(c.policy.tolerance), "status": c.status}
            for c in comparison.changes
        ],
        "only_in_baseline": comparison.only_baseline_cases, "only_in_candidate": comparison.only_candidate_cases,
    }, indent=1)

