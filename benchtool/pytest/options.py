"""The run's core options, the benchtool host and the run config.

``pytest_configure`` loads the host, checks every core option before any work, then lets
each feature take its step (``pytest_benchtool_configure``) and the plugins theirs
(``benchtool_configure``). A bad value is one usage error line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from benchtool.config import (
    BUDGETS, RunConfig, check_budget, check_seed, default_data_root, parse_eps_list, parse_name_list, resolve_device,
)
from benchtool.errors import BenchtoolError, UsageError
from benchtool.pytest import hookspecs
from benchtool.pytest.plugin_args import plugin_args
from benchtool.pytest.session import BenchSession, is_worker, session_key
from benchtool.registry import KINDS, KindSpec
from benchtool.results import check_writable

if TYPE_CHECKING:
    from benchtool.host import Host


def kind_option(spec: KindSpec) -> str:
    """``--bt-<kind>``: the names of that kind to run."""
    return "--bt-" + spec.kind.replace("_", "-")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


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
    for spec in KINDS.values():
        group.addoption(kind_option(spec), default=None, metavar="NAMES",
                        help=f"comma list of {spec.kind.replace('_', ' ')} to run (default: the suite's)")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    from benchtool.host import load_host

    modules, blocked = plugin_args(config)
    try:
        host = load_host(modules=modules, blocked=blocked)
        bench = BenchSession(run_config(config, host), host)
        config.stash[session_key] = bench
        config.hook.pytest_benchtool_configure(config=config, bench=bench)
        host.hook.benchtool_configure(config=bench.config, host=host)
    except BenchtoolError as exc:
        raise pytest.UsageError(str(exc)) from None


def run_config(config: pytest.Config, host: Host) -> RunConfig:
    """The run config from the core options, every value checked here, before any work."""
    opt = config.getoption
    filters: dict[str, list[str] | None] = {}
    for spec in KINDS.values():
        names = parse_name_list(opt(kind_option(spec)))
        if names:
            valid = host.registry.names(spec.kind)
            for name in names:
                if name not in valid:
                    raise host.unknown_name_error(spec.kind, name, kind_option(spec))
        filters[spec.kind] = names
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
    check_dataset_files(host, filters.get("datasets") or [], data_root, opt("--bt-download"))
    return RunConfig(
        device=resolve_device(opt("--bt-device")),
        budget=check_budget(opt("--bt-budget")),
        seed=seed,
        filters=filters,
        data_root=data_root,
        download=opt("--bt-download"),
        json_path=json_path,
        eps=eps,
        checkpoint=Path(checkpoint) if checkpoint else None,
        options={
            "worker": is_worker(config),  # cells run here for a controller, which stores and writes
            "invocation": {"args": [str(a) for a in config.invocation_params.args],
                           "dir": str(config.invocation_params.dir)},
        },
    )


def check_dataset_files(host: Host, names: list[str], root: Path, download: bool) -> None:
    """Datasets named with ``--bt-datasets`` whose local files are missing: one usage error now
    (naming the folder and how to get the files), not the same failure in every cell."""
    from benchtool.data.loading import check_files

    for name in names:
        check_files(host.registry.create("datasets", name), root=root, download=download)
