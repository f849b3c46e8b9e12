"""One plugin's mistake is that plugin's failure: a zoo of broken plugins run through the
real CLI and pytest, as a user would. Each case pins its one-line message and checks that
every other plugin still loads (the listing is unchanged) or every other cell's records are.

"Installed" plugins get a ``*.dist-info`` folder (METADATA + entry_points.txt, what pip writes
for entry points) on PYTHONPATH: importlib.metadata discovers them as it does pip's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchtool import __version__

ZOO = Path(__file__).parent / "plugin_zoo"
SCRIPT = Path(sys.executable).parent / "benchtool"  # the console script: no cwd on sys.path
BUILTIN = f"distribution benchtool {__version__}"


def environment(*paths: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BENCHTOOL_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**env, **extra}


def benchtool(*args: str, env: dict[str, str], cwd: Path | None = None,
              script: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "benchtool.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def install(site: Path, dist: str, version: str, entry_points: dict[str, str], *modules: str) -> None:
    """A distribution as pip leaves it: its modules and a dist-info with its entry points."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[benchtool]\n{lines}")
    for module in modules:
        shutil.copy(ZOO / f"{module}.py", site)


AFTER_TABLE = ("failed", "blocked", "unavailable")


def rows(listing: str) -> set[tuple[str, ...]]:
    """(kind, name, plugin, distribution, version) of every row of `benchtool list`."""
    lines = listing.splitlines()
    table = lines[2:lines.index("")] if "" in lines else lines[2:]
    return {tuple(line.split()[:5]) for line in table if line.split() and line.split(":")[0] not in AFTER_TABLE}


def others(listing: str) -> list[str]:
    """The lines after the table: failed:, blocked:, unavailable:."""
    return [line for line in listing.splitlines() if line.split(":")[0] in AFTER_TABLE]


def junit(path: Path) -> dict[str, tuple[str, str]]:
    """test name -> (outcome, failure message) from a pytest --junitxml report."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        failure = case.find("failure")
        message = failure.get("message", "").removeprefix("Failed: ") if failure is not None else ""
        cases[case.get("name")] = ("failed" if failure is not None else "passed", message)
    return cases


@pytest.fixture(scope="module")
def baseline() -> set[tuple[str, ...]]:
    """What `benchtool list` shows with no zoo plugin."""
    result = benchtool("list", env=environment())
    assert result.returncode == 0, result.stderr
    return rows(result.stdout)


def run_plugins_suite(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str],
                                                                                dict[str, tuple[str, str]]]:
    """`benchtool run plugins`: one cell per plugin module, a failed plugin fails its own."""
    report = tmp_path / "plugins.xml"
    # from tmp_path: in the repository root, "plugins" would name the folder of built-in plugins
    result = benchtool("run", "plugins", "--device", "cpu", "--budget", "small", "--store", str(tmp_path / "s.db"),
                       *args, "--", f"--junitxml={report}", env=env, cwd=tmp_path)
    return result, junit(report)


# --- a misspelt hook ---------------------------------------------------------------------


TYPO = ("plugin 'zoo-typo' failed to register: unknown hook 'benchtool_register_attack'; did you mean "
        "'benchtool_register_attacks'? [distribution bt-zoo-typo 0.1; not loaded, block it with -p no:zoo-typo]")


def test_installed_plugin_with_a_misspelt_hook_fails_alone(tmp_path: Path, baseline: set[tuple[str, ...]]) -> None:
    install(tmp_path / "site", "bt-zoo-typo", "0.1", {"zoo-typo": "zoo_misspelt_hook"}, "zoo_misspelt_hook")
    env = environment(tmp_path / "site")

    listed = benchtool("list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert rows(listed.stdout) == baseline  # its valid estimator hook registered nothing either
    assert listed.stderr.strip() == ("benchtool list: 1 problem(s) kept plugin(s) zoo-typo from loading; "
                                     "see benchtool list --all")

    everything = benchtool("list", "--all", env=env)
    assert everything.returncode == 0 and f"failed: {TYPO}" in others(everything.stdout)

    result, cases = run_plugins_suite(tmp_path, env)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"benchtool plugin FAILED: {TYPO}" in result.stdout  # the header
    assert cases.pop("test_plugin_loads[zoo-typo]") == ("failed", TYPO)
    assert cases and all(outcome == "passed" for outcome, _ in cases.values()), cases

    checked = benchtool("check", "zoo_misspelt_hook", env=env)
    assert checked.returncode == 1
    assert checked.stdout.splitlines()[0] == (
        "FAIL zoo_misspelt_hook::registration  plugin 'zoo_misspelt_hook' failed to register: unknown hook "
        "'benchtool_register_attack'; did you mean 'benchtool_register_attacks'?")

    blocked = benchtool("list", "--all", "-p", "no:zoo-typo", env=env)
    assert blocked.returncode == 0 and blocked.stderr == ""
    assert rows(blocked.stdout) == baseline and others(blocked.stdout) == ["blocked: zoo-typo (-p no:zoo-typo)"]


# --- a name another plugin registered ----------------------------------------------------------


def test_installed_plugin_reusing_a_name_fails_naming_both_distributions(
    tmp_path: Path, baseline: set[tuple[str, ...]]
) -> None:
    # "aa-" sorts before "fgsm": benchtool's own plugins still register first
    install(tmp_path / "site", "bt-zoo-dup", "0.2", {"aa-fgsm-copy": "duplicate_fgsm"}, "duplicate_fgsm")
    env = environment(tmp_path / "site")
    expected = ("plugin 'aa-fgsm-copy' broke rule 'unique-name': attack name 'fgsm' is already registered by plugin "
                f"'fgsm' ({BUILTIN}); expected a name no other plugin registers [distribution bt-zoo-dup 0.2; not "
                "loaded, block it with -p no:aa-fgsm-copy]")

    everything = benchtool("list", "--all", env=env)
    assert everything.returncode == 0, everything.stderr
    assert rows(everything.stdout) == baseline
    assert others(everything.stdout) == [f"failed: {expected}"]

    result, cases = run_plugins_suite(tmp_path, env)
    assert cases.pop("test_plugin_loads[aa-fgsm-copy]") == ("failed", expected)
    assert all(outcome == "passed" for outcome, _ in cases.values()), cases


def test_local_module_reusing_a_name_fails_alone(baseline: set[tuple[str, ...]]) -> None:
    result = benchtool("list", "--all", "-p", "duplicate_fgsm", env=environment(ZOO))
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout) == baseline
    assert others(result.stdout) == [
        "failed: plugin 'duplicate_fgsm' broke rule 'unique-name': attack name 'fgsm' is already registered by plugin "
        f"'fgsm' ({BUILTIN}); expected a name no other plugin registers [module given with -p; not loaded, "
        "block it with -p no:duplicate_fgsm]"]


# --- -p MODULE from the current directory, and of an installed module ------------------------


@pytest.fixture
def local_dir(tmp_path: Path) -> Path:
    """A plugin author's working directory with their module in it (not installed)."""
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copy(ZOO / "good_local.py", folder)
    return folder


