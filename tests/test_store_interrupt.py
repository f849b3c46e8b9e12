"""Interrupted runs keep every finished case, and ``benchtool run --resume`` runs the rest.

Each test runs ``benchtool run`` in a subprocess on a tiny local suite and stops it inside
a chosen case: a real Ctrl-C (SIGINT), SIGTERM, and a plugin that kills its process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchtool.store.db import ResultStore

ZOO = Path(__file__).parent / "store_zoo"
EPS_COUNT = 6  # cases in suite_tiny.py


def benchtool_command() -> list[str]:
    """The console script a user types (next to this interpreter when installed there)."""
    script = Path(sys.executable).with_name("benchtool")
    return [str(script)] if script.exists() else [shutil.which("benchtool") or "benchtool"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(ZOO / "suite_tiny.py", tmp_path / "test_tiny.py")
    return tmp_path


def run_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINY_", "BENCHTOOL_STORE", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ZOO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**env, **extra}


# A user's Ctrl-C reaches a process whose SIGINT has its default action. A test process
# started in the background by a non-interactive shell (``pytest ... &``, as CI scripts do)
# has SIGINT ignored, and an ignored signal stays ignored across exec: Python would then never
# raise KeyboardInterrupt. So the Ctrl-C test starts benchtool through this, which restores it.
WITH_DEFAULT_SIGINT = [sys.executable, "-c",
                       "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                       "os.execvp(sys.argv[1], sys.argv[1:])"]


def run_args(workdir: Path, plugin: str = "tiny_strong") -> list[str]:
    return [*benchtool_command(), "run", str(workdir / "test_tiny.py"), "-p", plugin, "--device", "cpu",
            "--store", str(workdir / "results.db")]


def stored(workdir: Path):
    with ResultStore(workdir / "results.db", create=False) as store:
        (run,) = store.runs()
        return run, store.cases(run.id)


def test_ctrl_c_keeps_finished_cases_and_resume_runs_only_the_rest(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = workdir / "inside-case-2"
    proc = subprocess.Popen([*WITH_DEFAULT_SIGINT, *run_args(workdir)], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=run_env(TINY_INTERRUPT_AT="2", TINY_MARKER=str(marker)))
    deadline = time.monotonic() + 240
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()[0][-3000:]
    proc.send_signal(signal.SIGINT)  # Ctrl-C while case 2 runs
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2, output[-3000:]
    run, cases = stored(workdir)
    assert run.status == "interrupted" and run.exitstatus == 2
    assert [c.nodeid.rsplit("[", 1)[1] for c in cases] == ["tiny-attack-0.02]", "tiny-attack-0.05]"]
    assert all(len(c.records) == 3 for c in cases)
    assert f"benchtool run --resume {run.id}" in output

    # the resume, as typed, in this process (it re-runs the stored command line in the run's directory)
    from benchtool.cli import main

    monkeypatch.syspath_prepend(str(ZOO))
    monkeypatch.chdir(workdir)
    for name in [k for k in os.environ if k.startswith("TINY_")]:
        monkeypatch.delenv(name)
    assert main(["run", "--resume", run.id[:15], "--store", str(workdir / "results.db")]) == 0
    out = capsys.readouterr().out
    assert "2 deselected" in out and f"resuming run {run.id}" in out
    run, cases = stored(workdir)  # still one run: the same one, completed
    assert (run.status, run.exitstatus, run.sessions) == ("finished", 0, 2)
    assert len(cases) == EPS_COUNT and len({c.nodeid for c in cases}) == EPS_COUNT
    assert run.records == 3 * EPS_COUNT


def test_sigterm_keeps_finished_cases(workdir: Path) -> None:
    done = subprocess.run(run_args(workdir), cwd=workdir, capture_output=True, text=True, timeout=300,
                          env=run_env(TINY_INTERRUPT_AT="3", TINY_INTERRUPT="sigterm"))
    assert done.returncode == -signal.SIGTERM, done.stdout[-3000:]
    run, cases = stored(workdir)
    assert len(cases) == 3 and run.records == 9
    assert run.state == "aborted"  # no process finished it, and its process is gone


def test_a_plugin_that_kills_its_process_loses_no_finished_case(workdir: Path) -> None:
    done = subprocess.run(run_args(workdir), cwd=workdir, capture_output=True, text=True, timeout=300,
                          env=run_env(TINY_CRASH_EPS="0.1"))
    assert done.returncode == 70, done.stdout[-3000:]
    run, cases = stored(workdir)
    assert [c.outcome for c in cases] == ["passed", "passed"] and run.records == 6


def test_resume_refuses_other_options_and_unknown_runs(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchtool.cli import main

    with ResultStore(workdir / "results.db") as store:
        store.begin_run("r1", time.time(), {}, command="x", cwd=str(workdir), pytest_args=["x"], budget="small",
                        seed=0)
    db = str(workdir / "results.db")
    assert main(["run", "--resume", "r1", "--store", db, "--budget", "full"]) == 2
    assert main(["run", "--resume", "r1", "--store", db, "robustness"]) == 2
    assert main(["run", "--resume", "nope", "--store", db]) == 2
    suite = str(workdir / "test_tiny.py")  # the same checks when pytest is called directly
    assert pytest.main([suite, "--bt-resume", "nope", "--bt-store", db, "-p", "no:cacheprovider"]) == 4
    assert pytest.main([suite, "--bt-resume", "r1", "--bt-store", db, "--bt-budget", "full",
                        "-p", "no:cacheprovider"]) == 4
    assert pytest.main([suite, "--bt-resume", "r1", "--bt-store", db, "-p", "no:store",
                        "-p", "no:cacheprovider"]) == 4
    err = capsys.readouterr().err
    assert "unknown run 'nope'" in err and "used --bt-budget small, this one full" in err
    assert "needs the results store plugin 'store'" in err


def test_resume_checks_the_worker_count_like_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchtool.cli import main

    with ResultStore(workdir / "results.db") as store:
        store.begin_run("r1", time.time(), {}, command="x", cwd=str(workdir), pytest_args=["x"], budget="small",
                        seed=0)
    assert main(["run", "--resume", "r1", "--store", str(workdir / "results.db"), "-n", "bogus"]) == 2
    assert "invalid -n 'bogus'" in capsys.readouterr().err
