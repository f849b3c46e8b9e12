"""Plain-text tables: the per-suite leaderboard and the CLI's listings."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from benchtool.analyses import is_analysis_case
from benchtool.claims.core import VERDICT_NODEID_PREFIX
from benchtool.metrics.catalog import CATALOG, kept_apart
from benchtool.results import CaseResult, Record

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


def _in_leaderboard(record: Record) -> bool:
    return record.value is not None and not kept_apart(record.metric, record.unit)


def _fold_intervals(metrics: list[str]) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """The columns left once each metric's recorded interval edges (``<m>_ci_low`` and
    ``<m>_ci_high``, or any lower/upper pair the catalog relates to it) are folded into its
    cell, and for each folded metric its (lower, upper) names."""
    edges: dict[str, dict[str, str]] = defaultdict(dict)
    for name in metrics:
        related = CATALOG.relation(name, metrics)
        if related and related[1] in ("lower", "upper"):
            edges[related[0]][related[1]] = name
    folded = {centre: (pair["lower"], pair["upper"]) for centre, pair in edges.items() if len(pair) == 2}
    hidden = {name for pair in folded.values() for name in pair}
    return [m for m in metrics if m not in hidden], folded


def _value_cell(values: dict[str, float], metric: str, folded: dict[str, tuple[str, str]]) -> object:
    """``0.53 [0.5, 0.56]`` for a metric with its interval, the bare value otherwise."""
    value = values.get(metric, "")
    if metric in folded and value != "" and all(edge in values for edge in folded[metric]):
        low, high = (values[edge] for edge in folded[metric])
        return f"{_cell(value)} [{_cell(low)}, {_cell(high)}]"
    return value


def leaderboards(cases: Sequence[CaseResult]) -> list[tuple[str, list[str]]]:
    """One table per suite: a row per case and parameter set, a column per scalar metric
    (intervals folded into their metric's cell). The rows of the suite's run-level analyses
    (e.g. the worst case over attacks) come first: they are its headline."""
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
        ordered = sorted(suite_cases, key=lambda case: not is_analysis_case(case.nodeid))
        for case in ordered:
            if case.nodeid.startswith(VERDICT_NODEID_PREFIX):
                continue  # verdicts have their own table (claims_table)
            shown = [record for record in case.records if _in_leaderboard(record)]
            for record in shown:
                if record.metric not in metrics:
                    metrics.append(record.metric)
                key = (case_label(record.case), format_params(record.params))
                rows.setdefault(key, {})[record.metric] = record.value  # type: ignore[assignment]
                outcome[key] = case.outcome
            if not shown and (not case.records or case.outcome != "passed"):
                key = (nodeid_label(case.nodeid), "")
                rows.setdefault(key, {})
                outcome[key] = case.outcome
        columns, folded = _fold_intervals(metrics)
        headers = ["case", "params", "outcome", *columns]
        body = [[label, params, outcome[(label, params)], *[_value_cell(vals, m, folded) for m in columns]]
                for (label, params), vals in rows.items()]
        tables.append((suite, format_table(headers, body) + threat_notes(r for c in suite_cases for r in c.records)))
    return tables


def threat_notes(records: Iterable[Record]) -> list[str]:
    """A line per attack recorded under another threat model than plain perturbations (its
    per-example records say ``threat``), so its row does not read as a weak attack."""
    other = sorted({(r.plugin, str(r.params["threat"])) for r in records
                    if r.params.get("threat", "perturbation") != "perturbation"})
    return [f"note: {plugin} is an attack for the {threat} threat model (it optimizes for adversarial examples "
            f"that survive random {threat}s); scored here on plain inputs, it is not at its best"
            for plugin, threat in other]


CHECKS_HEADERS = ("check", "model", "dataset", "result", "evidence")


def check_records(records: Iterable[Record]) -> list[Record]:
    """The sanity-check records (catalog kind ``flag``) among ``records``, flagged ones first."""
    found = [r for r in records if r.value is not None and CATALOG.spec(r.metric, r.unit).kind == "flag"]
    return sorted(found, key=lambda r: (-float(r.value or 0), r.model, r.dataset, r.metric))


def check_name(record: Record) -> str:
    """``gradient_masking: first-order`` (a rule about the model) or ``attack_underpowered:
    cw-l2`` (a finding about one attack)."""
    rule = record.params.get("rule", "")
    subject = rule if record.metric == "gradient_masking" or not record.plugin else record.plugin
    return f"{record.metric}: {subject}"


def checks_table(cases: Sequence[CaseResult]) -> list[str]:
    """The flagged sanity checks with their evidence, then a one-line tally (nothing when
    the run made no checks)."""
    checks = check_records(r for case in cases for r in case.records)
    if not checks:
        return []
    flagged = [r for r in checks if r.value]
    rows = [[check_name(r), r.model, r.dataset, "FLAGGED", r.params.get("evidence", "")] for r in flagged]
    lines = format_table(CHECKS_HEADERS, rows) if rows else []
    models = len({(r.model, r.dataset) for r in checks})
    lines.append(f"{len(flagged)} of {len(checks)} checks flagged on {models} model(s) "
                 "(the evidence of every check is in the run's records: benchtool show RUN)")
    return lines


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
