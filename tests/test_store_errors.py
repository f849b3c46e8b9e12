"""A bad results store or output file is one line and exit 2 before any work; a store that
goes bad during a run loses no finished case; a read-only store can still be read.

The runs use the tiny local suite of tests/store_zoo (a fixed linear model, 6 cases of 3
records), typed as a user would: ``benchtool run ...`` in this process or in a subprocess
where the test needs another process (a user without write permission, a closed pipe).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchtool.cli import main
from benchtool.results import CaseResult, Record, read_json
from benchtool.store.db import ResultStore, project_store

ZOO = Path(__file__).parent / "store_zoo"
CASES, RECORDS_PER_CASE = 6, 3  # suite_tiny.py


def benchtool_command() -> list[str]:
    script = Path(sys.executable).with_name("benchtool")
    return [str(script)] if script.exists() else [shutil.which("benchtool") or "benchtool"]


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINY_", "BENCHTOOL_STORE", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ZOO), env.get("PYTHONPATH")]))
    return {**env, **extra}


def benchtool(*args: str, cwd: Path, prefix: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *benchtool_command(), *args], cwd=cwd, capture_output=True, text=True,
                          env=user_env(**env), timeout=300)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(ZOO / "suite_tiny.py", tmp_path / "test_tiny.py")
    monkeypatch.syspath_prepend(str(ZOO))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCHTOOL_STORE", raising=False)
    for name in [k for k in os.environ if k.startswith("TINY_")]:
        monkeypatch.delenv(name)
    return tmp_path


def run_tiny(workdir: Path, *options: str) -> int:
    """``benchtool run test_tiny.py -p tiny_strong --device cpu OPTIONS`` in this process."""
    return main(["run", str(workdir / "test_tiny.py"), "-p", "tiny_strong", "--device", "cpu",
                 "-p", "no:cacheprovider", *options])


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def stored_runs(db: Path) -> list:
    with ResultStore(db, readonly=True) as store:
        return store.runs()


def unprivileged() -> tuple[str, ...]:
    """A command prefix under which files without write permission cannot be written (root
    ignores permissions, so it gives up that capability for the command)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    prefix = (setpriv, "--bounding-set", "-dac_override,-dac_read_search") if setpriv else ()
    if not prefix or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root, and root cannot drop its permission to write read-only files here")
    return prefix


def make_store(db: Path, runs: int = 1) -> list[str]:
    """A store with ``runs`` finished runs of two cases (one failed)."""
    ids = []
    with ResultStore(db) as store:
        for index in range(runs):
            run_id = f"2025010{index + 1}-000000-aaaa"
            store.begin_run(run_id, time.time() + index, {"device": "cpu"}, command="benchtool run x",
                            cwd=str(db.parent), pytest_args=["x"], budget="small", seed=0)
            for case in range(2):
                records = [Record("robustness", f"test_r[a{case}]", "attacks", "pgd", "mlp", "digits", {"eps": e / 10},
                                  "robust_accuracy", 0.5 - e / 100, "", 0, "cpu") for e in range(40)]
                store.add_case(run_id, CaseResult(f"test_r.py::test_r[a{case}]", "robustness",
                                                  "failed" if case else "passed", 0.1, records, "boom" if case else ""))
            store.finish_run(run_id, 1)
            ids.append(run_id)
    return ids


# --- a bad --store: one line, exit 2, before the first case --------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.mkdir(),
         "results store {path} is a directory; expected a database file such as {path}/results.db"),
        (lambda p: p.write_bytes(b"not sqlite " * 1000),
         "{path} is not a benchtool results store (file is not a database)"),
        (lambda p: p.parent.joinpath("file").write_text("x"), None),
    ],
    ids=["directory", "garbage", "parent-is-a-file"],
)
def test_a_bad_store_is_one_line_before_any_case(workdir: Path, capsys: pytest.CaptureFixture[str], make,
                                                  expected: str | None) -> None:
    path = workdir / "results.db"
    make(path)
    store = path if expected else workdir / "file" / "results.db"
    assert run_tiny(workdir, "--store", str(store)) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    if expected:
        assert line == "ERROR: " + expected.format(path=store)
    else:
        assert line == f"ERROR: cannot create results store {store}: {workdir / 'file'} is a file, not a folder"
    assert "passed" not in captured.out and "test_tiny.py" not in captured.out  # no case ran


