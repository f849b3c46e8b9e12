"""Suite cells through an executor (``--bt-executor ray``).

The controller groups the collected cells (cells sharing a trained model stay together,
by their ``xdist_group`` mark), ships each group to a worker, where pytest runs exactly
those cells and hands back its serialized reports; the controller replays them, so the
terminal, the leaderboard, ``--bt-json`` and the store see every cell as if it ran here.
A group whose worker died is run again cell by cell, each cell retried once if its
worker dies again: a crashing cell fails alone, no finished result is dropped, and a
cell lost twice is reported failed.

Cells that fan out work themselves (a real-training NAS search, a deep ensemble: marked
``bt_fanout``, or whose plugin class sets ``fans_out = True``) run here on the driver while
the other cells run on the workers, so their trials or members are spread over the
executor as separate tasks. Inside a cell that runs on a worker, fanned-out calls stay
local (the worker runs its cells with ``--bt-executor local``).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from benchtool.errors import last_line
from benchtool.executors.base import Executor, Resources, describe_failure

GROUP_MARK = "xdist_group"
WORKER_FAILURE_CODES = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR)


@dataclass(frozen=True)
class CellBatch:
    """Cells for one worker, and how to run pytest there as the controller was run."""

    args: tuple[str, ...]
    cwd: str
    python_path: tuple[str, ...]
    nodeids: tuple[str, ...] = ()


@dataclass
class BatchResult:
    """What a worker sends back: every report of its cells, and why any cell has none."""

    reports: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = 0
    problem: str = ""  # a collection error or pytest's last words when it did not finish


class _BatchWorkerPlugin:
    """Inside the worker's pytest: keep only the batch's cells, mark the process as a
    worker (no leaderboard, JSON or store here) and serialize each report."""

    def __init__(self, nodeids: Iterable[str]) -> None:
        self.wanted = set(nodeids)
        self.result = BatchResult()
        self.config: pytest.Config | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        from benchtool.pytest.session import cell_worker_key

        self.config = config
        config.stash[cell_worker_key] = True

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep = [item for item in items if item.nodeid in self.wanted]
        dropped = [item for item in items if item.nodeid not in self.wanted]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.result.problem = f"collecting {report.nodeid or 'the suites'} failed: {last_line(report.longrepr)}"

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        assert self.config is not None
        self.result.reports.append(self.config.hook.pytest_report_to_serializable(config=self.config, report=report))


def run_cell_batch(batch: CellBatch) -> BatchResult:
    """Run ``batch.nodeids`` with pytest in this process (an executor's worker)."""
    for entry in reversed(batch.python_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    plugin = _BatchWorkerPlugin(batch.nodeids)
    output = io.StringIO()
    previous = os.getcwd()
    os.chdir(batch.cwd)
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            code = pytest.main(list(batch.args), plugins=[plugin])
    finally:
        os.chdir(previous)
    result = plugin.result
    result.exit_code = int(code)
    if code in WORKER_FAILURE_CODES and not result.problem:
        result.problem = f"pytest exited with code {int(code)}: {last_line(output.getvalue())}"
    return result


def group_key(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker(GROUP_MARK)
    if mark is None:
        return None
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


FANOUT_MARK = "bt_fanout"


def fans_out(item: pytest.Item) -> bool:
    """Whether a cell spreads work over the executor itself: marked ``bt_fanout``, or its
    plugin's class sets ``fans_out = True`` (e.g. ``deep-ensemble``)."""
    if item.get_closest_marker(FANOUT_MARK) is not None:
        return True
    from benchtool.pytest.records import case_info
    from benchtool.pytest.session import session_key

    bench = item.config.stash.get(session_key, None)
    info = case_info(item)
    if bench is None or not info.plugin:
        return False
    try:
        obj = bench.host.registry.get(info.kind, info.plugin).obj
    except Exception:  # noqa: BLE001 - an unknown plugin fails in its cell, not here
        return False
    return bool(getattr(obj, "fans_out", False))


def plan_batches(items: list[pytest.Item], slots: int) -> list[tuple[str, ...]]:
    """One batch per ``xdist_group`` (cells sharing a trained model); ungrouped cells are
    cut per suite file into ``slots`` chunks so every worker has work."""
    grouped: dict[str, list[str]] = {}
    loose: dict[str, list[str]] = {}
    for item in items:
        key = group_key(item)
        (grouped.setdefault(key, []) if key is not None else loose.setdefault(str(item.path), [])).append(item.nodeid)
    batches = [tuple(ids) for ids in grouped.values()]
    for ids in loose.values():
        size = math.ceil(len(ids) / max(1, slots))
        batches += [tuple(ids[i:i + size]) for i in range(0, len(ids), size)]
    return batches


def worker_batch(config: pytest.Config) -> CellBatch:
    """The pytest command line of this run, for a worker: same options and files, the
    executor forced local (a worker runs its cells itself), the same rootdir so node ids match."""
    args = (*config.invocation_params.args, "--bt-executor", "local", f"--rootdir={config.rootpath}")
    python_path = tuple(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    return CellBatch(args=args, cwd=str(config.invocation_params.dir), python_path=python_path)


def cell_resources(config: pytest.Config, executor: Executor) -> Resources:
    """One CPU per cell, and one GPU when the run may use GPUs and the cluster has one."""
    wants_gpu = config.getoption("--bt-device") != "cpu"
    return Resources(cpus=1.0, gpus=1.0 if wants_gpu and executor.capacity().gpus >= 1 else 0.0)


class CellDispatcher:
    """Runs a session's cells through an executor and replays their reports here."""

    def __init__(self, session: pytest.Session, executor: Executor) -> None:
        self.session = session
        self.config = session.config
        self.executor = executor
        self.items = {item.nodeid: item for item in session.items}
        self.resources = cell_resources(self.config, executor)
        self.template = worker_batch(self.config)
        self.pending: dict[Future, tuple[str, ...]] = {}

    def run(self) -> None:
        here = [item for item in self.session.items if fans_out(item)]
        remote = [item for item in self.session.items if item not in here]
        for batch in plan_batches(remote, self.executor.slots(self.resources)):
            self._launch(batch)
        try:
            self._run_here(here)
            while self.pending:
                done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
                for future in done:
                    self._finish(future, self.pending.pop(future))
                session = self.session
                if session.shouldfail:
                    raise session.Failed(session.shouldfail)
                if session.shouldstop:
                    raise session.Interrupted(session.shouldstop)
        finally:
            self.executor.close()

    def _run_here(self, items: list[pytest.Item]) -> None:
        """Cells that fan out run in this process (the executor's driver), as pytest would."""
        session = self.session
        for index, item in enumerate(items):
            nextitem = items[index + 1] if index + 1 < len(items) else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            if session.shouldfail:
                raise session.Failed(session.shouldfail)
            if session.shouldstop:
                raise session.Interrupted(session.shouldstop)

    def _launch(self, nodeids: tuple[str, ...]) -> None:
        batch = replace(self.template, nodeids=nodeids)
        retries = 1 if len(nodeids) == 1 else 0  # a lost group is split instead (see _finish)
        future = self.executor.submit(run_cell_batch, batch, resources=self.resources, retries=retries)
        self.pending[future] = nodeids

    def _finish(self, future: Future, nodeids: tuple[str, ...]) -> None:
        exc = future.exception()
        if exc is not None and len(nodeids) > 1:
            for nodeid in nodeids:  # retry one by one: a crashing cell then fails alone
                self._launch((nodeid,))
            return
        if exc is not None:
            result = BatchResult(problem=f"lost on the {self.executor.name} executor: {describe_failure(exc)}")
        else:
            result = future.result()
        seen = self._replay(result.reports)
        for nodeid in nodeids:
            if nodeid not in seen:
                self._report_lost(nodeid, result.problem or "the worker sent no report for this cell")

    def _replay(self, reports: list[dict[str, Any]]) -> set[str]:
        hook = self.config.hook
        seen: set[str] = set()
        for data in reports:
            report = hook.pytest_report_from_serializable(config=self.config, data=data)
            if report.when == "setup":
                hook.pytest_runtest_logstart(nodeid=report.nodeid, location=report.location)
            hook.pytest_runtest_logreport(report=report)
            if report.when == "teardown":
                hook.pytest_runtest_logfinish(nodeid=report.nodeid, location=report.location)
            seen.add(report.nodeid)
        return seen

    def _report_lost(self, nodeid: str, message: str) -> None:
        """A failed report for a cell that produced none (xdist reports a crashed cell alike)."""
        item = self.items[nodeid]
        report = pytest.TestReport(nodeid=nodeid, location=item.location, keywords={}, outcome="failed",
                                   longrepr=f"{nodeid}: {message}", when="???")  # type: ignore[arg-type]
        hook = self.config.hook
        hook.pytest_runtest_logstart(nodeid=nodeid, location=item.location)
        hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=nodeid, location=item.location)
