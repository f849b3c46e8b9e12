"""The read side behind a protocol: ``runs``/``show``/``compare``/``report`` read a run from the
SQLite store or from the ``--bt-json`` file of the same run, and see the same results."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchtool.cli import main
from benchtool.errors import UsageError
from benchtool.store.db import ResultStore
from benchtool.store.json_source import JsonRecords
from benchtool.store.source import ResultSource, open_source

ZOO = Path(__file__).parent / "store_zoo"


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where the tiny suite ran once, into ``.benchtool/results.db`` and ``run.json``."""
    root = tmp_path_factory.mktemp("one-run")
    shutil.copy(ZOO / "suite_tiny.py", root / "test_tiny.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINY_", "BENCHTOOL_STORE", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ZOO), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-m", "benchtool.cli", "run", "test_tiny.py", "-p", "tiny_strong",
                             "--device", "cpu", "--json", "run.json"], cwd=root, capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return root


def shown(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    """``benchtool show``'s leaderboards and failed cases: what follows the run's metadata."""
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    return out[next(i for i, line in enumerate(out) if line.startswith("== ")):]


def test_both_stores_implement_the_protocol(one_run: Path) -> None:
    with open_source(one_run / ".benchtool" / "results.db") as db, open_source(f"json:{one_run}") as folder:
        assert isinstance(db, ResultStore) and isinstance(folder, JsonRecords)
        assert isinstance(db, ResultSource) and isinstance(folder, ResultSource)
        assert db.records_only is False and folder.records_only is True
        assert folder.resolve("latest") == folder.resolve("ru") == "run"
        assert [r.id for r in folder.runs()] == ["run"] and folder.run("run").records == db.runs()[0].records


def test_show_reads_the_same_run_from_sqlite_and_json(one_run: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(one_run)
    monkeypatch.delenv("BENCHTOOL_STORE", raising=False)  # its default store, not tests/conftest.py's
    from_db = shown(["show", "latest"], capsys)
    assert from_db and "== tiny ==" in from_db[0]
    assert shown(["show", "latest", "--store", "json:run.json"], capsys) == from_db
    assert shown(["show", "run", "--store", "run.json"], capsys) == from_db


def test_compare_between_sqlite_and_json_finds_them_the_same(one_run: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(one_run)
    monkeypatch.delenv("BENCHTOOL_STORE", raising=False)  # its default store, not tests/conftest.py's
    assert main(["compare", "latest", "run.json"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "12 metric(s): 12 unchanged"
    assert main(["compare", "latest", "run", "--store", f"json:{one_run}"]) == 0


def test_runs_and_report_read_a_json_folder(one_run: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(one_run)
    monkeypatch.delenv("BENCHTOOL_STORE", raising=False)  # its default store, not tests/conftest.py's
    assert main(["runs", "--store", f"json:{one_run}"]) == 0
    header, _, row = capsys.readouterr().out.splitlines()[1:4]
    assert header.split()[:5] == ["run", "started", "took", "state", "cases"] and row.split()[0] == "run"
    assert "records" in row.split()
    assert main(["report", "latest", "--store", "json:.", "-o", "report.html"]) == 0
    assert "<html" in (one_run / "report.html").read_text()


def test_resume_needs_the_sqlite_store(one_run: Path) -> None:
    from benchtool.store.source import sqlite_store

    with pytest.raises(UsageError, match=r"--resume x needs a results database \(SQLite\), not the --bt-json"):
        sqlite_store(f"json:{one_run / 'run.json'}", "--resume x")


def test_a_missing_json_source_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no --bt-json file or folder at .*nope; expected --store json:PATH"):
        open_source(f"json:{tmp_path / 'nope'}")


def test_json_sources_come_from_the_store_plugin(one_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHTOOL_DISABLE_PLUGINS", "store")
    with pytest.raises(UsageError, match=r"--store json:.*: no plugin reads 'json' sources; expected a results "
                                         r"database path or one of: none: is the store plugin blocked\?"):
        open_source(f"json:{one_run}")


def test_a_reader_scheme_is_checked_and_unique(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchtool.host import load_host

    (tmp_path / "bt_readers.py").write_text(
        "from benchtool import hookimpl\n\n\n"
        "@hookimpl\ndef benchtool_register_result_sources(sources):\n    sources['json'] = dict\n")
    (tmp_path / "bt_bad_reader.py").write_text(
        "from benchtool import hookimpl\n\n\n"
        "@hookimpl\ndef benchtool_register_result_sources(sources):\n    sources['C'] = dict\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("BENCHTOOL_DISABLE_PLUGINS", raising=False)
    host = load_host(["bt_readers", "bt_bad_reader"])
    assert host.result_sources["json"][0] == "store"
    taken, bad = host.failures
    assert taken.rule == "unique-name" and "result source 'json' is already registered by plugin 'store'" in str(taken)
    assert "result source 'C': <class 'dict'>; expected a lower-case scheme of two or more letters" in str(bad)
