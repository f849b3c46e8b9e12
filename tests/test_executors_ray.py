"""The Ray executor on a real 2-CPU Ray cluster on loopback: calls and a NAS-like search
give what the local executor gives, a suite run through it records what a serial run
records, and a worker killed mid-call is retried or reported failed, never dropped."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# before Ray is imported: keep every Ray server on 127.0.0.1 (Ray otherwise binds the host's address)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'benchtool[ray]'")

HARNESS = Path(__file__).resolve().parent / "scaleout_tiny"
sys.path.insert(0, str(HARNESS))
from scaleout_harness import (  # noqa: E402
    CELLS, make_suite, random_search, run_suite, square_or_die, start_suite, finish_suite, suite_env,
)

from benchtool.executors import LocalExecutor, Outcome, Resources  # noqa: E402
from benchtool.executors.ray_executor import RayExecutor  # noqa: E402

KILLED_ONCE = "test_noisy_accuracy[tiny-linear-blobs-0.5]"  # before KILLED_ALWAYS in its group
KILLED_ALWAYS = "test_noisy_accuracy[tiny-linear-blobs-1.0]"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A private 2-CPU Ray cluster on loopback for this module; yields its address."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": str(HARNESS)}})
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), address
        yield address
    finally:
        ray.shutdown()


def test_calls_return_what_the_local_executor_returns(cluster: str, tmp_path: Path) -> None:
    items = [3, 1, -2, 4]
    local = [Outcome.of(LocalExecutor().submit(square_or_die, x, str(tmp_path))) for x in items]
    with RayExecutor(cluster) as executor:
        assert executor.capacity() == Resources(cpus=2.0, gpus=0.0)
        assert executor.slots(Resources(cpus=1)) == 2
        remote = [Outcome.of(f) for f in [executor.submit(square_or_die, x, str(tmp_path)) for x in items]]
    assert [o.value for o in remote] == [9, 1, None, 16] == [o.value for o in local]
    assert remote[2].error == local[2].error == "ValueError: negative input -2"


def test_a_killed_worker_is_retried_or_reported_never_dropped(cluster: str, tmp_path: Path) -> None:
    with RayExecutor(cluster) as executor:
        futures = {x: executor.submit(square_or_die, x, str(tmp_path), die_once=(2,), die_always=(5,), retries=1)
                   for x in range(6)}
        outcomes = {x: Outcome.of(f) for x, f in futures.items()}
    assert {x: o.value for x, o in outcomes.items() if o.ok} == {0: 0, 1: 1, 2: 4, 3: 9, 4: 16}
    assert (tmp_path / "square-2").exists(), "call 2 should have killed its first worker"
    assert not outcomes[5].ok and "WorkerCrashedError" in (outcomes[5].error or "")


def test_nas_search_on_ray_finds_what_it_finds_locally(cluster: str) -> None:
    local = random_search(LocalExecutor(), budget=6, seed=7)
    with RayExecutor(cluster) as executor:
        remote = random_search(executor, budget=6, seed=7)
    assert [trial for trial, _, _ in remote] == list(range(6))
    assert remote == local


def test_nas_run_search_through_ray_tells_what_a_local_search_tells(cluster: str) -> None:
    from benchtool.harness.nas import Budget, TabularEvaluator, run_search
    from benchtool_nas.random_search import RandomSearch
    from benchtool_nas.spaces import ConvChainSmall

    space = ConvChainSmall()
    evaluator = TabularEvaluator(space)

    def search(executor: LocalExecutor | RayExecutor) -> list[tuple]:
        result = run_search(RandomSearch(), space, evaluator, Budget(evaluations=6), seed=3, workers=2,
                            executor=executor, resources=Resources(cpus=1))
        assert result.stop_reason == "budget", result.error
        return sorted((t.number, t.arch, t.status, t.val_accuracy) for t in result.trials)

    local = search(LocalExecutor())
    with RayExecutor(cluster) as executor:
        remote = search(executor)
    assert len(remote) == 6 and remote == local


def test_suite_through_ray_records_what_a_serial_run_records(cluster: str, tmp_path: Path) -> None:
    root = make_suite(tmp_path)
    serial = start_suite(root, name="serial")  # alongside the Ray run: it mostly waits on workers
    through_ray = run_suite(root, "--bt-executor", "ray", "--bt-ray-address", cluster, name="ray",
                            env=suite_env(root, BENCHTOOL_TEST_KILL_ONCE=KILLED_ONCE,
                                          BENCHTOOL_TEST_KILL_ALWAYS=KILLED_ALWAYS))
    serial_run = finish_suite(root, serial, "serial")
    assert serial_run.returncode == 0, serial_run.output[-3000:]
    assert len(serial_run.records) == CELLS
    assert through_ray.returncode == 1, through_ray.output[-3000:]
    assert (root / "markers" / KILLED_ONCE).exists(), "the kill-once cell should have killed its first worker"
    failed = {n for n, o in through_ray.outcomes.items() if o == "failed"}
    assert {n.split("::")[-1] for n in failed} == {KILLED_ALWAYS}
    assert "WorkerCrashedError" in through_ray.output
    assert set(through_ray.outcomes) == set(serial_run.outcomes)
    assert through_ray.record_keys() == [k for k in serial_run.record_keys() if KILLED_ALWAYS not in k]
