"""Every bundled suite records the same values wherever and however its cells run.

Covered (``--bt-budget small --bt-device cpu``), one or two cells of every bundled suite,
chosen for CI cost: robustness ``test_robust_accuracy[fgsm-lenet-digits]``; transformations
``test_survival_under_transformations[lenet-digits]``; generalization
``test_memorization[mlp-digits]``; approximation ``test_error_vs_width[abs]``; uncertainty
``test_regression_uncertainty[mc-dropout|deep-ensemble-mlp-toy-regression]`` and
``test_classification_uncertainty[deep-ensemble-lenet-digits-holdout]`` (both ensembles train
their members through the run's executor); nas ``test_search_on_table[random-search-...]``
and ``test_search_with_training`` (its children trained through the run's executor, two in
flight); multitask ``test_multitask[equal-digits]``. ``BENCHTOOL_REPRO_ALL=1`` runs the same
comparisons on every cell of every bundled suite at small instead (a longer run).

The same cells, compared record by record, value for value: the whole selection in one
process (cold checkpoint cache); each cell alone (``-k``); the cells in reverse order
(``-p reverse_order_plugin``); ``-n 2``; ``--bt-executor ray`` on a local 2-CPU Ray cluster,
where the NAS trials and ensemble members are Ray tasks in other processes (read from
``$BENCHTOOL_TASK_LOG``). Timings (unit ``s``, ``s per example``), the suites' claim
verdicts and run-level analyses (which summarise whichever cells ran) are excluded. Every
run computes with the same torch thread count (the harness pins each cell to the run's), so
nothing needs a tolerance: values are bit-identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CELLS = {
    "robustness": ["test_robust_accuracy[fgsm-lenet-digits]"],  # small's robustness model
    "transformations": ["test_survival_under_transformations[lenet-digits]"],
    "generalization": ["test_memorization[mlp-digits]"],
    "approximation": ["test_error_vs_width[abs]"],
    "uncertainty": ["test_regression_uncertainty[mc-dropout-mlp-toy-regression]",
                    "test_regression_uncertainty[deep-ensemble-mlp-toy-regression]",
                    "test_classification_uncertainty[deep-ensemble-lenet-digits-holdout]"],
    "nas": ["test_search_on_table[random-search-conv-chain-small]",
            "test_search_with_training[random-search-conv-chain-digits]"],
    "multitask": ["test_multitask[equal-digits]"],
}
TIMING_UNITS = {"s", "s per example"}


ALL_CELLS_ENV = "BENCHTOOL_REPRO_ALL"  # set to 1: every cell of every bundled suite at small, not CELLS


def _collect_small() -> list[str]:
    """The node id of every cell of the bundled suites at ``--bt-budget small`` that records
    figures (not ``test_plugins.py``'s load checks, one per plugin loaded, ``store`` among them)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "suites", "--collect-only", "-q", "--bt-budget", "small",
                           "--bt-device", "cpu", "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "BENCHTOOL_SYSTEM_DATA": ""})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return [line.strip() for line in done.stdout.splitlines() if "::" in line and "test_plugins.py" not in line]


NODES = (_collect_small() if os.environ.get(ALL_CELLS_ENV) == "1"
         else [f"suites/test_{suite}.py::{cell}" for suite, names in CELLS.items() for cell in names])
ALL = [node.split("::", 1)[1] for node in NODES]


def _selector(cells: list[str]) -> list[str]:
    return [node for node, cell in zip(NODES, ALL) if cell in cells]


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


def _values(records: list[dict]) -> dict[tuple[str, str, str, str], str]:
    """(case, plugin, metric, params) -> the record's figures, timings, claim verdicts and the
    run-level analyses' records (cases of no cell) left out (a cell may record one metric per
    plugin: transformations, per attack)."""
    kept = {}
    for record in records:
        if record["unit"] in TIMING_UNITS or record["case"] not in ALL:
            continue
        key = (record["case"], record["plugin"], record["metric"], json.dumps(record["params"], sort_keys=True))
        assert key not in kept, f"two records {key}"
        kept[key] = json.dumps({k: record.get(k) for k in ("value", "series", "seed", "plugin", "model", "dataset")},
                               sort_keys=True)
    return kept


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("repro")
    records = _values(_run(tmp, "whole", ALL))
    assert {case for case, *_ in records} == set(ALL)
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
    members = [(pid, task) for pid, task, fn in tasks if fn in ("_gaussian_member", "ensemble_member")]
    # deep-ensemble, 2 members at small: both regression members; the classifier's second (its first is the model)
    assert len(trials) == 2 and len(members) == 3, tasks
    assert all(task != "local" for _, task in trials + members), "trials and members should be Ray tasks"
    assert all(int(pid) != os.getpid() for pid, _ in trials + members)
    # Ray hands a task to any idle worker, so five short trials and members may all land on one
    # (seen in CI); the run's tasks as a whole (cell batches included) must use both workers
    assert len({pid for pid, _, _ in tasks}) >= 2, f"all on one worker: {tasks}"
