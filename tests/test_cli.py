"""The CLI as a user types it: listings, one-line errors with exit 2, help everywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchtool.cli import build_parser, load_commands, main


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchtool.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_list_shows_kind_name_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["kind", "name", "plugin", "distribution", "version", "description"]
    row = next(line for line in out.splitlines() if line.split()[:2] == ["attacks", "fgsm"])
    assert "benchtool" in row and "0.1.0" in row and "Goodfellow" in row


def test_list_one_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "estimators"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert rows and all(row.startswith("estimators") for row in rows)


@pytest.mark.parametrize(
    ("argv", "bad"),
    [
        (["list", "bogus"], "'bogus'"),
        (["run", "--device", "quantum"], "'quantum'"),
        (["run", "--budget", "huge"], "'huge'"),
        (["run", "no-such-suite"], "'no-such-suite'"),
        (["check", "no_such_module_xyz"], "no_such_module_xyz"),
    ],
)
def test_bad_values_exit_2_with_one_line(argv: list[str], bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert bad in err[0] and "expected" in err[0]


def test_unknown_plugin_filter_is_a_usage_error_listing_valid_names() -> None:
    result = run_cli("run", "--device", "cpu", "--", "--bt-attacks", "nope", "--collect-only")
    assert result.returncode == 2
    assert "unknown attack in --bt-attacks 'nope'; expected one of:" in result.stderr + result.stdout
    assert "fgsm" in result.stderr + result.stdout


@pytest.mark.parametrize("name", sorted(load_commands()[0].names()))
def test_help_for_every_command(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: benchtool" in capsys.readouterr().out


def test_unrecognized_option_on_a_non_run_command_exits_2() -> None:
    result = run_cli("list", "--frobnicate")
    assert result.returncode == 2 and "--frobnicate" in result.stderr


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["list", "-p", "no:"], "benchtool list: error: -p 'no:' names no plugin; expected -p no:NAME, e.g. -p no:fgsm"),
        (["check", "benchtool_attacks.fgsm.Nope"],
         "benchtool check: error: module 'benchtool_attacks.fgsm' has no attribute 'Nope'; expected a plugin class "
         "defined in it"),
    ],
)
def test_bad_plugin_values_exit_2_with_one_line(argv: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [line]
