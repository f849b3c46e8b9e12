"""Figures of a run, drawn generically from its records with matplotlib.

Two sources, each grouped by (suite, metric), one panel per (model, dataset), one line per
plugin and parameter set:

- recorded curves (``series``): accuracy vs eps, learning/memorization curves, anytime
  regret, weights over training, ... Layouts by metric name: ``reliability`` draws a
  reliability diagram with its diagonal, ``hist`` a histogram; a band around a curve
  comes from sibling curves named ``<metric>_lower`` and ``<metric>_upper`` (or
  ``<metric>_std``, drawn ±2σ) recorded by the same case with the same params;
- scalar records swept over a parameter: a numeric parameter (``eps``, ``width``,
  ``noise``) gives a line of the metric against it; a categorical one (``transform``) gives
  grouped bars.

Lines that differ only in a seed parameter (``seed``, ``trial``, ``repeat``) are drawn as
their mean with a 95% confidence band (Student t). A second run is overlaid dashed.
"""

from __future__ import annotations

import base64
import io
import math
import re
import textwrap
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure as MplFigure

from benchtool.results import Record
from benchtool.tables import case_label

SEED_PARAMS = ("seed", "trial", "repeat", "rep")
BAND_SUFFIXES = {"_lower": "lower", "_upper": "upper", "_lo": "lower", "_hi": "upper", "_std": "std"}
MAX_PANEL_COLUMNS = 3
CROWDED_LINES = 10  # more lines than this in a panel: one panel per plugin, a smaller legend
LABEL_WIDTH = 40  # axis labels longer than this wrap
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
          "#7f7f7f", "#bcbd22")


@dataclass(frozen=True)
class RenderedFigure:
    """One figure of the report: a PNG as a data URL, with its title and caption."""

    suite: str
    title: str
    caption: str
    data_url: str


@dataclass
class Line:
    """One drawn line (possibly aggregated over seeds), with an optional band."""

    label: str
    x: np.ndarray
    y: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    members: int = 1
    plugin: str = ""


@dataclass
class Panel:
    title: str
    lines: dict[str, list[Line]] = field(default_factory=dict)  # run label -> lines


@dataclass
class FigurePlan:
    suite: str
    metric: str
    kind: str  # "line" | "reliability" | "histogram" | "bars"
    x_label: str
    y_label: str
    panels: dict[str, Panel] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)  # bars: the x categories


# --- grouping -----------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _label(record: Record, skip: Sequence[str] = ()) -> str:
    """The plugin and the parameters that tell lines apart (seeds and the swept one left out)."""
    params = " ".join(f"{k}={v}" for k, v in sorted(record.params.items()) if k not in SEED_PARAMS and k not in skip)
    return " ".join(x for x in (record.plugin, params) if x) or record.metric


def _panel_title(record: Record) -> str:
    return " / ".join(x for x in (record.model, record.dataset) if x)


def _layout(metric: str) -> str:
    name = metric.lower()
    if "reliability" in name:
        return "reliability"
    if "hist" in name:
        return "histogram"
    return "line"


def _split_band_metric(metric: str, known: set[str]) -> tuple[str, str] | None:
    for suffix, role in BAND_SUFFIXES.items():
        if metric.endswith(suffix) and metric[: -len(suffix)] in known:
            return metric[: -len(suffix)], role
    return None


def _band_key(record: Record, metric: str) -> tuple:
    return (record.suite, record.case, record.plugin, record.model, record.dataset,
            tuple(sorted((k, str(v)) for k, v in record.params.items())), metric)


