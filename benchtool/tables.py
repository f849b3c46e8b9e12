"""Plain-text tables: the per-suite leaderboard and the CLI's listings."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from benchtool.claims.core import VERDICT_NODEID_PREFIX
from benchtool.results import CaseResult

if TYPE_CHECKING:
    from benchtool.claims.core import Verdict


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Left-aligned columns separated by two spaces, with a rule under the header."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def case_label(case_name: str) -> str:
    """``test_x[pgd-lenet-digits]`` -> ``pgd-lenet-digits`` (the test name when unparametrized)."""
    return case_name[case_name.index("[") + 1 : -1] if "[" in case_name else case_name


def nodeid_label(nodeid: str) -> str:
    """``suite.py::test_x[pgd]`` -> ``pgd``: the :func:`case_label` of a node id's last part."""
    return case_label(nodeid.rsplit("::", 1)[-1])


def format_params(params: dict[str, Any]) -> str:
    """``{"eps": 0.1, "a": 1}`` -> ``a=1,eps=0.1``."""
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def leaderboards(cases: Sequence[CaseResult]) -> list[tuple[str, list[str]]]:
    """One table per suite: a row per case and parameter set, a column per scalar metric."""
    by_suite: dict[str, list[CaseResult]] = defaultdict(list)
    for case in cases:
        by_suite[case.suite].append(case)
    tables = []
    for suite, suite_cases in sorted(by_suite.items()):
        if all(case.nodeid.startswith(VERDICT_NODEID_PREFIX) for case in suite_cases):
            continue
        metrics: list[str] = []
        rows: dict[tuple[str, str], dict[str, float]] = {}
        outcome: dict[tuple[str, str], str] = {}
        for case in suite_cases:
            if case.nodeid.startswith(VERDICT_NODEID_PREFIX):
                continue  # verdicts have their own table (claims_table)
            for record in case.records:
                if record.value is None:
                    continue
                if record.metric not in metrics:
                    metrics.append(record.metric)
                key = (case_label(record.case), format_params(record.params))
                rows.setdefault(key, {})[record.metric] = record.value
                outcome[key] = case.outcome
            if not case.records:
                key = (nodeid_label(case.nodeid), "")
                rows.setdefault(key, {})
                outcome[key] = case.outcome
        headers = ["case", "params", "outcome", *metrics]
        body = [[label, params, outcome[(label, params)], *[vals.get(m, "") for m in metrics]]
                for (label, params), vals in rows.items()]
        tables.append((suite, format_table(headers, body)))
    return tables


CLAIMS_HEADERS = ("claim", "dataset", "verdict", "evidence")


def claims_rows(verdicts: Sequence[Verdict]) -> list[list[str]]:
    """A row per claim and dataset: its verdict and the evidence in one line."""
    return [[v.claim, v.subject or "-", v.verdict, v.line] for v in verdicts]


def claims_table(verdicts: Sequence[Verdict]) -> list[str]:
    """The Claims table that ends a run (and opens its report), with a one-line tally."""
    lines = format_table(CLAIMS_HEADERS, claims_rows(verdicts))
    counts = {word: sum(v.verdict == word for v in verdicts) for word in ("reproduced", "not reproduced",
                                                                          "inconclusive")}
    lines.append(", ".join(f"{n} {word}" for word, n in counts.items() if n) + f" (of {len(verdicts)})")
    return lines
