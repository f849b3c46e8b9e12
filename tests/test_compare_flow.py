"""A CI user's flow, end to end, as typed: run -> store -> a run with a degraded plugin ->
``benchtool compare`` exits 1 naming the regressed metric -> the report renders.

The baseline run uses ``-n 2`` (pytest-xdist): the counts prove every worker's cases
reached the store through the controller. The plugins and the suite are tiny local
modules (tests/store_zoo), loaded with ``-p`` like any user's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchtool.cli import main
from benchtool.report.chromium import check_rendering, find_chromium
from benchtool.store.db import ResultStore

ZOO = Path(__file__).parent / "store_zoo"


def benchtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("benchtool")
    command = [str(script)] if script.exists() else [shutil.which("benchtool") or "benchtool"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINY_", "BENCHTOOL_STORE", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ZOO), env.get("PYTHONPATH")]))
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(__import__("importlib").util.find_spec("xdist") is None, reason="needs pytest-xdist")
def test_degraded_plugin_fails_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "test_tiny.py"
    shutil.copy(ZOO / "suite_tiny.py", suite)
    db = tmp_path / ".benchtool" / "results.db"  # the default place, relative to where the user runs

    baseline = benchtool("run", str(suite), "-p", "tiny_strong", "--device", "cpu", "-n", "2", cwd=tmp_path)
    assert baseline.returncode == 0, baseline.stdout[-3000:] + baseline.stderr[-2000:]
    assert "6 passed" in baseline.stdout and "case(s) stored in" in baseline.stdout
    with ResultStore(db, create=False) as store:
        (run,) = store.runs()
        assert run.outcomes == {"passed": 6} and run.records == 18 and store.count("records") == 18

    candidate = benchtool("run", str(suite), "-p", "tiny_weak", "--device", "cpu", cwd=tmp_path)
    assert candidate.returncode == 0, candidate.stdout[-3000:]  # the weak attack keeps its contract

    gate = benchtool("compare", "latest~1", "latest", cwd=tmp_path)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    regressed = [line for line in gate.stdout.splitlines() if line.startswith("REGRESSED")]
    assert len(regressed) == 6 and all(" robust_accuracy: " in line for line in regressed)
    assert "lower is better for attacks" in regressed[0]
    assert "clean_accuracy" not in gate.stdout  # unchanged: counted, not listed

    monkeypatch.chdir(tmp_path)  # the remaining commands, in-process, from the user's directory
    monkeypatch.delenv("BENCHTOOL_STORE", raising=False)  # and its default store (tests/conftest.py sets one)
    assert main(["compare", "latest~1", "latest~1"]) == 0  # a run against itself passes the gate
    assert main(["runs"]) == 0
    assert main(["report", "latest", "--compare", "latest~1", "-o", "report.html"]) == 0
    listing = capsys.readouterr().out
    assert "12 metric(s): 12 unchanged" in listing and listing.count("6 passed") == 2
    if find_chromium() is not None:
        check = check_rendering(tmp_path / "report.html")
        assert check.ok and check.images == 2  # robust_accuracy vs eps, and the margin histogram
