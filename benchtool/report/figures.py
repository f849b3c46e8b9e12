"""Figures of a run, drawn generically from its records with matplotlib.

Two sources, each grouped by (suite, metric), one panel per (model, dataset), one line per
plugin and parameter set:

- recorded curves (``series``): accuracy vs eps, learning/memorization curves, anytime
  regret, weights over training, ... Layouts by metric name: ``reliability`` draws a
  reliability diagram with its diagonal, ``hist`` a histogram; a band around a curve
  comes from the sibling curves the metric catalog relates to it, recorded by the same
  case with the same params: its lower and upper edges (``predictive_mean_lower`` /
  ``_upper``, or the old ``band-lower`` / ``band-upper`` around ``band-mean``), a CI
  half-width (``test_regret_ci95``, drawn ±) or a standard deviation (``<metric>_std``,
  drawn ±2σ); a name the catalog does not know relates by the same suffixes
  (:meth:`benchtool.metrics.catalog.MetricCatalog.relation`). Such siblings are drawn as
  the band, never as figures of their own;
- scalar records swept over a parameter: a numeric parameter (``eps``, ``width``,
  ``noise``) gives a line of the metric against it; a categorical one (``transform``) gives
  grouped bars.

Lines that differ only in a seed parameter (``seed``, ``trial``, ``repeat``) are drawn as
their mean with a 95% confidence band (Student t). A proportion (accuracy, survival rate)
whose sample size is recorded gets a 95% Wilson band (error bars on bars) and its n in the
legend: n comes from the case's count record (the catalog's ``sample_size`` of the metric:
``examples``, ``fooled_examples``, ``test_examples``, ... with matching params) or, per point, from a
sibling curve ``<metric>_count`` (a reliability diagram's examples per bin, also drawn as a
histogram under it). A scalar metric swept over ``ood`` also shows its in-distribution value
(the record without ``ood``) as the first bar. A second run is overlaid dashed.

Scalars recorded per corruption and intensity (params ``shift`` and ``intensity``: the
uncertainty suite's shift intensities) are not swept: they make one figure per (model,
dataset), Ovadia et al. 2019's Figure 2 (:func:`shift_box_plans`): a panel per metric
(accuracy, ECE, NLL, Brier), per intensity a box over the corruptions for each estimator
side by side, the clean test value first.
"""

from __future__ import annotations

import base64
import io
import math
import re
import textwrap
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from benchtool.claims.stats import wilson_interval
from benchtool.metrics.catalog import CATALOG, MetricCatalog
from benchtool.results import Record
from benchtool.tables import case_label

SEED_PARAMS = ("seed", "trial", "repeat", "rep")
COUNT_UNITS = ("examples",)  # sample sizes: shown in tables and claims, not drawn
CONTEXT_PARAMS = ("split", "recipe")  # params of a count record that name what was counted, not a cell
MISSING_CATEGORY = {"ood": "in-distribution"}  # a categorical sweep's value for records without the param
MAX_PANEL_COLUMNS = 3
CROWDED_LINES = 10  # more lines than this in a panel: one panel per plugin, a smaller legend
LABEL_WIDTH = 40  # axis labels longer than this wrap
HISTOGRAM_HEIGHT = 0.2  # a reliability diagram's per-bin count histogram: its tallest bar
SHIFT_PARAMS = ("shift", "intensity")  # a scalar with both: one corruption at one intensity
SHIFT_BOX_METRICS = ("accuracy", "ece", "nll", "brier")  # Ovadia et al. 2019, Figure 2's panels
CLEAN_GROUP = "test"  # the box group of the unshifted test split (the record without params)
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
    n: np.ndarray | None = None  # each point's sample size, when known (a proportion)
    wilson: bool = False  # the band is the 95% Wilson interval of each point
    band: str = ""  # a recorded band: what it is, for the caption ("± test_regret_ci95")

    def n_text(self) -> str:
        """``n=128`` or ``n=40..128`` for the legend; empty when unknown."""
        if self.n is None or not len(self.n):
            return ""
        low, high = int(np.nanmin(self.n)), int(np.nanmax(self.n))
        return f"n={low}" if low == high else f"n={low}..{high}"


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


