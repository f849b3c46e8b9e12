"""The results database: runs, their cases and every record, in one SQLite file.

SQLite in WAL mode with a busy timeout and retried write transactions, so several
processes (parallel CI jobs, two terminals) can write one store at once without losing a
row. Every case is written in its own transaction: a run that is interrupted (Ctrl-C,
SIGTERM, a crash) keeps every case it finished. The schema carries a version
(``PRAGMA user_version``) and is upgraded by the ordered ``MIGRATIONS``.

A run checks its store before any work (:func:`check_store_for_run`) but creates it only when
its first case finishes; ``runs``, ``show``, ``compare`` and ``report`` open it read-only
(``readonly=True``), so a store on a read-only disk can still be read. A SQLite error while
reading or writing becomes one :class:`~benchtool.errors.UsageError` line naming the store
(and, for a damaged file, how to salvage it), never a raw ``sqlite3`` traceback.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from benchtool.data.provenance import provenance_facts
from benchtool.errors import UsageError
from benchtool.results import CaseResult, Record, check_creatable

STORE_HELP = ("results database (default: $BENCHTOOL_STORE, else the project's .benchtool/results.db, "
              "looked for from here up to the project root)")

# what the commands that read add (benchtool.store.source.open_source)
READ_HELP = ("; or SCHEME:PATH for a reader a plugin adds, e.g. json:PATH (or PATH.json): a --bt-json file, "
             "or a folder of them, each a run")
STORE_ENV = "BENCHTOOL_STORE"
DEFAULT_STORE = Path(".benchtool") / "results.db"
# a folder holding one of these is a project root: the default store is looked for up to it
PROJECT_MARKERS = (".git", ".hg", "pyproject.toml")
BUSY_TIMEOUT_S = 30.0
WRITE_ATTEMPTS = 8
PYTEST_INTERRUPTED = 2  # pytest.ExitCode.INTERRUPTED (Ctrl-C)
IDS_PER_QUERY = 500  # run ids per IN (...): under SQLite's oldest limit of 999 parameters
T = TypeVar("T")

# Each entry upgrades the schema by one version; never edit a released entry, append one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            started REAL NOT NULL,
            ended REAL,
            status TEXT NOT NULL,          -- running | finished | interrupted
            exitstatus INTEGER,
            sessions INTEGER NOT NULL DEFAULT 1,  -- 1 + number of resumes
            pid INTEGER,
            host TEXT,
            command TEXT,
            cwd TEXT,
            pytest_args TEXT,              -- JSON list: what a resume re-runs
            budget TEXT,
            seed INTEGER,
            device TEXT,
            device_name TEXT,
            git_commit TEXT,
            git_dirty INTEGER,
            benchtool TEXT,
            torch TEXT,
            numba TEXT,
            metadata TEXT NOT NULL         -- JSON: everything host.run_metadata() gave
        )""",
        """CREATE TABLE cases (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            nodeid TEXT NOT NULL,
            suite TEXT NOT NULL,
            outcome TEXT NOT NULL,
            duration REAL NOT NULL,
            message TEXT NOT NULL,
            finished REAL NOT NULL,
            UNIQUE (run_id, nodeid)
        )""",
        """CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
            run_id TEXT NOT NULL,
            suite TEXT NOT NULL,
            case_name TEXT NOT NULL,
            kind TEXT NOT NULL,
            plugin TEXT NOT NULL,
            model TEXT NOT NULL,
            dataset TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL,                    -- NULL for curves (and NaN); the truth is in data
            unit TEXT NOT NULL,
            params TEXT NOT NULL,          -- JSON object
            data TEXT NOT NULL             -- the record in the --bt-json schema, series included
        )""",
        "CREATE INDEX cases_run ON cases (run_id)",
        "CREATE INDEX records_run_metric ON records (run_id, metric)",
        "CREATE INDEX records_case ON records (case_id)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def resolve_store_path(option: str | os.PathLike[str] | None = None) -> Path:
    """``--bt-store``/``--store`` if given, else ``$BENCHTOOL_STORE``, else the project's store
    (:func:`project_store`)."""
    value = option or os.environ.get(STORE_ENV)
    return Path(value).expanduser().absolute() if value else project_store()


def project_store(start: str | os.PathLike[str] | None = None) -> Path:
    """The project's ``.benchtool/results.db``, found like git finds ``.git``: the nearest one
    in ``start`` (default: the working directory) or a folder above it, looking no higher than
    the project root (the nearest folder with ``.git``, ``.hg`` or ``pyproject.toml``). With
    none, the project root's (a new store goes there), else ``start``'s own."""
    here = Path(Path.cwd() if start is None else start).expanduser().absolute()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_STORE
        if candidate.exists() or any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return candidate
    return here / DEFAULT_STORE


