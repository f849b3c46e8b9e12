"""Every bundled suite records the same values wherever and however its cells run.

Covered (``--bt-budget small --bt-device cpu``, a few cheap cells per suite, chosen for CI
cost): robustness ``test_robust_accuracy[fgsm-lenet-digits]``; uncertainty
``test_regression_uncertainty[mc-dropout|deep-ensemble-mlp-toy-regression]`` (the ensemble
trains its members through the run's executor); nas ``test_search_on_table[random-search-...]``
and ``test_search_with_training`` (its children trained through the run's executor, two in
flight); multitask ``test_multitask[equal-digits]``. Not covered here, for their cost at
small budget (20-60 s a cell on 2 cores): generalization, approximation, transformations —
they run through the same per-cell harness (:mod:`benchtool.reproducibility`).

The same cells, compared record by record, value for value: the whole selection in one
process (cold checkpoint cache); each cell alone (``-k``); the cells in reverse order
(``-p reverse_order_plugin``); ``-n 2``; ``--bt-executor ray`` on a local 2-CPU Ray cluster,
where the NAS trials and ensemble members are Ray tasks in other processes (read from
``$BENCHTOOL_TASK_LOG``). Timings (unit ``s``, ``s per example``) and the suites' claim
verdicts (which summarise whichever cells ran) are excluded. Every run computes with the
same torch thread count (the harness pins each cell to the run's), so nothing needs a
tolerance: values are bit-identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CELLS = {
    "robustness": ["test_robust_accuracy[fgsm-lenet-digits]"],  # small's robustness model
    "uncertainty": ["test_regression_uncertainty[mc-dropout-mlp-toy-regression]",
                    "test_regression_uncertainty[deep-ensemble-mlp-toy-regression]"],
    "nas": ["test_search_on_table[random-search-conv-chain-small]",
            "test_search_with_training[random-search-conv-chain-digits]"],
    "multitask": ["test_multitask[equal-digits]"],
}
TIMING_UNITS = {"s", "s per example"}


def _selector(cells: list[str]) -> list[str]:
    return [f"suites/test_{suite}.py::{cell}" for suite, names in CELLS.items() for cell in names if cell in cells]


ALL = [cell for names in CELLS.values() for cell in names]


def _run(tmp: Path, name: str, cells: list[str], *args: str, env: dict[str, str] | None = None) -> list[dict]:
    out = tmp / f"{name}.json"
    command = [sys.executable, "-m", "pytest", *_selector(cells), "--bt-budget", "small", "--bt-device", "cpu",
               "-p", "benchtool.reproducibility", "-p", "no:cacheprovider", "-p", "no:store", "-q",
               "--bt-json", str(out), *args]
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCHTOOL_", "PYTEST_"))}
    run_env.update(BENCHTOOL_CACHE=str(tmp / "cache"), PYTHONPATH=str(ROOT / "tests"), **(env or {}))
    done = subprocess.run(command, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{name}: {done.stdout[-4000:]}{done.stderr[-2000:]}"
    return json.loads(out.read_text())


def _values(records: list[dict]) -> dict[tuple[str, str, str], str]:
    """(case, metric, params) -> the record's figures, timings and claim verdicts left out."""
    kept = {}
    for record in records:
        if record["unit"] in TIMING_UNITS or record["case"].startswith("claim["):
            continue
        key = (record["case"], record["metric"], json.dumps(record["params"], sort_keys=True))
        assert key not in kept, f"two records {key}"
        kept[key] = json.dumps({k: record.get(k) for k in ("value", "series", "seed", "plugin", "model", "dataset")},
                               sort_keys=True)
    return kept


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("repro")
    records = _values(_run(tmp, "whole", ALL))
    assert {case for case, _, _ in records} == set(ALL)
    return tmp, records


def _differences(expected: dict, got: dict) -> list[str]:
    missing = sorted(set(expected) ^ set(got))
    changed = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    return [f"only in one run: {k}" for k in missing[:5]] + [f"{k}: {expected[k][:200]} != {got[k][:200]}"
                                                              for k in changed[:5]]


def test_each_cell_alone_and_in_reverse_order_records_what_the_whole_run_records(whole) -> None:
    tmp, expected = whole
    alone: dict = {}
    with ThreadPoolExecutor(2) as pool:  # two processes at a time: each mostly starts up
        for records in pool.map(lambda job: _run(tmp, f"alone{job[0]}", [job[1]]), enumerate(ALL)):
            alone.update(_values(records))
    assert not _differences(expected, alone)
    reverse = _values(_run(tmp, "reverse", ALL, "-p", "reverse_order_plugin"))
    assert not _differences(expected, reverse)


def test_two_xdist_workers_record_what_the_whole_run_records(whole) -> None:
    pytest.importorskip("xdist")
    tmp, expected = whole
    assert not _differences(expected, _values(_run(tmp, "xdist", ALL, "-n", "2")))


def test_ray_spreads_trials_and_members_and_records_what_the_whole_run_records(whole) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = pytest.importorskip("ray")
    tmp, expected = whole
    log = tmp / "tasks.log"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        address = ray.get_runtime_context().gcs_address
        got = _values(_run(tmp, "ray", ALL, "--bt-executor", "ray", "--bt-ray-address", address,
                           env={"BENCHTOOL_TASK_LOG": str(log)}))
    finally:
        ray.shutdown()
    assert not _differences(expected, got)
    tasks = [line.split() for line in log.read_text().splitlines()]
    trials = [(pid, task) for pid, task, fn in tasks if fn == "TrainingEvaluator.evaluate"]
    members = [(pid, task) for pid, task, fn in tasks if fn == "_gaussian_member"]
    assert len(trials) == 2 and len(members) == 2, tasks  # deep-ensemble: 2 members at small
    assert all(task != "local" for _, task in trials + members), "trials and members should be Ray tasks"
    assert all(int(pid) != os.getpid() for pid, _ in trials + members)
    assert len({pid for pid, _ in trials + members}) >= 2, f"all on one worker: {tasks}"
