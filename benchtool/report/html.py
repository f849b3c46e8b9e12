"""The self-contained HTML report: run facts, a leaderboard per suite, every figure.

One file, no network: styles inline, figures as PNG data URLs, no script. What each
metric means comes from the metric catalog (:mod:`benchtool.metrics.catalog`): the
leaderboards bold the best value of a quality metric by its direction (never an interval,
count, timing or setting) and show its description on hover. With a baseline
(``--compare``) the tables show each value's change against it, coloured by the metric's
direction (the same policies ``benchtool compare`` gates on), and the figures overlay the
baseline dashed.
"""

from __future__ import annotations

import html
import math
import time
from collections import defaultdict
from collections.abc import Sequence

from benchtool import __version__
from benchtool.claims.core import VERDICT_NODEID_PREFIX, Verdict, is_verdict, verdicts_from_records
from benchtool.harness.robustness_analyses import WORST_CASE_METRIC
from benchtool.metrics.catalog import CATALOG, kept_apart
from benchtool.report.figures import RenderedFigure, render_figures
from benchtool.results import CaseResult, Record
from benchtool.comparison import MetricKey, MetricPolicy, Policies, canonical_records, judge, scalar_values
from benchtool.store.db import run_facts
from benchtool.store.load import ResultSet
from benchtool.tables import check_name, check_records, claims_rows, nodeid_label, threat_notes

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
.claims td { max-width: 60em; }
.verdict-reproduced { color: #137333; font-weight: 700; } .verdict-not-reproduced { color: #c5221f; font-weight: 700; }
.verdict-inconclusive { color: #8a6d00; font-weight: 700; }
.toc ul { margin: 4px 0; padding-left: 20px; } .toc li { margin: 2px 0; } .toc li a { margin: 0 4px; }
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


def best_values(keys: Sequence[MetricKey], values: Values, policies: Policies) -> dict[MetricKey, bool]:
    """The cells of a leaderboard to highlight as best, by the catalog's direction (or the
    user's ``--direction``): only quality metrics, never an interval (a CI half-width), a band
    edge, a count, a timing or a setting. Cells compete with those on the same model, dataset
    and swept parameters: a parameter that varies between the rows of one case (``eps``,
    ``ood``, ``evaluations``) is a condition; one that stays put within each case (a plugin's
    own setting) is not. A group needs two or more cases to have a best."""
    best: dict[MetricKey, bool] = {}
    by_metric: dict[str, list[MetricKey]] = defaultdict(list)
    for key in keys:
        by_metric[key[3]].append(key)
    for metric, column in by_metric.items():
        record = values[column[0]][1]
        spec = CATALOG.spec(metric, record.unit)
        policy = policies.policy(record.kind, metric, record.unit)
        if not spec.may_be_best or not policy.gated:
            continue
        per_case: dict[str, list[dict]] = defaultdict(list)
        for key in column:
            per_case[key[1]].append(values[key][1].params)
        conditions = sorted({k for rows in per_case.values() for k in {k for p in rows for k in p}
                             if len({str(p.get(k)) for p in rows}) > 1})
        groups: dict[tuple, list[MetricKey]] = defaultdict(list)
        for key in column:
            rec = values[key][1]
            groups[(rec.model, rec.dataset, *(str(rec.params.get(k)) for k in conditions))].append(key)
        for group in groups.values():
            finite = [k for k in group if math.isfinite(values[k][0])]
            if len({k[1] for k in finite}) < 2:
                continue
            score = {k: _goodness(values[k][0], policy) for k in finite}
            top = max(score.values())
            best.update({k: True for k in finite if score[k] == top})
    return best


def _goodness(value: float, policy: MetricPolicy) -> float:
    if policy.direction == "none" and policy.target is not None:
        return -abs(value - policy.target)
    return value if policy.direction == "higher" else -value


def _leaderboard(suite: str, values: Values, baseline: Values, outcomes: dict[tuple[str, str], str],
                 policies: Policies) -> tuple[str, int]:
    """A row per (case, params), a column per scalar metric; best values bold (see
    :func:`best_values`), changes coloured; returns the table and its number of rows."""
    keys = [k for k in values if k[0] == suite]
    metrics: list[str] = []
    for key in keys:
        if key[3] not in metrics:
            metrics.append(key[3])
    rows: dict[tuple[str, str], dict[str, MetricKey]] = defaultdict(dict)
    for key in keys:
        rows[(key[1], key[2])][key[3]] = key
    best = best_values(keys, values, policies)
    head = "".join(f'<th title="{_e(_metric_title(values, keys, h))}">{_e(h)}</th>' if h in metrics else
                   f"<th>{_e(h)}</th>" for h in ["case", "params", "outcome", *metrics])
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
            cls = "num best" if best.get(key) else "num"
            text = _e(_number(value))
            if key in baseline:
                text += _delta(baseline[key][0], value, policies.policy(record.kind, metric, record.unit))
            tds.append(f'<td class="{cls}">{text}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>", len(body)


def _metric_title(values: Values, keys: Sequence[MetricKey], metric: str) -> str:
    """A column header's tooltip: what the catalog says about the metric."""
    record = next(values[k][1] for k in keys if k[3] == metric)
    spec = CATALOG.spec(metric, record.unit)
    words = [spec.description or spec.kind, f"{spec.kind}; {spec.better_text(record.kind)}"]
    return "; ".join(w for w in words if w)


def _delta(before: float, after: float, policy: MetricPolicy) -> str:
    verdict = judge(before, after, policy)
    css = {"REGRESSED": "regressed", "improved": "improved"}.get(verdict, "same")  # timing: never red
    if verdict == "unchanged":
        return '<span class="delta same">(=)</span>'
    title = f"{verdict} vs baseline {_number(before)}"
    return f'<span class="delta {css}" title="{_e(title)}">({after - before:+.3g})</span>'


def _figure_anchor(title: str) -> str:
    return "fig-" + "".join(c if c.isalnum() else "-" for c in title)


def _figures_html(figures: Sequence[RenderedFigure]) -> str:
    items = [
        f'<figure id="{_figure_anchor(f.title)}"><img src="{f.data_url}" alt="{_e(f.title)}">'
        f'<figcaption>{_e(f.caption)}</figcaption></figure>'
        for f in figures
    ]
    return f'<div class="figures">{"".join(items)}</div>'


def _anchor(suite: str) -> str:
    return "suite-" + "".join(c if c.isalnum() else "-" for c in suite)


def _claims_html(verdicts: Sequence[Verdict], figure_titles: set[str]) -> str:
    """The Claims table: each row's claim links to the figure that shows its evidence."""
    if not verdicts:
        return ""
    body = []
    for verdict, (claim, subject, word, line) in zip(verdicts, claims_rows(verdicts)):
        title = f"{verdict.suite}: {verdict.figure}"
        target = _figure_anchor(title) if title in figure_titles else _anchor(verdict.suite)
        tip = f"{verdict.test}; alpha {verdict.alpha:g}" if verdict.test else ""
        css = "verdict-" + word.replace(" ", "-")
        body.append(f'<tr><td><a href="#{target}" title="{_e(tip)}">{_e(claim)}</a></td><td>{_e(subject)}</td>'
                    f'<td class="{css}">{_e(word)}</td><td>{_e(line)}</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("claim", "dataset", "verdict", "evidence"))
    counts = ", ".join(f"{sum(v.verdict == w for v in verdicts)} {w}" for w in ("reproduced", "not reproduced",
                                                                            "inconclusive"))
    return (f'<section id="claims"><h2>Claims</h2><p class="note">{_e(counts)}. Each claim links to the figure '
            f'of its evidence; hover for its statistical test.</p><table class="claims"><thead><tr>{head}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table></section>')


def _sibling(records: Sequence[Record], record: Record, metric: str) -> float | None:
    """The value of ``metric`` recorded by ``record``'s case with the same params."""
    return next((float(r.value) for r in records if r.metric == metric and r.case == record.case
                 and r.params == record.params and r.value is not None), None)


def _worst_case_html(records: Sequence[Record]) -> str:
    """The suite's headline: the worst case over attacks per model, dataset, norm and eps
    (robustness), with its 95% interval and the number of attacks combined."""
    rows = sorted((r for r in records if r.metric == WORST_CASE_METRIC and r.value is not None),
                  key=lambda r: (r.model, r.dataset, str(r.params.get("norm")), r.params.get("eps", 0)))
    if not rows:
        return ""
    body = []
    for r in rows:
        low, high = (_sibling(records, r, WORST_CASE_METRIC + suffix) for suffix in ("_ci_low", "_ci_high"))
        interval = f" [{_number(low)}, {_number(high)}]" if low is not None and high is not None else ""
        attacks = _sibling(records, r, "attacks_combined")
        body.append(f"<tr><td>{_e(r.model)}</td><td>{_e(r.dataset)}</td><td>{_e(r.params.get('norm', ''))}</td>"
                    f'<td class="num">{_e(_number(r.params.get("eps", math.nan)))}</td>'
                    f'<td class="num best">{_e(_number(float(r.value or 0)) + interval)}</td>'
                    f'<td class="num">{"" if attacks is None else f"{attacks:g}"}</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("model", "dataset", "norm", "eps", "worst-case robust accuracy [95%]",
                                             "attacks"))
    return ('<h3>Worst case over attacks</h3><p class="note">An example counts as robust only if every attack of '
            "the norm failed on it (AutoAttack's protocol); which attack broke each example first is in the "
            f"leaderboard (broken_first, broken_only).</p><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _checks_html(records: Sequence[Record]) -> str:
    """The suite's sanity checks (gradient masking, underpowered attacks), flagged first."""
    checks = check_records(records)
    if not checks:
        return ""
    flagged = sum(1 for r in checks if r.value)
    body = "".join(
        f"<tr><td>{_e(check_name(r))}</td><td>{_e(r.model)}</td><td>{_e(r.dataset)}</td>"
        f'<td class="{"verdict-not-reproduced" if r.value else "verdict-reproduced"}">'
        f'{"flagged" if r.value else "passed"}</td><td>{_e(r.params.get("evidence", ""))}</td></tr>'
        for r in checks)
    head = "".join(f"<th>{h}</th>" for h in ("check", "model", "dataset", "result", "evidence"))
    opened = " open" if flagged else ""
    return (f'<details{opened}><summary><h3>Checks: {flagged} of {len(checks)} flagged</h3></summary>'
            '<p class="note">Gradient-masking rules (Carlini et al. 2019; Athalye et al. 2018) as paired tests, and '
            'attacks weaker than a peer of their norm beyond noise (their budget, not the model).</p>'
            f'<table class="claims"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details>')


def _toc_html(suites: Sequence[str], figures: Sequence[RenderedFigure], leaderboards: set[str]) -> str:
    items = []
    for suite in suites:
        links = [f'<a href="#{_anchor(suite)}">{_e(suite)}</a>']
        count = sum(f.suite == suite for f in figures)
        if count:
            links.append(f'<a href="#{_anchor(suite)}-figures">figures ({count})</a>')
        if suite in leaderboards:
            links.append(f'<a href="#{_anchor(suite)}-leaderboard">leaderboard</a>')
        items.append("<li>" + " · ".join(links) + "</li>")
    return f'<nav class="toc"><h2>Contents</h2><ul>{"".join(items)}</ul></nav>' if items else ""


def render_report(results: ResultSet, baseline: ResultSet | None = None,
                  policies: Policies | None = None) -> str:
    """The report of ``results`` (optionally against ``baseline``) as one HTML document."""
    policies = policies or Policies()
    verdicts = verdicts_from_records(results.records)
    # verdicts and checks have their own tables; per-example outcomes are only the analyses' input; metric
    # names as the catalog spells them, so a baseline stored with old names lines up
    records = canonical_records(r for r in results.records if not is_verdict(r) and not kept_apart(r.metric, r.unit))
    base_records = canonical_records(r for r in baseline.records if not is_verdict(r)
                                     and not kept_apart(r.metric, r.unit)) if baseline else []
    runs = [(results.label, records)] + ([(baseline.label, base_records)] if baseline else [])
    figures = render_figures(runs)
    values = scalar_values(records)
    base_values = scalar_values(base_records) if baseline else {}
    outcomes = _outcomes([c for c in results.cases if not c.nodeid.startswith(VERDICT_NODEID_PREFIX)])
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
    with_leaderboard = {k[0] for k in values}
    parts.append("</header><main>" + _claims_html(verdicts, {f.title for f in figures})
                 + _toc_html(suites, figures, with_leaderboard))
    for suite in suites:
        suite_figures = [f for f in figures if f.suite == suite]
        parts.append(f'<section id="{_anchor(suite)}"><h2>{_e(suite)}</h2>')
        parts.append(_worst_case_html([r for r in records if r.suite == suite]))
        parts.append(_checks_html([r for r in results.records if r.suite == suite]))
        if suite in with_leaderboard:
            table, rows = _leaderboard(suite, values, base_values, outcomes, policies)
            opened = " open" if rows <= LONG_TABLE_ROWS else ""
            notes = "".join(f'<p class="note">{_e(line)}</p>'
                            for line in threat_notes(r for r in results.records if r.suite == suite))
            parts.append(f'<details id="{_anchor(suite)}-leaderboard"{opened}><summary><h3>Leaderboard ({rows} rows)'
                         f"</h3></summary>{table}{notes}</details>")
        if suite_figures:
            parts.append(f'<h3 id="{_anchor(suite)}-figures">Figures ({len(suite_figures)})</h3>'
                         + _figures_html(suite_figures))
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