def new_run_id(started: float | None = None) -> str:
    """A sortable, readable, unique id: ``20251126-104200-3f9a01c2`` (any unique prefix selects it)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if started is None else started))
    return f"{stamp}-{os.urandom(4).hex()}"


def case_key(nodeid: str) -> str:
    """A node id without its directories, so a resumed run matches it from another rootdir."""
    path, sep, rest = nodeid.partition("::")
    return Path(path).name + sep + rest


@dataclass
class RunInfo:
    """One stored run and a summary of what it holds (a reader that knows less leaves the rest
    at its default)."""

    id: str
    started: float
    ended: float | None = None
    status: str = ""
    exitstatus: int | None = None
    sessions: int = 1
    pid: int | None = None
    host: str = ""
    command: str = ""
    cwd: str = ""
    pytest_args: list[str] = field(default_factory=list)
    budget: str = ""
    seed: int | None = None
    device: str = ""
    device_name: str = ""
    git_commit: str = ""
    git_dirty: bool | None = None
    versions: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)  # outcome -> number of cases
    records: int = 0

    @property
    def state(self) -> str:
        """``status``, except a 'running' run whose process is gone from this host reads 'aborted'."""
        if self.status == "running" and self.host == platform.node() and self.pid and not _alive(self.pid):
            return "aborted"
        return self.status

    @property
    def cases(self) -> int:
        return sum(self.outcomes.values())


# --- describing a run (runs, show, the report) ---------------------------------------------


def format_time(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else ""


def duration_text(run: RunInfo) -> str:
    if run.ended is None:
        return ""
    seconds = run.ended - run.started
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def commit_text(run: RunInfo) -> str:
    return (run.git_commit[:10] + ("+dirty" if run.git_dirty else "")) if run.git_commit else ""


def cases_summary(run: RunInfo) -> str:
    return " ".join(f"{n} {outcome}" for outcome, n in sorted(run.outcomes.items())) or "0"


def run_facts(run: RunInfo) -> list[tuple[str, str]]:
    """The run's metadata as (name, value) pairs, for ``show`` and the report."""
    state = run.state + (f", exit status {run.exitstatus}" if run.exitstatus is not None else "")
    if run.sessions > 1:
        state += f", resumed {run.sessions - 1}x"
    facts = [
        ("run", f"{run.id} ({state})"),
        ("started", format_time(run.started)
         + (f", ended {format_time(run.ended)} ({duration_text(run)})" if run.ended else "")),
        ("command", run.command),
        ("budget", f"{run.budget}, seed {run.seed}"),
        ("device", run.device + (f" ({run.device_name})" if run.device_name else "")),
        ("host", run.host),
        ("versions", ", ".join(f"{k} {v}" for k, v in run.versions.items())),
    ]
    if run.git_commit:
        facts.append(("commit", run.git_commit + (" (with uncommitted changes)" if run.git_dirty else "")))
    facts += provenance_facts(run.metadata or {})
    facts.append(("cases", f"{cases_summary(run)}; {run.records} record(s)"))
    return facts


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def store_error(path: Path, exc: sqlite3.Error) -> UsageError:
    """One line for a SQLite error on the store at ``path``, saying what to do about it."""
    text = str(exc)
    lowered = text.lower()
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        return UsageError(
            f"results store {path} is damaged ({text}); salvage what is readable with "
            f"`sqlite3 {path} .recover | sqlite3 recovered.db` and pass --store recovered.db, "
            "or move the file away to start a new store"
        )
    if "readonly" in lowered or "read-only" in lowered:
        return UsageError(f"results store {path} is read-only ({text}); {WRITABLE_HINT}")
    return UsageError(f"results store {path}: {text}")


WRITABLE_HINT = "name a writable one with --store PATH (or BENCHTOOL_STORE), or run without one: -p no:store"


