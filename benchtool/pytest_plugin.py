"""The pytest bridge: options, registry-parametrized fixtures, result recording, tables.

Registered through the ``pytest11`` entry point, so ``pytest suites/`` and
``benchtool run`` are the same harness. A suite test asks for fixtures named after a
plugin kind (``attack``, ``estimator``, ``strategy``, ``search_space``, ``loss_weighting``,
``target_function``) and/or ``model`` and ``dataset``; the bridge parametrizes them from
the registry with plugin names as ids (``test_robust_accuracy[pgd-lenet-digits]``).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchtool import __version__
from benchtool.config import (
    BUDGETS, RunConfig, check_budget, check_eps_range, check_seed, default_data_root, parse_eps_list,
    parse_name_list, resolve_device,
)
from benchtool.errors import BenchtoolError, UsageError
from benchtool.progress import RunProgress
from benchtool.registry import KINDS, KindSpec
from benchtool.results import CaseResult, Record, check_writable, write_json

RECORDS_PROPERTY = "benchtool_records"
MODEL_DATA_FIXTURES = ("model", "dataset")
PLUGIN_FIXTURES = {spec.fixture: spec for spec in KINDS.values() if spec.fixture not in MODEL_DATA_FIXTURES}
records_key = pytest.StashKey[list[Record]]()
# feature modules of the bridge, each a pytest plugin of its own
pytest_plugins = ["benchtool.claims.bridge", "benchtool.watchdog", "benchtool.reproducibility"]


def _option_name(spec: KindSpec) -> str:
    return "--bt-" + spec.kind.replace("_", "-")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchtool", "benchtool benchmark harness")
    group.addoption("--bt-device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    group.addoption("--bt-budget", default="default", help=f"{' | '.join(BUDGETS)} (default: default)")
    group.addoption("--bt-seed", type=int, default=0,
                    help="seed of data splits, training and plugins: 0 to 4294967295 (default: 0)")
    group.addoption("--bt-json", default=None, metavar="PATH", help="write every recorded figure as a JSON list")
    group.addoption("--bt-data-root", default=None, metavar="DIR",
                    help="folder of local datasets, searched first; then $BENCHTOOL_DATA, ~/.cache/benchtool/data, "
                         "/usr/share/datasets (Debian's dataset packages)")
    group.addoption("--bt-download", action="store_true", help="allow downloading missing datasets")
    group.addoption("--bt-checkpoint", default=None, metavar="PATH",
                    help="state_dict for the one zoo model selected with --bt-models, instead of training")
    group.addoption("--bt-eps", default=None, metavar="LIST",
                    help="eps sweep for attacks, in each attack's norm, e.g. 0,0.05,0.1: distinct numbers from 0 "
                         "to the diameter of each selected dataset's input box in that norm (Linf: high - low; "
                         "L2: that times sqrt(input size))")
    group.addoption("--bt-store", default=None, metavar="PATH",
                    help="results database (default: $BENCHTOOL_STORE, else the project's .benchtool/results.db, "
                         "looked for from here up to the project root); -p no:store: none")
    group.addoption("--bt-resume", default=None, metavar="RUN_ID",
                    help="continue the stored run RUN_ID: run only the cases it has not finished")
    group.addoption("--bt-gpus", default=None, metavar="LIST",
                    help="GPU indices pytest-xdist workers are spread over, worker k on the k-th mod their "
                         "number (default: every GPU)")
    group.addoption("--bt-executor", default="local", metavar="NAME",
                    help="where cells and fanned-out calls run: local | ray (default: local)")
    group.addoption("--bt-ray-address", default=None, metavar="ADDR",
                    help="Ray cluster for --bt-executor ray: host:port, or auto (default: start a local one)")
    for spec in KINDS.values():
        group.addoption(_option_name(spec), default=None, metavar="NAMES",
                        help=f"comma list of {spec.kind.replace('_', ' ')} to run (default: the suite's)")


@dataclass
class BenchSession:
    """Per-run state kept on the pytest config."""

    config: RunConfig
    host: Any
    cases: list[CaseResult] = field(default_factory=list)
    outcomes: dict[str, tuple[str, float, str]] = field(default_factory=dict)
    bundles: dict[tuple[str, int], Any] = field(default_factory=dict)
    load_errors: dict[tuple[str, int], str] = field(default_factory=dict)  # a dataset that failed to load
    models: dict[tuple[str, str, int], Any] = field(default_factory=dict)
    # per suite test with a dataset fixture: (node id, the task it declares, cells it got)
    dataset_tests: list[tuple[str, str, int]] = field(default_factory=list)


session_key = pytest.StashKey[BenchSession]()
cell_worker_key = pytest.StashKey[bool]()  # set where pytest runs cells for an executor's controller
CELL_GROUP_PREFIX = "bt-model:"  # xdist_group of the cells that share one trained model


def is_worker(config: pytest.Config) -> bool:
    """Whether this process runs cells for a controller elsewhere (a pytest-xdist or an
    executor worker): the controller alone collects cases, prints tables, writes results."""
    return hasattr(config, "workerinput") or config.stash.get(cell_worker_key, False)


def _plugin_args(config: pytest.Config) -> tuple[list[str], list[str]]:
    """(modules, blocked) from the -p values pytest saw, read by benchtool's one parser: the
    modules that implement benchtool hooks, and every name to block but pytest's own plugins'
    (``-p no:cacheprovider`` is for pytest, not a benchtool name that matches nothing)."""
    from importlib.metadata import entry_points

    from benchtool.host import ENTRY_POINT_GROUP, parse_plugin_args

    try:
        plugins = parse_plugin_args(getattr(config.known_args_namespace, "plugins", None) or [])
    except BenchtoolError as exc:
        raise pytest.UsageError(str(exc)) from None
    ours = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} | set(plugins.modules)
    pytest_names = {name for name, plugin in config.pluginmanager.list_name_plugin() if plugin is not None}
    for ep in entry_points(group="pytest11"):
        pytest_names |= {ep.name, ep.value.partition(":")[0]}
    try:
        from _pytest.config import default_plugins, essential_plugins

        pytest_names |= {*default_plugins, *essential_plugins}
    except ImportError:  # pytest's internals moved: at worst a needless warning
        pass
    blocked = [name for name in plugins.blocked
               if name in ours or not {name, f"pytest_{name}", name.removeprefix("pytest_")} & pytest_names]
    return [m for m in plugins.modules if _has_benchtool_hooks(m)], blocked


def _has_benchtool_hooks(module_name: str) -> bool:
    """Whether a -p module (already imported by pytest) is meant for benchtool: it marks a hook
    or names a function like one (the host then reports a missing @hookimpl)."""
    module = sys.modules.get(module_name)
    if module is None:
        return False
    return any(hasattr(obj, "benchtool_impl") or (attr.startswith("benchtool_") and callable(obj))
               for attr, obj in vars(module).items())


def _run_config(config: pytest.Config, host: Any) -> RunConfig:
    opt = config.getoption
    filters: dict[str, list[str] | None] = {}
    for spec in KINDS.values():
        names = parse_name_list(opt(_option_name(spec)))
        if names:
            valid = host.registry.names(spec.kind)
            for name in names:
                if name not in valid:
                    raise host.unknown_name_error(spec.kind, name, _option_name(spec))
        filters[spec.kind] = names
    # every value is checked here, before any work: a bad one is one line and exit 2 (4 in pytest)
    seed = check_seed(opt("--bt-seed"))
    eps = parse_eps_list(opt("--bt-eps"))
    json_path = check_writable(opt("--bt-json"), "--bt-json") if opt("--bt-json") else None
    checkpoint = opt("--bt-checkpoint")
    if checkpoint is not None:
        if not filters.get("models") or len(filters["models"] or []) != 1:
            raise UsageError("--bt-checkpoint needs exactly one model named with --bt-models")
        from benchtool.models.checkpoints import read_state_dict

        read_state_dict(checkpoint)  # loadable, and a state_dict; whether it fits: at collection
    data_root = Path(opt("--bt-data-root")) if opt("--bt-data-root") else default_data_root()
    _check_dataset_files(host, filters.get("datasets") or [], data_root, opt("--bt-download"))
    executor, device = _scale_out(config)
    return RunConfig(
        device=device,
        budget=check_budget(opt("--bt-budget")),
        seed=seed,
        filters=filters,
        data_root=data_root,
        download=opt("--bt-download"),
        json_path=json_path,
        eps=eps,
        checkpoint=Path(checkpoint) if checkpoint else None,
        executor=executor,
        ray_address=opt("--bt-ray-address"),
        options={
            "store": opt("--bt-store"),
            "resume": opt("--bt-resume"),
            "worker": is_worker(config),  # cells run here for a controller, which stores and writes
            "invocation": {"args": [str(a) for a in config.invocation_params.args],
                           "dir": str(config.invocation_params.dir)},
        },
    )


def _check_dataset_files(host: Any, names: list[str], root: Path, download: bool) -> None:
    """Datasets named with ``--bt-datasets`` whose local files are missing: one usage error now
    (naming the folder and how to get the files), not the same failure in every cell."""
    from benchtool.data.loading import check_files

    for name in names:
        check_files(host.registry.create("datasets", name), root=root, download=download)


def _scale_out(config: pytest.Config) -> tuple[str, Any]:
    """(executor, this process's device): a pytest-xdist worker ``gwK`` computes on the K-th GPU
    (mod their number)."""
    from benchtool.executors import check_executor
    from benchtool.executors.devices import parse_gpus, worker_device, worker_threads, xdist_worker_index

    opt = config.getoption
    executor = check_executor(opt("--bt-executor"))
    gpus = parse_gpus(opt("--bt-gpus"))
    if executor == "ray":
        from benchtool.executors.ray_executor import import_ray

        import_ray()  # a missing extra is a usage error now, not after collection
        if getattr(config.option, "numprocesses", None):
            raise UsageError("--bt-executor ray and -n both spread cells: use -n for one machine, Ray for a cluster")
        if gpus is not None:
            raise UsageError("--bt-gpus is for -n on one machine; Ray gives each cell its GPU itself")
    import torch

    workerinput = getattr(config, "workerinput", {})
    spec = opt("--bt-device")
    device = worker_device(spec, resolve_device(spec), gpus, xdist_worker_index(workerinput.get("workerid")))
    if device.type == "cuda":
        torch.cuda.set_device(device)  # stray .cuda() calls land on this worker's GPU too
    if "workercount" in workerinput:  # each pytest-xdist worker computes on its share of the cores
        torch.set_num_threads(worker_threads(workerinput["workercount"], torch.get_num_threads()))
    return executor, device


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    from benchtool.host import load_host

    config.addinivalue_line("markers", "bt(**defaults): benchtool suite defaults per kind, e.g. models=[...], "
                                       "optional_datasets=[...] (used when their files are found), task='regression' "
                                       "(only datasets of that task), cells=predicate "
                                       "(kind -> name dict: which combinations run), and per budget "
                                       "small=dict(...) / default=dict(...) / full=dict(...) over them")
    modules, blocked = _plugin_args(config)
    try:
        host = load_host(modules=modules, blocked=blocked)
        run_config = _run_config(config, host)
    except BenchtoolError as exc:
        raise pytest.UsageError(str(exc)) from None
    bench = BenchSession(run_config, host)
    config.stash[session_key] = bench
    if not is_worker(config):
        config.pluginmanager.register(ResultCollector(bench), "benchtool-results")
    _group_by_model(config)
    try:
        if run_config.options["resume"]:
            from benchtool.store.resume import ResumeFilter

            config.pluginmanager.register(ResumeFilter(run_config, host), "benchtool-resume")
        host.hook.benchtool_configure(config=run_config, host=host)
    except BenchtoolError as exc:
        raise pytest.UsageError(str(exc)) from None


def _group_by_model(config: pytest.Config) -> None:
    """``-n N`` without ``--dist`` distributes by ``xdist_group`` (``loadgroup``): the cells
    that share a trained model run on one worker, so each model trains once per run."""
    config.addinivalue_line("markers", "xdist_group(name): cells run by one worker (they share a trained model)")
    given = config.known_args_namespace  # the command line as typed, on the controller and its workers
    if not getattr(given, "numprocesses", None) or getattr(given, "dist", None) != "no":
        return  # no -n, or --dist chosen by the user
    if hasattr(config, "workerinput"):
        config.option.loadgroup = True  # the worker then tags each cell's node id with its group
    elif config.option.dist == "load":
        config.option.dist = "loadgroup"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tag each cell's node id with its ``xdist_group`` on a ``loadgroup`` worker, where
    pytest-xdist's own tagging did not take.

    pytest-xdist (3.8) tags by assigning ``item._nodeid``; since pytest 9.2 a node keeps its
    id in ``item._id`` (a structured ``NodeId``), so that assignment no longer changes
    ``item.nodeid``, the controller sees untagged ids and ``loadgroup`` silently degrades to
    ``load``. This sets the id the way the running pytest stores it, and does nothing where
    xdist's tag is already there (older pytest, or a fixed xdist).
    """
    if not hasattr(config, "workerinput") or not config.getvalue("loadgroup"):
        return
    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})
        if not groups:
            continue
        suffix = "@" + "_".join(groups)
        if item.nodeid.endswith(suffix):
            continue
        tagged = item.nodeid + suffix
        node_id = getattr(item, "_id", None)
        if node_id is not None and not isinstance(node_id, str):
            item._id = type(node_id).parse(tagged)  # pytest >= 9.2
        else:
            item._nodeid = tagged


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``loadgroup`` whose crashed cell fails alone (:mod:`benchtool.executors.xdist_groups`)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from benchtool.executors.xdist_groups import CrashSafeGroupScheduling

    return CrashSafeGroupScheduling(config, log)


