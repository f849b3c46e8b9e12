"""pytest-xdist over the cells of a suite: ``-n 2`` gives the records of ``-n 0``, cells
sharing a trained model stay on one worker, and a worker killed mid-cell loses nothing else."""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist", reason="pytest-xdist is not installed (pip install pytest-xdist)")

sys.path.insert(0, str(Path(__file__).resolve().parent / "scaleout_tiny"))
from scaleout_harness import CELLS, SuiteRun, finish_suite, make_suite, run_suite, start_suite, suite_env  # noqa: E402

KILLED = "test_noisy_accuracy[tiny-linear-blobs-0.5]"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_suite(tmp_path_factory.mktemp("xdist"))


@pytest.fixture(scope="module")
def runs(root: Path) -> dict[str, SuiteRun]:
    """A serial run, a clean ``-n 2`` run and a ``-n 2`` run with one cell killing its worker
    (the last two side by side, to keep the wall time down)."""
    serial = run_suite(root, "-n", "0", name="serial",
                       env=suite_env(root, BENCHTOOL_TEST_CELL_LOG=str(root / "serial.cells")))
    parallel = start_suite(root, "-n", "2", name="parallel",
                           env=suite_env(root, BENCHTOOL_TEST_CELL_LOG=str(root / "parallel.cells")))
    crash = run_suite(root, "-n", "2", name="crash", env=suite_env(root, BENCHTOOL_TEST_KILL_ALWAYS=KILLED))
    return {"serial": serial, "parallel": finish_suite(root, parallel, "parallel"), "crash": crash}


def _cells_by_model(log: Path) -> dict[str, set[str]]:
    workers: dict[str, set[str]] = collections.defaultdict(set)
    for line in log.read_text().splitlines():
        model, worker, _pid = line.split()
        workers[model].add(worker)
    return workers


def test_two_workers_record_what_one_process_records(runs: dict[str, SuiteRun]) -> None:
    serial, parallel = runs["serial"], runs["parallel"]
    assert serial.returncode == 0, serial.output[-3000:]
    assert parallel.returncode == 0, parallel.output[-3000:]
    assert len(serial.records) == CELLS
    assert parallel.record_keys() == serial.record_keys()
    assert parallel.outcomes == {nodeid: "passed" for nodeid in serial.outcomes}  # ids without xdist's @group
    assert "benchtool leaderboard: tiny" in parallel.output
    # the estimate counts the workers' cells (the controller collects nothing) and spreads them over 2 workers
    assert "on 2 workers" in parallel.output and f"for {CELLS} of {CELLS} cells" in parallel.output, parallel.output
    assert all(nodeid.split("[")[1].rstrip("]") in parallel.output for nodeid in serial.outcomes)


def test_cells_sharing_a_model_run_on_one_worker(root: Path, runs: dict[str, SuiteRun]) -> None:
    workers = _cells_by_model(root / "parallel.cells")
    assert set(workers) == {"tiny-linear", "tiny-mlp"}
    assert all(len(ids) == 1 for ids in workers.values()), workers
    assert workers["tiny-linear"] != workers["tiny-mlp"], "two groups, two workers: both should work"
    assert _cells_by_model(root / "serial.cells") == {"tiny-linear": {"main"}, "tiny-mlp": {"main"}}


def test_a_killed_worker_fails_its_cell_and_loses_no_other(runs: dict[str, SuiteRun]) -> None:
    serial, crash = runs["serial"], runs["crash"]
    assert crash.returncode == 1, crash.output[-3000:]
    assert "crashed while running" in crash.output
    killed = [nodeid for nodeid in crash.outcomes if nodeid.endswith(KILLED)]
    assert [crash.outcomes[n] for n in killed] == ["failed"], crash.outcomes  # reported once, not re-run
    assert sorted(n for n, o in crash.outcomes.items() if o == "passed") == sorted(set(serial.outcomes) - set(killed))
    expected = [key for key in serial.record_keys() if KILLED not in key]
    assert crash.record_keys() == expected