def _reads(method: Callable[..., T]) -> Callable[..., T]:
    """A read of the store: a SQLite error becomes one :func:`store_error` line."""

    @wraps(method)
    def read(self: ResultStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None

    return read


def check_store_for_run(path: Path) -> None:
    """Check, before a run does any work, that its cases can be stored at ``path``: an existing
    store must be a readable, writable, undamaged benchtool store of a schema this version
    knows; a new one must be creatable. Creates nothing (the store is made when the first
    case finishes, so a session that records nothing leaves no file behind)."""
    if path.is_dir():
        raise UsageError(f"results store {path} is a directory; expected a database file such as {path / 'results.db'}")
    if not path.exists():
        check_creatable(path, f"cannot create results store {path}")
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise UsageError(f"results store {path} is read-only (no permission to write it); {WRITABLE_HINT}")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(
            f"results store {path}: no permission to write in its folder {path.parent} "
            f"(SQLite keeps its -wal and -shm files there); {WRITABLE_HINT}"
        )
    with ResultStore(path, create=False) as store:
        store.check_integrity()


class ResultStore:
    """A results database file; safe to open from several processes at once. For reading it is a
    :class:`~benchtool.store.source.ResultSource`."""

    records_only = False  # it keeps case outcomes and run metadata

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, readonly: bool = False) -> None:
        """Open (``create``: or make) the store at ``path``. ``readonly`` opens it for reading
        only: nothing is created, migrated or written, and a store on a read-only disk opens."""
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise UsageError(
                f"results store {self.path} is a directory; expected a database file such as {self.path / 'results.db'}"
            )
        if not self.path.exists():
            if not create or readonly:
                raise UsageError(
                    f"no results store at {self.path}; run `benchtool run` first, or name one with --store PATH"
                )
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create results store {self.path}: {exc.strerror or exc}") from None
        if readonly:
            self._conn = self._open_readonly()
            return
        try:
            self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise UsageError(f"cannot open results store {self.path}: {exc}") from None
        try:
            self._retry(self._setup)
        except sqlite3.Error as exc:
            self._conn.close()
            raise store_error(self.path, exc) from None
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- connection, transactions, schema ---------------------------------------------

    def _open_readonly(self) -> sqlite3.Connection:
        """A read-only connection. SQLite needs the ``-shm`` file of a WAL store, which it
        cannot create in a folder we may not write in: there the file is read as it stands
        (``immutable``), which is what a read-only disk holds anyway."""
        uri = f"file:{quote(self.path.absolute().as_posix())}?mode=ro"
        problem: sqlite3.Error | None = None
        for suffix in ("", "&immutable=1"):
            try:
                conn = sqlite3.connect(uri + suffix, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            except sqlite3.Error as exc:
                problem = exc
                continue
            try:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as exc:
                conn.close()
                problem = exc
                if isinstance(exc, sqlite3.OperationalError) and not _is_busy(exc):
                    continue  # e.g. no -shm and no right to create it: read the file as it is
                break
            self._check_version(version, conn)
            return conn
        assert problem is not None
        if "not a database" in str(problem).lower():
            raise UsageError(f"{self.path} is not a benchtool results store ({problem})")
        raise store_error(self.path, problem)

    def _check_version(self, version: int, conn: sqlite3.Connection) -> None:
        """A read-only store must hold this version's schema: it cannot be migrated."""
        if version > SCHEMA_VERSION:
            conn.close()
            raise UsageError(
                f"{self.path} has schema version {version}, newer than this benchtool's {SCHEMA_VERSION}; "
                "upgrade benchtool to read it"
            )
        if version == 0:
            conn.close()
            raise UsageError(f"{self.path} is not a benchtool results store (it has no benchtool tables)")
        if version < SCHEMA_VERSION:
            conn.close()
            raise UsageError(
                f"{self.path} has schema version {version}, older than this benchtool's {SCHEMA_VERSION}; "
                "a run with write access to it upgrades it"
            )

    def check_integrity(self) -> None:
        """Raise the one-line 'damaged' error when SQLite's quick check finds a broken page."""
        try:
            problems = [row[0] for row in self._conn.execute("PRAGMA quick_check(1)")]
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None
        if problems != ["ok"]:
            first = " ".join(" ".join(problems).replace("*** in database main ***", "").split())
            raise store_error(self.path, sqlite3.DatabaseError(f"database disk image is malformed: {first}"))

    def _setup(self) -> None:
        conn = self._conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise
            raise UsageError(f"cannot open results store {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{self.path} is not a benchtool results store ({exc})") from None
        if mode.lower() != "wal":
            raise UsageError(f"{self.path}: cannot use SQLite's WAL mode here (got {mode!r}); use a local disk")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        with self._transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            if version > SCHEMA_VERSION:
                raise UsageError(
                    f"{self.path} has schema version {version}, newer than this benchtool's {SCHEMA_VERSION}; "
                    "upgrade benchtool to read it"
                )
            for step in MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    @_reads
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front (no upgrade deadlock)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _retry(self, action: Callable[[], T]) -> T:
        """Run ``action``, retrying with backoff while another process holds the lock."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        if self.readonly:
            raise UsageError(f"results store {self.path} was opened read-only")

        def attempt() -> T:
            with self._transaction() as conn:
                return body(conn)

        try:
            return self._retry(attempt)
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None

    # --- writing -------------------------------------------------------------------------

    def begin_run(self, run_id: str, started: float, metadata: dict[str, Any], *,
                  command: str, cwd: str, pytest_args: list[str], budget: str, seed: int) -> None:
        """Insert a new run in state 'running'."""
        row = {
            "id": run_id, "started": started, "status": "running", "pid": os.getpid(),
            "host": str(metadata.get("host", platform.node())), "command": command, "cwd": cwd,
            "pytest_args": json.dumps(pytest_args), "budget": budget, "seed": seed,
            "device": str(metadata.get("device", "")), "device_name": str(metadata.get("device_name", "")),
            "git_commit": str(metadata.get("git_commit", "")),
            "git_dirty": None if "git_dirty" not in metadata else int(bool(metadata["git_dirty"])),
            "benchtool": str(metadata.get("benchtool", "")), "torch": str(metadata.get("torch", "")),
            "numba": str(metadata.get("numba", "")), "metadata": json.dumps(metadata, default=str),
        }
        columns = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        self._write(lambda conn: conn.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", row))

    def resume_run(self, run_id: str) -> None:
        """Mark an existing run as running again, in this process."""
        self._write(lambda conn: conn.execute(
            "UPDATE runs SET status = 'running', ended = NULL, exitstatus = NULL, pid = ?, host = ?, "
            "sessions = sessions + 1 WHERE id = ?",
            (os.getpid(), platform.node(), run_id),
        ))

    def add_case(self, run_id: str, case: CaseResult) -> None:
        """Store one finished case and its records in one transaction (replacing an earlier try)."""

        def body(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM cases WHERE run_id = ? AND nodeid = ?", (run_id, case.nodeid))
            cursor = conn.execute(
                "INSERT INTO cases (run_id, nodeid, suite, outcome, duration, message, finished) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, case.nodeid, case.suite, case.outcome, case.duration, case.message, time.time()),
            )
            case_id = cursor.lastrowid
            conn.executemany(
                "INSERT INTO records (case_id, run_id, suite, case_name, kind, plugin, model, dataset, metric, "
                "value, unit, params, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_record_row(case_id, run_id, r) for r in case.records],
            )

        self._write(body)

    def finish_run(self, run_id: str, exitstatus: int) -> None:
        """Close a run: 'interrupted' for pytest's exit status 2, else 'finished'."""
        status = "interrupted" if exitstatus == PYTEST_INTERRUPTED else "finished"
        self._write(lambda conn: conn.execute(
            "UPDATE runs SET status = ?, exitstatus = ?, ended = ? WHERE id = ?",
            (status, exitstatus, time.time(), run_id),
        ))

    # --- reading -------------------------------------------------------------------------

    @_reads
    def past_durations(self, budget: str, device: str) -> dict[str, float]:
        """The duration of each case (by :func:`case_key`) the last time it passed in a run
        of ``budget`` on ``device``."""
        rows = self._conn.execute(
            "SELECT c.nodeid, c.duration FROM cases c JOIN runs r ON c.run_id = r.id "
            "WHERE c.outcome = 'passed' AND r.budget = ? AND r.device = ? ORDER BY c.finished, c.id",
            (budget, device))
        return {case_key(nodeid): float(duration) for nodeid, duration in rows}  # the latest wins

    @_reads
    def run_ids(self) -> list[str]:
        """Every run id, oldest first."""
        return [row[0] for row in self._conn.execute("SELECT id FROM runs ORDER BY started, id")]

    @_reads
    def resolve(self, spec: str) -> str:
        """A run id from ``spec``: the id, a unique prefix of it, ``latest`` or ``latest~N``."""
        return resolve_run_id(spec, self.run_ids(), self.path)

    @_reads
    def runs(self, limit: int | None = None) -> list[RunInfo]:
        """Runs, newest first."""
        query = "SELECT * FROM runs ORDER BY started DESC, id DESC"
        return self._run_infos(self._conn.execute(query + (f" LIMIT {int(limit)}" if limit else "")))

    @_reads
    def run(self, run_id: str) -> RunInfo:
        infos = self._run_infos(self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)))
        if not infos:
            raise UsageError(f"unknown run {run_id!r} in {self.path}")
        return infos[0]

    def _run_infos(self, cursor: sqlite3.Cursor) -> list[RunInfo]:
        """The runs ``cursor`` selects (``SELECT * FROM runs``), with their case and record counts."""
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
        ids = [data["id"] for data in rows]
        outcomes: dict[str, dict[str, int]] = {run_id: {} for run_id in ids}
        for run_id, outcome, count in self._per_run(
                "SELECT run_id, outcome, COUNT(*) FROM cases WHERE run_id IN ({}) GROUP BY run_id, outcome", ids):
            outcomes[run_id][outcome] = count
        records = dict(self._per_run("SELECT run_id, COUNT(*) FROM records WHERE run_id IN ({}) GROUP BY run_id", ids))
        return [self._run_info(data, outcomes[data["id"]], records.get(data["id"], 0)) for data in rows]

    def _per_run(self, query: str, ids: list[str]) -> list[tuple[Any, ...]]:
        """``query`` with its ``IN ({})`` filled with ``ids``, in chunks that fit SQLite's parameter limit."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start:start + IDS_PER_QUERY]
            rows += self._conn.execute(query.format(", ".join("?" * len(chunk))), chunk).fetchall()
        return rows

    @staticmethod
    def _run_info(data: dict[str, Any], outcomes: dict[str, int], records: int) -> RunInfo:
        return RunInfo(
            id=data["id"], started=data["started"], ended=data["ended"], status=data["status"],
            exitstatus=data["exitstatus"], sessions=data["sessions"], pid=data["pid"], host=data["host"] or "",
            command=data["command"] or "", cwd=data["cwd"] or "", pytest_args=json.loads(data["pytest_args"] or "[]"),
            budget=data["budget"] or "", seed=data["seed"], device=data["device"] or "",
            device_name=data["device_name"] or "", git_commit=data["git_commit"] or "",
            git_dirty=None if data["git_dirty"] is None else bool(data["git_dirty"]),
            versions={k: data[k] for k in ("benchtool", "torch", "numba") if data[k]},
            metadata=json.loads(data["metadata"]), outcomes=outcomes, records=records,
        )

    @_reads
    def cases(self, run_id: str) -> list[CaseResult]:
        """Every stored case of a run with its records, in the order they finished."""
        cases: dict[int, CaseResult] = {}
        for case_id, nodeid, suite, outcome, duration, message in self._conn.execute(
            "SELECT id, nodeid, suite, outcome, duration, message FROM cases WHERE run_id = ? ORDER BY id",
            (run_id,),
        ):
            cases[case_id] = CaseResult(nodeid, suite, outcome, duration, [], message)
        for case_id, data in self._conn.execute(
            "SELECT case_id, data FROM records WHERE run_id = ? ORDER BY id", (run_id,)
        ):
            cases[case_id].records.append(Record.from_json(json.loads(data)))
        return list(cases.values())

    @_reads
    def finished_nodeids(self, run_id: str) -> set[str]:
        """Node ids of the cases the run finished (passed, failed or skipped with records)."""
        return {row[0] for row in self._conn.execute("SELECT nodeid FROM cases WHERE run_id = ?", (run_id,))}

    @_reads
    def count(self, table: str, run_id: str | None = None) -> int:
        """Rows in ``cases`` or ``records`` (of one run, or of all)."""
        if table not in ("runs", "cases", "records"):
            raise ValueError(f"unknown table {table!r}")
        column = "id" if table == "runs" else "run_id"
        query = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {column} = ?" if run_id else "")
        return int(self._conn.execute(query, (run_id,) if run_id else ()).fetchone()[0])


def resolve_run_id(spec: str, ids: list[str], where: Path) -> str:
    """The run id ``spec`` names among ``ids`` (oldest first): the id, a unique prefix of it,
    ``latest`` or ``latest~N``; a UsageError naming ``where`` otherwise."""
    if spec == "latest" or spec.startswith("latest~"):
        back = spec[len("latest~"):] if "~" in spec else "0"
        if not back.isdigit():
            raise UsageError(f"invalid run {spec!r}; expected latest or latest~N")
        if int(back) >= len(ids):
            raise UsageError(f"run {spec!r}: the store {where} holds only {len(ids)} run(s)")
        return ids[-1 - int(back)]
    matches = [i for i in ids if i == spec] or [i for i in ids if i.startswith(spec)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        recent = ", ".join(ids[-5:]) or "(none)"
        raise UsageError(f"unknown run {spec!r} in {where}; expected a run id (recent: {recent}) or latest")
    raise UsageError(f"run {spec!r} is ambiguous in {where}: matches {', '.join(matches)}")


def _record_row(case_id: int | None, run_id: str, record: Record) -> tuple[Any, ...]:
    value = None if record.value is None or math.isnan(record.value) else record.value
    return (
        case_id, run_id, record.suite, record.case, record.kind, record.plugin, record.model, record.dataset,
        record.metric, value, record.unit, json.dumps(record.params, sort_keys=True, default=str),
        json.dumps(record.to_json(), default=str),
    )
