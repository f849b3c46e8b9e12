"""The metric catalog: its specs and lookups, and that it covers every metric name the
built-in suites and claims can record.

The recorded names are derived from the code that records them, not listed by hand: every
``bt_record(NAME, ...)``, ``bt_record.series(NAME, ...)`` and ``bt_record.proportion(NAME,
...)`` call is found in the syntax tree of the suites and of the harness modules they hand
their recorder to (``benchtool/harness/*.py``), and NAME evaluated for every value its
variables take: literal loops and the module's constants are read from the code; the few names built from runtime values
(the uncertainty scores, the multitask tasks and every registered loss weighting's state,
the memorization recipe's numbers) are computed by calling that code. A recording call
whose name cannot be resolved fails the test, so a new kind of call cannot slip past it.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import itertools
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from benchtool.metrics import catalog as catalog_module
from benchtool.metrics.catalog import (
    BUILTIN_FAMILIES, BUILTIN_SPECS, CATALOG, KINDS, MetricCatalog, MetricFamily, MetricSpec, Tolerance,
    UnknownMetricWarning, spec_for, unknown_spec, warn_if_unknown,
)

ROOT = Path(__file__).resolve().parent.parent
SUITES = sorted((ROOT / "suites").glob("test_*.py"))
HARNESS = sorted((ROOT / "benchtool" / "harness").glob("*.py"))
RECORDING_FILES = SUITES + HARNESS  # where bt_record(...) calls may be


# --- the catalog itself ---------------------------------------------------------------------------


def test_every_builtin_spec_is_snake_case_and_valid() -> None:
    names = [spec.name for spec in BUILTIN_SPECS]
    assert len(names) == len(set(names))
    for spec in BUILTIN_SPECS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", spec.name), f"{spec.name}: one spelling, snake_case"
        assert spec.kind in KINDS and spec.description, spec.name
        if spec.kind in ("interval", "bound"):
            assert spec.of in CATALOG and spec.direction == "none", spec.name
        if spec.of:
            assert CATALOG.get(spec.of) is not None, f"{spec.name} relates to an uncatalogued {spec.of!r}"
        if spec.sample_size:
            assert CATALOG.get(spec.sample_size) is not None and spec_for(spec.sample_size).kind == "count"


def test_spec_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="direction 'up'"):
        MetricSpec("x", "up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="an interval metric has no better direction"):
        MetricSpec("x_ci95", "higher", kind="interval", of="x", role="half_width")
    with pytest.raises(ValueError, match="'of' and 'role' go together"):
        MetricSpec("x_lower", kind="bound", of="x")
    with pytest.raises(ValueError, match="target"):
        MetricSpec("coverage", "higher", target=0.9)


def test_lookup_by_alias_and_either_spelling() -> None:
    assert spec_for("e-aurc") is spec_for("e_aurc") is CATALOG.get("e_aurc")
    assert spec_for("auroc-max-prob").name == "auroc_max_prob" and spec_for("auroc_max_prob").direction == "higher"
    assert CATALOG.canonical("band-lower") == "predictive_mean_lower"
    assert CATALOG.canonical("not-catalogued") == "not-catalogued"
    assert "survival_rate" in CATALOG and "never-heard-of-it" not in CATALOG


def test_directions_of_the_metrics_the_issue_names() -> None:
    """The names the suites really record have the direction the old policy table meant."""
    assert spec_for("auroc-max-prob").direction == "higher"
    assert spec_for("fpr95-entropy").direction == "lower"
    assert spec_for("survival_rate").direction_for("attacks") == "higher"
    assert spec_for("survival_rate").direction_for("models") == "lower"
    assert spec_for("test_regret").direction == "lower"
    assert spec_for("robust_accuracy").direction_for("attacks") == "lower"
    assert spec_for("robust_accuracy").direction_for("models") == "higher"
    ci = spec_for("final_test_accuracy_ci95")
    assert (ci.kind, ci.direction, ci.of, ci.role, ci.may_be_best, ci.gated) == (
        "interval", "none", "final_test_accuracy", "half_width", False, False)
    assert spec_for("seconds").kind == "timing" and not spec_for("seconds").gated
    assert spec_for("forward_queries").kind == "cost"
    assert spec_for("coverage-90").target == 0.9 and spec_for("coverage-90").gated


def test_derived_forms_follow_their_metric() -> None:
    curve = spec_for("robust_accuracy_vs_eps")
    assert (curve.role, curve.of, curve.x) == ("curve", "robust_accuracy", "eps")
    assert curve.direction_for("attacks") == "lower" and curve.sample_size == "examples"
    assert spec_for("ece_vs_temperature").direction == "lower"  # not catalogued: derived from ece
    assert spec_for("nll_ci95").kind == "interval" and spec_for("nll_ci95").of == "nll"
    assert spec_for("accuracy_lower").kind == "bound" and spec_for("accuracy_upper").role == "upper"
    assert spec_for("rmse_std").role == "std"
    assert spec_for("delta_m_seed").direction == "higher" and spec_for("delta_m_seed").of == "delta_m"
    assert spec_for("weight_digit").kind == "diagnostic"  # a family
    assert spec_for("sigma_centre_curve").of == "sigma_centre"
    assert spec_for("test_regret_ci95_lower").kind == "unknown"  # no band of a band
    assert CATALOG.sample_size("survival_rate_vs_eps") == "fooled_examples"
    assert CATALOG.sample_size("test_accuracy_curve") == "test_examples"
    assert CATALOG.sample_size("nll") == ""


def test_unknown_names_get_the_documented_default() -> None:
    spec = spec_for("my_plugin_score")
    assert (spec.kind, spec.direction, spec.gated, spec.may_be_best, spec.known) == (
        "unknown", "none", False, True, False)
    assert unknown_spec("latency", "ms").kind == "timing"
    assert spec_for("latency", "s per example").kind == "timing"
    assert spec_for("seconds", "").kind == "timing"  # catalogued: no unit needed


def test_relation_finds_the_centre_among_recorded_siblings() -> None:
    siblings = ["band-mean", "band-lower", "band-upper", "epistemic-std", "aleatoric-std"]
    assert CATALOG.relation("band-lower", siblings) == ("band-mean", "lower")
    assert CATALOG.relation("band-upper", siblings) == ("band-mean", "upper")
    assert CATALOG.relation("epistemic-std", siblings) is None  # a curve of its own, not a band of "epistemic"
    assert CATALOG.relation("band-mean", siblings) is None
    now = ["predictive_mean", "predictive_mean_lower", "predictive_mean_upper"]
    assert CATALOG.relation("predictive_mean_upper", now) == ("predictive_mean", "upper")
    assert CATALOG.relation("test_regret_ci95", ["test_regret"]) == ("test_regret", "half_width")
    assert CATALOG.relation("test_regret_ci95", []) is None  # no centre recorded: drawn on its own
    assert CATALOG.relation("reliability_count", ["reliability"]) == ("reliability", "count")
    # names the catalog does not know relate by their suffix to a recorded sibling
    assert CATALOG.relation("loss_std", ["loss"]) == ("loss", "std")
    assert CATALOG.relation("score-lower", ["score-mean"]) == ("score-mean", "lower")
    assert CATALOG.relation("score_hi", ["score"]) == ("score", "upper")


def test_plugins_register_their_own_metrics() -> None:
    catalog = MetricCatalog(BUILTIN_SPECS, BUILTIN_FAMILIES)
    assert catalog.spec("certified_radius").kind == "unknown"
    spec = catalog.register(MetricSpec("certified_radius", "higher", "l2", tolerance=Tolerance(0.01),
                                       description="median certified radius"))
    assert catalog.spec("certified_radius") is spec and catalog.spec("certified-radius") is spec
    assert catalog.spec("certified_radius_vs_sigma").direction == "higher"
    catalog.register(spec)  # the same spec again is a no-op
    with pytest.raises(ValueError, match="already catalogued"):
        catalog.register(MetricSpec("certified_radius", "lower", description="other"))
    with pytest.raises(ValueError, match="'ece' is already catalogued as 'ece'"):
        catalog.register(MetricSpec("expected_calibration", "lower", aliases=("ece",)))
    catalog.register(MetricSpec("certified_radius", "lower", description="other"), replace_existing=True)
    assert catalog.spec("certified_radius").direction == "lower"
    catalog.register(MetricSpec("certified_radius", description="renamed", aliases=("radius",)), replace_existing=True)
    assert catalog.get("radius").description == "renamed"
    family = MetricFamily(r"loss_[a-z]+", MetricSpec("loss_<task>", "lower", description="a task's loss"))
    assert MetricCatalog([], [family]).spec("loss_digit").direction == "lower"
    assert "certified_radius" not in CATALOG  # the default catalog is untouched


def test_an_unknown_recorded_name_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_module, "_warned", set())
    with pytest.warns(UnknownMetricWarning, match="'my_metric' is not in the metric catalog.*register"):
        assert warn_if_unknown("my_metric") is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_unknown("my_metric") is False  # once per name
        assert warn_if_unknown("accuracy") is True
        assert warn_if_unknown("robust_accuracy_vs_eps") is True


def test_docs_table_is_the_catalog() -> None:
    """docs/metrics.md carries the catalog's table (``python -m benchtool.metrics.catalog``)."""
    page = (ROOT / "docs" / "metrics.md").read_text()
    begin, end = "<!-- catalog: begin -->\n", "<!-- catalog: end -->"
    assert begin in page and end in page
    table = page[page.index(begin) + len(begin):page.index(end)]
    assert table == CATALOG.markdown(), "docs/metrics.md is stale: python -m benchtool.metrics.catalog prints it"


