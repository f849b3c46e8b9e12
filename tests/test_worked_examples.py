"""The six worked examples of docs/extending.md, applied: each block is written where a newcomer
would put it and run (tiny data, a few seconds), and the diff size the page states is the
block's. A change that breaks an example, or makes it touch a second place, fails here."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchtool.cli import main
from benchtool.errors import UsageError
from benchtool.host import load_host

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "extending.md"
ROW = re.compile(r"^\| \((?P<task>[a-f])\) .* \| (new )?`(?P<file>[^`]+)`.* \| 1 file changed, (?P<n>\d+) insertions\(\+\) \|$")


def examples() -> dict[str, str]:
    """File name -> the code block that follows ``<!-- example: FILE -->``."""
    text = DOC.read_text()
    found = {}
    for match in re.finditer(r"<!-- example: (\S+) -->\n```\w*\n(.*?)```", text, re.DOTALL):
        found[match.group(1)] = match.group(2)
    return found


def added_lines(name: str, code: str) -> int:
    """What ``git diff --stat`` counts: every line of a new file, the ``+`` lines of a diff."""
    lines = code.splitlines()
    return sum(line.startswith("+") for line in lines) if "/" in name else len(lines)


def written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    """The example ``name`` written to ``tmp_path``, importable from there."""
    path = tmp_path / name
    path.write_text(examples()[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, path.stem, raising=False)
    return path


def test_each_task_touches_one_file_and_the_page_states_its_diff_size() -> None:
    rows = [ROW.match(line) for line in DOC.read_text().splitlines() if line.startswith("| (")]
    assert all(rows) and [row["task"] for row in rows] == list("abcdef")
    code = examples()
    assert sorted(row["file"] for row in rows) == sorted(code)  # one file per task, each shown whole
    for row in rows:
        assert int(row["n"]) == added_lines(row["file"], code[row["file"]]), row["file"]


def test_a_an_attack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchtool.harness.robustness import evaluate

    written(tmp_path, monkeypatch, "bt_uniform_noise.py")
    host = load_host(["bt_uniform_noise"], use_entry_points=False)
    assert not host.failures
    attack = host.registry.find("attacks", "uniform-noise").obj()
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.rand(16, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(1)
    clean, noisy = evaluate(attack, model, x, y, [0.0, 0.1], bounds=(0.0, 1.0))
    assert clean.robust_accuracy == 1.0 and 0 < noisy.max_norm <= 0.1 + 1e-6


def test_b_a_metric_of_the_uncertainty_suite() -> None:
    from benchtool.metrics.catalog import MetricSpec

    suite = (ROOT / "benchtool" / "harness" / "uncertainty.py").read_text().splitlines(keepends=True)
    diff = [line[1:] for line in examples()["benchtool/harness/uncertainty.py"].splitlines(keepends=True)
            if line.startswith("+")]
    after_imports = max(node.end_lineno for node in ast.parse("".join(suite)).body
                        if isinstance(node, (ast.Import, ast.ImportFrom)))
    brier = [i for i, line in enumerate(suite) if 'bt_record("brier"' in line]
    assert len(brier) == 1, "the example's anchor, the line that records brier, is gone"
    patched = suite[:after_imports] + diff[:3] + suite[after_imports:brier[0] + 1] + diff[3:] + suite[brier[0] + 1:]
    tree = ast.parse("".join(patched))  # the patched suite is valid Python
    register = next(node.value for node in tree.body
                    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                    and getattr(node.value.func, "id", "") == "register")
    spec = eval(compile(ast.Expression(register.args[0]), "spec", "eval"), {"MetricSpec": MetricSpec})
    assert spec.name == "mean_confidence" and spec.direction == "none"
    recorded = ast.parse(diff[3].strip()).body[0].value.args[1]
    probs = np.array([[0.9, 0.1], [0.4, 0.6]])
    assert eval(compile(ast.Expression(recorded), "value", "eval"), {"probs": probs}) == pytest.approx(0.75)


def test_c_a_suite_with_its_own_option(tmp_path: Path) -> None:
    (tmp_path / "test_margin.py").write_text(examples()["test_margin.py"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCHTOOL_", "PYTEST_"))}
    env.update(PYTHONPATH=str(tmp_path), BENCHTOOL_STORE=str(tmp_path / "results.db"))

    def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "test_margin", "test_margin.py", "-q",
                               "-p", "no:cacheprovider", "--bt-device", "cpu", *args], cwd=tmp_path,
                              capture_output=True, text=True, env=env, timeout=300)

    ran = pytest_run("--bt-margin-points", "8", "--bt-json", "out.json")
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    records = {r["metric"]: r for r in json.loads((tmp_path / "out.json").read_text())}
    assert records["examples"]["value"] == 8 and records["mean_margin"]["suite"] == "margin"
    bad = pytest_run("--bt-margin-points", "0")
    assert bad.returncode == 4 and "--bt-margin-points 0: expected 1 or more" in bad.stdout + bad.stderr


def test_d_a_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchtool.harness.robustness import eps_sweep
    from benchtool.models.recipes import family

    written(tmp_path, monkeypatch, "bt_inverted_digits.py")
    host = load_host(["bt_inverted_digits"], use_entry_points=False)
    assert not host.failures
    dataset = host.registry.find("datasets", "digits-inverted").obj()
    bundle = dataset.load(root=tmp_path, seed=0)
    assert tuple(bundle.test.x.shape[1:]) == (1, 8, 8) and 0.0 <= bundle.test.x.min() < bundle.test.x.max() <= 1.0
    assert eps_sweep(None, bundle.info, "linf") == [0.0, 0.05, 0.1, 0.2]
    assert family(bundle.info) == "digits"


def test_e_an_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchtool.executors.registry import discover_executors

    written(tmp_path, monkeypatch, "bt_thread_executor.py")
    executors, warnings = discover_executors(["bt_thread_executor"])
    threads = next(e for e in executors if e.executor.name == "threads")
    assert not warnings and threads.options == ("--bt-threads N",)
    cls = threads.executor
    with pytest.raises(UsageError, match="--bt-threads 0: expected at least 1"):
        cls.settings({"--bt-threads": 0}.__getitem__)
    executor = cls.create(cls.settings({"--bt-threads": 3}.__getitem__))
    try:
        assert [f.result() for f in [executor.submit(pow, i, 2) for i in range(6)]] == [0, 1, 4, 9, 16, 25]
    finally:
        executor.close()


def test_f_results_from_another_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    written(tmp_path, monkeypatch, "bt_csv_runs.py")
    info = tmp_path / "bt_csv_runs-1.0.dist-info"  # installed, as pip leaves it
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bt-csv-runs\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[benchtool]\ncsv-runs = bt_csv_runs\n")
    exports = tmp_path / "exports"
    exports.mkdir()
    header = "suite,case,plugin,model,dataset,metric,value\n"
    for run, value in (("monday", 0.5), ("tuesday", 0.25)):
        (exports / f"{run}.csv").write_text(header + f"robustness,test_x[pgd],pgd,lenet,digits,robust_accuracy,{value}\n")
        os.utime(exports / f"{run}.csv", (1e9, 1e9 + len(run)))  # tuesday is the newer
    monkeypatch.delenv("BENCHTOOL_DISABLE_PLUGINS", raising=False)
    assert main(["show", "latest", "--store", f"csv:{exports}"]) == 0
    shown = capsys.readouterr().out
    assert "run:      tuesday (csv)" in shown and "0.25" in shown
    assert main(["compare", "latest~1", "latest", "--store", f"csv:{exports}"]) == 1  # accuracy fell
    assert "REGRESSED robustness" in capsys.readouterr().out
