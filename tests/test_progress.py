"""The estimate a run prints before its first cell and the progress line of a long cell."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from benchtool import progress
from benchtool.progress import RunProgress, format_duration


@pytest.mark.parametrize(("seconds", "text"), [
    (0.04, "0.0 s"), (3.25, "3.2 s"), (45.4, "45 s"), (450, "7 min 30 s"), (3900, "1 h 05 min"), (-1, "0.0 s")])
def test_durations_read_as_a_person_would_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_the_estimate_counts_only_cells_with_a_past_duration() -> None:
    where = "budget small on cpu"
    assert RunProgress.plan(["a", "b"], {}, where).estimate_line().startswith(
        "benchtool estimate: none yet for these 2 cells (no past durations at budget small on cpu")
    partial = RunProgress.plan(["a", "b", "c"], {"a": 100.0, "b": 350.0, "z": 9.0}, where)
    assert partial.estimate_line() == (
        "benchtool estimate: about 7 min 30 s for 2 of 3 cells (their last durations at budget small on cpu in "
        "the results store); 1 cell(s) without one, not counted")


def test_a_long_cell_prints_its_progress_and_what_is_left() -> None:
    run = RunProgress.plan(["a", "b", "c"], {"a": 30.0, "b": 20.0, "c": 600.0}, "budget default on cpu")
    assert run.cell_finished("a", "pgd-lenet-digits", 2.0) is None  # short: no line
    assert run.cell_finished("b", "cw-l2-lenet-digits", 25.0) == (
        "benchtool: 2/3 cw-l2-lenet-digits took 25 s; about 10 min 00 s left")
    assert run.cell_finished("c", "square-lenet-digits", 610.0) == "benchtool: 3/3 square-lenet-digits took 10 min 10 s"


SUITE = '''
import pytest

@pytest.mark.bt(datasets=["digits"])
def test_score(dataset, bt_record):
    bt_record("accuracy", 0.5)
'''


def test_a_second_run_estimates_from_the_store_and_reports_progress(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "test_toy.py").write_text(textwrap.dedent(SUITE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)  # every cell counts as long here
    args = [str(tmp_path / "test_toy.py"), "-q", "-p", "no:cacheprovider", "--bt-store", str(tmp_path / "s.db"),
            "--bt-budget", "small", "--bt-device", "cpu"]
    assert pytest.main(args) == 0
    first = capsys.readouterr().out
    assert "benchtool estimate: none yet for these 1 cells" in first
    assert "benchtool: 1/1 digits took" in first
    assert pytest.main(args) == 0
    second = capsys.readouterr().out
    assert "benchtool estimate: about " in second and "for 1 of 1 cells (their last durations at budget small on cpu" \
        in second
    assert "benchtool: 1/1 digits took" in second