# --- every name the built-in suites and claims record is catalogued -------------------------------


class Unresolved(Exception):
    pass


def _suite_module(path: Path) -> Any:
    """The module of a file of :data:`RECORDING_FILES` (a suite or a harness module)."""
    return importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))


def _uncertainty_scores() -> list[str]:
    from benchtool.harness.uncertainty import uncertainty_scores

    stats = SimpleNamespace(mean=np.full((2, 3), 1 / 3), entropy=np.zeros(2), mutual_information=np.zeros(2))
    return list(uncertainty_scores(stats))


def _task_names() -> list[str]:
    from benchtool.harness.limits.multitask import TASKS

    return [task.name for task in TASKS]


def _weighting_state_keys() -> list[str]:
    """Every key a registered loss weighting's ``state()`` records, on the multitask problem's tasks."""
    from benchtool.host import load_host
    from benchtool.harness.limits.multitask import TASKS

    registry = load_host().registry
    keys: list[str] = []
    for name in registry.names("loss_weightings"):
        weighting = registry.create("loss_weightings", name)
        weighting.start(TASKS)
        keys += [k for k in weighting.state() if k not in keys]
    return keys


def _memorization_numbers(function: ast.FunctionDef) -> list[str]:
    """``{**setup.as_params(), **sizes}`` in test_memorization: the recipe's numbers at every
    budget and the keys of the ``sizes`` dict literal."""
    from benchtool.harness.limits.memorization import memorization_recipe

    names = {k for budget in ("small", "default", "full") for k in memorization_recipe(budget).as_params()}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "sizes" for t in node.targets):
            names |= {ast.literal_eval(k) for k in node.value.keys}  # type: ignore[attr-defined]
    return sorted(names)


