"""A third-party executor: a pytest plugin registers it with its own option, and the suite's
cells run on it and record what a serial run records."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from benchtool.cli import main

HARNESS = Path(__file__).resolve().parent / "scaleout_tiny"
PLUGIN_ZOO = Path(__file__).resolve().parent / "plugin_zoo"
sys.path.insert(0, str(HARNESS))
from scaleout_harness import CELLS, finish_suite, make_suite, run_suite, start_suite, suite_env  # noqa: E402


def test_an_executor_plugin_declares_its_option_and_runs_the_cells(tmp_path: Path) -> None:
    root = make_suite(tmp_path)
    shutil.copy(PLUGIN_ZOO / "pool_executor.py", root / "pool_executor.py")
    serial = start_suite(root, name="serial")
    tasks, cells = root / "tasks.log", root / "cells.log"
    pooled = run_suite(root, "-p", "pool_executor", "--bt-executor", "pool", "--bt-pool-workers", "2", name="pool",
                       env=suite_env(root, BENCHTOOL_TASK_LOG=str(tasks), BENCHTOOL_TEST_CELL_LOG=str(cells)))
    serial_run = finish_suite(root, serial, "serial")
    assert serial_run.returncode == 0, serial_run.output[-3000:]
    assert pooled.returncode == 0, pooled.output[-3000:]
    assert len(pooled.records) == CELLS and pooled.record_keys() == serial_run.record_keys()
    submitted = [line.split() for line in tasks.read_text().splitlines() if " pool-of-2 " in line]
    assert submitted and all(name == "run_cell_batch" for *_, name in submitted)  # the option reached it
    driver = {pid for pid, *_ in submitted}
    ran_in = {line.split()[-1] for line in cells.read_text().splitlines()}
    assert ran_in and ran_in.isdisjoint(driver) and len(ran_in) <= 2  # cells ran in the pool's processes


def test_an_executor_option_is_checked_before_any_work(tmp_path: Path) -> None:
    root = make_suite(tmp_path)
    shutil.copy(PLUGIN_ZOO / "pool_executor.py", root / "pool_executor.py")
    run = run_suite(root, "-p", "pool_executor", "--bt-executor", "pool", "--bt-pool-workers", "0", name="bad")
    assert run.returncode == 4, run.output[-3000:]
    assert "--bt-pool-workers 0: expected at least 1" in run.output
    assert not run.records


def test_benchtool_list_shows_every_executor_with_its_options(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(PLUGIN_ZOO / "pool_executor.py", tmp_path / "pool_executor.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pool_executor", raising=False)
    assert main(["list", "executors", "-p", "pool_executor"]) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) == {"local", "ray", "pool"}
    assert all(row.split()[0] == "executors" for row in rows.values())
    assert rows["pool"].split()[2:5] == ["pool_executor", "local", "-"]
    assert "(options: --bt-pool-workers N)" in rows["pool"]
    assert "(options: --bt-ray-address ADDR)" in rows["ray"]
    assert rows["local"].split()[2:4] == ["benchtool.pytest.dispatch", "benchtool"]


def test_benchtool_list_shows_the_builtin_executors_among_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    names = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("executors ")]
    assert names == ["local", "ray"]
