"""Controller-side results: each finished case, with the records it carried, to the
lifecycle hooks; the run's estimate and progress; ``--bt-json``; the terminal tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchtool.progress import ReferenceDurations, RunProgress
from benchtool.pytest.parametrize import CELL_GROUP_PREFIX
from benchtool.pytest.records import RECORDS_PROPERTY
from benchtool.pytest.session import BenchSession, cell_nodeids, is_worker
from benchtool.results import CaseResult, Record, write_json
from benchtool.store.bridge import RESUME_PLUGIN

COLLECTOR_PLUGIN = "benchtool-results"


def pytest_benchtool_configure(config: pytest.Config, bench: BenchSession) -> None:
    """The controller (not a pytest-xdist or executor worker) collects the run's results."""
    if not is_worker(config):
        config.pluginmanager.register(ResultCollector(bench), COLLECTOR_PLUGIN)


class ResultCollector:
    """Controller-side collection: tracks each case over its phases and, at teardown,
    hands the finished case (with the records it carried) to the lifecycle hooks."""

    def __init__(self, bench: BenchSession) -> None:
        self.bench = bench
        self.json_written: int | None = None  # records written to --bt-json
        self.json_error = ""
        self.progress: RunProgress | None = None  # the run's estimate and progress (serial, executor or xdist)
        self.terminal: Any = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The one-line estimate of a run of suite cells, before the first one (serial and
        executor runs; pytest-xdist's controller collects nothing, see below)."""
        if not session.config.option.collectonly:
            self._plan(session.config, cell_nodeids(session.items), workers=1)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """The estimate of a pytest-xdist run, from the cells its first worker collected
        (every worker collects the same), spread over the workers."""
        from benchtool.pytest.xdist import worker_cells

        cells = worker_cells(node) if self.progress is None else None
        if cells is not None:
            self._plan(node.config, cells, workers=int(node.workerinput.get("workercount", 1)))

    def _plan(self, config: pytest.Config, cells: list[str], workers: int) -> None:
        from benchtool.store.db import case_key

        self.terminal = config.pluginmanager.get_plugin("terminalreporter")
        if not cells or self.terminal is None:
            return
        bench = self.bench
        past: dict[str, float] = {}
        for found in bench.host.hook.benchtool_past_durations(config=bench.config):
            past.update(found)
        where = f"budget {bench.config.budget} on {bench.config.device}"
        reference = ReferenceDurations.load(bench.config.budget, str(bench.config.device))
        keys = [case_key(case_nodeid(nodeid)) for nodeid in cells]
        self.progress = RunProgress.plan(keys, past, where, reference, workers=workers)
        self.terminal.write_line(self.progress.estimate_line())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        bench = self.bench
        outcome, duration, message = bench.outcomes.get(report.nodeid, ("passed", 0.0, ""))
        duration += report.duration
        if report.failed and outcome != "failed":
            outcome, message = "failed", short_message(report)
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
        case = CaseResult(case_nodeid(report.nodeid), suite, outcome, duration, records, message)
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
            resume = session.config.pluginmanager.get_plugin(RESUME_PLUGIN)
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


def case_nodeid(nodeid: str) -> str:
    """The node id without the ``@group`` suffix ``--dist loadgroup`` appends to it."""
    head, sep, group = nodeid.rpartition("@")
    return head if sep and group.startswith(CELL_GROUP_PREFIX) else nodeid


def short_message(report: pytest.TestReport) -> str:
    text = str(report.longrepr or "")
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    lines = errors or [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
