"""Suite tests parametrized from the registry, with plugin names as ids
(``test_robust_accuracy[pgd-lenet-digits]``), under the suite's ``@pytest.mark.bt`` defaults."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from benchtool.config import BUDGETS
from benchtool.errors import BenchtoolError, UsageError
from benchtool.pytest.cell_checks import cell_problem
from benchtool.pytest.records import MODEL_DATA_FIXTURES
from benchtool.pytest.session import BenchSession, session_key
from benchtool.registry import KINDS, KindSpec

CELL_GROUP_PREFIX = "bt-model:"  # xdist_group of the cells that share one trained model


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bt(**defaults): benchtool suite defaults per kind, e.g. models=[...], "
                                       "optional_datasets=[...] (used when their files are found), task='regression' "
                                       "(only datasets of that task), cells=predicate "
                                       "(kind -> name dict: which combinations run), and per budget "
                                       "small=dict(...) / default=dict(...) / full=dict(...) over them")


def suite_defaults(metafunc: pytest.Metafunc, budget: str) -> dict[str, Any]:
    """The suite's ``@pytest.mark.bt`` defaults for this run's budget: each marker's plain
    values, then its entry for the budget (``small=dict(models=[...])``) over them; a marker
    nearer the test (function over module) overrides a farther one."""
    defaults: dict[str, Any] = {}
    for marker in reversed(list(metafunc.definition.iter_markers("bt"))):
        defaults.update({k: v for k, v in marker.kwargs.items() if k not in BUDGETS})
        defaults.update(marker.kwargs.get(budget, {}))
    return defaults


def _suite_cells(bench: BenchSession, requested: list[KindSpec], defaults: dict[str, Any],
                 combos: list[dict[str, str]]) -> list[dict[str, str]]:
    """The combinations the suite's ``cells`` predicate keeps (kind -> name; a budget's
    smoke test pairs some plugins with some models only). Cells the user chose with a
    ``--bt-<kind>`` option of one of the test's kinds are the whole product they asked for."""
    keep = defaults.get("cells")
    if keep is None or any(bench.config.filters.get(spec.kind) for spec in requested):
        return combos
    return [c for c in combos if keep(c)]


def _candidates(bench: BenchSession, spec: KindSpec, defaults: dict[str, Any]) -> list[str]:
    chosen = bench.config.filters.get(spec.kind)
    if chosen:
        return chosen
    if spec.kind in defaults:
        suite_names = list(defaults[spec.kind])
        registered = set(bench.host.registry.names(spec.kind))
        names = [n for n in suite_names if n in registered]  # a blocked plugin drops out
        if spec.kind == "datasets":  # optional_datasets=[...]: those whose files are found
            names += [n for n in _found_optional(bench, defaults.get("optional_datasets", ())) if n not in names]
        return names
    if spec.kind == "datasets":
        raise UsageError("a suite using the 'dataset' fixture must declare @pytest.mark.bt(datasets=[...])")
    return bench.host.registry.names(spec.kind)


def _found_optional(bench: BenchSession, names: Any) -> list[str]:
    """The suite's ``optional_datasets`` that are registered and whose files some root of the
    data search path holds (existence only; the report header says which were skipped)."""
    from benchtool.data.loading import locate_root

    registry = bench.host.registry
    registered = set(registry.names("datasets"))
    return [n for n in names
            if n in registered and locate_root(registry.create("datasets", n), bench.config.data_root) is not None]


def _compatible(bench: BenchSession, combo: dict[str, str], task: str | None = None) -> bool:
    """Datasets must be of the test's declared ``task`` (``@pytest.mark.bt(task=...)``) and
    suit the plugin's declared tasks and the model's ``supports``."""
    registry = bench.host.registry
    if "datasets" not in combo:
        return True
    info = registry.get("datasets", combo["datasets"]).create().info()
    if task is not None and info.task != task:
        return False
    for kind, name in combo.items():
        if kind == "datasets":
            continue
        obj = registry.get(kind, name).obj
        if kind == "models":
            spec = registry.create("models", name)
            if not spec.supports(info):
                return False
        elif info.task not in getattr(obj, "tasks", (info.task,)):
            return False
    return True


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    bench = metafunc.config.stash.get(session_key, None)
    if bench is None:
        return
    requested = [spec for spec in KINDS.values() if spec.fixture in metafunc.fixturenames]
    if not requested:
        return
    # plugin kinds first, then model, then dataset: ids read "pgd-lenet-digits"
    requested.sort(key=lambda s: (s.fixture in MODEL_DATA_FIXTURES, s.fixture == "dataset"))
    defaults = suite_defaults(metafunc, bench.config.budget)
    try:
        pools = [_candidates(bench, spec, defaults) for spec in requested]
        combos = [
            dict(zip([s.kind for s in requested], values))
            for values in itertools.product(*pools)
        ]
        task = defaults.get("task")
        combos = _suite_cells(bench, requested, defaults, [c for c in combos if _compatible(bench, c, task)])
    except BenchtoolError as exc:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: {exc}") from None
    if "dataset" in metafunc.fixturenames:
        bench.dataset_tests.append((metafunc.definition.nodeid, str(task or "any"), len(combos)))
    if hasattr(metafunc.config, "workerinput"):  # pytest-xdist: its controller collects nothing to check
        problem = cell_problem(bench, combos)
        if problem:
            raise pytest.Collector.CollectError(problem)  # the message alone, no traceback
    argnames = [s.fixture for s in requested]
    values = [[c[s.kind] for s in requested] for c in combos]
    params = [pytest.param(*v, id="-".join(v), marks=_model_group(c)) for v, c in zip(values, combos)]
    metafunc.parametrize(argnames, params, indirect=True)


def _model_group(combo: dict[str, str]) -> tuple[Any, ...]:
    """Cells that train the same model share an ``xdist_group`` (pytest-xdist, executors)."""
    if "models" not in combo or "datasets" not in combo:
        return ()
    return (pytest.mark.xdist_group(f"{CELL_GROUP_PREFIX}{combo['models']}-{combo['datasets']}"),)
