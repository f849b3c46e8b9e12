"""The metric regression gate: match two runs' records and judge each metric's change.

What each metric means comes from the metric catalog (:mod:`benchtool.metrics.catalog`):
its direction (higher or lower is better, closer to a target, or none: reported, never
gated), its default tolerance, absolute (``0.01``) or relative (``5%``), and its kind.
``--tol`` and ``--direction`` override them. The direction is the plugin's point of view,
given by the record's ``kind``: for an attack a *lower* robust accuracy is better (it is
the stronger attack); for a model or an estimator a higher accuracy is.

Timing and cost metrics (``seconds``, queries per example) are never regressions here
(speed is pytest-benchmark's job): they are reported apart, as ``slower``/``faster`` or
``costlier``/``cheaper`` beyond their noise tolerance and ``noise`` within it (not listed
unless ``--all``). Intervals, band edges, counts and settings have no direction: a change
is listed as ``changed``. A name the catalog does not know is reported the same way and
named in the summary, so a third-party suite's metric is never gated by a guess.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from benchtool.claims import CLAIM_METRIC, compare_verdicts, is_verdict
from benchtool.claims.core import VERDICT_NODEID_PREFIX, VERDICT_VALUE
from benchtool.errors import UsageError
from benchtool.metrics.catalog import (
    CATALOG, DIRECTIONS, RESOURCE_KINDS, TIME_UNITS, Direction, MetricCatalog, MetricSpec, Tolerance,
)
from benchtool.results import Record
from benchtool.store.load import ResultSet
from benchtool.tables import case_label, format_params, nodeid_label

__all__ = [
    "DIRECTIONS", "TIME_UNITS", "Change", "Comparison", "Direction", "MetricPolicy", "Policies", "Tolerance",
    "canonical_records", "compare", "comparison_rows", "default_policy", "judge", "metric_key", "policy_of",
    "scalar_values", "summary_line", "to_json",
]


@dataclass(frozen=True)
class MetricPolicy:
    """How ``compare`` judges one metric: its direction, tolerance, catalog kind and target."""

    direction: Direction
    tolerance: Tolerance
    kind: str = "quality"  # the metric's kind in the catalog; timing and cost are reported apart
    target: float | None = None  # better is closer to it (direction "none")

    @property
    def resource(self) -> bool:
        return self.kind in RESOURCE_KINDS

    @property
    def gated(self) -> bool:
        return not self.resource and (self.direction != "none" or self.target is not None)

    def better(self) -> str:
        """The ``better`` column: ``higher``, ``lower``, ``none`` or ``~0.9`` (closer to 0.9)."""
        return f"~{self.target:g}" if self.target is not None and self.direction == "none" else self.direction


NOT_GATED = MetricPolicy("none", Tolerance(0.0), "diagnostic")


def policy_of(spec: MetricSpec, kind: str = "") -> MetricPolicy:
    """The policy of a catalogued metric recorded by a plugin of ``kind``."""
    return MetricPolicy(spec.direction_for(kind), spec.tolerance, spec.kind, spec.target)


def default_policy(kind: str, metric: str, unit: str = "", catalog: MetricCatalog = CATALOG) -> MetricPolicy:
    """The catalog's policy for ``metric`` recorded by a plugin of ``kind`` (the record's
    ``unit`` only matters for a name the catalog does not know: a time unit makes it a timing)."""
    return policy_of(catalog.spec(metric, unit), kind)


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
        direction = self._lookup(self.directions, kind, metric)
        tolerance = self._lookup(self.tolerances, kind, metric) or base.tolerance
        if direction is None:
            return MetricPolicy(base.direction, tolerance, base.kind, base.target)
        return MetricPolicy(direction, tolerance, base.kind)  # the user's direction replaces a target

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


def metric_key(name: str) -> str:
    """The name a recorded metric is matched by across runs: the catalog's spelling, so a run
    stored with an old name (``auroc-mi``, ``band-lower``) matches a new run's ``auroc_mi``,
    ``predictive_mean_lower``. The one place runs' metric names are normalised."""
    return CATALOG.canonical(name)


def canonical_records(records: Iterable[Record]) -> list[Record]:
    """``records`` with each metric under its :func:`metric_key` (for the report's figures)."""
    return [r if r.metric == metric_key(r.metric) else replace(r, metric=metric_key(r.metric)) for r in records]


