"""The results store: schema and migrations, round trips, run ids, and the runs/show commands."""

from __future__ import annotations

import json
import math
import platform
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchtool.cli import main
from benchtool.errors import UsageError
from benchtool.results import CaseResult, Record, read_json
from benchtool.store.db import (
    DEFAULT_STORE, SCHEMA_VERSION, STORE_ENV, ResultStore, case_key, new_run_id, resolve_store_path,
)

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=12)
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
params = st.dictionaries(names, st.one_of(st.integers(-5, 5), st.floats(-1, 1), names, st.booleans()), max_size=3)


@st.composite
def records(draw: st.DrawFn) -> Record:
    is_series = draw(st.booleans())
    series = None
    if is_series:
        xs = draw(st.lists(st.floats(-1e6, 1e6), max_size=6))
        ys = draw(st.lists(floats, min_size=len(xs), max_size=len(xs)))
        series = {"x": xs, "y": ys, "x_label": draw(names), "y_label": ""}
    return Record(draw(names), f"test_x[{draw(names)}]", draw(st.sampled_from(["attacks", "estimators", ""])),
                  draw(names), draw(names), draw(names), draw(params), draw(names),
                  None if is_series else draw(floats), draw(st.sampled_from(["", "s", "%"])), draw(st.integers(0, 9)),
                  "cpu", series)


def _same(a: Record, b: Record) -> bool:
    """Equal, counting NaN equal to NaN (in values and in series)."""
    return json.dumps(a.to_json(), sort_keys=True, default=str) == json.dumps(b.to_json(), sort_keys=True, default=str)


def begin(store: ResultStore, run_id: str, **meta: object) -> None:
    store.begin_run(run_id, time.time(), {"device": "cpu", "host": "h", **meta}, command="benchtool run x",
                    cwd="/tmp", pytest_args=["suites", "--bt-seed", "0"], budget="small", seed=0)


def case(nodeid: str, *recs: Record, outcome: str = "passed") -> CaseResult:
    return CaseResult(nodeid, "robustness", outcome, 0.25, list(recs), "boom" if outcome == "failed" else "")


@pytest.fixture
def store(tmp_path: Path):
    with ResultStore(tmp_path / "deep" / "results.db") as opened:
        yield opened


@given(st.lists(records(), max_size=8))
def test_records_round_trip_exactly(tmp_path_factory: pytest.TempPathFactory, recs: list[Record]) -> None:
    with ResultStore(tmp_path_factory.mktemp("rt") / "r.db") as store:
        begin(store, "run")
        store.add_case("run", case("suites/test_r.py::test_x[a]", *recs))
        (stored,) = store.cases("run")
    assert len(stored.records) == len(recs)
    assert all(_same(a, b) for a, b in zip(recs, stored.records))


def test_schema_is_versioned_and_the_file_is_wal(store: ResultStore) -> None:
    assert store.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables >= {"runs", "cases", "records"}


def test_a_newer_schema_is_refused_and_garbage_is_not_a_store(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(UsageError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
        ResultStore(newer)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UsageError, match="not a benchtool results store"):
        ResultStore(garbage)
    with pytest.raises(UsageError, match="no results store at"):
        ResultStore(tmp_path / "missing.db", create=False)


def test_run_metadata_cases_and_counts(store: ResultStore) -> None:
    begin(store, "r1", git_commit="abc123", git_dirty=True, torch="2.x", benchtool="0.1.0")
    rec = Record("robustness", "test_x[a]", "attacks", "pgd", "lenet", "digits", {"eps": 0.1}, "robust_accuracy",
                 0.5, "", 0, "cpu")
    store.add_case("r1", case("suites/test_r.py::test_x[a]", rec, rec))
    store.add_case("r1", case("suites/test_r.py::test_x[b]", outcome="failed"))
    store.finish_run("r1", 1)
    (run,) = store.runs()
    assert (run.id, run.status, run.exitstatus, run.git_commit, run.git_dirty) == ("r1", "finished", 1, "abc123", True)
    assert run.outcomes == {"passed": 1, "failed": 1} and run.records == 2 and run.cases == 2
    assert run.versions == {"benchtool": "0.1.0", "torch": "2.x"}
    assert run.pytest_args == ["suites", "--bt-seed", "0"] and run.budget == "small"
    assert store.cases("r1")[1].message == "boom"
    assert store.count("records", "r1") == 2 and store.count("cases") == 2


def test_a_rerun_case_replaces_its_earlier_result(store: ResultStore) -> None:
    begin(store, "r1")
    rec = Record("s", "test_x[a]", "", "", "", "", {}, "m", 1.0, "", 0, "cpu")
    store.add_case("r1", case("test_s.py::test_x[a]", rec, rec, outcome="failed"))
    store.add_case("r1", case("test_s.py::test_x[a]", rec))
    assert [c.outcome for c in store.cases("r1")] == ["passed"]
    assert store.count("records", "r1") == 1


def test_resolve_ids_prefixes_and_latest(store: ResultStore) -> None:
    for run_id in ("20250101-000000-aaaa", "20250102-000000-bbbb", "20250102-000000-bbcc"):
        begin(store, run_id)
        time.sleep(0.002)
    assert store.resolve("latest") == "20250102-000000-bbcc"
    assert store.resolve("latest~2") == "20250101-000000-aaaa"
    assert store.resolve("20250101") == "20250101-000000-aaaa"
    with pytest.raises(UsageError, match="ambiguous"):
        store.resolve("20250102-000000-bb")
    with pytest.raises(UsageError, match="unknown run 'zzz'.*expected a run id"):
        store.resolve("zzz")
    with pytest.raises(UsageError, match="holds only 3 run"):
        store.resolve("latest~3")
    with pytest.raises(UsageError, match="expected latest or latest~N"):
        store.resolve("latest~x")


def test_run_ids_are_unique_and_sortable() -> None:
    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200
    assert new_run_id(0.0) < new_run_id(1e9) < new_run_id()


def test_store_path_option_env_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_store_path(None) == tmp_path / DEFAULT_STORE
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "env.db"))
    assert resolve_store_path(None) == tmp_path / "env.db"
    assert resolve_store_path("x.db") == tmp_path / "x.db"


