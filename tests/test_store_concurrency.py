"""Several processes writing one store at once lose no row: counted after the fact.

(The pytest-xdist path, ``-n 2`` with every worker's cases stored by the controller, is
counted in tests/test_compare_flow.py, whose baseline run uses it.)"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from benchtool.store.db import ResultStore

WRITERS, CASES, RECORDS = 4, 25, 5

WRITER = """
import sys, time
from pathlib import Path
from benchtool.results import CaseResult, Record
from benchtool.store.db import ResultStore

db, index, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)
store = ResultStore(db)  # every writer also migrates/opens at the same moment
store.begin_run(f"w{index}", time.time(), {}, command="w", cwd=".", pytest_args=[], budget="small", seed=0)
for c in range(%(cases)d):
    records = [Record("s", f"test_x[{index}-{c}]", "", "", "", "", {"r": r}, "m", float(r), "", 0, "cpu")
               for r in range(%(records)d)]
    for run in (f"w{index}", "shared"):  # its own run, and one run every writer appends to
        store.add_case(run, CaseResult(f"test_s.py::test_x[{index}-{c}]", "s", "passed", 0.0, records))
store.finish_run(f"w{index}", 0)
""" % {"cases": CASES, "records": RECORDS}


def test_concurrent_writers_lose_no_row(tmp_path: Path) -> None:
    db, go = tmp_path / "results.db", tmp_path / "go"
    with ResultStore(db) as store:  # the shared run exists before the writers start
        store.begin_run("shared", time.time(), {}, command="s", cwd=".", pytest_args=[], budget="small", seed=0)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(i), str(go)],
                                stderr=subprocess.PIPE, text=True) for i in range(WRITERS)]
    time.sleep(0.5)
    go.touch()
    errors = [w.communicate(timeout=240)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * WRITERS, errors
    with ResultStore(db) as store:
        assert store.count("runs") == WRITERS + 1
        assert store.count("cases", "shared") == WRITERS * CASES
        assert store.count("records", "shared") == WRITERS * CASES * RECORDS
        for i in range(WRITERS):
            assert store.count("cases", f"w{i}") == CASES
            assert store.count("records", f"w{i}") == CASES * RECORDS
            assert store.run(f"w{i}").status == "finished"
        assert store.count("records") == 2 * WRITERS * CASES * RECORDS
        assert len({c.nodeid for c in store.cases("shared")}) == WRITERS * CASES
