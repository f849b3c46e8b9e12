"""Bounded plugin calls in a pytest run: ``--bt-timeout``, the cell running now, and the
report of a hung call that had to end its process. Registered by :mod:`benchtool.pytest_plugin`.

- ``--bt-timeout SECONDS`` replaces every plugin call's time limit; without it each call
  gets its kind's default scaled by ``--bt-budget`` (:mod:`benchtool.contracts._guard`).
  A call that overruns fails its cell with ``plugin 'x' broke rule 'returns-in-time'``.
- A call that ignores the interrupt (blocked in native code) is ended with its process by
  the guard's hard stage; this plugin first writes the cell and the message where the
  supervisor reads them (:mod:`benchtool.supervisor`). Under ``-n`` pytest-xdist fails that
  cell with the message and replaces the worker; in a serial ``benchtool run`` the
  supervisor prints it; under plain ``pytest`` this plugin prints it before the end.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchtool.contracts import _guard
from benchtool.supervisor import RUNNING_FILE, SUPERVISOR_ENV, failure_file, read_failure

WORKERINPUT_KEY = "benchtool_watchdog_dir"


def parse_timeout(value: str | None) -> float | None:
    """``--bt-timeout``: seconds > 0 (None: the per-kind defaults)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise pytest.UsageError(f"invalid --bt-timeout {value!r}; expected a number of seconds > 0, e.g. 600")
    return seconds


# --- the pytest plugin ----------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchtool", "benchtool benchmark harness")
    group.addoption("--bt-timeout", default=None, metavar="SECONDS",
                    help="the time limit of every plugin call (default: per kind, scaled by --bt-budget: e.g. "
                         "an attack's perturb 120 s at small, 360 s at default, 1200 s at full)")


@dataclass
class WatchdogSession:
    """This process's side: the cell running now, and where a hard stop is reported."""

    config: pytest.Config
    directory: str | None  # shared with the supervisor / the xdist controller; None: unsupervised
    owns_directory: bool = False
    running_fd: int | None = None  # serial supervised run: the cell is written here
    current: str | None = None
    previous_policy: _guard.TimeoutPolicy = field(default_factory=_guard.TimeoutPolicy)

    def start_cell(self, nodeid: str) -> None:
        self.current = nodeid
        if self.running_fd is not None:
            os.ftruncate(self.running_fd, 0)
            os.pwrite(self.running_fd, nodeid.encode(), 0)

    def end_cell(self) -> None:
        self.current = None
        if self.running_fd is not None:
            os.ftruncate(self.running_fd, 0)

    def hard_stop(self, message: str) -> None:
        """Called by the guard's watchdog thread just before it ends this process."""
        nodeid = self.current or ""
        if self.directory and nodeid:
            target = failure_file(self.directory, nodeid)
            partial = target.with_suffix(".partial")
            partial.write_text(message + "\n")
            partial.replace(target)
        if self.running_fd is not None or hasattr(self.config, "workerinput"):
            return  # the supervisor, or the xdist controller, reports it
        capture = self.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=True)  # as pytest-timeout does, to reach the terminal
        where = f"cell {nodeid!r} failed: " if nodeid else ""
        sys.stderr.write(f"\nbenchtool: {where}{message}\n")
        sys.stderr.flush()


session_key = pytest.StashKey[WatchdogSession]()


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))


def pytest_configure(config: pytest.Config) -> None:
    override = parse_timeout(config.getoption("--bt-timeout"))
    try:
        budget = config.getoption("--bt-budget")
    except ValueError:
        budget = "default"
    workerinput = getattr(config, "workerinput", None)
    directory = (workerinput or {}).get(WORKERINPUT_KEY) or os.environ.get(SUPERVISOR_ENV)
    session = WatchdogSession(config, directory)
    if directory is None and _is_controller(config):
        session.directory, session.owns_directory = tempfile.mkdtemp(prefix="benchtool-watchdog-"), True
    if workerinput is None and os.environ.get(SUPERVISOR_ENV) and hasattr(os, "pwrite"):
        session.running_fd = os.open(Path(os.environ[SUPERVISOR_ENV]) / RUNNING_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    session.previous_policy = _guard.set_policy(
        _guard.TimeoutPolicy(budget=budget, override=override, on_hard_timeout=session.hard_stop))
    config.stash[session_key] = session


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(session_key, None)
    if session is None:
        return
    _guard.set_policy(session.previous_policy)
    if session.running_fd is not None:
        os.close(session.running_fd)
    if session.owns_directory and session.directory:
        shutil.rmtree(session.directory, ignore_errors=True)
    del config.stash[session_key]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[Any]:
    """Tell the watchdog (and the supervisor) which cell runs now."""
    session = item.config.stash.get(session_key, None)
    if session is None:
        return (yield)
    session.start_cell(item.nodeid)
    try:
        return (yield)
    finally:
        session.end_cell()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist controller: each worker reports hard stops in the controller's folder."""
    session = node.config.stash.get(session_key, None)
    if session is not None and session.directory:
        node.workerinput[WORKERINPUT_KEY] = session.directory


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report: pytest.TestReport, sched: Any) -> None:
    """pytest-xdist controller: a worker the hard stage ended fails its cell with the broken
    rule, not a bare crash (an ``E`` line: the case's message in the results)."""
    session = report.node.config.stash.get(session_key, None) if hasattr(report, "node") else None
    message = read_failure(session.directory if session else os.environ.get(SUPERVISOR_ENV), crashitem)
    if message is not None:
        report.longrepr = f"{report.longrepr}\nE   {message}"  # the E line is the case's message
