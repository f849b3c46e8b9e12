"""Plugins that hang, raise, poison the shared model or end their process fail their own
cells only, each with a message naming the plugin and the rule, through the real CLI: every
other cell records exactly what it records in a run without them.

The zoo (``tests/plugin_zoo``): ``hang_plugins`` (sleep in perturb, a call blocked in native
code, ``while True`` in sample, sleep in propose), ``poison_plugins`` (a leftover forward
hook, RuntimeError in perturb and in fit, out of memory) and ``exit_plugins`` (``os._exit(1)``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import benchtool.pytest_plugin
from benchtool.contracts import _guard
from benchtool.store.db import ResultStore

TESTS = Path(__file__).parent
ZOO, STORE_ZOO = TESTS / "plugin_zoo", TESTS / "store_zoo"
TIMEOUT = "3"  # --bt-timeout: far above any good call here, short enough to keep the tests fast
GRACE = _guard.grace_seconds(float(TIMEOUT))
# the pytest plugin's own -p until the bridge registers it (pytest_plugins of benchtool.pytest_plugin)
WATCHDOG = [] if "benchtool.watchdog" in getattr(benchtool.pytest_plugin, "pytest_plugins", ()) else [
    "-p", "benchtool.watchdog"]
TIMING_METRICS = {"seconds", "seconds_per_evaluation"}


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "BENCHTOOL_STORE", "ZOO_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ZOO), str(STORE_ZOO), env.get("PYTHONPATH")]))
    return {**env, **extra}


def benchtool(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``benchtool ARGS`` as a user types it."""
    return subprocess.run([sys.executable, "-m", "benchtool.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@dataclass
class Run:
    """A finished ``benchtool run``: its output and what its store holds, by cell."""

    result: subprocess.CompletedProcess[str]
    cases: dict[str, Any]  # the node id's last part (test_x[ids]) -> CaseResult

    @classmethod
    def read(cls, result: subprocess.CompletedProcess[str], store: Path) -> Run:
        with ResultStore(store, create=False) as db:
            (run,) = db.runs()
            cases = {case.nodeid.rsplit("::", 1)[-1]: case for case in db.cases(run.id)}
        return cls(result, cases)

    @property
    def output(self) -> str:
        return self.result.stdout[-4000:] + self.result.stderr[-4000:]

    def records(self, cell: str) -> list[str]:
        """A cell's records as sorted canonical JSON, timings left out."""
        return sorted(json.dumps({k: v for k, v in r.to_json().items() if k != "device"}, sort_keys=True)
                      for r in self.cases[cell].records if r.metric not in TIMING_METRICS)


# --- the real suites: every kind, one run with the zoo, one without -----------------------

SUITES = ["robustness", "uncertainty", "nas"]
CELLS = "test_robust_accuracy or test_classification_uncertainty or test_search_on_table"
GOOD = {"attacks": "fgsm,pgd", "estimators": "softmax", "strategies": "random-search"}
ZOO_PLUGINS = {"attacks": "poison-hook,hang-sleep,raises-perturb,oom-perturb", "estimators": "hang-spin,raises-fit",
               "strategies": "hang-propose"}
EXPECTED = {  # cell -> its message, exactly (a regex)
    "test_robust_accuracy[poison-hook-mlp-digits]":
        r"plugin 'poison-hook' broke rule 'model-unchanged': the forward hooks of module '[\w.]+' were changed "
        r"\(0 before, 1 after\)",
    "test_robust_accuracy[hang-sleep-mlp-digits]":
        rf"plugin 'hang-sleep' broke rule 'returns-in-time': perturb did not return within {TIMEOUT} s",
    "test_robust_accuracy[raises-perturb-mlp-digits]":
        r"plugin 'raises-perturb' raised RuntimeError: this attack always crashes",
    "test_robust_accuracy[oom-perturb-mlp-digits]":
        r"plugin 'oom-perturb' raised RuntimeError: out of memory, tried to allocate 256\.00 TiB "
        r"\(281474976710656 bytes\)",
    "test_classification_uncertainty[hang-spin-mlp-digits-holdout]":
        rf"plugin 'hang-spin' broke rule 'returns-in-time': sample did not return within {TIMEOUT} s",
    "test_classification_uncertainty[raises-fit-mlp-digits-holdout]":
        r"plugin 'raises-fit' raised RuntimeError: this estimator always crashes",
    "test_search_on_table[hang-propose-conv-chain-small]":
        rf"seed 0: plugin 'hang-propose' broke rule 'returns-in-time': propose did not return within {TIMEOUT} s",
}


def run_suites(tmp: Path, name: str, plugins: dict[str, str]) -> Run:
    store = tmp / f"{name}.db"
    result = benchtool(
        "run", *SUITES, "--device", "cpu", "--budget", "small", "--store", str(store),
        "-p", "hang_plugins", "-p", "poison_plugins", "--", *WATCHDOG,
        "--bt-attacks", plugins["attacks"], "--bt-estimators", plugins["estimators"],
        "--bt-strategies", plugins["strategies"], "--bt-models", "mlp", "-k", CELLS, "--bt-timeout", TIMEOUT, "-q",
        cwd=tmp, env=cli_env())
    return Run.read(result, store)


@pytest.fixture(scope="module")
def suite_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The good plugins alone, then with the zoo ordered first (so a poisoner runs before them)."""
    tmp = tmp_path_factory.mktemp("watchdog-suites")
    with_zoo = {kind: f"{ZOO_PLUGINS[kind]},{GOOD[kind]}" for kind in GOOD}
    return {"baseline": run_suites(tmp, "baseline", GOOD), "zoo": run_suites(tmp, "zoo", with_zoo)}


@pytest.mark.parametrize("cell", sorted(EXPECTED))
def test_each_broken_plugin_fails_its_own_cell_naming_plugin_and_rule(suite_runs: dict[str, Run], cell: str) -> None:
    zoo = suite_runs["zoo"]
    assert zoo.result.returncode == 1, zoo.output
    case = zoo.cases[cell]
    assert case.outcome == "failed", zoo.output
    message = case.message.split(": ", 1)[1] if case.message.startswith("benchtool.") else case.message
    assert re.fullmatch(EXPECTED[cell], message), case.message


def test_every_other_cell_records_what_it_records_without_the_zoo(suite_runs: dict[str, Run]) -> None:
    baseline, zoo = suite_runs["baseline"], suite_runs["zoo"]
    assert baseline.result.returncode == 0, baseline.output
    good = [cell for cell in baseline.cases if cell.startswith("test_")]
    assert len(good) == 4, baseline.cases.keys()  # fgsm, pgd, softmax, random-search
    for cell in good:
        assert zoo.cases[cell].outcome == "passed", (cell, zoo.cases[cell].message)
        assert zoo.records(cell) == baseline.records(cell), cell
    assert set(zoo.cases) - set(baseline.cases) == set(EXPECTED)


# --- processes that die: the tiny suite (a linear model per cell, 6 eps) ------------------

TINY_ATTACKS = "tiny-attack,exit-one,hang-native"
EXIT_CELL, HUNG_CELL = "test_robust_accuracy[exit-one-0.1]", "test_robust_accuracy[hang-native-0.1]"
HUNG_MESSAGE = (f"plugin 'hang-native' broke rule 'returns-in-time': perturb did not return within {TIMEOUT} s, "
                f"nor {GRACE:g} s after it was interrupted (blocked in native code or ignoring the interrupt), "
                "so its process was ended")
KEPT = ("benchtool run: every case finished before it is kept in the results store; run the others with: "
        "benchtool run --resume latest")


def run_tiny(tmp: Path, name: str, attacks: str, *options: str, at_eps: str = "0.1") -> Run:
    folder = tmp / name
    folder.mkdir()
    shutil.copy(STORE_ZOO / "suite_tiny.py", folder / "test_tiny.py")
    store = folder / "results.db"
    result = benchtool(
        "run", str(folder / "test_tiny.py"), "--device", "cpu", "--store", str(store), "-p", "tiny_strong",
        "-p", "hang_plugins", "-p", "exit_plugins", *options, "--", *WATCHDOG, "--bt-attacks", attacks,
        "--bt-timeout", TIMEOUT, "-q", cwd=folder, env=cli_env(ZOO_AT_EPS=at_eps))
    return Run.read(result, store)


@pytest.fixture(scope="module")
def tiny_baseline(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Every tiny cell, the zoo attacks behaving (``ZOO_AT_EPS=never``)."""
    run = run_tiny(tmp_path_factory.mktemp("tiny"), "baseline", TINY_ATTACKS, at_eps="never")
    assert run.result.returncode == 0, run.output
    assert len(run.cases) == 18 and all(c.outcome == "passed" for c in run.cases.values())
    return run


def assert_unchanged(run: Run, baseline: Run, broken: set[str]) -> None:
    for cell, case in run.cases.items():
        if cell not in broken:
            assert case.outcome == "passed", (cell, case.message)
            assert run.records(cell) == baseline.records(cell), cell


def test_os_exit_in_a_serial_run_names_the_cell_and_keeps_the_finished_ones(tmp_path: Path, tiny_baseline: Run) -> None:
    run = run_tiny(tmp_path, "exit", "tiny-attack,exit-one")
    assert run.result.returncode == 1, run.output
    stderr = run.result.stderr.strip().splitlines()
    assert re.fullmatch(rf"benchtool run: cell '.*::{re.escape(EXIT_CELL)}' ended the run's process \(exit code 1: "
                        r"os\._exit, a crash in native code, or a kill\) before it finished", stderr[-2]), stderr
    assert stderr[-1] == KEPT
    assert EXIT_CELL not in run.cases and len(run.cases) >= 6  # tiny-attack's six, at least
    assert_unchanged(run, tiny_baseline, set())


def test_a_call_blocked_in_native_code_ends_a_serial_run_with_the_rule(tmp_path: Path, tiny_baseline: Run) -> None:
    run = run_tiny(tmp_path, "hung", "tiny-attack,hang-native")
    assert run.result.returncode == _guard.EXIT_HUNG, run.output
    stderr = run.result.stderr.strip().splitlines()
    assert re.fullmatch(rf"benchtool run: cell '.*::{re.escape(HUNG_CELL)}' failed: {re.escape(HUNG_MESSAGE)}",
                        stderr[-2]), stderr
    assert stderr[-1] == KEPT
    assert HUNG_CELL not in run.cases and len(run.cases) >= 6
    assert_unchanged(run, tiny_baseline, set())


def test_with_two_workers_a_dead_or_hung_worker_fails_one_cell_and_the_run_goes_on(
    tmp_path: Path, tiny_baseline: Run
) -> None:
    run = run_tiny(tmp_path, "n2", TINY_ATTACKS, "-n", "2")
    assert run.result.returncode == 1, run.output
    assert set(run.cases) == set(tiny_baseline.cases)
    assert re.fullmatch(rf"worker 'gw\d+' crashed while running '.*::{re.escape(EXIT_CELL)}'",
                        run.cases[EXIT_CELL].message), run.cases[EXIT_CELL].message
    assert run.cases[HUNG_CELL].message == HUNG_MESSAGE
    assert run.cases[EXIT_CELL].outcome == run.cases[HUNG_CELL].outcome == "failed"
    assert_unchanged(run, tiny_baseline, {EXIT_CELL, HUNG_CELL})


# --- --bt-timeout ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "soon"])
def test_a_bad_timeout_is_one_line_before_any_cell(value: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(STORE_ZOO / "suite_tiny.py", tmp_path / "test_tiny.py")
    code = pytest.main([str(tmp_path / "test_tiny.py"), *WATCHDOG, "--bt-timeout", value, "-p", "no:cacheprovider",
                        "-p", "no:store", "-W", "ignore::pytest.PytestAssertRewriteWarning"])
    assert code == pytest.ExitCode.USAGE_ERROR
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [f"ERROR: invalid --bt-timeout {value!r}; expected a number of seconds > 0, e.g. 600"]


def test_the_cli_reports_a_bad_timeout_with_exit_2(tmp_path: Path) -> None:
    shutil.copy(STORE_ZOO / "suite_tiny.py", tmp_path / "test_tiny.py")
    result = benchtool("run", str(tmp_path / "test_tiny.py"), "--device", "cpu", "-p", "tiny_strong", "--",
                       *WATCHDOG, "--bt-timeout", "0", cwd=tmp_path, env=cli_env())
    assert result.returncode == 2, result.stdout + result.stderr
    assert "invalid --bt-timeout '0'; expected a number of seconds > 0" in result.stderr
    assert "passed" not in result.stdout and "failed" not in result.stdout
