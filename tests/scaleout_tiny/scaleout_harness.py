"""Helpers of the scale-out tests and benchmark: lay out the tiny suite in a folder, run it
with pytest in a subprocess, read back its records and outcomes; calls for executors."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parent
CELLS = 8  # 2 models x 4 noise levels


@dataclass
class SuiteRun:
    """One finished pytest run of the tiny suite."""

    returncode: int
    output: str
    records: list[dict[str, Any]]
    outcomes: dict[str, str]  # case node id -> passed | failed | skipped

    def record_keys(self) -> list[str]:
        """The records as sorted canonical JSON: equal lists mean equal records, any order."""
        return sorted(json.dumps(r, sort_keys=True) for r in self.records)


def make_suite(root: Path) -> Path:
    """Copy the tiny plugin and suite into ``root`` (suite file ``test_tiny.py``)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(TEMPLATE / "scaleout_tiny_plugin.py", root / "scaleout_tiny_plugin.py")
    shutil.copy(TEMPLATE / "tiny_suite.py", root / "test_tiny.py")
    (root / "markers").mkdir(exist_ok=True)
    return root


def suite_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCHTOOL_", "PYTEST_"))}
    env.update(PYTHONPATH=str(root), BENCHTOOL_CACHE=str(root / "cache"), BENCHTOOL_TEST_MARKERS=str(root / "markers"),
               BENCHTOOL_TEST_EPOCHS="1")
    env.update(extra)
    return env


def start_suite(root: Path, *args: str, name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``pytest test_tiny.py ARGS`` in ``root``; :func:`finish_suite` collects it."""
    env = dict(env or suite_env(root), BENCHTOOL_TEST_OUTCOMES=str(root / f"{name}.outcomes.json"))
    command = [sys.executable, "-m", "pytest", "test_tiny.py", "-p", "scaleout_tiny_plugin", "-p", "no:cacheprovider",
               "-p", "no:hypothesispytest", "-q", "--bt-json", f"{name}.json", *args]
    return subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_suite(root: Path, process: subprocess.Popen, name: str, timeout: float = 900) -> SuiteRun:
    output, _ = process.communicate(timeout=timeout)
    records_file, outcomes_file = root / f"{name}.json", root / f"{name}.outcomes.json"
    records = json.loads(records_file.read_text()) if records_file.exists() else []
    outcomes = json.loads(outcomes_file.read_text()) if outcomes_file.exists() else {}
    return SuiteRun(process.returncode, output, records, outcomes)


def run_suite(root: Path, *args: str, name: str, env: dict[str, str] | None = None) -> SuiteRun:
    return finish_suite(root, start_suite(root, *args, name=name, env=env), name)


# --- calls for executors (importable by Ray workers through PYTHONPATH) ----------------


def square_or_die(x: int, markers: str, die_once: tuple[int, ...] = (), die_always: tuple[int, ...] = ()) -> int:
    """``x * x``; kills its own process for ``die_always``, and the first time for ``die_once``."""
    if x in die_always:
        os.kill(os.getpid(), signal.SIGKILL)
    marker = Path(markers) / f"square-{x}"
    if x in die_once and not marker.exists():
        marker.write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    if x < 0:
        raise ValueError(f"negative input {x}")
    return x * x


def random_search(executor: Any, budget: int, seed: int) -> list[tuple[int, dict[str, int], float]]:
    """A NAS-like random search through ``executor``: keeps one trial per slot in flight and
    takes results as they come (out of order); returns (trial, arch, val accuracy) by trial."""
    from benchtool.executors import Outcome, Resources
    from scaleout_tiny_plugin import train_trial

    rng = random.Random(seed)
    need = Resources(cpus=1)
    in_flight: dict[Future, tuple[int, dict[str, int]]] = {}
    results = []
    asked = 0
    while asked < budget or in_flight:
        while asked < budget and len(in_flight) < executor.slots(need):
            arch = {"width": rng.choice([4, 8, 16]), "depth": rng.choice([1, 2]), "steps": 30}
            in_flight[executor.submit(train_trial, arch, seed=seed + asked, resources=need)] = (asked, arch)
            asked += 1
        done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        for future in done:
            trial, arch = in_flight.pop(future)
            outcome = Outcome.of(future)
            assert outcome.ok, outcome.error
            results.append((trial, arch, outcome.value["val_accuracy"]))
    return sorted(results, key=lambda r: r[0])
