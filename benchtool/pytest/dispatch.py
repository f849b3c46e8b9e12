"""Executors in the run: ``--bt-executor`` and every registered executor's own options,
and the loop that ships the session's cells to one (:mod:`benchtool.executors.cells`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from benchtool.errors import BenchtoolError, UsageError
from benchtool.executors.registry import ExecutorRegistry, builtin_executors
from benchtool.pytest.session import BenchSession, is_worker, session_key

REGISTRY_PLUGIN = "benchtool-executors"  # this config's ExecutorRegistry, as a named pytest plugin


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("benchtool")
    group.addoption("--bt-executor", default="local", metavar="NAME",
                    help="where cells and fanned-out calls run: local | ray | one a plugin registers "
                         "(default: local)")
    registry = builtin_executors(group)
    pluginmanager.register(registry, REGISTRY_PLUGIN)
    pluginmanager.hook.pytest_benchtool_register_executors.call_historic(kwargs={"registry": registry})


def pytest_benchtool_configure(config: pytest.Config, bench: BenchSession) -> None:
    """The selected executor and its checked option values; one that ships cells elsewhere
    cannot share them with pytest-xdist (``-n``, ``--bt-gpus``)."""
    registry: ExecutorRegistry = config.pluginmanager.get_plugin(REGISTRY_PLUGIN)
    name = config.getoption("--bt-executor")
    executor = registry.get(name)
    settings = executor.settings(config.getoption)
    if executor.runs_cells:
        if getattr(config.option, "numprocesses", None):
            raise UsageError(f"--bt-executor {name} and -n both spread cells: use -n for one machine, "
                             f"--bt-executor {name} for a cluster")
        if config.getoption("--bt-gpus") is not None:
            raise UsageError(f"--bt-gpus is for -n on one machine; --bt-executor {name} gives each cell its "
                             "device itself")
    run = bench.config
    run.executor, run.executor_settings, run.executor_class = name, settings, executor


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[Any]:
    """While a cell runs, :func:`benchtool.executors.cell_executor` is the run's executor."""
    from benchtool.executors import running_cell

    bench = item.config.stash.get(session_key, None)
    with running_cell(bench.config if bench is not None else None):
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """With an executor that runs cells (``--bt-executor ray``) the controller ships the cells
    to the executor's workers instead of running them (:mod:`benchtool.executors.cells`)."""
    bench = session.config.stash.get(session_key, None)
    if bench is None or bench.config.executor_class is None or not bench.config.executor_class.runs_cells:
        return None
    if is_worker(session.config) or session.config.option.collectonly or not session.items:
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
