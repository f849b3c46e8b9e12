"""Values are checked before any work: a bad ``--seed``, ``--bt-eps``, ``--bt-checkpoint`` or a
named dataset without its files is one line naming the value and what was expected, exit 2
from ``benchtool run`` (pytest's usage error, 4, from ``pytest``), before the first cell.

The checks that need the selected cells (eps against each dataset's box in each attack's
norm, a checkpoint against each network it is loaded into) run once the cells are
collected and selected, still before the first one runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from benchtool.cli import main
from benchtool.config import SEED_MAX, check_eps_range, eps_limit, parse_eps_list
from benchtool.contracts.data import DatasetInfo
from benchtool.errors import UsageError

EPS_EXPECTED = "expected finite numbers >= 0 like 0,0.05,0.1"
LIST_EXPECTED = "expected comma-separated numbers like 0,0.05,0.1"
STATE_DICT = "expected a file saved with torch.save(model.state_dict(), PATH)"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCHTOOL_STORE", raising=False)
    return tmp_path


def robustness(workdir: Path, *suite_options: str) -> int:
    """``benchtool run robustness`` on the CPU at the small budget, mlp only."""
    return main(["run", "robustness", "--device", "cpu", "--budget", "small", "--store", str(workdir / "s.db"),
                 "--", "-p", "no:cacheprovider", "--bt-models", "mlp", *suite_options])


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def assert_nothing_ran(workdir: Path, out: str) -> None:
    assert " passed" not in out and " failed" not in out and "leaderboard" not in out
    assert not (workdir / "s.db").exists()


# --- --seed ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", ["-1", str(SEED_MAX + 1)])
def test_a_seed_out_of_range_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str], seed: str) -> None:
    assert main(["run", "robustness", "--device", "cpu", "--budget", "small", "--seed", seed,
                 "--store", str(workdir / "s.db")]) == 2
    captured = capsys.readouterr()
    expected = f"benchtool run: error: invalid --seed {seed}; expected a whole number from 0 to {SEED_MAX}"
    assert one_error_line(captured.err) == expected
    assert_nothing_ran(workdir, captured.out)


def test_pytest_itself_gives_its_usage_error(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchtool.cli import suites_dir

    suite = str(suites_dir() / "test_robustness.py")
    assert pytest.main([suite, "--bt-seed", "-1", "--bt-store", str(workdir / "s.db"), "-p", "no:cacheprovider"]) == 4
    assert "invalid --bt-seed -1" in capsys.readouterr().err


# --- --bt-eps: the list itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (",", f"invalid --bt-eps ',': no number in it; {LIST_EXPECTED}"),
        ("0,,0.1", f"invalid --bt-eps '0,,0.1': an empty item between commas; {LIST_EXPECTED}"),
        ("0,x", f"invalid --bt-eps '0,x': 'x' is not a number; {LIST_EXPECTED}"),
        ("-0.1", f"invalid --bt-eps '-0.1': eps -0.1 is negative; {EPS_EXPECTED}"),
        ("nan", f"invalid --bt-eps 'nan': eps nan is not a finite number; {EPS_EXPECTED}"),
        ("0,inf", f"invalid --bt-eps '0,inf': eps inf is not a finite number; {EPS_EXPECTED}"),
        ("0,0.1,0.1", f"invalid --bt-eps '0,0.1,0.1': eps 0.1 is given twice; {EPS_EXPECTED}, each once"),
    ],
    ids=["only-a-comma", "empty-item", "not-a-number", "negative", "nan", "inf", "twice"],
)
def test_a_bad_eps_list_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str], value: str,
                                    message: str) -> None:
    assert robustness(workdir, f"--bt-eps={value}") == 2
    captured = capsys.readouterr()
    assert one_error_line(captured.err) == f"ERROR: {message}"
    assert_nothing_ran(workdir, captured.out)


# --- --bt-eps against the data: each (attack, dataset) cell, in the attack's norm ------------------


def test_eps_beyond_the_data_range_is_one_line_before_the_first_cell(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert robustness(workdir, "--bt-attacks", "fgsm", "--bt-eps", "0,2.5") == 2
    captured = capsys.readouterr()
    assert one_error_line(captured.err) == (
        "ERROR: invalid --bt-eps 2.5 for attack 'fgsm' (linf) on dataset 'digits' (inputs in [0, 1]): "
        "expected linf eps from 0 to 1, the linf diameter of the data box")
    assert_nothing_ran(workdir, captured.out)
    # 8 = 1 * sqrt(64) is the L2 diameter of digits' 8x8 box: 2.5 is a fine L2 eps, 8.5 is not
    assert robustness(workdir, "--bt-attacks", "pgd-l2", "--bt-eps", "0,2.5", "--collect-only", "-q") == 0
    capsys.readouterr()
    assert robustness(workdir, "--bt-attacks", "pgd-l2", "--bt-eps", "0,8.5") == 2
    assert one_error_line(capsys.readouterr().err) == (
        "ERROR: invalid --bt-eps 8.5 for attack 'pgd-l2' (l2) on dataset 'digits' (inputs in [0, 1] over 64 values): "
        "expected l2 eps from 0 to 8, the l2 diameter of the data box")


def test_eps_limits_are_the_data_box_diameter() -> None:
    info = DatasetInfo("box", "classification", (3, 2, 2), 10, (-1.0, 1.0))
    assert eps_limit("linf", info.bounds, info.input_shape) == 2.0
    assert eps_limit("l2", info.bounds, info.input_shape) == pytest.approx(2.0 * 12**0.5)
    assert eps_limit("l1", info.bounds, info.input_shape) == 24.0
    assert eps_limit("lp", info.bounds, info.input_shape) is None
    check_eps_range([0.0, 2.0], norm="linf", info=info, attack="a")  # the diameter itself is allowed
    with pytest.raises(UsageError, match=r"invalid --bt-eps 2.1 for attack 'a' \(linf\)"):
        check_eps_range([0.0, 2.1], norm="linf", info=info, attack="a")
    assert parse_eps_list(" 0, 0.5 ") == [0.0, 0.5] and parse_eps_list(None) is None


# --- --bt-checkpoint ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint\n", "not loadable with torch.load(weights_only=True) (the weights-only unpickler "
                                f"refused it: Unsupported operand 110); {STATE_DICT}"),
        ([1, 2], f"holds a list, not a state_dict; {STATE_DICT}"),
        ({}, f"holds an empty dict; {STATE_DICT}"),
        ({"0.weight": torch.zeros(2), "steps": 3}, f"entry 'steps' is not a tensor (int); {STATE_DICT}"),
        ({0: torch.zeros(2)}, f"key 0 is not a parameter name (a string); {STATE_DICT}"),
    ],
    ids=["text", "list", "empty", "not-a-tensor", "not-a-name"],
)
def test_an_unusable_checkpoint_is_one_line_before_any_cell(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                            content: object, message: str) -> None:
    path = workdir / "model.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    assert robustness(workdir, "--bt-checkpoint", str(path)) == 2
    captured = capsys.readouterr()
    assert one_error_line(captured.err) == f"ERROR: --bt-checkpoint {path}: {message}"
    assert_nothing_ran(workdir, captured.out)


def test_a_checkpoint_that_does_not_fit_the_network_is_one_line(workdir: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "other.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    assert robustness(workdir, "--bt-checkpoint", str(path)) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert line.startswith(f"ERROR: --bt-checkpoint {path} does not fit model 'mlp' built for dataset 'digits' "
                           "(input (1, 8, 8), 10 outputs): missing keys ")
    assert line.endswith("; unexpected keys fc.weight")
    assert_nothing_ran(workdir, captured.out)


# --- datasets whose files are missing ----------------------------------------------------------


def test_a_named_dataset_without_its_files_is_one_usage_error(workdir: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = workdir / "data"
    root.mkdir()
    assert robustness(workdir, "--bt-datasets", "mnist", "--bt-data-root", str(root)) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert line.startswith(f"ERROR: dataset 'mnist': missing files in {root / 'mnist'}: train-images-idx3-ubyte, ")
    assert f"in {root / 'mnist'} or {root / 'MNIST/raw'}" in line and "or pass --bt-download to fetch them" in line
    assert_nothing_ran(workdir, captured.out)


DEFAULTS_SUITE = '''
import pytest

pytestmark = pytest.mark.bt(datasets=["mnist", "digits"])


@pytest.mark.parametrize("part", ["train", "test"])
def test_size(dataset, bt_record, part):
    bt_record("size", len(getattr(dataset, part)), params={"part": part})
'''


def test_a_default_dataset_without_files_fails_only_its_cells_in_one_line_each(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = workdir / "test_defaults.py"
    suite.write_text(DEFAULTS_SUITE)
    root = workdir / "data"
    root.mkdir()

    def run(name: str, *options: str) -> list[dict]:
        out = workdir / f"{name}.json"
        main(["run", str(suite), "--device", "cpu", "--store", str(workdir / f"{name}.db"), "--json", str(out),
              "--", "-p", "no:cacheprovider", "--bt-data-root", str(root), *options])
        return json.loads(out.read_text())

    both = run("both")
    out = capsys.readouterr().out
    assert "2 failed" in out or "2 error" in out, out[-3000:]
    assert "During handling" not in out and "Traceback" not in out
    failures = [line for line in out.splitlines() if line.startswith("dataset 'mnist': missing files in")]
    assert len(failures) == 2 and len(set(failures)) == 1  # one line per failed cell, no chained copy
    alone = run("alone", "--bt-datasets", "digits")
    capsys.readouterr()
    assert both == alone and {r["dataset"] for r in both} == {"digits"} and len(both) == 2
    # the store holds the failed cells with their one-line message
    from benchtool.store.db import ResultStore

    with ResultStore(workdir / "both.db", readonly=True) as store:
        (run_info,) = store.runs()
        failed = [c for c in store.cases(run_info.id) if c.outcome == "failed"]
    assert len(failed) == 2 and all(c.message and failures[0].startswith(c.message) for c in failed)


def test_the_cli_error_for_a_bad_value_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``--bt-eps`` given to pytest directly: pytest's usage error (4) with the same line."""
    from benchtool.cli import suites_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCHTOOL_STORE", os.fspath(tmp_path / "s.db"))
    code = pytest.main([str(suites_dir() / "test_robustness.py"), "--bt-eps", ",", "-p", "no:cacheprovider"])
    assert code == 4
    assert f"invalid --bt-eps ',': no number in it; {LIST_EXPECTED}" in capsys.readouterr().err