@pytest.mark.skipif(not SCRIPT.exists(), reason="the benchtool console script is not installed")
def test_p_loads_a_module_from_the_current_directory(local_dir: Path, baseline: set[tuple[str, ...]]) -> None:
    env = environment()
    listed = benchtool("list", "-p", "good_local", env=env, cwd=local_dir, script=True)
    assert listed.returncode == 0, listed.stderr
    assert rows(listed.stdout) == baseline | {("attacks", "local-noise", "good_local", "local", "-")}

    checked = benchtool("check", "good_local:NoiseAttack", env=env, cwd=local_dir, script=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[-1] == "all checks passed"


@pytest.mark.skipif(not SCRIPT.exists(), reason="the benchtool console script is not installed")
def test_p_module_from_the_current_directory_runs_in_the_suites(local_dir: Path) -> None:
    result = benchtool("run", "robustness", "--device", "cpu", "--budget", "small", "-p", "good_local",
                       "--collect-only", "-q", env=environment(), cwd=local_dir, script=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "test_robust_accuracy[local-noise-" in result.stdout


def test_p_of_an_installed_module_is_one_line(tmp_path: Path, baseline: set[tuple[str, ...]]) -> None:
    install(tmp_path / "site", "bt-zoo-good", "0.3", {"zoo-good": "good_local"}, "good_local")
    result = benchtool("list", "-p", "good_local", env=environment(tmp_path / "site"))
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "benchtool list: warning: -p good_local: module 'good_local' is installed as plugin 'zoo-good' "
        "(distribution bt-zoo-good 0.3), which is loaded once; -p ignored"]
    assert rows(result.stdout) == baseline | {("attacks", "local-noise", "zoo-good", "bt-zoo-good", "0.3")}


def test_p_with_something_not_a_module_name_exits_2() -> None:
    result = benchtool("list", "-p", "./good_local.py", env=environment())
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "benchtool list: error: -p './good_local.py' is not a module name; expected a dotted module name importable "
        "from the current directory, e.g. -p bt_sign_noise for ./bt_sign_noise.py"]