# (recording file, variable) -> the values a recording call's name variable takes, computed from the code
RUNTIME_BINDINGS = {
    ("uncertainty.py", "score"): lambda fn: _uncertainty_scores(),
    ("test_multitask.py", "task"): lambda fn: _task_names(),
    ("test_multitask.py", "key"): lambda fn: _weighting_state_keys(),
    ("test_generalization.py", "name"): _memorization_numbers,
}


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _values_of(node: ast.expr, module: Any) -> list[Any]:
    """The values an iterable expression yields, when the code spells them out: a literal, a
    module constant, or ``.items()`` / ``.keys()`` of a module dict."""
    if isinstance(node, (ast.Tuple, ast.List)):
        return [ast.literal_eval(e) if not isinstance(e, ast.Tuple) else
                tuple(_literal_or_none(x) for x in e.elts) for e in node.elts]
    if isinstance(node, ast.Name) and isinstance(getattr(module, node.id, None), (tuple, list, dict, set, frozenset)):
        return list(getattr(module, node.id))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("items", "keys")
            and isinstance(node.func.value, ast.Name) and hasattr(module, node.func.value.id)):
        mapping = getattr(module, node.func.value.id)
        return list(mapping.items() if node.func.attr == "items" else mapping.keys())
    raise Unresolved(ast.unparse(node))


