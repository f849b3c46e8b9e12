"""The results store as a benchtool plugin (entry point ``store``): every run goes to SQLite.

Writes in the controlling process only: the bridge hands it every case of every
pytest-xdist or executor worker through ``benchtool_case_finished``. The store is checked
when the run is configured (a directory, a read-only or damaged file is a usage error before
any work), but the run's row is written when its first case finishes, so a ``pytest tests/``
session that records nothing leaves no empty run (and no file) behind. Should the store fail
in the middle of a run (a full disk), the run goes on: the cases are still reported, written
to ``--bt-json``, and the summary says how many the store missed. Block it with
``-p no:store`` or ``BENCHTOOL_DISABLE_PLUGINS=store``. It also adds the commands that read the
store: ``benchtool runs | show | compare`` (:mod:`benchtool.store.commands`).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchtool import hookimpl
from benchtool.commands import Commands
from benchtool.errors import UsageError
from benchtool.git import git
from benchtool.results import CaseResult
from benchtool.store.db import PYTEST_INTERRUPTED, ResultStore, check_store_for_run, new_run_id, resolve_store_path


@dataclass
class StoreSession:
    """The store's state for one run (one benchtool_configure .. benchtool_session_finish)."""

    path: Path
    run_id: str
    started: float
    host: Any
    resume: bool
    store: ResultStore | None = None
    cases: int = 0
    exitstatus: int | None = None
    failure: str = ""  # why the store stopped taking cases in the middle of the run
    missed: int = 0  # cases it could not store after that

    def open(self, config: Any) -> ResultStore:
        """Open the store and write the run's row, once, when the first thing is stored."""
        if self.store is None:
            store = ResultStore(self.path)
            try:
                if self.resume:
                    store.resume_run(self.run_id)
                else:
                    invocation = config.options.get("invocation", {})
                    store.begin_run(
                        self.run_id, self.started, self.host.run_metadata(config),
                        command=command_line(sys.argv),
                        cwd=str(invocation.get("dir", Path.cwd())),
                        pytest_args=list(invocation.get("args", [])),
                        budget=config.budget, seed=config.seed,
                    )
            except BaseException:
                store.close()
                raise
            self.store = store
        return self.store


def command_line(argv: list[str]) -> str:
    """The command as typed: ``benchtool run ...``, ``python -m pytest ...``."""
    program = Path(argv[0])
    head = f"python -m {program.parent.name}" if program.name == "__main__.py" else program.name
    return shlex.join([head, *argv[1:]]) if argv[1:] else head


# keyed by id(RunConfig): an in-process pytest run inside another one keeps its own state
_sessions: dict[int, StoreSession] = {}


@hookimpl
def benchtool_configure(config: Any, host: Any) -> None:
    path = resolve_store_path(config.options.get("store"))
    if config.options.get("worker"):
        return  # a worker's cases are stored by its controller
    check_store_for_run(path)  # a bad store is a usage error now, not after the first case
    resume = config.options.get("resume")  # with --bt-resume, ResumeFilter has resolved it to the run's id
    _sessions[id(config)] = StoreSession(path, resume or new_run_id(), time.time(), host, bool(resume))


@hookimpl
def benchtool_run_metadata(config: Any, metadata: dict[str, Any]) -> None:
    """Add the git commit and dirty flag of the working directory, when it is a git checkout."""
    invocation = getattr(config, "options", {}).get("invocation", {})
    cwd = invocation.get("dir", os.getcwd())
    commit = _git(cwd, "rev-parse", "HEAD")
    if commit:
        metadata["git_commit"] = commit
        metadata["git_dirty"] = bool(_git(cwd, "status", "--porcelain", "--untracked-files=no"))
    source = editable_source()
    if source is not None:  # the code that ran, wherever the run was started from
        commit = _git(str(source), "rev-parse", "HEAD")
        if commit:
            metadata["benchtool_source"] = str(source)
            metadata["benchtool_commit"] = commit
            metadata["benchtool_dirty"] = bool(_git(str(source), "status", "--porcelain", "--untracked-files=no"))


