"""Claims: what a paper says should hold, the records that test it, and the rule that
turns them into a verdict.

A suite declares the claims it tests as a module-level ``CLAIMS = [Claim(...), ...]``
(a third-party suite does the same); the bridge (:mod:`benchtool.claims.bridge`) decides
every claim of every suite that ran, per dataset, when the run ends. A verdict is a
record too (``metric="claim"``), so ``--bt-json``, the store, ``compare`` and the report
all see it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchtool.results import CaseResult, Record

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
VERDICT_VALUE = {REPRODUCED: 1.0, INCONCLUSIVE: 0.5, NOT_REPRODUCED: 0.0}  # the record's value
CLAIM_METRIC = "claim"
CLAIM_KIND = "claims"
VERDICT_UNIT = "verdict"
VERDICT_NODEID_PREFIX = "claims::"  # the finished cases that carry a run's verdicts, one per claim


@dataclass(frozen=True)
class Outcome:
    """What a decision rule concludes for one dataset: the verdict, one line of evidence with
    its interval, and (when inconclusive) what would be needed to decide."""

    verdict: str
    evidence: str
    p_value: float = math.nan
    needed: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.verdict == INCONCLUSIVE and not self.needed:
            raise ValueError("an inconclusive outcome must say what would decide it (needed=...)")


def inconclusive(evidence: str, needed: str, p_value: float = math.nan) -> Outcome:
    return Outcome(INCONCLUSIVE, evidence, p_value, needed)


@dataclass(frozen=True)
class Verdict:
    """One claim decided on one dataset (and model, when the claim is per model)."""

    claim: str
    suite: str
    dataset: str
    verdict: str
    evidence: str
    needed: str = ""
    model: str = ""
    test: str = ""
    alpha: float = 0.05
    p_value: float = math.nan
    figure: str = ""  # the metric whose figure shows the evidence (the report links it)

    @property
    def subject(self) -> str:
        """``digits`` or ``digits (lenet)``."""
        return f"{self.dataset} ({self.model})" if self.model else self.dataset

    @property
    def line(self) -> str:
        """The evidence, plus what would decide an inconclusive verdict."""
        return f"{self.evidence}; needs {self.needed}" if self.needed else self.evidence

    def to_record(self, seed: int = 0, device: str = "") -> Record:
        """The verdict as a record (``metric="claim"``; value 1 / 0.5 / 0 for reproduced /
        inconclusive / not reproduced; the words in ``params``)."""
        params: dict[str, Any] = {"verdict": self.verdict, "evidence": self.evidence, "test": self.test,
                                  "alpha": self.alpha}
        if self.needed:
            params["needed"] = self.needed
        if math.isfinite(self.p_value):
            params["p_value"] = round(self.p_value, 6)
        if self.figure:
            params["figure"] = self.figure
        return Record(self.suite, f"claim[{self.claim}]", CLAIM_KIND, self.claim, self.model, self.dataset, params,
                      CLAIM_METRIC, VERDICT_VALUE[self.verdict], VERDICT_UNIT, seed, device)

    @classmethod
    def from_record(cls, record: Record) -> Verdict:
        p = record.params
        return cls(record.plugin, record.suite, record.dataset, str(p.get("verdict", "")), str(p.get("evidence", "")),
                   str(p.get("needed", "")), record.model, str(p.get("test", "")), float(p.get("alpha", 0.05)),
                   float(p.get("p_value", math.nan)), str(p.get("figure", "")))


Rule = Callable[["Claim", Sequence[Record]], Outcome]


@dataclass(frozen=True)
class Claim:
    """A published claim a suite tests.

    ``rule(claim, records)`` decides it from the suite's records of one subject (a dataset,
    or a (dataset, model) pair with ``per_model``); ``subject`` overrides how records are
    grouped (approximation: the target function). ``test`` names the statistical test and
    ``alpha`` its significance, both shown with the verdict; ``where`` selects the records
    it reads (e.g. one plugin's). ``datasets`` names the datasets a claim is about (a
    published figure on Fashion-MNIST): a run that recorded none of them gets no verdict.
    """

    id: str
    paper: str  # "Zhang, Bengio, Hardt, Recht & Vinyals, ICLR 2017"
    statement: str  # one sentence of what should hold
    suite: str
    metrics: tuple[str, ...]  # the records it reads
    test: str
    rule: Rule
    alpha: float = 0.05
    per_model: bool = False
    subject: Callable[[Record], str] | None = None
    where: Callable[[Record], bool] | None = None  # which of the suite's records it reads
    figure: str = ""
    absent: str = ""  # the reason when the suite ran but recorded none of the metrics
    datasets: tuple[str, ...] = ()  # the datasets it is about; () = every dataset

    def __post_init__(self) -> None:
        if not self.id or " " in self.id or "[" in self.id:
            raise ValueError(f"claim id {self.id!r}: one word like 'zhang2017-random-labels'")
        if not 0 < self.alpha < 1:
            raise ValueError(f"claim {self.id}: alpha must be in (0, 1), got {self.alpha}")

    def _subject(self, record: Record) -> tuple[str, str]:
        dataset = self.subject(record) if self.subject else record.dataset
        return dataset, record.model if self.per_model else ""

    def decide(self, records: Iterable[Record]) -> list[Verdict]:
        """A verdict per dataset (and model) the suite recorded this claim's metrics on."""
        records = [r for r in records if r.suite == self.suite and (not self.datasets or r.dataset in self.datasets)]
        if self.datasets and not records:
            return []  # none of the datasets this claim is about ran
        mine = [r for r in records if r.metric in self.metrics and (self.where is None or self.where(r))]
        groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
        for record in mine:
            groups[self._subject(record)].append(record)
        if not groups:
            reason = self.absent or f"the {self.suite} suite recorded none of {', '.join(self.metrics)} in this run"
            return [self._verdict("", "", inconclusive(reason, f"a run of the {self.suite} suite that records them"))]
        verdicts = []
        for (dataset, model), group in sorted(groups.items()):
            try:
                outcome = self.rule(self, group)
            except Exception as exc:  # a broken rule is an inconclusive verdict, not a lost run
                outcome = inconclusive(f"decision rule failed: {type(exc).__name__}: {exc}", "a fixed decision rule")
            verdicts.append(self._verdict(dataset, model, outcome))
        return verdicts

    def _verdict(self, dataset: str, model: str, outcome: Outcome) -> Verdict:
        return Verdict(self.id, self.suite, dataset, outcome.verdict, outcome.evidence, outcome.needed, model,
                       self.test, self.alpha, outcome.p_value, self.figure)