# --- --bt-datasets: a dataset of the wrong task ------------------------------------------------------------


def test_datasets_no_suite_test_accepts_are_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert robustness(workdir, "--bt-datasets", "toy-regression") == 2
    captured = capsys.readouterr()
    assert one_error_line(captured.err) == (
        "ERROR: --bt-datasets toy-regression (regression): no selected suite test accepts them; "
        "expected datasets of the tasks that test_robust_accuracy (classification only), test_gradient_probes "
        "(classification only), test_pgd_not_weaker_than_fgsm (classification only) and their plugins and models "
        "declare")
    assert_nothing_ran(workdir, captured.out)


def test_a_test_declaring_its_task_gets_no_cell_of_another(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The uncertainty suite's regression test is never handed classification data."""
    from benchtool.cli import suites_dir

    suite = str(suites_dir() / "test_uncertainty.py")
    assert pytest.main([suite, "--collect-only", "-q", "--bt-datasets", "digits,toy-regression",
                        "--bt-store", str(workdir / "s.db"), "-p", "no:cacheprovider"]) == 0
    ids = [line for line in capsys.readouterr().out.splitlines() if "::" in line]
    regression = [i for i in ids if "test_regression_uncertainty" in i]
    classification = [i for i in ids if "test_classification_uncertainty" in i]
    assert regression and all(i.endswith("-toy-regression]") for i in regression)
    assert classification and all(i.endswith("-digits]") for i in classification)