def _band_key(record: Record, metric: str) -> tuple:
    return (record.suite, record.case, record.plugin, record.model, record.dataset,
            tuple(sorted((k, str(v)) for k, v in record.params.items())), metric)


def band_from(y: np.ndarray, parts: dict[str, tuple[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, str] | None:
    """The band around ``y`` from its recorded siblings (role -> (metric, values)): lower and
    upper edges, a CI half-width (y ± h) or a standard deviation (y ± 2 sd); with what it is."""
    if "lower" in parts and "upper" in parts:
        (low_name, low), (high_name, high) = parts["lower"], parts["upper"]
        return low, high, f"{low_name} to {high_name}"
    if "half_width" in parts:
        name, half = parts["half_width"]
        return y - half, y + half, f"± {name}"
    if "std" in parts:
        name, std = parts["std"]
        return y - 2 * std, y + 2 * std, f"± 2 x {name}"
    return None


CountIndex = dict[tuple[str, str, str, str], list[Record]]


def count_index(records: Sequence[Record], catalog: MetricCatalog = CATALOG) -> CountIndex:
    """The count records (``unit="examples"``, or a count metric or sample size in the catalog) per case."""
    names = catalog.count_names()
    index: CountIndex = defaultdict(list)
    for record in records:
        if record.series is None and record.value is not None and (record.unit in COUNT_UNITS or record.metric in names):
            index[(record.suite, record.case, record.model, record.dataset)].append(record)
    return index


def _same(a: object, b: object) -> bool:
    if _is_number(a) and _is_number(b):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[arg-type]
    return str(a) == str(b)


def _count_candidates(record: Record, index: CountIndex) -> list[tuple[Record, list[str]]]:
    """Count records for ``record``'s proportion, each with the params it has beyond ``record``'s
    (context params and a param naming the record's plugin left out)."""
    name = CATALOG.sample_size(record.metric)
    if not name:
        return []
    found = []
    for count in index.get((record.suite, record.case, record.model, record.dataset), []):
        if count.metric != name or (count.plugin and record.plugin and count.plugin != record.plugin):
            continue
        if any(k in record.params and not _same(v, record.params[k]) for k, v in count.params.items()):
            continue
        extra = [k for k, v in count.params.items() if k not in record.params and k not in CONTEXT_PARAMS
                 and not (record.plugin and str(v) == record.plugin)]
        found.append((count, extra))
    return found


def count_for(record: Record, index: CountIndex) -> float | None:
    """The n of a scalar proportion record: the matching count record sharing most params, or None."""
    best: tuple[int, float] | None = None
    for count, extra in _count_candidates(record, index):
        if extra or count.value is None or not math.isfinite(count.value):
            continue
        score = len(set(count.params) & set(record.params))
        if best is None or score > best[0]:
            best = (score, float(count.value))
        elif score == best[0] and best[1] != count.value:
            return None  # two counts fit equally well: unknown rather than wrong
    return best[1] if best else None


def counts_along(record: Record, xs: np.ndarray, index: CountIndex) -> np.ndarray | None:
    """Each point's n for a curve: one count for all points, or the counts recorded per value
    of the swept parameter (``examples`` per ``eps``) matching ``xs``."""
    constant = count_for(record, index)
    if constant is not None:
        return np.full(len(xs), constant)
    per_value: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for count, extra in _count_candidates(record, index):
        if len(extra) == 1 and _is_number(count.params[extra[0]]) and count.value is not None:
            per_value[extra[0]].append((float(count.params[extra[0]]), float(count.value)))
    for pairs in per_value.values():
        found = []
        for x in xs:
            match = [n for value, n in pairs if math.isclose(value, float(x), rel_tol=1e-9, abs_tol=1e-12)]
            if len(set(match)) != 1:
                break
            found.append(match[0])
        else:
            return np.array(found, dtype=float)
    return None


def with_wilson(line: Line) -> Line:
    """``line`` with a 95% Wilson band from its n, unless it has a band already (seeds, recorded)."""
    if line.n is None or line.lower is not None or len(line.n) != len(line.y):
        return line
    lower, upper = np.full(len(line.y), np.nan), np.full(len(line.y), np.nan)
    for i, (p, n) in enumerate(zip(line.y, line.n)):
        if n > 0 and math.isfinite(p) and 0.0 <= p <= 1.0:
            lower[i], upper[i] = wilson_interval(p * n, n, 0.05)
    return replace(line, lower=lower, upper=upper, wilson=True)


def _t95(n: int) -> float:
    """Two-sided 95% Student t quantile for n samples (n - 1 degrees of freedom)."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


Curve = tuple[np.ndarray, np.ndarray, "np.ndarray | None", "np.ndarray | None"]  # x, y, band low, band high


def aggregate(label: str, curves: list[Curve], plugin: str = "", n: np.ndarray | None = None) -> Line:
    """One line from one curve (with its Wilson band when its n is known), or the mean and
    95% CI of several (seeds) on a common x grid."""
    if len(curves) == 1:
        x, y, lower, upper = curves[0]
        return with_wilson(Line(label, x, y, lower, upper, plugin=plugin, n=n))
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
        counts = count_index(records)
        related = {m: CATALOG.relation(m, metrics) for m in metrics}  # band edges, intervals, counts
        bands: dict[tuple, dict[str, tuple[str, np.ndarray]]] = defaultdict(dict)
        for record in curves:
            if related[record.metric]:
                centre, role = related[record.metric]
                series = record.series or {}
                bands[_band_key(record, centre)][role] = (record.metric, np.asarray(series["y"], dtype=float))
        grouped: dict[tuple[str, ...], list] = defaultdict(list)
        for record in curves:
            if related[record.metric]:
                continue  # drawn with its centre curve, not as a figure of its own
            series = record.series or {}
            x = np.asarray(series["x"], dtype=float)
            y = np.asarray(series["y"], dtype=float)
            band = {role: v for role, v in bands.get(_band_key(record, record.metric), {}).items()
                    if len(v[1]) == len(y)}
            drawn = band_from(y, band)
            lower, upper, note = drawn if drawn else (None, None, "")
            n = band["count"][1] if "count" in band else counts_along(record, x, counts)
            key = (record.suite, record.metric, _panel_title(record), _label(record), case_label(record.case),
                   record.plugin, series.get("x_label", ""))
            grouped[key].append((x, y, lower, upper, n, note))
            plan = plans.setdefault(
                (record.suite, record.metric, series.get("x_label", "")),
                FigurePlan(record.suite, record.metric, _layout(record.metric),
                           series.get("x_label", ""), series.get("y_label", "")),
            )
            plan.panels.setdefault(_panel_title(record), Panel(_panel_title(record)))
        cases_per_label: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
        for suite, metric, panel, label, case, _, _ in grouped:
            cases_per_label[(suite, metric, panel, label)].add(case)
        for (suite, metric, panel, label, case, plugin, x_label), members in grouped.items():
            if len(cases_per_label[(suite, metric, panel, label)]) > 1:
                label = f"{label} ({case})"  # same plugin and params in several cases: tell them apart
            lines = plans[(suite, metric, x_label)].panels[panel].lines.setdefault(run_label, [])
            one = len(members) == 1
            n = members[0][4] if one else None  # over seeds: the t band, not Wilson
            line = aggregate(label, [m[:4] for m in members], plugin, n)
            lines.append(replace(line, band=members[0][5]) if one and members[0][5] else line)
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
    first = [r for r in runs[0][1] if r.value is not None and r.unit not in COUNT_UNITS
             and not is_shift_cell(r)] if runs else []
    recorded_curves = {(r.suite, r.metric) for r in runs[0][1] if r.series is not None} if runs else set()
    by_metric: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for record in first:
        by_metric[(record.suite, record.metric)].append(record)
    scalars: dict[str, set[str]] = defaultdict(set)
    for suite, metric in by_metric:
        scalars[suite].add(metric)
    related = {(suite, m): CATALOG.relation(m, names) for suite, names in scalars.items() for m in names}
    plans = []
    for (suite, metric), records in sorted(by_metric.items()):
        if related[(suite, metric)] or CATALOG.spec(metric, records[0].unit).kind in ("count", "setting"):
            continue  # an interval or band edge is drawn around its metric; a count or a setting is no curve
        sweep = _sweep_param(records)
        if sweep is None or (suite, metric) in skip:
            continue
        param, numeric = sweep
        if (suite, f"{metric}_vs_{param}") in recorded_curves:
            continue  # the suite records this sweep as a curve already: one figure, not two
        plan = FigurePlan(suite, metric, "line" if numeric else "bars", param, metric)
        missing = None if numeric else MISSING_CATEGORY.get(param)
        if not numeric:
            plan.categories = sorted({str(r.params[param]) for r in records if param in r.params})
            if missing and any(param not in r.params for r in records):
                plan.categories.insert(0, missing)  # e.g. the in-distribution value before the OOD sets
        for run_label, run_records in runs:
            counts = count_index(run_records)
            points: dict[tuple[str, str, str], dict[str, dict[object, float]]] = defaultdict(lambda: defaultdict(dict))
            sizes: dict[tuple[str, str, str], dict[str, dict[object, float]]] = defaultdict(lambda: defaultdict(dict))
            edges: dict[tuple, dict[object, dict[str, tuple[str, float]]]] = defaultdict(lambda: defaultdict(dict))
            for record in run_records:
                if is_shift_cell(record):
                    continue  # drawn as boxes (shift_box_plans)
                relation = related.get((suite, record.metric)) if record.suite == suite else None
                if relation and relation[0] == metric and record.value is not None and param in record.params:
                    x = record.params[param] if numeric else str(record.params[param])
                    line_key = (_panel_title(record), _label(record, skip=(param,)), record.plugin)
                    seed = str({k: record.params[k] for k in SEED_PARAMS if k in record.params})
                    edges[(line_key, seed)][x][relation[1]] = (record.metric, record.value)
                if record.suite != suite or record.metric != metric or record.value is None:
                    continue
                if (param not in record.params and missing is None) or not math.isfinite(record.value):
                    continue
                seed = str({k: record.params[k] for k in SEED_PARAMS if k in record.params})
                x = record.params[param] if numeric else str(record.params.get(param, missing))
                line_key = (_panel_title(record), _label(record, skip=(param,)), record.plugin)
                points[line_key][seed][x] = record.value
                n = count_for(record, counts)
                if n is not None:
                    sizes[line_key][seed][x] = n
            for line_key, by_seed in points.items():
                panel, label, plugin = line_key
                target = plan.panels.setdefault(panel, Panel(panel)).lines.setdefault(run_label, [])
                one = len(by_seed) == 1  # a single seed: each point's n gives its Wilson band
                known = next(iter(sizes[line_key].values()), {}) if one else {}
                if numeric:
                    curves: list[Curve] = []
                    for xy in by_seed.values():
                        xs = sorted(xy)
                        curves.append((np.array(xs, dtype=float), np.array([xy[x] for x in xs]), None, None))
                    xs = sorted(next(iter(by_seed.values())))
                    n = np.array([known[x] for x in xs], dtype=float) if one and all(x in known for x in xs) else None
                    seed = next(iter(by_seed))
                    drawn = _recorded_band(curves[0][1], xs, edges.get((line_key, seed), {})) if one else None
                    if drawn is not None:  # a recorded interval (final_test_accuracy_ci95) wins over Wilson
                        lower, upper, note = drawn
                        curves = [(curves[0][0], curves[0][1], lower, upper)]
                        target.append(replace(aggregate(label, curves, plugin), band=note))
                    else:
                        target.append(aggregate(label, curves, plugin, n))
                else:
                    values = np.array([[xy.get(c, np.nan) for c in plan.categories] for xy in by_seed.values()])
                    n = (np.array([known.get(c, np.nan) for c in plan.categories], dtype=float)
                         if one and known else None)
                    with np.errstate(all="ignore"):
                        line = Line(label, np.arange(len(plan.categories)), np.nanmean(values, axis=0),
                                    plugin=plugin, n=n)
                    target.append(_bar_wilson(line))
        first_lines = [line for panel in plan.panels.values() for line in panel.lines.get(runs[0][0], [])]
        if numeric and not any(len(line.x) >= 2 for line in first_lines):
            continue  # the parameter differs between cases, not along any line: nothing to draw against it
        if numeric and all(np.ptp(line.y) == 0 for line in first_lines if len(line.y)):
            continue  # flat along the sweep (clean accuracy vs eps): the leaderboard says it in one number
        plans.append(plan)
    return plans


def _recorded_band(y: np.ndarray, xs: list, edges: dict[object, dict[str, tuple[str, float]]]
                   ) -> tuple[np.ndarray, np.ndarray, str] | None:
    """A swept scalar's band from the interval or band-edge records at each of its points."""
    if not edges or any(x not in edges for x in xs):
        return None
    roles = set.intersection(*(set(edges[x]) for x in xs))
    parts = {role: (edges[xs[0]][role][0], np.array([edges[x][role][1] for x in xs], dtype=float))
             for role in roles}
    return band_from(y, parts)


def _bar_wilson(line: Line) -> Line:
    """Wilson intervals for the bars whose n is known (NaN elsewhere)."""
    if line.n is None:
        return line
    lower, upper = np.full(len(line.y), np.nan), np.full(len(line.y), np.nan)
    for i, (p, n) in enumerate(zip(line.y, line.n)):
        if math.isfinite(n) and n > 0 and math.isfinite(p) and 0.0 <= p <= 1.0:
            lower[i], upper[i] = wilson_interval(p * n, n, 0.05)
    known = line.n[np.isfinite(line.n)]
    return replace(line, lower=lower, upper=upper, wilson=True, n=known if len(known) else None)


def is_shift_cell(record: Record) -> bool:
    """A scalar of one corruption at one intensity (params ``shift`` and a numeric ``intensity``)."""
    return (record.series is None and record.value is not None and all(k in record.params for k in SHIFT_PARAMS)
            and _is_number(record.params["intensity"]))


Boxes = dict[str, dict[str, list[float]]]  # estimator label -> box group -> values over the corruptions


@dataclass
class BoxPlan:
    """Ovadia et al. 2019's Figure 2 for one (model, dataset): per metric and run, the boxes."""

    suite: str
    panel: str
    groups: list[str]  # "test" (when recorded), then the intensities
    corruptions: list[str]
    metrics: dict[str, dict[str, Boxes]] = field(default_factory=dict)  # metric -> run label -> boxes

    def box_count(self, metric: str, run_label: str) -> int:
        return sum(len(groups) for groups in self.metrics.get(metric, {}).get(run_label, {}).values())


def _mean_over_seeds(values: dict[tuple, list[float]]) -> dict[tuple, float]:
    return {key: float(np.mean(v)) for key, v in values.items() if v}


def _shift_boxes(records: Sequence[Record], suite: str, panel: str, metric: str) -> Boxes:
    """One run's boxes of ``metric`` on one panel: each corruption's value (mean over seeds)
    per estimator and intensity, and the clean test value of the estimators that have boxes."""
    cells: dict[tuple, list[float]] = defaultdict(list)
    clean: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        if r.suite != suite or r.metric != metric or _panel_title(r) != panel or r.value is None:
            continue
        if is_shift_cell(r) and math.isfinite(r.value):
            label = _label(r, skip=SHIFT_PARAMS)
            cells[(label, f"{float(r.params['intensity']):g}", str(r.params["shift"]))].append(r.value)
        elif r.series is None and not any(k not in SEED_PARAMS for k in r.params) and math.isfinite(r.value):
            clean[(_label(r), CLEAN_GROUP)].append(r.value)
    boxes: Boxes = defaultdict(lambda: defaultdict(list))
    for (label, group, _), value in sorted(_mean_over_seeds(cells).items()):
        boxes[label][group].append(value)
    for (label, group), value in _mean_over_seeds(clean).items():
        if label in boxes:
            boxes[label][group].append(value)
    return {label: dict(groups) for label, groups in boxes.items()}


def shift_box_plans(runs: Sequence[tuple[str, Sequence[Record]]]) -> list[BoxPlan]:
    """A plan per (suite, model / dataset) whose first run records shift cells."""
    if not runs:
        return []
    panels: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for record in runs[0][1]:
        if is_shift_cell(record) and record.metric in SHIFT_BOX_METRICS:
            panels[(record.suite, _panel_title(record))].append(record)
    plans = []
    for (suite, panel), cells in sorted(panels.items()):
        intensities = sorted({float(r.params["intensity"]) for r in cells})
        plan = BoxPlan(suite, panel, [f"{i:g}" for i in intensities], sorted({str(r.params["shift"]) for r in cells}))
        for metric in (m for m in SHIFT_BOX_METRICS if any(r.metric == m for r in cells)):
            plan.metrics[metric] = {label: _shift_boxes(records, suite, panel, metric) for label, records in runs}
        first = [boxes for by_run in plan.metrics.values() for boxes in by_run[runs[0][0]].values()]
        if any(CLEAN_GROUP in groups for groups in first):
            plan.groups.insert(0, CLEAN_GROUP)
        plans.append(plan)
    return plans


def _box_stats(values: list[float]) -> dict[str, float]:
    low, q1, median, q3, high = np.percentile(values, [0, 25, 50, 75, 100])
    return {"whislo": low, "q1": q1, "med": median, "q3": q3, "whishi": high}


def draw_boxes(plan: BoxPlan, run_labels: Sequence[str], colors: Mapping[str, str] | None = None) -> MplFigure:
    """A panel per metric: per group (test, intensities) a box per estimator, side by side,
    one colour per estimator (``colors``, else the plan's own); a second run's boxes dashed and
    unfilled over the first's."""
    metrics = list(plan.metrics)
    cols = min(2, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = MplFigure(figsize=(5.6 * cols, 3.6 * rows + 0.5))
    axes = fig.subplots(rows, cols, squeeze=False)
    labels = sorted(_box_labels(plan), key=_natural)
    colors = colors or label_colors(labels)
    width = 0.8 / max(1, len(labels))
    for ax, metric in zip(axes.flat, metrics):
        for run_index, run_label in enumerate(run_labels):
            for k, label in enumerate(labels):
                for g, group in enumerate(plan.groups):
                    values = plan.metrics[metric].get(run_label, {}).get(label, {}).get(group)
                    if not values:
                        continue
                    dashed = "-" if run_index == 0 else "--"
                    lines = {"linestyle": dashed, "color": colors[label]}
                    ax.bxp([_box_stats(values)], positions=[g - 0.4 + (k + 0.5) * width], widths=width * 0.8,
                           showfliers=False, patch_artist=True, manage_ticks=False,
                           boxprops={"linestyle": dashed, "edgecolor": colors[label],
                                     "facecolor": colors[label] if run_index == 0 else "none",
                                     "alpha": 0.75 if run_index == 0 else 1.0},
                           whiskerprops=lines, capprops=lines, medianprops={"color": "#222222"})
        ax.set_xticks(range(len(plan.groups)), plan.groups)
        ax.set_xlim(-0.6, len(plan.groups) - 0.4)
        ax.set_xlabel("shift intensity")
        ax.set_ylabel(metric)
        ax.grid(True, axis="y", alpha=0.3)
    handles = [Patch(facecolor=colors[label], label=label) for label in labels]
    if len(run_labels) > 1:
        handles.append(Line2D([], [], color="#555555", linestyle="--", label=f"dashed: {run_labels[1]}"))
    axes.flat[0].legend(handles=handles, fontsize=7, loc="best")
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"{plan.suite}: shift intensity, {plan.panel}", fontsize=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig


def _box_caption(plan: BoxPlan, run_labels: Sequence[str]) -> str:
    metric = next(iter(plan.metrics))
    estimators = len(plan.metrics[metric].get(run_labels[0], {}))
    text = (f"{', '.join(plan.metrics)} under shift (Ovadia et al. 2019, Figure 2): per intensity a box over the "
            f"{len(plan.corruptions)} corruptions ({', '.join(plan.corruptions)}): whiskers min and max, box "
            f"quartiles, line median; one colour per estimator ({estimators} estimators, "
            f"{plan.box_count(metric, run_labels[0])} boxes per panel)")
    if CLEAN_GROUP in plan.groups:
        text += f"; {CLEAN_GROUP}: the clean test split"
    if len(run_labels) > 1:
        text += f"; {run_labels[0]} solid, {run_labels[1]} dashed"
    return text


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


def label_colors(labels: Iterable[str]) -> dict[str, str]:
    """One colour per label, in natural order; a sequential map when there are many."""
    ordered = sorted(set(labels), key=_natural)
    if len(ordered) <= len(COLORS):
        return {label: COLORS[i] for i, label in enumerate(ordered)}
    cmap = colormaps["viridis"]
    return {label: to_hex(cmap(i / (len(ordered) - 1))) for i, label in enumerate(ordered)}


def _line_labels(plan: FigurePlan) -> set[str]:
    return {line.label for panel in plan.panels.values() for lines in panel.lines.values() for line in lines}


def _box_labels(plan: BoxPlan) -> set[str]:
    return {label for runs in plan.metrics.values() for boxes in runs.values() for label in boxes}


def suite_colors(plans: Iterable[FigurePlan], boxes: Iterable[BoxPlan]) -> dict[str, dict[str, str]]:
    """Per suite, one colour per label over all of its figures: a plugin keeps its colour in
    every panel and figure of its suite."""
    labels: dict[str, set[str]] = defaultdict(set)
    for plan in plans:
        labels[plan.suite] |= _line_labels(plan)
    for box in boxes:
        labels[box.suite] |= _box_labels(box)
    return {suite: label_colors(names) for suite, names in labels.items()}


def draw(plan: FigurePlan, run_labels: Sequence[str], colors: Mapping[str, str] | None = None) -> MplFigure:
    """A matplotlib figure for a plan: panels in a grid; the first run solid, the second dashed."""
    panels = [plan.panels[k] for k in sorted(plan.panels)]
    cols = min(MAX_PANEL_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = MplFigure(figsize=(4.6 * cols, 3.5 * rows + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False)
    colors = colors or label_colors(_line_labels(plan))
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
            n_text = f"n={int(np.nansum(line.n))}" if plan.kind == "reliability" and line.n is not None \
                else line.n_text()  # a diagram's n: every binned example
            label = line.label + (f" ({line.members} seeds, 95% CI)" if line.members > 1 else
                                  f" ({n_text})" if n_text else "")
            if run_index > 0 and plan.kind != "bars":
                label = "_nolegend_"  # the colour says which line; one legend entry says dashed = baseline
            if plan.kind == "bars":
                label += f" [{run_label}]" if overlay else ""
                xs = line.x + bar_index * width - 0.4 + width / 2
                ax.bar(xs, line.y, width, color=color, label=label,
                       alpha=1.0 if run_index == 0 else 0.45, hatch=None if run_index == 0 else "//")
                _error_bars(ax, xs, line)
                bar_index += 1
                continue
            if plan.kind == "histogram":
                ax.step(line.x, line.y, where="mid", color=color, linestyle=style, label=label)
                ax.fill_between(line.x, line.y, step="mid", color=color, alpha=0.12 if run_index == 0 else 0.05)
            else:
                marker = "o" if plan.kind == "reliability" or len(line.x) <= 12 else None
                ax.plot(line.x, line.y, color=color, linestyle=style, marker=marker, markersize=3.5, label=label)
            if plan.kind == "reliability":
                if run_index == 0:
                    _error_bars(ax, line.x, line, color)  # per bin: Wilson interval of its accuracy
                continue
            if line.lower is not None and line.upper is not None:
                ax.fill_between(line.x, line.lower, line.upper, color=color, alpha=0.2 if run_index == 0 else 0.1,
                                linewidth=0)
    if overlay and plan.kind != "bars":
        ax.plot([], [], color="#555555", linestyle="--", label=f"dashed: {run_labels[1]}")
    if plan.kind == "reliability":
        _bin_counts(ax, panel.lines.get(run_labels[0], []), colors)
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


def _error_bars(ax, xs: np.ndarray, line: Line, color: str = "#333333") -> None:
    """Error bars from a line's band where it is known (bars, reliability bins)."""
    if line.lower is None or line.upper is None:
        return
    known = np.isfinite(line.lower) & np.isfinite(line.upper) & np.isfinite(line.y)
    if known.any():
        low = np.clip(line.y[known] - line.lower[known], 0, None)
        high = np.clip(line.upper[known] - line.y[known], 0, None)
        ax.errorbar(np.asarray(xs)[known], line.y[known], yerr=[low, high], fmt="none", ecolor=color,
                    elinewidth=0.9, capsize=2, alpha=0.6)


def _bin_counts(ax, lines: Sequence[Line], colors: dict[str, str]) -> None:
    """Each reliability bin's examples as a histogram along the bottom (the fullest bin a fifth
    of the height), with the fullest bin's count written beside it."""
    counted = [line for line in lines if line.n is not None and len(line.n) == len(line.x)]
    if not counted:
        return
    top = max(float(np.nanmax(line.n)) for line in counted)
    width = 0.9 / (15 * len(counted))  # thin bars side by side, about one bin wide together
    for i, line in enumerate(counted):
        offset = (i - (len(counted) - 1) / 2) * width
        heights = HISTOGRAM_HEIGHT * line.n / top
        ax.bar(line.x + offset, heights, width, color=colors[line.label], alpha=0.35, linewidth=0)
        if len(counted) == 1:
            for x, h, n in zip(line.x, heights, line.n):
                ax.annotate(f"{int(n)}", (x, h), textcoords="offset points", xytext=(0, 1), ha="center",
                            fontsize=6, color="#444444")
    ax.text(0.02, HISTOGRAM_HEIGHT + 0.01, f"bars: examples per bin\n(max {int(top)})", ha="left", va="bottom",
            fontsize=6.5, color="#444444", transform=ax.transData)
    ax.set_ylim(0, 1)


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
    lines = [line for panel in plan.panels.values() for run_lines in panel.lines.values() for line in run_lines]
    if any(line.members > 1 for line in lines):
        text += "; bands: 95% confidence interval over seeds"
    notes = sorted({line.band for line in lines if line.band})
    if notes:
        text += "; bands: " + ", ".join(notes)
    if any(line.wilson for line in lines):
        text += ("; error bars" if plan.kind in ("bars", "reliability") else "; bands") + \
            ": 95% Wilson interval of each proportion, n in the legend"
    if plan.kind == "reliability" and any(line.n is not None for line in lines):
        text += "; bars at the bottom: examples per bin"
    if len(run_labels) > 1:
        text += f"; {run_labels[0]} solid, {run_labels[1]} dashed"
    return text


def render_figures(runs: Sequence[tuple[str, Sequence[Record]]]) -> list[RenderedFigure]:
    """Every figure of the report, in suite order: curves first, then parameter sweeps, then
    the shift-intensity boxes."""
    labels = [label for label, _ in runs]
    curves = series_plans(runs)
    plans = [split_crowded(plan) for plan in curves + sweep_plans(runs, {(p.suite, p.metric) for p in curves})]
    plans.sort(key=lambda p: p.suite)
    boxes = shift_box_plans(runs)
    colors = suite_colors(plans, boxes)
    rendered = []
    for plan in plans:
        if not any(panel.lines for panel in plan.panels.values()):
            continue
        fig = draw(plan, labels, colors[plan.suite])
        title = f"{plan.suite}: {plan.metric}"
        if sum((p.suite, p.metric) == (plan.suite, plan.metric) for p in plans) > 1:
            title += f" ({plan.x_label})"  # e.g. one figure per norm: eps (linf), eps (l2)
        rendered.append(RenderedFigure(plan.suite, title, _caption(plan, labels), to_data_url(fig)))
    for box in boxes:
        title = f"{box.suite}: shift_intensity" + (f" ({box.panel})" if box.panel else "")
        figure = draw_boxes(box, labels, colors[box.suite])
        rendered.append(RenderedFigure(box.suite, title, _box_caption(box, labels), to_data_url(figure)))
    rendered.sort(key=lambda f: f.suite)  # stable: each suite's figures keep their order
    return rendered