@dataclass
class ClaimSet:
    """Every claim of a run, by id; two different claims under one id are an error."""

    claims: dict[str, Claim] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    def add(self, claim: Claim, origin: str) -> None:
        if not isinstance(claim, Claim):
            raise TypeError(f"{origin}: CLAIMS holds {claim!r}, expected benchtool.claims.Claim")
        existing = self.claims.get(claim.id)
        if existing is not None and existing is not claim:
            raise ValueError(f"claim {claim.id!r} is declared twice: in {self.origin[claim.id]} and in {origin}")
        self.claims[claim.id] = claim
        self.origin[claim.id] = origin

    def decide(self, records: Sequence[Record], suites: Iterable[str]) -> list[Verdict]:
        """Verdicts of the claims whose suite ran (``suites``), in declaration order."""
        ran = set(suites)
        return [v for claim in self.claims.values() if claim.suite in ran for v in claim.decide(records)]


def verdict_cases(verdicts: Sequence[Verdict], seed: int = 0, device: str = "") -> list[CaseResult]:
    """The verdicts as one finished case per claim (nodeid ``claims::<id>``), for the store."""
    by_claim: dict[str, list[Verdict]] = defaultdict(list)
    for verdict in verdicts:
        by_claim[verdict.claim].append(verdict)
    return [CaseResult(f"{VERDICT_NODEID_PREFIX}{claim_id}", group[0].suite, "passed", 0.0,
                       [v.to_record(seed, device) for v in group])
            for claim_id, group in by_claim.items()]


def is_verdict(record: Record) -> bool:
    return record.metric == CLAIM_METRIC and record.kind == CLAIM_KIND


def verdicts_from_records(records: Iterable[Record]) -> list[Verdict]:
    return [Verdict.from_record(r) for r in records if is_verdict(r)]


@dataclass(frozen=True)
class VerdictChange:
    """A claim decided in two runs with different verdicts (a regression for ``compare``)."""

    before: Verdict
    after: Verdict

    def describe(self) -> str:
        return f"CLAIM {self.after.claim} on {self.after.subject}: {self.before.verdict} -> {self.after.verdict}"


def compare_verdicts(baseline: Iterable[Record], candidate: Iterable[Record]) -> list[VerdictChange]:
    """Claims decided in both runs whose verdict changed (either way: a claim that flips
    is a regression of the tool or of the method, whatever the metric tolerances say)."""
    before = {(v.claim, v.dataset, v.model): v for v in verdicts_from_records(baseline)}
    after = {(v.claim, v.dataset, v.model): v for v in verdicts_from_records(candidate)}
    return [VerdictChange(before[key], after[key]) for key in sorted(before.keys() & after.keys())
            if before[key].verdict != after[key].verdict]


# --- helpers for decision rules ---------------------------------------------------------------


def values(records: Iterable[Record], metric: str, **params: Any) -> list[Record]:
    """The scalar records of ``metric`` whose params include ``params``."""
    return [r for r in records if r.metric == metric and r.value is not None
            and all(r.params.get(k) == v for k, v in params.items())]


def value(records: Iterable[Record], metric: str, **params: Any) -> float | None:
    """The value of the one scalar record of ``metric`` with ``params`` (the first if several)."""
    found = values(records, metric, **params)
    return float(found[0].value) if found else None  # type: ignore[arg-type]


def count(fraction: float, n: int) -> int:
    """The number of successes behind a recorded fraction of ``n``."""
    return int(round(fraction * n))