def scalar_values(records: Iterable[Record]) -> dict[MetricKey, tuple[float, Record]]:
    """Each scalar metric by (suite, case, params, :func:`metric_key`); repeats within a run
    are averaged."""
    groups: dict[MetricKey, list[Record]] = defaultdict(list)
    for record in records:
        if record.value is None:
            continue
        key = (record.suite, case_label(record.case), format_params(record.params), metric_key(record.metric))
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
    status: str  # REGRESSED | improved | within | unchanged | changed | new | missing | FAILED, or for a
    # timing or cost: slower | faster | costlier | cheaper | noise
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
        if self.policy.target is not None and self.policy.direction == "none":
            better = f"closer to {self.policy.target:g} is better"
        else:
            better = f"{self.policy.direction} is better" + (f" for {self.kind}" if self.kind else "")
        return (f"{self.status} {where} {self.metric}: {_fmt(self.baseline)} -> {_fmt(self.candidate)} "
                f"({_signed(self.delta)}; {better}, tolerance {self.policy.tolerance})")


WORSE = {"timing": "slower", "cost": "costlier"}
BETTER = {"timing": "faster", "cost": "cheaper"}


def judge(baseline: float, candidate: float, policy: MetricPolicy) -> str:
    """The status of one metric's change (see :class:`Change`)."""
    if baseline == candidate or (math.isnan(baseline) and math.isnan(candidate)):
        return "unchanged"
    target = policy.target if policy.direction == "none" else None
    if policy.direction == "none" and target is None:
        return "changed"
    if math.isnan(candidate) or math.isnan(baseline):
        if policy.resource:
            return "changed"
        return "REGRESSED" if math.isnan(candidate) else "improved"
    if target is not None:  # closer to the target is better
        delta = abs(baseline - target) - abs(candidate - target)
        worse = delta < 0
    else:
        delta = candidate - baseline
        worse = delta < 0 if policy.direction == "higher" else delta > 0
    beyond = abs(delta) > policy.tolerance.allowed(baseline)
    if policy.resource:
        return (WORSE if worse else BETTER)[policy.kind] if beyond else "noise"
    if not worse:
        return "improved" if beyond else "within"
    return "REGRESSED" if beyond else "within"


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
        policy = policies.policy(record.kind, key[3], record.unit)
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
STATUS_ORDER = ("FAILED", "REGRESSED", "improved", "within", "changed", "new", "missing", "slower", "costlier",
                "faster", "cheaper", "noise", "unchanged")
QUIET_STATUSES = ("unchanged", "noise")  # counted in the summary, listed only with --all
UNKNOWN_NAMES_SHOWN = 5


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.4g}"


def comparison_rows(comparison: Comparison, show_all: bool = False) -> list[list[str]]:
    """The table ``compare`` prints: gated metrics first, then timing and cost (reported
    apart); unchanged metrics and timing noise only with ``show_all``."""
    shown = [c for c in comparison.changes if show_all or c.status not in QUIET_STATUSES]
    shown.sort(key=lambda c: (c.policy.resource, STATUS_ORDER.index(c.status), c.suite, c.case, c.params,
                              c.metric))
    return [
        [c.suite, c.case, c.params, c.metric, _fmt(c.baseline), _fmt(c.candidate), _signed(c.delta),
         c.policy.better(), str(c.policy.tolerance), c.status]
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


def _tally(changes: Sequence[Change]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for change in changes:
        counts[change.status] += 1
    return ", ".join(f"{counts[s]} {'within noise' if s == 'noise' else s.lower()}" for s in STATUS_ORDER
                     if counts.get(s))


def summary_line(comparison: Comparison) -> str:
    """``12 metric(s): 1 regressed, 11 unchanged; timing and cost (not gated): 1 slower, 3
    within noise; ...``: gated and reported metrics, then timings, then what matched only one side."""
    metrics = [c for c in comparison.changes if not c.policy.resource]
    resources = [c for c in comparison.changes if c.policy.resource]
    text = f"{len(metrics)} metric(s): {_tally(metrics) or 'nothing to compare'}"
    extra = []
    if resources:
        extra.append(f"timing and cost (not gated): {_tally(resources)}")
    unknown = sorted({c.metric for c in metrics if c.policy.kind == "unknown" and not c.policy.gated})
    if unknown:
        names = ", ".join(unknown[:UNKNOWN_NAMES_SHOWN]) + (", ..." if len(unknown) > UNKNOWN_NAMES_SHOWN else "")
        extra.append(f"{len(unknown)} metric name(s) not in the catalog, reported but not gated: {names} "
                     "(--direction METRIC=higher|lower gates one)")
    if comparison.only_baseline_cases:
        extra.append(f"{len(comparison.only_baseline_cases)} case(s) only in the baseline")
    if comparison.only_candidate_cases:
        extra.append(f"{len(comparison.only_candidate_cases)} case(s) only in the candidate")
    return text + (f"; {'; '.join(extra)}" if extra else "")


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
             "direction": c.policy.direction, "target": c.policy.target, "metric_kind": c.policy.kind,
             "note": c.note,
             "tolerance": str(c.policy.tolerance), "status": c.status}
            for c in comparison.changes
        ],
        "only_in_baseline": comparison.only_baseline_cases, "only_in_candidate": comparison.only_candidate_cases,
    }, indent=1)