def _session(config: pytest.Config) -> BenchSession:
    return config.stash[session_key]


def pytest_report_header(config: pytest.Config) -> list[str]:
    bench = config.stash.get(session_key, None)
    if bench is None:
        return []
    rc, host = bench.config, bench.host
    lines = [f"benchtool {__version__}: device {rc.device}, budget {rc.budget}, seed {rc.seed}"]
    plugins = ", ".join(f"{s.name} ({s.distribution} {s.version})" for s in host.sources.values())
    lines.append(f"benchtool plugins: {plugins or '(none)'}")
    lines += [f"benchtool plugin FAILED: {failure}" for failure in host.failures]
    if host.blocked:
        lines.append(f"benchtool plugins blocked: {', '.join(host.blocked)}")
    lines += [f"benchtool WARNING: {warning}" for warning in host.warnings]
    lines += _dataset_header_lines(bench)
    return lines


def _dataset_header_lines(bench: BenchSession) -> list[str]:
    """The data search path, and which datasets that read local files were found where and
    which were not (suites skip an optional dataset that is not found)."""
    from benchtool.config import data_search_path
    from benchtool.data.loading import locate_root

    roots = data_search_path(bench.config.data_root)
    found, missing = [], []
    registry = bench.host.registry
    for name in registry.names("datasets"):
        try:
            dataset = registry.create("datasets", name)
        except Exception:  # noqa: BLE001 - a broken plugin is reported where it is used
            continue
        if not callable(getattr(dataset, "check_files", None)):
            continue  # built-in or generated: always there
        root = locate_root(dataset, roots)
        folder = getattr(dataset, "locate", lambda r: r)(root) if root is not None else None
        (found if root is not None else missing).append(f"{name} ({folder})" if root is not None else name)
    lines = [f"benchtool data roots: {', '.join(str(r) for r in roots)}"]
    if found:
        lines.append(f"benchtool datasets found: {', '.join(found)}")
    if missing:
        why = "--bt-download fetches one named with --bt-datasets" if bench.config.download else (
            "their files are in no data root; suites skip them where optional")
        lines.append(f"benchtool datasets not found: {', '.join(missing)} ({why})")
    return lines