def test_a_damaged_store_is_reported_not_a_sqlite_traceback(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = workdir / "damaged.db"
    make_store(db)
    conn = sqlite3.connect(db)
    page, pages = conn.execute("PRAGMA page_size").fetchone()[0], conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    data = bytearray(db.read_bytes())
    for index in range(1, pages):  # every page but the header and schema page
        data[index * page:(index + 1) * page] = b"\xa5" * page
    db.write_bytes(bytes(data))
    damaged = f"results store {db} is damaged (database disk image is malformed"
    salvage = f"salvage what is readable with `sqlite3 {db} .recover | sqlite3 recovered.db`"
    for command in (["runs"], ["show", "latest"], ["compare", "latest", "latest"], ["report", "latest"]):
        assert main([*command, "--store", str(db)]) == 2, command
        line = one_error_line(capsys.readouterr().err)
        assert line.startswith(f"benchtool {command[0]}: error: {damaged}") and salvage in line, line
    assert run_tiny(workdir, "--store", str(db)) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert line.startswith(f"ERROR: {damaged}: ") and salvage in line and "Traceback" not in captured.out


def test_a_read_only_store_refuses_a_run_and_is_still_read(workdir: Path) -> None:
    prefix = unprivileged()
    folder = workdir / "shared"
    folder.mkdir()
    db = folder / "results.db"
    make_store(db, runs=2)
    (workdir / "out").mkdir()
    db.chmod(0o444)
    folder.chmod(0o555)  # no -shm can be made either: it is read as it stands
    try:
        run = benchtool("run", "test_tiny.py", "-p", "tiny_strong", "--device", "cpu", "--store", str(db),
                        cwd=workdir, prefix=prefix)
        assert run.returncode == 2, run.stdout[-2000:] + run.stderr
        assert one_error_line(run.stderr) == (
            f"ERROR: results store {db} is read-only (no permission to write it); name a writable one with "
            "--store PATH (or BENCHTOOL_STORE), or run without one: -p no:store")
        assert "test_tiny.py" not in run.stdout

        runs = benchtool("runs", "--store", str(db), cwd=workdir, prefix=prefix)
        assert runs.returncode == 0 and runs.stderr == "", runs.stderr
        assert runs.stdout.splitlines()[0] == f"store: {db}" and runs.stdout.count("1 failed 1 passed") == 2
        show = benchtool("show", "latest", "--store", str(db), "--json", "out/latest.json", cwd=workdir, prefix=prefix)
        assert show.returncode == 0, show.stderr
        assert f"store:    {db}" in show.stdout and "== failed cases ==" in show.stdout
        assert len(read_json(workdir / "out" / "latest.json")) == 80
        gate = benchtool("compare", "latest~1", "latest", "--store", str(db), cwd=workdir, prefix=prefix)
        assert gate.returncode == 0, gate.stderr
        assert gate.stdout.splitlines()[0] == (
            f"baseline 20250101-000000-aaaa vs candidate 20250102-000000-aaaa (store {db})")
        report = benchtool("report", "latest", "--store", str(db), "-o", "out/report.html", cwd=workdir, prefix=prefix)
        assert report.returncode == 0 and f"from store {db}" in report.stdout, report.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["results.db"]  # nothing written next to it
    finally:
        folder.chmod(0o755)
        db.chmod(0o644)


# --- a store that fails during the run ---------------------------------------------------------


def test_a_store_that_fails_mid_run_loses_no_reported_case(tmp_path: Path) -> None:
    """The disk fills up (here: the store's path turns into a folder) after the start check:
    the run goes on, the summary says what the store missed, nothing raises."""
    from types import SimpleNamespace

    from benchtool.config import RunConfig
    from benchtool.store import plugin

    path = tmp_path / "results.db"
    config = RunConfig(options={"store": str(path)})
    host = SimpleNamespace(run_metadata=lambda cfg: {"device": "cpu"})
    plugin.benchtool_configure(config=config, host=host)  # the check passes: nothing is there yet
    path.mkdir()
    case = CaseResult("test_r.py::test_r[a]", "r", "passed", 0.1, [])
    plugin.benchtool_case_finished(config=config, case=case)
    plugin.benchtool_case_finished(config=config, case=case)
    plugin.benchtool_session_finish(config=config, cases=[case, case], exitstatus=0)
    (line,) = plugin.benchtool_terminal_summary(config=config)
    assert line == (f"benchtool: the results store failed, 2 case(s) were not stored: results store {path} "
                    f"is a directory; expected a database file such as {path}/results.db")


# --- --json, -o: checked at the start; written through a temporary file of their own ------------


def test_an_unwritable_json_is_one_line_before_any_case(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "adir").mkdir()
    (workdir / "afile").write_text("x")
    db = workdir / "results.db"
    cases = {
        "adir": "--json adir is a directory; expected a file name such as adir/results.json",
        "afile/out.json": f"--json afile/out.json: {workdir / 'afile'} is a file, not a folder",
    }
    for given, message in cases.items():  # named as the user typed it, before pytest starts
        assert run_tiny(workdir, "--store", str(db), "--json", given) == 2
        captured = capsys.readouterr()
        assert one_error_line(captured.err) == f"benchtool run: error: {message}"
        assert "test_tiny.py" not in captured.out
    assert not db.exists()  # nothing ran, nothing was stored


def test_json_into_a_read_only_folder_fails_at_the_start(workdir: Path) -> None:
    prefix = unprivileged()
    locked = workdir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        done = benchtool("run", "test_tiny.py", "-p", "tiny_strong", "--device", "cpu", "--store", "s.db",
                         "--json", "locked/out.json", cwd=workdir, prefix=prefix)
    finally:
        locked.chmod(0o755)
    assert done.returncode == 2, done.stdout[-2000:]
    assert one_error_line(done.stderr) == f"benchtool run: error: --json locked/out.json: no permission to write in {locked}"
    assert not (workdir / "s.db").exists()


@pytest.mark.parametrize(
    ("command", "option"),
    [(["show", "latest", "--json"], "--json"), (["compare", "latest", "latest", "--json"], "--json"),
     (["report", "latest", "-o"], "-o")],
)
def test_reader_outputs_are_checked_before_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   command: list[str], option: str) -> None:
    (tmp_path / "afile").write_text("x")
    target = str(tmp_path / "afile" / "out")
    missing_store = str(tmp_path / "none.db")  # checked first: the output is named, not the store
    assert main([*command, target, "--store", missing_store]) == 2
    assert one_error_line(capsys.readouterr().err).endswith(
        f"error: {option} {target}: {tmp_path / 'afile'} is a file, not a folder")


