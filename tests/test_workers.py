"""``benchtool run`` spreads a CPU run over worker processes unless told otherwise
(:mod:`benchtool.workers`): the choice, its overrides, and a run as a user types it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchtool import workers
from benchtool.executors import devices
from benchtool.errors import UsageError
from benchtool.store.db import ResultStore
from benchtool.workers import WORKERS_ENV, default_workers, device_option, distribution_chosen

HAS_XDIST = importlib.util.find_spec("xdist") is not None
ZOO = Path(__file__).parent / "store_zoo"
SUITE = ["suites/test_robustness.py", "--bt-device", "cpu", "--bt-budget", "small"]


@pytest.mark.parametrize("argv", [
    ["-n", "3"], ["-n3"], ["--numprocesses", "2"], ["--numprocesses=2"], ["--dist", "no"], ["--dist=load"],
    ["--maxprocesses", "2"], ["--bt-executor", "ray"], ["--bt-executor=ray"], ["--pdb"], ["--trace"],
    ["-p", "no:xdist"], ["-pno:xdist"],
])
def test_a_command_line_that_chooses_the_distribution_gets_no_default(argv: list[str]) -> None:
    assert distribution_chosen([*SUITE, *argv])
    assert default_workers([*SUITE, *argv], environ={WORKERS_ENV: "2"}) == []


@pytest.mark.parametrize("argv", [SUITE, [*SUITE, "-k", "pgd", "-x"], [*SUITE, "-p", "tiny_strong"]])
def test_other_options_leave_the_choice_to_the_default(argv: list[str]) -> None:
    assert not distribution_chosen(argv)


@pytest.mark.skipif(not HAS_XDIST, reason="needs pytest-xdist")
@pytest.mark.parametrize(("cpus", "expected"), [
    (1, []), (2, ["-n", "2", "--bt-torch-threads", "1"]), (3, ["-n", "3", "--bt-torch-threads", "1"]),
    (64, ["-n", "4", "--bt-torch-threads", "16"]),
])
def test_a_cpu_run_gets_a_worker_per_core_up_to_four_each_with_its_share(monkeypatch: pytest.MonkeyPatch, cpus: int,
                                                                          expected: list[str]) -> None:
    monkeypatch.setattr(devices, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(workers, "available_memory", lambda: 64 << 30)
    assert default_workers(SUITE, environ={}) == expected
    if expected:  # a thread count the user gave is kept
        assert default_workers([*SUITE, "--bt-torch-threads", "2"], environ={}) == expected[:2]
        assert default_workers([*SUITE, "--bt-torch-threads=2"], environ={}) == expected[:2]


@pytest.mark.skipif(not HAS_XDIST, reason="needs pytest-xdist")
@pytest.mark.parametrize(("memory", "expected"), [
    (None, ["-n", "4", "--bt-torch-threads", "2"]), (3 << 30, ["-n", "3", "--bt-torch-threads", "2"]),
    ((1 << 30) + 5, []), (100 << 20, []),
])
def test_the_default_gives_each_worker_a_gigabyte_of_the_available_memory(
        monkeypatch: pytest.MonkeyPatch, memory: int | None, expected: list[str]) -> None:
    monkeypatch.setattr(devices, "usable_cpus", lambda: 8)
    monkeypatch.setattr(workers, "available_memory", lambda: memory)
    assert default_workers(SUITE, environ={}) == expected


def test_available_memory_is_read_where_the_system_says() -> None:
    memory = workers.available_memory()
    if Path("/proc/meminfo").exists():
        assert memory is not None and memory > 0
    else:
        assert memory is None


def test_a_gpu_run_stays_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "usable_cpus", lambda: 8)
    monkeypatch.setattr(workers, "resolve_device", lambda spec: torch.device("cuda", 0))
    assert default_workers(["--bt-device", "auto"], environ={}) == []


@pytest.mark.skipif(not HAS_XDIST, reason="needs pytest-xdist")
def test_the_environment_sets_the_default_and_the_command_line_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "usable_cpus", lambda: 8)
    assert default_workers(SUITE, environ={WORKERS_ENV: "0"}) == ["-n", "0"]
    assert default_workers(SUITE, environ={WORKERS_ENV: " auto "}) == ["-n", "auto", "--bt-torch-threads", "1"]
    assert default_workers(SUITE, environ={WORKERS_ENV: "2"}) == ["-n", "2", "--bt-torch-threads", "4"]
    assert default_workers([*SUITE, "-n", "1"], environ={WORKERS_ENV: "3"}) == []
    with pytest.raises(UsageError, match=r"invalid BENCHTOOL_WORKERS 'many'; expected a number of worker processes"):
        default_workers(SUITE, environ={WORKERS_ENV: "many"})


def test_the_device_is_the_last_bt_device_given() -> None:
    assert device_option(["suites"]) == "auto"
    assert device_option(["--bt-device", "cpu", "-k", "x", "--bt-device=cuda:1"]) == "cuda:1"
    assert device_option(["--bt-device=cuda", "--bt-device", "cpu"]) == "cpu"


def test_a_bad_device_is_the_usage_error_it_always_was() -> None:
    with pytest.raises(UsageError, match="invalid --bt-device 'tpu'"):
        default_workers(["--bt-device", "tpu"], environ={})


def _benchtool(*args: str, cwd: Path, workers_env: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINY_", "BENCHTOOL_STORE", "PYTEST_", WORKERS_ENV))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ZOO), env.get("PYTHONPATH")]))
    if workers_env is not None:
        env[WORKERS_ENV] = workers_env
    command = [sys.executable, "-m", "benchtool.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(not HAS_XDIST, reason="needs pytest-xdist")
def test_benchtool_run_uses_the_cores_by_default_and_one_process_when_told(tmp_path: Path) -> None:
    suite = tmp_path / "test_tiny.py"
    shutil.copy(ZOO / "suite_tiny.py", suite)
    spread = _benchtool("run", str(suite), "-p", "tiny_strong", "--device", "cpu", cwd=tmp_path, workers_env=None)
    serial = _benchtool("run", str(suite), "-p", "tiny_strong", "--device", "cpu", cwd=tmp_path, workers_env="0")
    for run in (spread, serial):
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        assert "6 passed" in run.stdout
    added = default_workers(["--bt-device", "cpu"], environ={})  # what this machine's cores and memory give
    with ResultStore(tmp_path / ".benchtool" / "results.db", create=False) as store:
        second, first = store.runs()  # newest first
        assert first.outcomes == second.outcomes == {"passed": 6}
        assert second.pytest_args[-2:] == ["-n", "0"]  # stored: a resume runs the same way
        if added:
            assert first.pytest_args[-4:] == added
            assert f"created: {added[1]}/{added[1]} workers" in spread.stdout, spread.stdout[-3000:]
        else:
            assert "-n" not in first.pytest_args
    assert "workers" not in serial.stdout