# --- blocking a name that matches no plugin; asking for a blocked one ---------------------


def test_blocking_an_unknown_name_warns_and_lists_the_valid_ones(baseline: set[tuple[str, ...]]) -> None:
    # tpe registers nothing without optuna; executors come from pytest plugins, not benchtool's
    valid = sorted({row[2] for row in baseline if row[0] != "executors"} | {"tpe"})
    for args, env, given in [
        (["-p", "no:bt_fgsm"], environment(), "-p no:bt_fgsm"),
        ([], environment(BENCHTOOL_DISABLE_PLUGINS="bt_fgsm"), "BENCHTOOL_DISABLE_PLUGINS=bt_fgsm"),
    ]:
        result = benchtool("list", *args, env=env)
        assert result.returncode == 0
        assert rows(result.stdout) == baseline  # nothing blocked, everything listed
        [warning] = result.stderr.splitlines()
        prefix = f"benchtool list: warning: {given} matches no plugin, so nothing was blocked; expected a plugin name, one of: "
        assert warning.startswith(prefix) and warning.endswith(" (did you mean 'fgsm'?)"), warning
        assert set(warning[len(prefix):-len(" (did you mean 'fgsm'?)")].split(", ")) >= set(valid) - {"tpe"}

    module = benchtool("list", "-p", "no:benchtool_attacks.fgsm", env=environment())
    assert module.stderr.strip().endswith(
        "('benchtool_attacks.fgsm' is the module of plugin 'fgsm': block it with -p no:fgsm)")


def test_asking_for_a_blocked_plugin_says_it_is_blocked() -> None:
    args = ["run", "robustness", "--device", "cpu", "--budget", "small", "--collect-only", "-q"]
    result = benchtool(*args, "-p", "no:fgsm", "--", "--bt-attacks", "fgsm", env=environment())
    assert result.returncode == 2
    assert ("attack in --bt-attacks 'fgsm' is blocked: plugin 'fgsm' was blocked with -p no:fgsm; drop -p no:fgsm "
            "to run it") in result.stdout + result.stderr
    env = environment(BENCHTOOL_DISABLE_PLUGINS="fgsm")
    result = benchtool(*args, "--", "--bt-attacks", "fgsm", env=env)
    assert result.returncode == 2
    assert ("attack in --bt-attacks 'fgsm' is blocked: plugin 'fgsm' was blocked with BENCHTOOL_DISABLE_PLUGINS=fgsm; "
            "remove 'fgsm' from BENCHTOOL_DISABLE_PLUGINS to run it") in result.stdout + result.stderr


def test_blocking_a_pytest_plugin_is_no_benchtool_warning(tmp_path: Path) -> None:
    result = benchtool("run", "plugins", "--device", "cpu", "--budget", "small", "-p", "no:cacheprovider",
                       "--collect-only", env=environment(), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "matches no plugin" not in result.stdout + result.stderr


# --- import errors: the real one, in one line --------------------------------------------


def test_check_shows_the_real_import_error(tmp_path: Path) -> None:
    shutil.copy(ZOO / "zoo_missing_dependency.py", tmp_path)
    (tmp_path / "zoo_syntax_error.py").write_text('"""A plugin with a typo."""\n\ndef broken(:\n    pass\n')
    try:
        compile((tmp_path / "zoo_syntax_error.py").read_text(), "zoo_syntax_error.py", "exec")
    except SyntaxError as exc:
        syntax = f"{exc.msg}"
    env = environment()

    missing = benchtool("check", "zoo_missing_dependency", env=env, cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        "benchtool check: error: cannot import 'zoo_missing_dependency': ModuleNotFoundError: No module named "
        f"'bt_zoo_dependency_not_installed' ({tmp_path / 'zoo_missing_dependency.py'}:5)"]

    broken = benchtool("check", "zoo_syntax_error:Anything", env=env, cwd=tmp_path)
    assert broken.returncode == 2
    assert broken.stderr.splitlines() == [
        f"benchtool check: error: cannot import 'zoo_syntax_error:Anything': {tmp_path / 'zoo_syntax_error.py'}:3: "
        f"SyntaxError: {syntax}"]

    absent = benchtool("check", "bt_zoo_absent.Attack", env=env, cwd=tmp_path)
    assert absent.returncode == 2
    assert absent.stderr.splitlines() == [
        "benchtool check: error: cannot import 'bt_zoo_absent.Attack': no module named 'bt_zoo_absent' in the current "
        "directory or on sys.path; expected pkg.module, pkg.module:Class or pkg.module.Class"]


def test_installed_plugin_that_cannot_be_imported_fails_alone(tmp_path: Path, baseline: set[tuple[str, ...]]) -> None:
    site = tmp_path / "site"
    install(site, "bt-zoo-dep", "1.0", {"zoo-dep": "zoo_missing_dependency"}, "zoo_missing_dependency")
    result = benchtool("list", "--all", env=environment(site))
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout) == baseline
    assert others(result.stdout) == [
        "failed: plugin 'zoo-dep' failed to import: ModuleNotFoundError: No module named "
        f"'bt_zoo_dependency_not_installed' ({site / 'zoo_missing_dependency.py'}:5) [distribution bt-zoo-dep 1.0; "
        "not loaded, block it with -p no:zoo-dep]"]