WRITER = """
import sys
from benchtool.results import Record, write_json
path, index = sys.argv[1], int(sys.argv[2])
records = [Record("s", "c", "", "", "", "", {"i": i}, "m", float(index), "", 0, "cpu") for i in range(200)]
for _ in range(%d):
    write_json(path, records)
"""


def test_two_processes_writing_one_json_never_collide(tmp_path: Path) -> None:
    path, writes = tmp_path / "out" / "records.json", 60
    procs = [subprocess.Popen([sys.executable, "-c", WRITER % writes, str(path), str(i)], stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    errors = [proc.communicate(timeout=240)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    values = {r.value for r in read_json(path)}
    assert len(values) == 1 and values <= {0.0, 1.0}  # one writer's whole file, never a mix
    assert sorted(p.name for p in path.parent.iterdir()) == ["records.json"]  # no temporary file left


# --- --resume: the JSON holds the whole run; a complete run is said to be complete ---------------


def test_resume_writes_the_whole_run_to_json_and_a_complete_run_exits_0(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = workdir / "results.db"
    killed = benchtool("run", "test_tiny.py", "-p", "tiny_strong", "--device", "cpu", "--store", str(db),
                       "--json", "first.json", cwd=workdir, TINY_INTERRUPT_AT="3", TINY_INTERRUPT="sigterm")
    assert killed.returncode != 0
    (run,) = stored_runs(db)
    with ResultStore(db, readonly=True) as store:
        before = {c.nodeid: [r.to_json() for r in c.records] for c in store.cases(run.id)}
    assert len(before) == 3

    assert main(["run", "--resume", run.id, "--store", str(db), "--json", "resumed.json"]) == 0
    out = capsys.readouterr().out
    assert "3 passed, 3 deselected" in out and f"{CASES * RECORDS_PER_CASE} record(s) written to" in out
    records = json.loads((workdir / "resumed.json").read_text())
    assert len(records) == CASES * RECORDS_PER_CASE and len({r["case"] for r in records}) == CASES
    with ResultStore(db, readonly=True) as store:
        after = {c.nodeid: [r.to_json() for r in c.records] for c in store.cases(run.id)}
        (run,) = store.runs()
    assert {k: after[k] for k in before} == before  # the earlier cases are untouched
    assert [r for r in records if r["case"] in {k.split("::")[1] for k in before}] == [
        r for k in before for r in before[k]]
    assert (run.status, run.exitstatus, run.sessions) == ("finished", 0, 2)

    assert main(["run", "--resume", run.id[:15], "--store", str(db), "--json", "again.json"]) == 0
    out = capsys.readouterr().out
    assert (f"benchtool: run {run.id} is complete: all its {CASES} case(s) are stored; nothing to resume "
            f"(benchtool show {run.id})") in out
    assert len(json.loads((workdir / "again.json").read_text())) == CASES * RECORDS_PER_CASE
    (again,) = stored_runs(db)
    assert (again.status, again.exitstatus, again.sessions, again.ended) == ("finished", 0, 2, run.ended)


# --- which store: the project's, found from any folder in it ----------------------------------------


def test_the_default_store_is_the_projects_from_any_subfolder(workdir: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    project = workdir / "project"
    deep = project / "src" / "deep"
    deep.mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    expected = project / ".benchtool" / "results.db"
    assert project_store(deep) == expected  # no store yet: a new one goes to the project root
    os.chdir(deep)
    assert run_tiny(workdir) == 0
    assert f"case(s) stored in {expected} " in capsys.readouterr().out
    os.chdir(project / "src")
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"store: {expected}" and f"{CASES} passed" in out
    assert main(["show", "latest"]) == 0
    assert f"store:    {expected}" in capsys.readouterr().out
    nested = deep / ".benchtool" / "results.db"  # a store nearer to the working folder wins
    make_store(nested)
    os.chdir(deep)
    assert main(["runs"]) == 0 and capsys.readouterr().out.splitlines()[0] == f"store: {nested}"
    outside = workdir / "elsewhere"
    outside.mkdir()
    assert project_store(outside) == outside / ".benchtool" / "results.db"


# --- a reader that stops reading: `benchtool runs | head` ------------------------------------------


@pytest.mark.parametrize("command", [["runs"], ["show", "latest"]])
def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "results.db"
    make_store(db, runs=3)
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has already exited
    try:
        done = subprocess.run([*benchtool_command(), *command, "--store", str(db)], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=user_env(), timeout=120)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