def editable_source() -> Path | None:
    """The checkout benchtool is installed from in editable mode (``pip install -e``), from the
    distribution's ``direct_url.json`` (PEP 610); None for a regular install."""
    for dist in importlib.metadata.distributions(name="benchtool"):  # a stray egg-info in the cwd has none
        try:
            info = json.loads(dist.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        url = info.get("url", "")
        if info.get("dir_info", {}).get("editable") and url.startswith("file://"):
            path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
            if path.is_dir():
                return path
    return None


def _git(cwd: str, *args: str) -> str:
    """git's output, or "" where there is no repository or no git: metadata is best effort."""
    try:
        return git(cwd, *args, timeout=10)
    except UsageError:
        return ""


@hookimpl(tryfirst=True)
def benchtool_case_finished(config: Any, case: CaseResult) -> None:
    """Store the case at once, in its own transaction (before any other plugin can fail)."""
    session = _sessions.get(id(config))
    if session is None:
        return
    if session.failure:
        session.missed += 1
        return
    try:
        session.open(config).add_case(session.run_id, case)
    except (UsageError, OSError) as exc:  # the disk filled up, the file was removed, ...
        session.failure = str(exc)
        session.missed += 1
        return
    session.cases += 1


@hookimpl
def benchtool_past_durations(config: Any) -> dict[str, float]:
    """The store's past durations of cells at this run's budget and device (none without a store)."""
    session = _sessions.get(id(config))
    if session is None or not session.path.is_file():
        return {}
    try:
        with ResultStore(session.path, create=False, readonly=True) as store:
            return store.past_durations(config.budget, str(config.device))
    except (UsageError, OSError):
        return {}  # an estimate is a courtesy: a store that cannot be read gives none


@hookimpl
def benchtool_session_finish(config: Any, cases: list[CaseResult], exitstatus: int) -> None:
    session = _sessions.get(id(config))
    if session is None:
        return
    try:
        if session.store is not None:
            session.store.finish_run(session.run_id, exitstatus)
        elif session.resume and exitstatus == 0:  # nothing was left to run: the run is complete
            with ResultStore(session.path, create=False) as store:
                run = store.run(session.run_id)
                if run.status != "finished":
                    store.finish_run(run.id, 1 if run.outcomes.get("failed") else 0)
            return  # the resume filter says so; no case was stored now
        else:
            return
    except (UsageError, OSError) as exc:
        session.failure = session.failure or str(exc)
    finally:
        if session.store is not None:
            session.store.close()
    session.exitstatus = exitstatus


@hookimpl
def benchtool_terminal_summary(config: Any) -> list[str]:
    session = _sessions.pop(id(config), None)
    if session is None:
        return []
    lines = []
    if session.failure:
        lines.append(f"benchtool: the results store failed, {session.missed} case(s) were not stored: "
                     f"{session.failure}")
    if session.exitstatus is None:
        return lines
    run = session.run_id
    lines.append(f"benchtool: run {run}: {session.cases} case(s) stored in {session.path} "
                 f"(benchtool show {run}; benchtool report {run} -o report.html)")
    if session.exitstatus == PYTEST_INTERRUPTED:
        lines.append(f"benchtool: the run was interrupted; run its missing cases with: benchtool run --resume {run}")
    return lines


@hookimpl
def benchtool_register_commands(commands: Commands) -> None:
    from benchtool.store.commands import (
        add_commands,  # the readers' imports, only when the CLI starts
    )

    add_commands(commands)


@hookimpl
def benchtool_register_result_sources(sources: dict[str, Any]) -> None:
    sources["json"] = _json_records  # --store json:PATH (or PATH.json)


def _json_records(path: str) -> Any:
    """The ``--bt-json`` files at ``path`` (:class:`~benchtool.store.json_source.JsonRecords`)."""
    from benchtool.store.json_source import JsonRecords

    return JsonRecords(path)
