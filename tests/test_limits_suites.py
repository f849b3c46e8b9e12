"""End to end: a user's own target function, shipped as a local plugin module, is checked by
``benchtool check`` and runs through the approximation suite, which records every width."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchtool.harness.limits.approximation import WIDTHS

USER_TARGET = textwrap.dedent('''
    """A user's target function, registered through the hook like any plugin."""
    import torch
    from benchtool import hookimpl
    from benchtool.contracts.limits import TargetFunction


    class Ramp(TargetFunction):
        """max(0, x) on [0, 2] shifted: a kink at 1."""

        name = "user-ramp"
        domain = ((0.0, 2.0),)
        smooth = False

        def evaluate(self, x):
            return torch.clamp(x[:, 0] - 1.0, min=0.0)


    @hookimpl
    def benchtool_register_target_functions(registry):
        registry.add(Ramp)
''')


@pytest.fixture(scope="module")
def user_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("user_plugin")
    (folder / "user_ramp.py").write_text(USER_TARGET)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH", "")]))
    env["OMP_NUM_THREADS"] = "1"  # one small process on a shared CI machine
    return env


def benchtool(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchtool.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def test_user_target_passes_the_conformance_checks(user_env: dict[str, str], tmp_path: Path) -> None:
    result = benchtool(user_env, tmp_path, "check", "user_ramp")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "continuous" in result.stdout


def test_user_target_runs_through_the_approximation_suite(user_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "records.json"
    result = benchtool(user_env, tmp_path, "run", "approximation", "--budget", "small", "--device", "cpu",
                       "--json", str(out), "-p", "user_ramp", "--bt-target-functions", "user-ramp", "-q",
                       "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = json.loads(out.read_text())
    assert {r["case"] for r in records if r["metric"] != "claim"} == {"test_error_vs_width[user-ramp]"}
    verdicts = [r for r in records if r["metric"] == "claim"]  # the suite's claim is decided on it too
    assert [(r["plugin"], r["dataset"]) for r in verdicts] == [("hornik1989-inside-not-outside", "user-ramp")]
    scalars = [r for r in records if r["series"] is None]
    inside = {r["params"]["width"]: r["value"] for r in scalars if r["metric"] == "inside_max_error"}
    assert sorted(inside) == list(WIDTHS)
    curve = next(r for r in records if r["metric"] == "inside_rms_error" and r["series"])
    assert curve["series"]["x"] == [float(w) for w in WIDTHS] and curve["value"] is None
    assert any(r["metric"] == "width_needed" for r in records)
