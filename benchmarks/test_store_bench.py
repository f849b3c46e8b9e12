"""Speed of the results store: one case with its records written in one transaction."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from benchtool.results import CaseResult, Record
from benchtool.store.db import ResultStore


@pytest.fixture
def store(tmp_path: Path):
    with ResultStore(tmp_path / "results.db") as opened:
        opened.begin_run("bench", time.time(), {}, command="bench", cwd=".", pytest_args=[], budget="small", seed=0)
        yield opened


def test_add_case_with_ten_records(benchmark, store: ResultStore) -> None:
    """The store's cost per finished case (it runs in the controller, between cases)."""
    records = [Record("robustness", "test_x[pgd-lenet-digits]", "attacks", "pgd", "lenet", "digits", {"eps": e / 10},
                      "robust_accuracy", 0.5, "", 0, "cpu", None) for e in range(9)]
    records.append(Record("robustness", "test_x[pgd-lenet-digits]", "attacks", "pgd", "lenet", "digits", {},
                          "curve", None, "", 0, "cpu", {"x": list(range(50)), "y": [0.1] * 50}))
    counter = itertools.count()
    benchmark(lambda: store.add_case("bench", CaseResult(f"test_r.py::test_x[{next(counter)}]", "robustness",
                                                         "passed", 0.1, records)))
    assert store.count("records", "bench") == 10 * store.count("cases", "bench")
