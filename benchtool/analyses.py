"""Run-level analyses: figures no single cell can compute, derived from every cell's records
when the run ends (the worst case over all attacks, the gradient-masking checks).

A suite declares them as a module-level ``ANALYSES = [Analysis(...), ...]``, beside its
``CLAIMS`` (a third-party suite does the same). The claims bridge runs them when the run
ends, before it decides the claims, so a claim may read an analysis's records. Their records
become finished cases of their own (node id ``analysis::<suite>::<name>``), so ``--bt-json``,
the store, ``compare`` and the report see them like any cell's. An analysis that raises
fails its own case, with the error as its message, and the run's exit status as a failed cell
does; the run's other results are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchtool.results import CaseResult, Record

ANALYSIS_NODEID_PREFIX = "analysis::"
ANALYSES_ATTRIBUTE = "ANALYSES"


@dataclass(frozen=True)
class Analysis:
    """``run(records)`` reads the records of every suite that ran and returns new records of
    the ``metrics`` it declares (as a claim declares what it reads)."""

    name: str
    suite: str
    run: Callable[[Sequence[Record]], list[Record]]
    metrics: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or " " in self.name or "::" in self.name:
            raise ValueError(f"analysis name {self.name!r}: one word like 'worst-case'")

    @property
    def nodeid(self) -> str:
        return f"{ANALYSIS_NODEID_PREFIX}{self.suite}::{self.name}"

    def case(self, records: Sequence[Record]) -> CaseResult:
        """The finished case of this analysis over ``records``: passed with its records, or
        failed with the error's last line when ``run`` raised or made a metric it does not
        declare."""
        try:
            made = list(self.run(records))
        except Exception as exc:  # a broken analysis fails its own case, not the run
            return CaseResult(self.nodeid, self.suite, "failed", 0.0, [],
                              f"analysis {self.name} failed: {type(exc).__name__}: {exc}")
        undeclared = sorted({r.metric for r in made} - set(self.metrics))
        if undeclared:
            return CaseResult(self.nodeid, self.suite, "failed", 0.0, [],
                              f"analysis {self.name} recorded undeclared metric(s) {undeclared}; "
                              f"it declares {list(self.metrics)}")
        return CaseResult(self.nodeid, self.suite, "passed", 0.0, made)


def is_analysis_case(nodeid: str) -> bool:
    return nodeid.startswith(ANALYSIS_NODEID_PREFIX)
