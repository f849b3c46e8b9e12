"""The estimate a run prints before its first cell and the progress line of a long cell."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from benchtool import progress
from benchtool.progress import ReferenceDurations, RunProgress, format_duration

SUITES = Path(__file__).resolve().parents[1] / "suites"


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


def test_a_first_run_borrows_the_reference_machines_durations_where_the_store_has_none() -> None:
    reference = ReferenceDurations("the reference CPU", {"a": 60.0, "b": 600.0, "c": 5.0})
    where = "budget default on cpu"
    mixed = RunProgress.plan(["a", "b", "d"], {"a": 30.0}, where, reference)
    assert mixed.expected == {"a": 30.0, "b": 600.0, "d": None}  # the store's own figure wins
    assert mixed.estimate_line() == (
        "benchtool estimate: about 10 min 30 s for 2 of 3 cells (1 from their last durations at budget default on "
        "cpu in the results store, 1 from the durations measured on the reference CPU); 1 cell(s) without one, "
        "not counted")
    first = RunProgress.plan(["b", "c"], {}, where, reference)
    assert first.estimate_line() == (
        "benchtool estimate: about 10 min 05 s for 2 of 2 cells (the durations measured on the reference CPU)")


def test_the_shipped_reference_durations_name_cells_the_suites_define() -> None:
    """Every cell of the shipped table is a test of a suite file that still defines it, with a
    duration; a device index reads its type's table."""
    data = json.loads((Path(progress.__file__).parent / progress.REFERENCE_FILE).read_text())
    assert data["machine"] and data["durations"]
    for section, cells in data["durations"].items():
        budget, device = section.split("/")
        assert ReferenceDurations.load(budget, f"{device}:1" if device == "cuda" else device).durations == cells
        for key, seconds in cells.items():
            file, _, test = key.partition("::")
            assert seconds >= 0 and re.fullmatch(r"test_\w+\[[^\]]+\]", test), key
            assert f"def {test.partition('[')[0]}(" in (SUITES / file).read_text(), key
    assert ReferenceDurations.load("no-such-budget", "cpu").durations == {}


def test_a_long_cell_prints_its_progress_and_what_is_left() -> None:
    run = RunProgress.plan(["a", "b", "c"], {"a": 30.0, "b": 20.0, "c": 600.0}, "budget default on cpu")
    assert run.cell_finished("a", "pgd-lenet-digits", 2.0) is None  # short: no line
    assert run.cell_finished("b", "cw-l2-lenet-digits", 25.0) == (
        "benchtool: 2/3 cw-l2-lenet-digits took 25 s; about 10 min 00 s left")
    assert run.cell_finished("c", "square-lenet-digits", 610.0) == "benchtool: 3/3 square-lenet-digits took 10 min 10 s"


def test_a_run_over_workers_spreads_the_time_over_them() -> None:
    run = RunProgress.plan(["a", "b", "c"], {"a": 30.0, "b": 20.0, "c": 600.0}, "budget default on cpu", workers=2)
    assert run.estimate_line() == (
        "benchtool estimate: about 5 min 25 s on 2 workers (10 min 50 s of cells) for 3 of 3 cells (their last "
        "durations at budget default on cpu in the results store)")
    assert run.cell_finished("b", "cw-l2-lenet-digits", 25.0) == (
        "benchtool: 1/3 cw-l2-lenet-digits took 25 s; about 5 min 15 s left on 2 workers")


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


def test_a_first_run_prints_the_reference_estimate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "test_first.py").write_text(textwrap.dedent(SUITE))
    monkeypatch.chdir(tmp_path)
    shipped = ReferenceDurations.load

    def load(budget: str, device: str) -> ReferenceDurations:
        assert shipped(budget, device).machine  # the real file is read, then one cell is added
        return ReferenceDurations("the reference CPU", {"test_first.py::test_score[digits]": 4000.0})

    monkeypatch.setattr(ReferenceDurations, "load", staticmethod(load))
    args = [str(tmp_path / "test_first.py"), "-q", "-p", "no:cacheprovider", "--bt-store", str(tmp_path / "s.db"),
            "--bt-budget", "default", "--bt-device", "cpu"]
    assert pytest.main(args) == 0
    assert ("benchtool estimate: about 1 h 06 min for 1 of 1 cells (the durations measured on the reference CPU)"
            in capsys.readouterr().out)