def _t95(n: int) -> float:
    """Two-sided 95% Student t quantile for n samples (n - 1 degrees of freedom)."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


Curve = tuple[np.ndarray, np.ndarray, "np.ndarray | None", "np.ndarray | None"]  # x, y, band low, band high


def aggregate(label: str, curves: list[Curve], plugin: str = "") -> Line:
    """One line from one curve, or the mean and 95% CI of several (seeds) on a common x grid."""
    if len(curves) == 1:
        x, y, lower, upper = curves[0]
        return Line(label, x, y, lower, upper, plugin=plugin)
    xs = [c[0] for c in curves]
    if all(len(x) == len(xs[0]) and np.allclose(x, xs[0]) for x in xs):
        grid = xs[0]
        ys = np.stack([c[1] for c in curves])
    else:  # e.g. anytime curves against simulated time: interpolate on the shared range
        low, high = max(x.min() for x in xs), min(x.max() for x in xs)
        grid = np.unique(np.concatenate([x[(x >= low) & (x <= high)] for x in xs]))
        ys = np.stack([np.interp(grid, x, c[1]) for x, c in zip(xs, curves)])
    mean = ys.mean(axis=0)
    half = _t95(len(curves)) * ys.std(axis=0, ddof=1) / math.sqrt(len(curves))
    return Line(label, grid, mean, mean - half, mean + half, members=len(curves), plugin=plugin)


def series_plans(runs: Sequence[tuple[str, Sequence[Record]]]) -> list[FigurePlan]:
    """Plans for every recorded curve; ``runs`` is [(run label, records)], the first drawn solid."""
    plans: dict[tuple[str, str], FigurePlan] = {}
    for run_label, records in runs:
        curves = [r for r in records if r.series is not None]
        metrics = {r.metric for r in curves}
        bands: dict[tuple, dict[str, np.ndarray]] = defaultdict(dict)
        for record in curves:
            split = _split_band_metric(record.metric, metrics)
            if split:
                base, role = split
                series = record.series or {}
                bands[_band_key(record, base)][role] = np.asarray(series["y"], dtype=float)
        grouped: dict[tuple[str, str, str, str], list] = defaultdict(list)
        for record in curves:
            if _split_band_metric(record.metric, metrics):
                continue
            series = record.series or {}
            x = np.asarray(series["x"], dtype=float)
            y = np.asarray(series["y"], dtype=float)
            band = {role: v for role, v in bands.get(_band_key(record, record.metric), {}).items() if len(v) == len(y)}
            lower = upper = None
            if "lower" in band and "upper" in band:
                lower, upper = band["lower"], band["upper"]
            elif "std" in band:
                lower, upper = y - 2 * band["std"], y + 2 * band["std"]
            key = (record.suite, record.metric, _panel_title(record), _label(record), case_label(record.case),
                   record.plugin)
            grouped[key].append((x, y, lower, upper))
            plan = plans.setdefault(
                (record.suite, record.metric),
                FigurePlan(record.suite, record.metric, _layout(record.metric),
                           series.get("x_label", ""), series.get("y_label", "")),
            )
            plan.panels.setdefault(_panel_title(record), Panel(_panel_title(record)))
        cases_per_label: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
        for suite, metric, panel, label, case, _ in grouped:
            cases_per_label[(suite, metric, panel, label)].add(case)
        for (suite, metric, panel, label, case, plugin), members in grouped.items():
            if len(cases_per_label[(suite, metric, panel, label)]) > 1:
                label = f"{label} ({case})"  # same plugin and params in several cases: tell them apart
            lines = plans[(suite, metric)].panels[panel].lines.setdefault(run_label, [])
            lines.append(aggregate(label, members, plugin))
    return list(plans.values())


def _sweep_param(records: Sequence[Record]) -> tuple[str, bool] | None:
    """The parameter a scalar metric is swept over: (name, numeric), or None."""
    values: dict[str, set] = defaultdict(set)
    for record in records:
        for key, value in record.params.items():
            if key not in SEED_PARAMS:
                values[key].add(value if _is_number(value) else str(value))
    numeric = [k for k, v in values.items() if len(v) >= 2 and all(_is_number(x) for x in v)]
    if numeric:
        return max(sorted(numeric), key=lambda k: len(values[k])), True
    categorical = [k for k, v in values.items() if len(v) >= 2]
    if categorical:
        return max(sorted(categorical), key=lambda k: len(values[k])), False
    return None


def sweep_plans(runs: Sequence[tuple[str, Sequence[Record]]],
                skip: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset()) -> list[FigurePlan]:
    """Plans for scalar metrics that vary over a parameter within a line (the first run decides
    which parameter); ``skip`` holds (suite, metric) pairs already drawn from curves."""
    first = [r for r in runs[0][1] if r.value is not None] if runs else []
    by_metric: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for record in first:
        by_metric[(record.suite, record.metric)].append(record)
    plans = []
    for (suite, metric), records in sorted(by_metric.items()):
        sweep = _sweep_param(records)
        if sweep is None or (suite, metric) in skip:
            continue
        param, numeric = sweep
        plan = FigurePlan(suite, metric, "line" if numeric else "bars", param, metric)
        if not numeric:
            plan.categories = sorted({str(r.params[param]) for r in records if param in r.params})
        for run_label, run_records in runs:
            points: dict[tuple[str, str, str], dict[str, dict[object, float]]] = defaultdict(lambda: defaultdict(dict))
            for record in run_records:
                if record.suite != suite or record.metric != metric or record.value is None:
                    continue
                if param not in record.params or not math.isfinite(record.value):
                    continue
                seed = str({k: record.params[k] for k in SEED_PARAMS if k in record.params})
                x = record.params[param] if numeric else str(record.params[param])
                line_key = (_panel_title(record), _label(record, skip=(param,)), record.plugin)
                points[line_key][seed][x] = record.value
            for (panel, label, plugin), by_seed in points.items():
                target = plan.panels.setdefault(panel, Panel(panel)).lines.setdefault(run_label, [])
                if numeric:
                    curves: list[Curve] = []
                    for xy in by_seed.values():
                        xs = sorted(xy)
                        curves.append((np.array(xs, dtype=float), np.array([xy[x] for x in xs]), None, None))
                    target.append(aggregate(label, curves, plugin))
                else:
                    values = np.array([[xy.get(c, np.nan) for c in plan.categories] for xy in by_seed.values()])
                    with np.errstate(all="ignore"):
                        target.append(Line(label, np.arange(len(plan.categories)), np.nanmean(values, axis=0),
                                           plugin=plugin))
        first_lines = [line for panel in plan.panels.values() for line in panel.lines.get(runs[0][0], [])]
        if numeric and not any(len(line.x) >= 2 for line in first_lines):
            continue  # the parameter differs between cases, not along any line: nothing to draw against it
        plans.append(plan)
    return plans


def split_crowded(plan: FigurePlan) -> FigurePlan:
    """A panel with too many lines for one legend gets one panel per plugin."""
    panels: dict[str, Panel] = {}
    for key, panel in plan.panels.items():
        lines = [line for run_lines in panel.lines.values() for line in run_lines]
        plugins = sorted({line.plugin for line in lines})
        crowded = len({line.label for line in lines}) > CROWDED_LINES and len(plugins) > 1
        if not crowded:
            panels[key] = panel
            continue
        for plugin in plugins:
            title = " / ".join(x for x in (key, plugin) if x)
            split = panels.setdefault(title, Panel(title))
            for run_label, run_lines in panel.lines.items():
                for line in run_lines:
                    if line.plugin == plugin:
                        own = line.label.removeprefix(plugin).strip() or line.label
                        split.lines.setdefault(run_label, []).append(replace(line, label=own))
    plan.panels = panels
    return plan


# --- drawing ---------------------------------------------------------------------------------


def _natural(text: str) -> list[object]:
    """Sort key that orders ``width=16`` before ``width=128``."""
    return [float(part) if part.replace(".", "", 1).isdigit() else part for part in re.split(r"(\d+\.?\d*)", text)]


def _colors(plan: FigurePlan) -> dict[str, str]:
    """One colour per line label across panels and runs; a sequential map when there are many."""
    labels = sorted({line.label for panel in plan.panels.values() for lines in panel.lines.values() for line in lines},
                    key=_natural)
    if len(labels) <= len(COLORS):
        return {label: COLORS[i] for i, label in enumerate(labels)}
    cmap = colormaps["viridis"]
    return {label: to_hex(cmap(i / (len(labels) - 1))) for i, label in enumerate(labels)}


def draw(plan: FigurePlan, run_labels: Sequence[str]) -> MplFigure:
    """A matplotlib figure for a plan: panels in a grid; the first run solid, the second dashed."""
    panels = [plan.panels[k] for k in sorted(plan.panels)]
    cols = min(MAX_PANEL_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = MplFigure(figsize=(4.6 * cols, 3.5 * rows + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False)
    colors = _colors(plan)
    for ax, panel in zip(axes.flat, panels):
        _draw_panel(ax, plan, panel, run_labels, colors)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{plan.suite}: {plan.metric}", fontsize=11)
    with warnings.catch_warnings():  # a crowded panel cannot always be fitted; it is drawn anyway
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # leave the suptitle its line
    return fig


def _draw_panel(ax, plan: FigurePlan, panel: Panel, run_labels: Sequence[str], colors: dict[str, str]) -> None:
    overlay = len(run_labels) > 1
    if plan.kind == "reliability":
        ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
    width = 0.8 / max(1, sum(len(panel.lines.get(r, [])) for r in run_labels))
    bar_index = 0
    for run_index, run_label in enumerate(run_labels):
        style = "-" if run_index == 0 else "--"
        for line in panel.lines.get(run_label, []):
            color = colors[line.label]
            label = line.label + (f" (n={line.members}, 95% CI)" if line.members > 1 else "")
            if run_index > 0 and plan.kind != "bars":
                label = "_nolegend_"  # the colour says which line; one legend entry says dashed = baseline
            if plan.kind == "bars":
                label += f" [{run_label}]" if overlay else ""
                ax.bar(line.x + bar_index * width - 0.4 + width / 2, line.y, width, color=color, label=label,
                       alpha=1.0 if run_index == 0 else 0.45, hatch=None if run_index == 0 else "//")
                bar_index += 1
                continue
            if plan.kind == "histogram":
                ax.step(line.x, line.y, where="mid", color=color, linestyle=style, label=label)
                ax.fill_between(line.x, line.y, step="mid", color=color, alpha=0.12 if run_index == 0 else 0.05)
            else:
                marker = "o" if plan.kind == "reliability" or len(line.x) <= 12 else None
                ax.plot(line.x, line.y, color=color, linestyle=style, marker=marker, markersize=3.5, label=label)
            if line.lower is not None and line.upper is not None:
                ax.fill_between(line.x, line.lower, line.upper, color=color, alpha=0.2 if run_index == 0 else 0.1,
                                linewidth=0)
    if overlay and plan.kind != "bars":
        ax.plot([], [], color="#555555", linestyle="--", label=f"dashed: {run_labels[1]}")
    if plan.kind == "line":
        _log_scales(ax, [line for lines in panel.lines.values() for line in lines])
    if plan.kind == "bars":
        ax.set_xticks(range(len(plan.categories)), plan.categories, rotation=20 if len(plan.categories) > 4 else 0)
    if panel.title:
        ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel(textwrap.fill(plan.x_label or ("confidence" if plan.kind == "reliability" else ""), LABEL_WIDTH))
    ax.set_ylabel(textwrap.fill(plan.y_label or plan.metric, LABEL_WIDTH))
    ax.grid(True, alpha=0.3)
    handles = ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(fontsize=7 if len(handles) <= CROWDED_LINES else 6, ncol=1 if len(handles) <= CROWDED_LINES else 2,
                  loc="best")


def _log_scales(ax, lines: Sequence[Line]) -> None:
    """Log axes for positive values spanning two decades or more (widths 1..512, errors)."""
    for values, setter in (([line.x for line in lines], ax.set_xscale), ([line.y for line in lines], ax.set_yscale)):
        joined = np.concatenate(values) if values else np.array([])
        joined = joined[np.isfinite(joined)]
        if len(joined) and joined.min() > 0 and joined.max() / joined.min() >= 100:
            setter("log")


def to_data_url(fig: MplFigure, dpi: int = 96) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _caption(plan: FigurePlan, run_labels: Sequence[str]) -> str:
    if plan.kind == "reliability":
        text = f"{plan.metric}: reliability diagram (accuracy per confidence bin; dotted: perfect calibration)"
    elif plan.kind == "histogram":
        text = f"{plan.metric}: histogram" + (f" of {plan.x_label}" if plan.x_label else "")
    elif plan.kind == "bars":
        text = f"{plan.metric} per {plan.x_label}"
    else:
        text = f"{plan.metric}" + (f" against {plan.x_label}" if plan.x_label else "")
    if any(line.members > 1 for panel in plan.panels.values() for lines in panel.lines.values() for line in lines):
        text += "; bands: 95% confidence interval over seeds"
    if len(run_labels) > 1:
        text += f"; {run_labels[0]} solid, {run_labels[1]} dashed"
    return text


def render_figures(runs: Sequence[tuple[str, Sequence[Record]]]) -> list[RenderedFigure]:
    """Every figure of the report, in suite order: curves first, then parameter sweeps."""
    labels = [label for label, _ in runs]
    curves = series_plans(runs)
    plans = [split_crowded(plan) for plan in curves + sweep_plans(runs, {(p.suite, p.metric) for p in curves})]
    plans.sort(key=lambda p: p.suite)
    rendered = []
    for plan in plans:
        if not any(panel.lines for panel in plan.panels.values()):
            continue
        fig = draw(plan, labels)
        rendered.append(RenderedFigure(plan.suite, f"{plan.suite}: {plan.metric}", _caption(plan, labels),
                                       to_data_url(fig)))
    return rendered