# --- what the contract requires, checked at registration ---------------------------------------


RULE_BREAKERS = {
    "zoo_rule_no_norm": (
        "plugin 'zoo_rule_no_norm' broke rule 'declares-norm': attack 'no-norm' (zoo_rule_no_norm.NoNorm) declares "
        "no norm; expected norm = one of 'linf', 'l2'"),
    "zoo_rule_no_name": (
        "plugin 'zoo_rule_no_name' broke rule 'declares-name': estimator (zoo_rule_no_name.Nameless) "
        "declares name = None; expected a class attribute name = '...' (a non-empty string without spaces at its "
        "ends or '[')"),
    "zoo_rule_name_mismatch": (
        "plugin 'zoo_rule_name_mismatch' broke rule 'name-matches': attack 'fgsm-other' "
        "(zoo_rule_name_mismatch.Renamed) is registered as 'fgsm-other' but declares name = 'fgsm-renamed'; expected "
        "the same name (registry.add(Renamed) takes it from the class)"),
}


def rule_failure(module: str) -> str:
    return f"{RULE_BREAKERS[module]} [module given with -p; not loaded, block it with -p no:{module}]"


def test_registration_checks_the_contract_and_add_takes_the_name_from_the_class(
    tmp_path: Path, baseline: set[tuple[str, ...]]
) -> None:
    plugins = [arg for module in [*RULE_BREAKERS, "zoo_add_by_class"] for arg in ("-p", module)]
    env = environment(ZOO)

    result = benchtool("list", "--all", *plugins, env=env)
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout) == baseline | {("attacks", "by-class-fgsm", "zoo_add_by_class", "local", "-")}
    assert others(result.stdout) == [f"failed: {rule_failure(module)}" for module in RULE_BREAKERS]

    result, cases = run_plugins_suite(tmp_path, env, *plugins)
    assert result.returncode == 1
    for module in RULE_BREAKERS:
        assert cases.pop(f"test_plugin_loads[{module}]") == ("failed", rule_failure(module))
    assert cases["test_plugin_loads[zoo_add_by_class]"] == ("passed", "")
    assert all(outcome == "passed" for outcome, _ in cases.values()), cases


# --- reading an undeclared hyper-parameter ------------------------------------------------------


def robustness_records(tmp_path: Path, name: str, attacks: str, *plugins: str) -> tuple[list[dict], dict]:
    out, report = tmp_path / f"{name}.json", tmp_path / f"{name}.xml"
    env = environment(ZOO, BENCHTOOL_CACHE=str(tmp_path / "cache"))
    result = benchtool("run", "robustness", "--device", "cpu", "--budget", "small", "--json", str(out),
                       "--store", str(tmp_path / "s.db"), *plugins, "--", "--bt-attacks", attacks,
                       "--bt-models", "mlp", "-k", "test_robust_accuracy", f"--junitxml={report}", "-q", env=env,
                       cwd=tmp_path)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]
    return json.loads(out.read_text()), junit(report)


def test_reading_an_undeclared_hyperparameter_fails_that_cell_only(tmp_path: Path) -> None:
    def measured(records: list[dict]) -> list[dict]:  # times vary from run to run
        return [r for r in records if r["plugin"] == "fgsm" and "second" not in r["metric"] + r["unit"]]

    alone, _ = robustness_records(tmp_path, "alone", "fgsm")
    mixed, cases = robustness_records(tmp_path, "mixed", "fgsm,forgot-steps", "-p", "zoo_undeclared_hyperparam")
    outcome, message = cases["test_robust_accuracy[forgot-steps-mlp-digits]"]
    assert outcome == "failed"
    assert ("plugin 'forgot-steps' broke rule 'declared-hyperparameter': read hyper-parameter 'steps', which it does "
            "not declare; declared: 'step_size' (add 'steps' to the class's defaults)") in message
    assert cases["test_robust_accuracy[fgsm-mlp-digits]"] == ("passed", "")
    assert measured(mixed) == measured(alone) != []
