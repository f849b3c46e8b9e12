"""Sub-commands through ``benchtool_register_commands``: the built-ins are plugins, an installed
third-party plugin adds one, a clash or a crash is that plugin's failure and ``--help`` lives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchtool.cli import load_commands

ZOO = Path(__file__).parent / "plugin_zoo"
README = Path(__file__).resolve().parent.parent / "README.md"


def installed(site: Path, entry_points: dict[str, str], module: Path = ZOO / "zoo_commands.py") -> dict[str, str]:
    """An environment where ``module`` is installed as distribution ``zoo-commands`` with these
    entry points (a dist-info on PYTHONPATH, as pip leaves it)."""
    info = site / "zoo_commands-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-commands\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[benchtool]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    shutil.copy(module, site)
    env = {k: v for k, v in os.environ.items() if k != "BENCHTOOL_DISABLE_PLUGINS"}
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


def benchtool(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchtool.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_builtin_commands_come_from_their_plugins() -> None:
    commands, failures = load_commands()
    owners = {command.name: command.plugin for command in commands}
    assert owners == {"run": "", "list": "", "check": "", "runs": "store", "show": "store", "compare": "store",
                      "report": "report", "bench-compare": "bench-compare"}
    assert failures == []


def test_blocking_a_plugin_removes_its_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHTOOL_DISABLE_PLUGINS", "report")
    assert "report" not in load_commands()[0]


def test_an_installed_plugin_adds_a_command(tmp_path: Path) -> None:
    env = installed(tmp_path, {"zoo-hello": "zoo_commands"})
    assert "greet someone" in benchtool("--help", env=env).stdout
    result = benchtool("hello", "world", env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello world\n", "")


def test_the_readme_example_adds_its_command(tmp_path: Path) -> None:
    text = README.read_text()
    block = text[text.index("<!-- example: bt_hello.py -->"):].split("```")[1]
    module = tmp_path / "bt_hello.py"
    module.write_text(block.removeprefix("python\n"))
    result = benchtool("hello", "reader", env=installed(tmp_path / "site", {"hello": "bt_hello"}, module))
    assert (result.returncode, result.stdout) == (0, "hello reader\n"), result.stderr


def test_a_plugin_cannot_take_a_command_of_the_cli(tmp_path: Path) -> None:
    result = benchtool("run", "--help", env=installed(tmp_path, {"zoo-run": "zoo_commands:run_command"}))
    assert result.returncode == 0 and "run the benchmark suites" in result.stdout
    assert ("plugin 'zoo-run' broke rule 'unique-command': command name 'run' is already registered by the "
            "benchtool CLI itself") in result.stderr


def test_two_plugins_with_one_command_name_fail_the_second(tmp_path: Path) -> None:
    env = installed(tmp_path, {"zoo-hello": "zoo_commands", "zoo-second": "zoo_commands:clashing_commands"})
    result = benchtool("hello", "world", env=env)
    assert result.returncode == 0 and result.stdout == "hello world\n"
    assert ("benchtool: warning: plugin 'zoo-second' broke rule 'unique-command': command name 'hello' is already "
            "registered by plugin 'zoo-hello' (distribution zoo-commands 1.0); expected a command name no other "
            "plugin registers [distribution zoo-commands 1.0; not loaded, block it with -p no:zoo-second]"
            ) in result.stderr


def test_a_crashing_registration_is_reported_and_help_still_works(tmp_path: Path) -> None:
    env = installed(tmp_path, {"zoo-crash": "zoo_commands:crashing_commands"})
    result = benchtool("--help", env=env)
    assert result.returncode == 0 and "runs" in result.stdout and "report" in result.stdout
    warning, = result.stderr.splitlines()
    assert warning.startswith("benchtool: warning: plugin 'zoo-crash' failed to register: "
                              "benchtool_register_commands raised RuntimeError: commands exploded")


def test_compare_judges_an_installed_plugins_metric_by_its_direction(tmp_path: Path) -> None:
    """Every command loads the installed plugins, so ``compare`` knows the metrics they catalogue
    (``benchtool_register_metrics``): ``zoo_margin`` is lower-is-better, and rising is a regression."""
    runs = tmp_path / "runs"
    runs.mkdir()
    for run, margin in (("base", 1.0), ("cand", 2.0)):
        record = {"suite": "zoo", "case": "test_margin[lenet]", "kind": "", "plugin": "", "model": "lenet",
                  "dataset": "digits", "params": {}, "metric": "zoo_margin", "value": margin, "unit": "px",
                  "seed": 0, "device": "cpu", "series": None}
        (runs / f"{run}.json").write_text(json.dumps([record]))
    plain = benchtool("compare", "base", "cand", "--store", f"json:{runs}", env=dict(os.environ))
    assert plain.returncode == 0 and "not in the catalog" in plain.stdout, plain.stdout + plain.stderr
    env = installed(tmp_path / "site", {"zoo-metrics": "zoo_metrics"}, module=ZOO / "zoo_metrics.py")
    judged = benchtool("compare", "base", "cand", "--store", f"json:{runs}", env=env)
    assert judged.returncode == 1 and "REGRESSED" in judged.stdout, judged.stdout + judged.stderr