def _literal_or_none(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None  # an expression beside the name (the values recorded), not needed


def _target_names(target: ast.expr) -> list[str | None]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple):
        return [t.id if isinstance(t, ast.Name) else None for t in target.elts]
    return [None]


def _bindings(var: str, call: ast.Call, parents: dict, module: Any, path: Path) -> list[Any]:
    """Every value the variable ``var`` of a recording call's name takes."""
    node: ast.AST = call
    function = call
    while function in parents and not isinstance(function, ast.FunctionDef):
        function = parents[function]
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.For, ast.comprehension)) and var in _target_names(node.target):
            index = _target_names(node.target).index(var)
            iterable = node.iter
            if (isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and iterable.func.id == "zip"
                    and isinstance(node.target, ast.Tuple)):
                iterable, unpack = iterable.args[index], False  # zip(NAMES, values): only NAMES matters
            else:
                unpack = isinstance(node.target, ast.Tuple)
            try:
                values = _values_of(iterable, module)
            except Unresolved:
                break
            return [v[index] if unpack else v for v in values]
    resolver = RUNTIME_BINDINGS.get((path.name, var))
    if resolver is None:
        raise Unresolved(f"{path.name}:{call.lineno}: variable {var!r} in {ast.unparse(call.args[0])}")
    return list(resolver(function))


def _recording_calls(tree: ast.AST) -> Iterator[tuple[ast.Call, str]]:
    """Every ``bt_record(...)`` (scalar), ``bt_record.series(...)`` (curve) and
    ``bt_record.proportion(...)`` (proportion) call in a module's syntax tree."""
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        func = call.func
        if isinstance(func, ast.Name) and func.id == "bt_record":
            yield call, "scalar"
        elif (isinstance(func, ast.Attribute) and func.attr in ("series", "proportion")
              and getattr(func.value, "id", "") == "bt_record"):
            yield call, "curve" if func.attr == "series" else "proportion"


def recorded_names(path: Path) -> Iterator[tuple[str, str, int]]:
    """(metric name, "scalar" or "curve", line) for every name a suite or harness module can record."""
    tree = ast.parse(path.read_text(), str(path))
    parents = _parents(tree)
    module = _suite_module(path)
    for call, shape in _recording_calls(tree):
        suffixes = ("",)
        if shape == "proportion":
            shape, suffixes = "scalar", ("", "_ci_low", "_ci_high")  # the value and its Wilson interval
        name = call.args[0] if call.args else next(k.value for k in call.keywords if k.arg == "metric")
        free = sorted({n.id for n in ast.walk(name) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
                       and not hasattr(module, n.id)})
        choices = [_bindings(var, call, parents, module, path) for var in free]
        code = compile(ast.Expression(name), str(path), "eval")
        for values in itertools.product(*choices):
            for suffix in suffixes:
                yield eval(code, vars(module), dict(zip(free, values))) + suffix, shape, call.lineno  # noqa: S307


