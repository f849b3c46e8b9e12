"""The self-contained HTML report: run facts, a leaderboard per suite, every figure.

One file, no network: styles inline, figures as PNG data URLs, no script. With a
baseline (``--compare``) the tables show each value's change against it, coloured by the
metric's direction (the same policies ``benchtool compare`` gates on), and the figures
overlay the baseline dashed.
"""

from __future__ import annotations

import html
import math
import time
from collections import defaultdict
from collections.abc import Sequence

from benchtool import __version__
from benchtool.report.figures import RenderedFigure, render_figures
from benchtool.results import CaseResult, Record
from benchtool.store.compare import MetricKey, MetricPolicy, Policies, judge, scalar_values
from benchtool.store.db import run_facts
from benchtool.store.load import ResultSet
from benchtool.tables import nodeid_label

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d232a;
       background: #f6f7f9; }
header, main, footer { max-width: 1400px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 18px; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-top: 8px; border-top: 2px solid #d8dde3; }
h3 { font-size: 15px; margin: 18px 0 6px; }
summary h3 { display: inline; } summary { cursor: pointer; margin: 18px 0 6px; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; background: #fff; margin: 6px 0; font-size: 13px; }
th, td { border: 1px solid #d8dde3; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { font-weight: 700; }
.facts th { width: 7em; }
.delta { font-size: 11px; margin-left: 4px; }
.improved { color: #137333; } .regressed { color: #c5221f; font-weight: 700; } .same { color: #777; }
.outcome-failed { color: #c5221f; font-weight: 700; } .outcome-skipped { color: #777; }
.figures { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; background: #fff; border: 1px solid #d8dde3; padding: 8px; display: table; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { display: table-caption; caption-side: bottom; font-size: 12px; color: #444; background: #fff;
             border: 1px solid #d8dde3; border-top: 0; padding: 0 8px 6px; }
.note { color: #555; }
footer { color: #777; font-size: 12px; padding: 24px; }
"""


LONG_TABLE_ROWS = 20  # longer leaderboards start folded (their sweeps are drawn as figures)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _facts_table(results: ResultSet) -> str:
    if results.run is None:
        facts = [("results", results.label), ("records", str(len(results.records)))]
    else:
        facts = run_facts(results.run)
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    return f'<table class="facts">{rows}</table>'


def _outcomes(cases: Sequence[CaseResult]) -> dict[tuple[str, str], str]:
    return {(case.suite, nodeid_label(case.nodeid)): case.outcome for case in cases}


Values = dict[MetricKey, tuple[float, Record]]


def _leaderboard(suite: str, values: Values, baseline: Values, outcomes: dict[tuple[str, str], str],
                 policies: Policies) -> tuple[str, int]:
    """A row per (case, params), a column per scalar metric; best value bold, changes coloured;
    returns the table and its number of rows."""
    keys = [k for k in values if k[0] == suite]
    metrics: list[str] = []
    for key in keys:
        if key[3] not in metrics:
            metrics.append(key[3])
    rows: dict[tuple[str, str], dict[str, MetricKey]] = defaultdict(dict)
    for key in keys:
        rows[(key[1], key[2])][key[3]] = key
    best: dict[str, float] = {}
    for metric in metrics:
        record = next(values[k][1] for k in keys if k[3] == metric)
        direction = policies.policy(record.kind, metric, record.unit).direction
        column = [values[k][0] for k in keys if k[3] == metric and math.isfinite(values[k][0])]
        if direction != "none" and len(column) > 1:
            best[metric] = max(column) if direction == "higher" else min(column)
    head = "".join(f"<th>{_e(h)}</th>" for h in ["case", "params", "outcome", *metrics])
    body = []
    for (case, params), cells in rows.items():
        outcome = outcomes.get((suite, case), "")
        tds = [f"<td>{_e(case)}</td>", f"<td>{_e(params)}</td>",
               f'<td class="outcome-{_e(outcome)}">{_e(outcome)}</td>']
        for metric in metrics:
            key = cells.get(metric)
            if key is None:
                tds.append("<td></td>")
                continue
            value, record = values[key]
            cls = "num best" if best.get(metric) == value else "num"
            text = _e(_number(value))
            if key in baseline:
                text += _delta(baseline[key][0], value, policies.policy(record.kind, metric, record.unit))
            tds.append(f'<td class="{cls}">{text}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>", len(body)


def _delta(before: float, after: float, policy: MetricPolicy) -> str:
    verdict = judge(before, after, policy)
    css = {"REGRESSED": "regressed", "improved": "improved"}.get(verdict, "same")
    if verdict == "unchanged":
        return '<span class="delta same">(=)</span>'
    title = f"{verdict} vs baseline {_number(before)}"
    return f'<span class="delta {css}" title="{_e(title)}">({after - before:+.3g})</span>'


def _figures_html(figures: Sequence[RenderedFigure]) -> str:
    items = [
        f'<figure><img src="{f.data_url}" alt="{_e(f.title)}"><figcaption>{_e(f.caption)}</figcaption></figure>'
        for f in figures
    ]
    return f'<div class="figures">{"".join(items)}</div>'


def _anchor(suite: str) -> str:
    return "suite-" + "".join(c if c.isalnum() else "-" for c in suite)


def render_report(results: ResultSet, baseline: ResultSet | None = None,
                  policies: Policies | None = None) -> str:
    """The report of ``results`` (optionally against ``baseline``) as one HTML document."""
    policies = policies or Policies()
    runs = [(results.label, results.records)] + ([(baseline.label, baseline.records)] if baseline else [])
    figures = render_figures(runs)
    values = scalar_values(results.records)
    base_values = scalar_values(baseline.records) if baseline else {}
    outcomes = _outcomes(results.cases)
    suites = sorted({k[0] for k in values} | {f.suite for f in figures} | {s for s, _ in outcomes})
    title = f"benchtool report: {results.label}" + (f" vs {baseline.label}" if baseline else "")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>{_facts_table(results)}",
    ]
    if baseline:
        parts.append(f'<p class="note">Compared with baseline <b>{_e(baseline.label)}</b>: changes in brackets, '
                     'green better, red worse beyond tolerance; the baseline is dashed in the figures.</p>')
    parts.append("<nav>" + "".join(f'<a href="#{_anchor(s)}">{_e(s)}</a>' for s in suites) + "</nav></header><main>")
    for suite in suites:
        suite_figures = [f for f in figures if f.suite == suite]
        parts.append(f'<section id="{_anchor(suite)}"><h2>{_e(suite)}</h2>')
        if suite_figures:
            parts.append(f"<h3>Figures ({len(suite_figures)})</h3>" + _figures_html(suite_figures))
        if any(k[0] == suite for k in values):
            table, rows = _leaderboard(suite, values, base_values, outcomes, policies)
            opened = " open" if rows <= LONG_TABLE_ROWS else ""
            parts.append(f"<details{opened}><summary><h3>Leaderboard ({rows} rows)</h3></summary>{table}</details>")
        failed = [c for c in results.cases if c.suite == suite and c.outcome == "failed"]
        if failed:
            items = "".join(f"<li><code>{_e(c.nodeid)}</code>: {_e(c.message)}</li>" for c in failed)
            parts.append(f"<h3>Failed cases</h3><ul>{items}</ul>")
        parts.append("</section>")
    if not suites:
        parts.append('<p class="note">This run recorded no results.</p>')
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    parts.append(f"</main><footer>benchtool {__version__}, {stamp}; {len(figures)} figure(s)</footer></body></html>")
    return "\n".join(parts)
