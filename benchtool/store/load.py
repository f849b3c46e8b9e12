"""Load the results that ``compare`` and ``report`` read: a stored run or a ``--bt-json`` file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from benchtool.errors import UsageError
from benchtool.results import CaseResult, Record, read_json
from benchtool.store.db import ResultStore, RunInfo, case_key, resolve_store_path


@dataclass
class ResultSet:
    """The records of one run, with its metadata and case outcomes when it came from the store."""

    label: str  # the run id, or the JSON file's name
    records: list[Record]
    run: RunInfo | None = None
    cases: list[CaseResult] = field(default_factory=list)
    store: str = ""  # the results store it was read from ("" for a JSON file)

    def outcomes(self) -> dict[str, CaseResult]:
        """Cases by their rootdir-independent key."""
        return {case_key(case.nodeid): case for case in self.cases}


def load_result_set(spec: str, store_path: str | Path | None = None) -> ResultSet:
    """``spec`` is a JSON file written by ``--bt-json`` (when such a file exists) or a run in the store."""
    path = Path(spec)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise UsageError(f"no such results file {spec!r}; expected a --bt-json file or a run id")
        try:
            records = read_json(path)
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            raise UsageError(f"{spec}: not a benchtool results file ({exc})") from None
        return ResultSet(path.name, records)
    with ResultStore(resolve_store_path(store_path), readonly=True) as store:
        run_id = store.resolve(spec)
        cases = store.cases(run_id)
        return ResultSet(run_id, [r for case in cases for r in case.records], store.run(run_id), cases,
                         str(store.path))