@pytest.fixture(scope="module")
def suite_vocabulary() -> dict[str, set[str]]:
    """name -> the shapes (scalar, curve) it is recorded as, over every built-in suite and the
    harness modules that record for them."""
    vocabulary: dict[str, set[str]] = {}
    for path in RECORDING_FILES:
        for name, shape, _ in recorded_names(path):
            vocabulary.setdefault(name, set()).add(shape)
        for analysis in getattr(_suite_module(path), "ANALYSES", ()):  # run-level analyses declare theirs
            for name in analysis.metrics:
                vocabulary.setdefault(name, set()).add("scalar")
    return vocabulary


def test_the_vocabulary_is_derived_from_every_suite(suite_vocabulary: dict[str, set[str]]) -> None:
    """A sanity check of the derivation itself: names of every kind of call are found."""
    for name in ("robust_accuracy", "robust_accuracy_vs_eps", "auroc_max_prob", "fpr95_mi", "predictive_mean_lower",
                 "inside_rms_error", "digit_accuracy", "centre_rmse_px", "sigma_centre", "weight_reconstruction_curve",
                 "epochs_max", "num_classes", "final_test_accuracy_ci95", "survival_rate"):
        assert name in suite_vocabulary, name
    assert len(suite_vocabulary) > 70


def test_every_module_that_records_is_read() -> None:
    """Recording calls outside :data:`RECORDING_FILES` would escape the vocabulary: there are none."""
    recording = {path for folder in ("benchtool", "suites", "plugins") for path in (ROOT / folder).rglob("*.py")
                 if any(True for _ in _recording_calls(ast.parse(path.read_text(), str(path))))}
    assert ROOT / "benchtool" / "harness" / "uncertainty.py" in recording  # the harness records for its suite
    assert recording <= set(RECORDING_FILES), sorted(str(p.relative_to(ROOT)) for p in recording - set(RECORDING_FILES))


def test_every_name_the_suites_record_is_snake_case(suite_vocabulary: dict[str, set[str]]) -> None:
    """One spelling: what the suites record is the catalog's snake_case name (kebab-case names
    of older runs stay aliases, for lookups and for comparing with stored runs)."""
    kebab = sorted(name for name in suite_vocabulary if not re.fullmatch(r"[a-z][a-z0-9_]*", name))
    assert kebab == [], f"recorded in another spelling than snake_case: {kebab}"
    renamed = sorted(name for name in suite_vocabulary if CATALOG.canonical(name) != name)
    assert renamed == [], f"recorded under an alias, not the catalog's name: {renamed}"


def test_every_name_the_suites_record_is_catalogued(suite_vocabulary: dict[str, set[str]]) -> None:
    unknown = sorted(name for name in suite_vocabulary if not spec_for(name).known)
    assert unknown == [], f"recorded by a suite but not in benchtool/metrics/catalog.py: {unknown}"
    for name, shapes in sorted(suite_vocabulary.items()):
        spec = spec_for(name)
        expected = "both" if len(shapes) == 2 else next(iter(shapes))
        assert spec.shape == expected, f"{name}: recorded as {sorted(shapes)}, catalogued as {spec.shape}"


def test_every_builtin_spec_is_recorded_by_some_suite(suite_vocabulary: dict[str, set[str]]) -> None:
    """No stale entries: each catalogued name is recorded (in its own or its old spelling)."""
    from benchtool.claims import CLAIM_METRIC

    recorded = {CATALOG.canonical(name) for name in suite_vocabulary} | {CLAIM_METRIC}
    stale = sorted(spec.name for spec in BUILTIN_SPECS if spec.name not in recorded)
    assert stale == [], f"catalogued but recorded by no suite: {stale}"


def test_every_metric_a_claim_reads_is_catalogued(suite_vocabulary: dict[str, set[str]]) -> None:
    claims = [claim for path in SUITES for claim in getattr(_suite_module(path), "CLAIMS", [])]
    assert len(claims) >= 8
    for claim in claims:
        for metric in (*claim.metrics, *([claim.figure] if claim.figure else [])):
            assert spec_for(metric).known, f"claim {claim.id} reads uncatalogued metric {metric!r}"
            assert metric in suite_vocabulary, f"claim {claim.id} reads {metric!r}, which no suite records"


