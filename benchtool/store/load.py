"""Load the results that ``compare`` and ``report`` read: a run of a
:class:`~benchtool.store.source.ResultSource` or a ``--bt-json`` file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchtool.errors import UsageError
from benchtool.results import CaseResult, Record
from benchtool.store.db import RunInfo, case_key
from benchtool.store.json_source import JsonRecords
from benchtool.store.source import ResultSource, open_source


@dataclass
class ResultSet:
    """The records of one run, with its metadata and case outcomes when its source keeps them."""

    label: str  # the run id, or the JSON file's name
    records: list[Record]
    run: RunInfo | None = None
    cases: list[CaseResult] = field(default_factory=list)
    store: str = ""  # the source it was read from ("" for a JSON file named as the run)

    def outcomes(self) -> dict[str, CaseResult]:
        """Cases by their rootdir-independent key."""
        return {case_key(case.nodeid): case for case in self.cases}


def load_result_set(spec: str, store_path: str | Path | None = None) -> ResultSet:
    """``spec`` is a JSON file written by ``--bt-json`` (when such a file exists) or a run of the
    source ``store_path`` names (:func:`~benchtool.store.source.open_source`)."""
    path = Path(spec)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise UsageError(f"no such results file {spec!r}; expected a --bt-json file or a run id")
        source = JsonRecords(path)
        return _result_set(source, source.resolve("latest"), path.name, store="")
    with open_source(store_path) as source:
        run_id = source.resolve(spec)
        return _result_set(source, run_id, run_id, str(source.path))


def _result_set(source: ResultSource, run_id: str, label: str, store: str) -> ResultSet:
    """A source's run; records only (no run, no outcomes) from a source that keeps no more."""
    cases = source.cases(run_id)
    records = [r for case in cases for r in case.records]
    if source.records_only:
        return ResultSet(label, records, store=store)
    return ResultSet(label, records, source.run(run_id), cases, store)
