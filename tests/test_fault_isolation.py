"""Broken plugins fail their own cells, each naming the broken rule; every good cell
still runs and keeps its results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ZOO = Path(__file__).parent / "plugin_zoo"
sys.path.insert(0, str(ZOO))
from broken_attacks import EXPECTED_RULE  # noqa: E402

sys.path.remove(str(ZOO))


def test_broken_attack_zoo_leaves_good_results_intact(tmp_path: Path) -> None:
    out = tmp_path / "records.json"
    report = tmp_path / "report.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ZOO), os.environ.get("PYTHONPATH")]))}
    attacks = ",".join(["fgsm", *EXPECTED_RULE])
    result = subprocess.run(
        [sys.executable, "-m", "benchtool.cli", "run", "robustness", "--device", "cpu", "--budget", "small",
         "--json", str(out), "-p", "broken_attacks", "--",
         "--bt-attacks", attacks, "--bt-models", "mlp", "-k", "test_robust_accuracy",
         f"--junitxml={report}", "-q"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    records = json.loads(out.read_text())
    fgsm = [r for r in records if r["plugin"] == "fgsm"]
    assert any(r["metric"] == "robust_accuracy" for r in fgsm), "the good plugin's results were lost"
    xml = report.read_text()
    for name, rule in EXPECTED_RULE.items():
        case = xml[xml.index(f"[{name}-mlp-digits]"):]
        case = case[: case.index("</testcase>")]
        assert "<failure" in case, f"{name} did not fail its cell"
        assert rule in case, f"{name}: failure does not name {rule!r}"
        if name == "broken-raises":  # an exception of the plugin's own names it too
            assert "plugin 'broken-raises' raised RuntimeError: this attack always crashes" in case
        else:
            assert f"plugin {name!r} broke rule {rule!r}" in case
    fgsm_case = xml[xml.index("[fgsm-mlp-digits]"):]
    assert "<failure" not in fgsm_case[: fgsm_case.index("</testcase>")]