ZOO = ROOT / "tests" / "plugin_zoo"
ZOO_SUITE = '''
import pytest

@pytest.mark.bt(datasets=["digits"])
def test_margin(dataset, bt_record):
    bt_record("zoo_margin", 1.0, "px")
'''


@pytest.fixture
def restored_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default catalog as it was before the test (a plugin loaded in it catalogues metrics)."""
    monkeypatch.setattr(CATALOG, "_specs", dict(CATALOG._specs))
    monkeypatch.setattr(CATALOG, "_keys", dict(CATALOG._keys))
    monkeypatch.syspath_prepend(str(ZOO))


def test_a_plugin_declares_its_metrics_through_the_hook(tmp_path: Path, restored_catalog: None) -> None:
    """zoo_metrics declares ``zoo_margin`` (lower is better) in ``benchtool_register_metrics``:
    its suite records it without an unknown-metric warning, and compare gates it that way."""
    from benchtool.host import load_host
    from benchtool.comparison import Policies, compare
    from benchtool.store.load import load_result_set

    (tmp_path / "test_zoo.py").write_text(ZOO_SUITE)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", str(tmp_path / "test_zoo.py"), "-p", "zoo_metrics", "--bt-json",
         str(tmp_path / "base.json"), "-p", "no:store", "--bt-device", "cpu", "--bt-budget", "small",
         "-p", "no:cacheprovider", "-W", "error::benchtool.metrics.catalog.UnknownMetricWarning"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env={**os.environ, "PYTHONPATH": str(ZOO)})
    assert done.returncode == 0, done.stdout + done.stderr
    base = load_result_set(str(tmp_path / "base.json"))
    worse = dataclasses.replace(base, records=[dataclasses.replace(r, value=1.5) for r in base.records])

    def status() -> str:
        (change,) = compare(base, worse, Policies()).changes
        return change.status

    assert status() == "changed"  # not loaded: an unknown name, reported but not gated
    host = load_host(modules=["zoo_metrics"], use_entry_points=False)
    assert "zoo_metrics" in host.sources
    assert (spec_for("zoo_margin").direction, spec_for("zoo_margin").tolerance) == ("lower", Tolerance(0.1))
    assert status() == "REGRESSED"


def test_a_plugin_whose_metric_name_is_taken_fails(tmp_path: Path, restored_catalog: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A metric name the catalog already has fails the plugin as a whole, naming the name."""
    from benchtool.host import load_host

    (tmp_path / "zoo_taken_metric.py").write_text(
        "from benchtool import hookimpl\n"
        "from benchtool.metrics.catalog import MetricSpec\n\n"
        "@hookimpl\n"
        "def benchtool_register_metrics(catalog):\n"
        "    catalog.register(MetricSpec('ece', 'higher', description='not the built-in ece'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = load_host(modules=["zoo_taken_metric"], use_entry_points=False)
    (failure,) = host.failures_of("zoo_taken_metric")
    assert "benchtool_register_metrics raised ValueError: metric 'ece' is already catalogued" in str(failure)
    assert "zoo_taken_metric" not in host.sources and spec_for("ece").direction == "lower"


TOY_SUITE = '''
import pytest

@pytest.mark.bt(datasets=["digits"])
def test_score(dataset, bt_record):
    bt_record("my_new_score", 0.5)
    bt_record("my_new_score", 0.6)
    bt_record("accuracy", 0.9)
'''


def test_recording_an_uncatalogued_metric_warns_once_at_the_suites_line(tmp_path: Path) -> None:
    (tmp_path / "test_toy.py").write_text(TOY_SUITE)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", str(tmp_path / "test_toy.py"), "--bt-store", str(tmp_path / "s.db"),
         "--bt-device", "cpu", "--bt-budget", "small", "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("UnknownMetricWarning: metric 'my_new_score' is not in the metric catalog") == 1
    assert "test_toy.py:6: UnknownMetricWarning" in done.stdout  # the suite's own line
    assert "'accuracy' is not" not in done.stdout