def test_case_key_ignores_the_rootdir() -> None:
    expected = "test_r.py::test_x[a-b]"
    assert case_key("suites/test_r.py::test_x[a-b]") == case_key("../../x/test_r.py::test_x[a-b]") == expected


def test_a_running_run_whose_process_is_gone_reads_aborted(store: ResultStore) -> None:
    begin(store, "r1", host=platform.node())
    assert store.run("r1").state == "running"  # this process is alive
    store._conn.execute("UPDATE runs SET pid = 2147483646 WHERE id = 'r1'")
    assert store.run("r1").state == "aborted"


def test_runs_and_show_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "results.db"
    with ResultStore(path) as store:
        begin(store, "20250101-000000-aaaa")
        rec = Record("robustness", "test_x[pgd-lenet]", "attacks", "pgd", "lenet", "digits", {"eps": 0.1},
                     "robust_accuracy", 0.25, "", 0, "cpu")
        store.add_case("20250101-000000-aaaa", case("suites/test_robustness.py::test_x[pgd-lenet]", rec))
        store.add_case("20250101-000000-aaaa", case("suites/test_robustness.py::test_x[fgsm-lenet]", outcome="failed"))
        store.finish_run("20250101-000000-aaaa", 1)
    assert main(["runs", "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert "20250101-000000-aaaa" in out and "1 failed 1 passed" in out and "finished" in out
    exported = tmp_path / "out.json"
    assert main(["show", "2025", "--store", str(path), "--json", str(exported)]) == 0
    out = capsys.readouterr().out
    assert "== robustness ==" in out and "pgd-lenet" in out and "0.25" in out
    assert "== failed cases ==" in out and "boom" in out
    assert [r.value for r in read_json(exported)] == [0.25]
    assert main(["show", "nope", "--store", str(path)]) == 2
    assert "unknown run 'nope'" in capsys.readouterr().err
    assert main(["runs", "--store", str(tmp_path / "none.db")]) == 2
    assert "no results store at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_nan_values_stay_nan(store: ResultStore) -> None:
    begin(store, "r1")
    rec = Record("s", "test_x[a]", "", "", "", "", {}, "m", math.nan, "", 0, "cpu")
    store.add_case("r1", case("test_s.py::test_x[a]", rec))
    (value,) = [r.value for c in store.cases("r1") for r in c.records]
    assert math.isnan(value)


def test_a_write_waits_out_another_writers_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the busy timeout, a write is retried with backoff instead of failing the run."""
    import threading

    import benchtool.store.db as db

    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.02)
    path = tmp_path / "results.db"
    with ResultStore(path) as store:
        begin(store, "r1")
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")  # another process in the middle of its own case
        release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
        release.start()
        try:
            store.add_case("r1", case("test_s.py::test_x[a]", Record("s", "test_x[a]", "", "", "", "", {}, "m", 1.0,
                                                                     "", 0, "cpu")))
        finally:
            release.join()
        assert store.count("records", "r1") == 1


def test_the_commit_of_an_editable_install_is_recorded_from_any_directory(tmp_path: Path) -> None:
    """A run started outside the checkout still says which code ran (PEP 610 direct_url.json)."""
    import subprocess
    from types import SimpleNamespace

    from benchtool.store.plugin import benchtool_run_metadata, editable_source

    source = editable_source()
    if source is None or not (source / ".git").exists():
        pytest.skip("benchtool is not installed editable from a git checkout here")
    metadata: dict = {}
    benchtool_run_metadata(config=SimpleNamespace(options={"invocation": {"dir": str(tmp_path)}}), metadata=metadata)
    assert "git_commit" not in metadata  # tmp_path is no checkout
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True).stdout.strip()
    assert metadata["benchtool_commit"] == head
    assert metadata["benchtool_source"] == str(source)
    assert isinstance(metadata["benchtool_dirty"], bool)
