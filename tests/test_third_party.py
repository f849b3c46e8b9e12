"""A plugin shipped as its own pip package: discovered with no configuration, listed,
parametrized into the suites, and removed by blocking it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example(name: str) -> str:
    """The code block that follows ``<!-- example: NAME -->`` in the README."""
    text = README.read_text()
    after = text[text.index(f"<!-- example: {name} -->"):]
    block = after[after.index("```"):]
    body = block[block.index("\n") + 1:]
    return body[: body.index("```")]


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Build the package in a temp dir and pip-install it into its own target folder."""
    root = tmp_path_factory.mktemp("thirdparty")
    src, site = root / "src", root / "site"
    src.mkdir()
    (src / "pyproject.toml").write_text(readme_example("pyproject.toml"))
    (src / "bt_sign_noise.py").write_text(readme_example("bt_sign_noise.py"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(src)],
        check=True, capture_output=True, timeout=300,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    env.pop("BENCHTOOL_DISABLE_PLUGINS", None)
    return env


def benchtool(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchtool.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_discovered_and_listed_with_its_distribution(installed_plugin: dict[str, str]) -> None:
    result = benchtool(installed_plugin, "list", "attacks")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if " sign-noise " in f" {line} ")
    assert "bt-sign-noise" in row and "1.2.3" in row and "Random sign noise" in row


def test_blocking_removes_it(installed_plugin: dict[str, str]) -> None:
    env = {**installed_plugin, "BENCHTOOL_DISABLE_PLUGINS": "sign-noise"}
    assert "sign-noise" not in benchtool(env, "list", "attacks").stdout
    assert "sign-noise" not in benchtool(installed_plugin, "list", "attacks", "-p", "no:sign-noise").stdout


def test_its_cases_appear_in_the_suites(installed_plugin: dict[str, str]) -> None:
    result = benchtool(installed_plugin, "run", "robustness", "--device", "cpu", "--budget", "small",
                       "--collect-only", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [line for line in result.stdout.splitlines() if "sign-noise" in line]
    assert ids and all("[sign-noise-" in line for line in ids)
    blocked = benchtool(installed_plugin, "run", "robustness", "--device", "cpu", "--budget", "small",
                        "--collect-only", "-q", "-p", "no:sign-noise")
    assert "sign-noise" not in blocked.stdout


def test_it_runs_in_the_suite_and_records_figures(installed_plugin: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "records.json"
    result = benchtool(installed_plugin, "run", "robustness", "--device", "cpu", "--budget", "small",
                       "--json", str(out), "--", "--bt-attacks", "sign-noise", "--bt-models", "mlp", "-q")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    from benchtool.results import read_json

    records = read_json(out)
    ours = [r for r in records if r.plugin == "sign-noise"]
    assert ours and all("sign-noise" in r.case for r in ours)
    assert any(r.metric == "robust_accuracy" for r in ours)


def test_readme_conformance_example_runs(installed_plugin: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "test_conformance.py").write_text(readme_example("test_conformance.py"))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, env=installed_plugin, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
