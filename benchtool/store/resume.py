"""``--bt-resume RUN_ID``: deselect the cases a stored run already finished.

A pytest plugin the bridge registers when the option is given, before ``benchtool_configure``;
it resolves the id once, and the store plugin then appends the cases that run now to that run.
It keeps the run's stored cases, so ``--bt-json`` of a resumed run holds the whole run, and
a resume with nothing left to run says so and exits 0.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchtool.errors import UsageError
from benchtool.results import CaseResult
from benchtool.store.db import case_key
from benchtool.store.source import sqlite_store

STORE_PLUGIN = "store"


class ResumeFilter:
    """Skips (deselects) every case the resumed run has stored; checks the run can be resumed."""

    def __init__(self, config: Any, host: Any) -> None:
        if STORE_PLUGIN not in host.sources:
            raise UsageError(f"--bt-resume needs the results store plugin {STORE_PLUGIN!r}, which is blocked here")
        with sqlite_store(config.options.get("store"), "--bt-resume") as store:
            self.store_path = store.path
            run = store.run(store.resolve(config.options["resume"]))
            same = (("--bt-budget", run.budget, config.budget), ("--bt-seed", run.seed, config.seed))
            for option, stored, now in same:
                if stored not in ("", None) and stored != now:
                    raise UsageError(
                        f"--bt-resume {run.id}: that run used {option} {stored}, this one {now}; "
                        "resume with the run's own options (benchtool run --resume reuses them)"
                    )
            self.run_id = config.options["resume"] = run.id  # the store plugin appends to this run
            self.stored: list[CaseResult] = store.cases(run.id)  # what an earlier session finished
        self.finished = {case_key(case.nodeid) for case in self.stored}
        self.deselected = 0
        self.complete = False  # every case the command line selects is stored already

    def earlier_cases(self, now: list[CaseResult]) -> list[CaseResult]:
        """The stored cases this session did not run again (for the whole run's ``--bt-json``)."""
        rerun = {case_key(case.nodeid) for case in now}
        return [case for case in self.stored if case_key(case.nodeid) not in rerun]

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        done = [item for item in items if case_key(item.nodeid) in self.finished]
        if done:
            config.hook.pytest_deselected(items=done)
            items[:] = [item for item in items if case_key(item.nodeid) not in self.finished]
            self.deselected += len(done)

    def pytest_report_header(self) -> list[str]:
        return [f"benchtool: resuming run {self.run_id} of {self.store_path}: "
                f"its {len(self.finished)} finished case(s) are skipped"]

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Nothing left to run is success, not pytest's 'no tests collected' (exit 5)."""
        if exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED or not self.finished:
            return
        # pytest-xdist's controller collects nothing itself: its workers deselected the cases
        if self.deselected or hasattr(session.config, "workerinput") or _xdist_controller(session.config):
            self.complete = True
            session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.complete:
            terminalreporter.write_line(
                f"benchtool: run {self.run_id} is complete: all its {len(self.finished)} case(s) are stored; "
                f"nothing to resume (benchtool show {self.run_id})"
            )


def _xdist_controller(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")