# --- parametrization ---------------------------------------------------------------


def _suite_defaults(metafunc: pytest.Metafunc, budget: str) -> dict[str, Any]:
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
    defaults = _suite_defaults(metafunc, bench.config.budget)
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
        problem = _cell_problem(bench, combos)
        if problem:
            raise pytest.Collector.CollectError(problem)  # the message alone, no traceback
    argnames = [s.fixture for s in requested]
    values = [[c[s.kind] for s in requested] for c in combos]
    params = [pytest.param(*v, id="-".join(v), marks=_model_group(c)) for v, c in zip(values, combos)]
    metafunc.parametrize(argnames, params, indirect=True)


# --- values checked against the selected cells, before the first one runs ----------------------

FIXTURE_KINDS = {spec.fixture: spec.kind for spec in KINDS.values()}


@pytest.hookimpl(tryfirst=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_check_datasets(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--bt-datasets`` naming only datasets no collected suite test accepts (a regression
    test and classification data, say) is one usage error, before -k and the like deselect."""
    bench = config.stash.get(session_key, None)
    chosen = bench.config.filters.get("datasets") if bench is not None else None
    if not chosen or is_worker(config) or not bench.dataset_tests or any(n for *_, n in bench.dataset_tests):
        return
    registry = bench.host.registry
    given = ", ".join(f"{name} ({registry.get('datasets', name).create().info().task})" for name in chosen)
    tests = ", ".join(nodeid.rsplit("::", 1)[-1] + ("" if task == "any" else f" ({task} only)")
                      for nodeid, task, _ in bench.dataset_tests)
    raise pytest.UsageError(f"--bt-datasets {given}: no selected suite test accepts them; expected datasets of the "
                            f"tasks that {tests} and their plugins and models declare")


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_check_values(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Once -k, -m and --bt-resume have selected the cells: a value some selected cell cannot use
    (:func:`_cell_problem`) ends the run before the first cell, in one line (pytest exit 4,
    ``benchtool run`` exit 2). pytest-xdist workers check while they parametrize instead."""
    bench = config.stash.get(session_key, None)
    if bench is None or is_worker(config):
        return
    cells = [
        {FIXTURE_KINDS[name]: value for name, value in item.callspec.params.items() if name in FIXTURE_KINDS}
        for item in items if hasattr(item, "callspec")
    ]
    problem = _cell_problem(bench, cells)
    if problem:
        raise pytest.UsageError(problem)


def _cell_problem(bench: BenchSession, cells: list[dict[str, str]]) -> str | None:
    """The first run value one of ``cells`` (kind -> name) cannot use, as one line, or None:
    an ``--bt-eps`` beyond the data box of an (attack, dataset) cell in the attack's norm
    (:func:`~benchtool.config.check_eps_range`), or a ``--bt-checkpoint`` that does not fit
    the network of a (model, dataset) cell."""
    cfg = bench.config
    if not cfg.eps and cfg.checkpoint is None:
        return None
    registry = bench.host.registry
    infos: dict[str, Any] = {}
    checked: set[tuple[str, str, str]] = set()
    try:
        for cell in cells:
            dataset = cell.get("datasets")
            if dataset is None:
                continue
            if dataset not in infos:
                infos[dataset] = registry.get("datasets", dataset).create().info()
            attack, model = cell.get("attacks"), cell.get("models")
            if cfg.eps and attack and ("eps", attack, dataset) not in checked:
                checked.add(("eps", attack, dataset))
                norm = getattr(registry.get("attacks", attack).obj, "norm", None)
                check_eps_range(cfg.eps, norm=str(norm), info=infos[dataset], attack=attack)
            if cfg.checkpoint is not None and model and ("checkpoint", model, dataset) not in checked:
                checked.add(("checkpoint", model, dataset))
                _check_checkpoint_fits(bench, model, infos[dataset])
    except UsageError as exc:
        return str(exc)
    return None


def _check_checkpoint_fits(bench: BenchSession, model_name: str, info: Any) -> None:
    """``--bt-checkpoint`` loads into the network the cell would build (names and shapes)."""
    from benchtool.models.trained import build_seeded, load_user_checkpoint

    spec = bench.host.registry.create("models", model_name)
    if not spec.supports(info):
        return  # not a cell: the bridge only pairs a model with the datasets it supports
    cfg = bench.config
    assert cfg.checkpoint is not None
    load_user_checkpoint(build_seeded(spec, info, cfg.seed), cfg.checkpoint, spec, info)


def _model_group(combo: dict[str, str]) -> tuple[Any, ...]:
    """Cells that train the same model share an ``xdist_group`` (pytest-xdist, executors)."""
    if "models" not in combo or "datasets" not in combo:
        return ()
    return (pytest.mark.xdist_group(f"{CELL_GROUP_PREFIX}{combo['models']}-{combo['datasets']}"),)


# --- fixtures ----------------------------------------------------------------------


@dataclass(frozen=True)
class CaseInfo:
    """Which plugin, model and dataset a case runs, for records and for suites."""

    suite: str
    case: str
    kind: str
    plugin: str
    model: str
    dataset: str


def _suite_name(item: pytest.Item) -> str:
    stem = Path(str(item.fspath)).stem
    return stem[5:] if stem.startswith("test_") else stem


def case_info(item: pytest.Item) -> CaseInfo:
    params = getattr(getattr(item, "callspec", None), "params", {})
    plugin_kind, plugin_name = "", ""
    for fixture, spec in PLUGIN_FIXTURES.items():
        if fixture in params:
            plugin_kind, plugin_name = spec.kind, params[fixture]
            break
    return CaseInfo(
        suite=_suite_name(item),
        case=item.name,
        kind=plugin_kind,
        plugin=plugin_name,
        model=params.get("model", ""),
        dataset=params.get("dataset", ""),
    )


@pytest.fixture(scope="session")
def bt_config(request: pytest.FixtureRequest) -> RunConfig:
    """The run's configuration (device, budget, seed, filters, ...)."""
    return _session(request.config).config


@pytest.fixture(scope="session")
def bt_host(request: pytest.FixtureRequest) -> Any:
    """The loaded plugin host (registry, hooks)."""
    return _session(request.config).host


@pytest.fixture
def bt_case(request: pytest.FixtureRequest) -> CaseInfo:
    return case_info(request.node)


class Recorder:
    """The ``bt_record`` fixture: ``bt_record(metric, value, unit="", **params)`` and
    ``bt_record.series(metric, x, y, x_label=..., y_label=...)``."""

    def __init__(self, item: pytest.Item, bench: BenchSession) -> None:
        self._item = item
        self._bench = bench
        self._info = case_info(item)
        item.stash[records_key] = []

    def __call__(self, metric: str, value: float, unit: str = "", *, params: dict[str, Any] | None = None,
                 **context: str) -> Record:
        return self._add(metric, float(value), unit, params, None, context)

    def proportion(self, metric: str, successes: float, n: int, *, params: dict[str, Any] | None = None,
                   **context: str) -> list[Record]:
        """A proportion ``successes / n`` with its 95% Wilson interval: ``metric``,
        ``<metric>_ci_low`` and ``<metric>_ci_high`` (the report draws them as a band). ``n``
        counts independent trials; ``successes`` may be fractional when each trial is itself a
        mean (an example's rate over random draws counts as one trial). Nothing is recorded
        for ``n == 0`` (a proportion of nothing is undefined)."""
        from benchtool.claims.stats import wilson_interval  # scipy loads only when a suite records one

        if n <= 0:
            return []
        low, high = wilson_interval(successes, int(n))
        return [self._add(name, float(value), "fraction", params, None, context)
                for name, value in ((metric, successes / n), (f"{metric}_ci_low", low), (f"{metric}_ci_high", high))]

    def series(self, metric: str, x: Any, y: Any, *, x_label: str = "", y_label: str = "", unit: str = "",
               params: dict[str, Any] | None = None, **context: str) -> Record:
        xs = [float(v) for v in x]
        ys = [float(v) for v in y]
        series = {"x": xs, "y": ys, "x_label": x_label, "y_label": y_label}
        return self._add(metric, None, unit, params, series, context)

    def _add(self, metric: str, value: float | None, unit: str, params: dict[str, Any] | None,
             series: dict[str, Any] | None, context: dict[str, str]) -> Record:
        from benchtool.metrics.catalog import warn_if_unknown

        info = self._info
        unknown = set(context) - {"kind", "plugin", "model", "dataset"}
        if unknown:
            raise TypeError(f"bt_record: unknown context field(s) {sorted(unknown)}")
        warn_if_unknown(metric, unit, stacklevel=4)  # at the suite's bt_record(...) line, once per name
        cfg = self._bench.config
        record = Record(
            suite=info.suite, case=info.case,
            kind=context.get("kind", info.kind), plugin=context.get("plugin", info.plugin),
            model=context.get("model", info.model), dataset=context.get("dataset", info.dataset),
            params=dict(params or {}), metric=metric, value=value, unit=unit,
            seed=cfg.seed, device=str(cfg.device), series=series,
        )
        self._item.stash[records_key].append(record)
        self._bench.host.hook.benchtool_record(record=record)
        return record


@pytest.fixture
def bt_record(request: pytest.FixtureRequest) -> Recorder:
    """Record a figure of this case (it goes to the leaderboard, --bt-json and the store)."""
    return Recorder(request.node, _session(request.config))


def _plugin_fixture(spec: KindSpec):
    def fixture(request: pytest.FixtureRequest) -> Any:
        name = getattr(request, "param", None)
        if name is None:
            pytest.fail(f"fixture {spec.fixture!r} is only available to parametrized suite tests")
        return _session(request.config).host.registry.create(spec.kind, name)

    fixture.__doc__ = f"A fresh instance of each selected {spec.fixture.replace('_', ' ')}."
    return pytest.fixture(name=spec.fixture)(fixture)


for _spec in PLUGIN_FIXTURES.values():
    globals()[f"_fixture_{_spec.fixture}"] = _plugin_fixture(_spec)


def load_bundle(bench: BenchSession, name: str) -> Any:
    """The DataBundle for ``name`` at the run's seed, loaded once per run. A dataset that cannot
    be loaded (missing files) is tried once: every later cell gets the same one-line error."""
    from benchtool.data import load_dataset

    key = (name, bench.config.seed)
    if key in bench.load_errors:
        raise UsageError(bench.load_errors[key])
    if key not in bench.bundles:
        dataset = bench.host.registry.create("datasets", name)
        cfg = bench.config
        try:
            bench.bundles[key] = load_dataset(dataset, root=cfg.data_root, seed=cfg.seed, download=cfg.download)
        except UsageError as exc:
            bench.load_errors[key] = str(exc)
            raise UsageError(str(exc)) from None
    return bench.bundles[key]


def trained(bench: BenchSession, model_name: str, dataset_name: str, seed: int | None = None) -> Any:
    """A trained ``model_name`` for ``dataset_name``: once per run, once per machine with the cache."""
    from benchtool.models import trained_model

    cfg = bench.config
    seed = cfg.seed if seed is None else seed
    key = (model_name, dataset_name, seed)
    if key not in bench.models:
        spec = bench.host.registry.create("models", model_name)
        bench.models[key] = trained_model(
            spec, load_bundle(bench, dataset_name), seed=seed, budget=cfg.budget, device=cfg.device,
            cache_dir=None, checkpoint=cfg.checkpoint if seed == cfg.seed else None,
        )
    return bench.models[key]


@pytest.fixture(scope="session")
def bt_data(request: pytest.FixtureRequest) -> Any:
    """``bt_data(name)``: any registered dataset's bundle at the run's seed (loaded once)."""
    bench = _session(request.config)
    return lambda name: load_bundle(bench, name)


@pytest.fixture(scope="session")
def bt_models(request: pytest.FixtureRequest) -> Any:
    """``bt_models(model, dataset, seed=None)``: a trained zoo model (trained once per run)."""
    bench = _session(request.config)
    return lambda model_name, dataset_name, seed=None: trained(bench, model_name, dataset_name, seed)


@pytest.fixture
def dataset(request: pytest.FixtureRequest) -> Any:
    """The selected dataset's :class:`~benchtool.contracts.DataBundle`."""
    bench = _session(request.config)
    try:
        return load_bundle(bench, request.param)
    except UsageError as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)  # outside the except: no "During handling of ..." chain


@pytest.fixture
def model(request: pytest.FixtureRequest, dataset: Any) -> Any:
    """The selected model, trained on the selected dataset, in eval mode on the run's device."""
    try:
        return trained(_session(request.config), request.param, dataset.info.name)
    except UsageError as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


# --- results ----------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.when == "teardown" and _is_bench_case(item):
        records = item.stash.get(records_key, [])
        report.user_properties.append((RECORDS_PROPERTY, [r.to_json() for r in records]))
    return report


def _is_bench_case(item: pytest.Item) -> bool:
    """A suite case: it uses a registry-parametrized fixture or records figures."""
    names = set(getattr(item, "fixturenames", ()))
    return "bt_record" in names or any(spec.fixture in names for spec in KINDS.values())


class ResultCollector:
    """Controller-side collection: tracks each case over its phases and, at teardown,
    hands the finished case (with the records it carried) to the lifecycle hooks."""

    def __init__(self, bench: BenchSession) -> None:
        self.bench = bench
        self.json_written: int | None = None  # records written to --bt-json
        self.json_error = ""
        self.progress: RunProgress | None = None  # a serial or executor run's estimate and progress
        self.terminal: Any = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The one-line estimate of a run of suite cells, before the first one (serial and
        executor runs; pytest-xdist's controller collects nothing)."""
        from benchtool.store.db import case_key

        cells = [item for item in session.items if "bt_record" in getattr(item, "fixturenames", ())]
        self.terminal = session.config.pluginmanager.get_plugin("terminalreporter")
        if not cells or self.terminal is None or session.config.option.collectonly:
            return
        bench = self.bench
        past: dict[str, float] = {}
        for found in bench.host.hook.benchtool_past_durations(config=bench.config):
            past.update(found)
        where = f"budget {bench.config.budget} on {bench.config.device}"
        self.progress = RunProgress.plan([case_key(_case_nodeid(i.nodeid)) for i in cells], past, where)
        self.terminal.write_line(self.progress.estimate_line())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        bench = self.bench
        outcome, duration, message = bench.outcomes.get(report.nodeid, ("passed", 0.0, ""))
        duration += report.duration
        if report.failed and outcome != "failed":
            outcome, message = "failed", _short_message(report)
        elif report.skipped and outcome == "passed":
            outcome = "skipped"
        bench.outcomes[report.nodeid] = (outcome, duration, message)
        if report.when in ("setup", "call"):
            return
        del bench.outcomes[report.nodeid]
        properties = dict(report.user_properties)
        crashed = report.when != "teardown"  # its worker died: pytest-xdist's (and executors') "???" report
        if RECORDS_PROPERTY not in properties and not crashed:
            return  # not a suite case
        raw = properties.get(RECORDS_PROPERTY, [])
        if not raw and outcome == "skipped":
            return
        records = [Record.from_json(r) for r in raw]
        suite = Path(report.location[0]).stem.removeprefix("test_")
        case = CaseResult(_case_nodeid(report.nodeid), suite, outcome, duration, records, message)
        bench.cases.append(case)
        bench.host.hook.benchtool_case_finished(config=bench.config, case=case)
        self._progress(case)

    def _progress(self, case: CaseResult) -> None:
        from benchtool.store.db import case_key
        from benchtool.tables import nodeid_label

        if self.progress is None or self.terminal is None:
            return
        line = self.progress.cell_finished(case_key(case.nodeid), nodeid_label(case.nodeid), case.duration)
        if line:
            self.terminal.write_line(line)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        bench = self.bench
        status = int(session.exitstatus)  # a resume with nothing left has made pytest's 5 a 0
        path = bench.config.json_path
        if path is not None and status != pytest.ExitCode.USAGE_ERROR:  # nothing ran: keep an older file
            cases = bench.cases
            resume = session.config.pluginmanager.get_plugin("benchtool-resume")
            if resume is not None:  # the whole run: what earlier sessions stored, then this one's
                cases = resume.earlier_cases(cases) + cases
            records = [r for case in cases for r in case.records]
            try:
                write_json(path, records)
                self.json_written = len(records)
            except OSError as exc:  # checked writable at the start; the disk may have filled since
                self.json_error = f"could not write --bt-json {path}: {exc.strerror or exc}"
                if status == pytest.ExitCode.OK:
                    session.exitstatus = status = pytest.ExitCode.TESTS_FAILED
        bench.host.hook.benchtool_session_finish(config=bench.config, cases=bench.cases, exitstatus=status)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from benchtool.tables import checks_table, leaderboards

        bench = self.bench
        checks = checks_table(bench.cases)
        if checks:
            terminalreporter.write_sep("=", "benchtool checks (gradient masking, attack budgets)")
            for line in checks:
                terminalreporter.write_line(line)
        for title, lines in leaderboards(bench.cases):
            terminalreporter.write_sep("=", f"benchtool leaderboard: {title}")
            for line in lines:
                terminalreporter.write_line(line)
        for failure in bench.host.failures:
            terminalreporter.write_line(f"benchtool plugin FAILED to load: {failure}", red=True)
        for lines in bench.host.hook.benchtool_terminal_summary(config=bench.config):
            for line in lines:
                terminalreporter.write_line(line)
        if self.json_error:
            terminalreporter.write_line(f"benchtool: {self.json_error}", red=True)
        elif self.json_written is not None and (bench.cases or self.json_written):
            terminalreporter.write_line(
                f"benchtool: {self.json_written} record(s) written to {bench.config.json_path}")


def _case_nodeid(nodeid: str) -> str:
    """The node id without the ``@group`` suffix ``--dist loadgroup`` appends to it."""
    head, sep, group = nodeid.rpartition("@")
    return head if sep and group.startswith(CELL_GROUP_PREFIX) else nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """With ``--bt-executor ray`` the controller ships the cells to the executor's workers
    instead of running them (:mod:`benchtool.executors.cells`)."""
    bench = session.config.stash.get(session_key, None)
    if bench is None or bench.config.executor == "local" or is_worker(session.config):
        return None
    if session.config.option.collectonly or not session.items:
        return None
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        raise session.Interrupted(f"{session.testsfailed} error(s) during collection")
    from benchtool.executors import get_executor
    from benchtool.executors.cells import CellDispatcher

    try:
        executor = get_executor(bench.config)
    except BenchtoolError as exc:
        raise pytest.UsageError(str(exc)) from None
    CellDispatcher(session, executor).run()
    return True


def _short_message(report: pytest.TestReport) -> str:
    text = str(report.longrepr or "")
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    lines = errors or [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
