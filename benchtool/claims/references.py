"""Published figures as claims: a plugin's figure on the clean test split against a target
taken from a paper or a reference implementation, shown beside the published figure."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

from benchtool.claims.core import NOT_REPRODUCED, REPRODUCED, Claim, Outcome, Rule, inconclusive, value, values
from benchtool.claims.stats import wilson_interval
from benchtool.results import Record

COMPARISONS = {"<=": operator.le, ">=": operator.ge}
COUNT_METRIC = "examples"  # the test split's size, recorded with params {"split": "test"}


@dataclass(frozen=True)
class Bound:
    """``metric`` must be ``op`` ``target``; ``published`` is the source's own figure."""

    metric: str
    op: str
    target: float
    published: float

    def __post_init__(self) -> None:
        if self.op not in COMPARISONS:
            raise ValueError(f"bound on {self.metric!r}: op must be one of {sorted(COMPARISONS)}, got {self.op!r}")

    def met(self, figure: float) -> bool:
        return bool(COMPARISONS[self.op](figure, self.target))


def clean_figure(records: Sequence[Record], plugin: str, metric: str) -> float | None:
    """``plugin``'s ``metric`` on the clean test split (the record without params), or None."""
    found = [r.value for r in values(records, metric) if r.plugin == plugin and not r.params]
    return float(found[0]) if found else None


def _shown(records: Sequence[Record], plugin: str, bound: Bound, figure: float) -> str:
    n = value([r for r in records if r.plugin == plugin], COUNT_METRIC, split="test")
    interval = ""
    if bound.metric == "accuracy" and n:
        low, high = wilson_interval(figure * n, int(n))
        interval = f" [{low:.3f}, {high:.3f}]"
    return f"{bound.metric} {figure:.3f}{interval} (target {bound.op} {bound.target:g}, published {bound.published:g})"


def meets(plugin: str, *bounds: Bound) -> Rule:
    """A rule: reproduced when ``plugin``'s clean-test figures meet every bound (point
    estimates; accuracy shows its Wilson interval), not reproduced when one misses."""

    def rule(claim: Claim, records: Sequence[Record]) -> Outcome:
        figures = {b.metric: clean_figure(records, plugin, b.metric) for b in bounds}
        missing = [m for m, f in figures.items() if f is None]
        if missing:
            return inconclusive(f"{plugin}: {', '.join(missing)} not recorded on the clean test split",
                                f"a run of {plugin} that records them")
        shown = "; ".join(_shown(records, plugin, b, figures[b.metric]) for b in bounds)  # type: ignore[arg-type]
        verdict = REPRODUCED if all(b.met(figures[b.metric]) for b in bounds) else NOT_REPRODUCED  # type: ignore[arg-type]
        return Outcome(verdict, f"{plugin}: {shown}")

    return rule


def no_worse_than(metric: str, plugin: str, baseline: str) -> Rule:
    """A rule: reproduced when ``plugin``'s clean-test ``metric`` (lower is better) is at most
    ``baseline``'s (point estimates), not reproduced when it is higher."""

    def rule(claim: Claim, records: Sequence[Record]) -> Outcome:
        mine, theirs = clean_figure(records, plugin, metric), clean_figure(records, baseline, metric)
        if mine is None or theirs is None:
            return inconclusive(f"{metric} of {plugin} or {baseline} not recorded on the clean test split",
                                f"a run of both {plugin} and {baseline}")
        evidence = f"{metric} {plugin} {mine:.4f} vs {baseline} {theirs:.4f}"
        return Outcome(REPRODUCED if mine <= theirs else NOT_REPRODUCED, evidence)

    return rule
