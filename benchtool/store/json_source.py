"""``--bt-json`` files as a :class:`~benchtool.store.source.ResultSource`: ``--store json:PATH``.

``PATH`` is one file (one run) or a folder whose ``*.json`` files are each a run; a run's id
is its file name without ``.json``, ``latest`` the newest file. A ``--bt-json`` file holds
records only, so each case is rebuilt from its records (passed, no duration) and the run's
metadata is what the records tell (seed, device) and the file's time.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchtool.claims.core import VERDICT_NODEID_PREFIX, is_verdict
from benchtool.errors import UsageError
from benchtool.results import CaseResult, Record, read_json
from benchtool.store.db import RunInfo, resolve_run_id

JSON_STATUS = "records"  # the state `runs` shows: a file of records, not a run's log


class JsonRecords:
    """``--bt-json`` files, read-only."""

    records_only = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            files = sorted(self.path.glob("*.json"), key=lambda f: (f.stat().st_mtime, f.name))
        elif self.path.is_file():
            files = [self.path]
        else:
            raise UsageError(f"no --bt-json file or folder at {self.path}; expected --store json:PATH to a file "
                             "written by --bt-json or a folder of them")
        self._files = {f.name.removesuffix(".json"): f for f in files}  # oldest first

    def __enter__(self) -> JsonRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing stays open."""

    def resolve(self, spec: str) -> str:
        return resolve_run_id(spec, list(self._files), self.path)

    def runs(self, limit: int | None = None) -> list[RunInfo]:
        newest = list(reversed(self._files))
        return [self.run(run_id) for run_id in newest[:limit or None]]

    def run(self, run_id: str) -> RunInfo:
        file = self._file(run_id)
        records = self._records(run_id)
        first = records[0] if records else None
        return RunInfo(run_id, file.stat().st_mtime, status=JSON_STATUS, seed=first.seed if first else None,
                       device=first.device if first else "",
                       outcomes={"passed": len(_cases(records))} if records else {}, records=len(records))

    def cases(self, run_id: str) -> list[CaseResult]:
        """Its records as cases (:func:`_cases`); a claim's verdicts form the case
        ``claims::<claim>`` as in the store."""
        return _cases(self._records(run_id))

    def _file(self, run_id: str) -> Path:
        if run_id not in self._files:
            raise UsageError(f"unknown run {run_id!r} in {self.path}; expected one of: {', '.join(self._files)}")
        return self._files[run_id]

    def _records(self, run_id: str) -> list[Record]:
        file = self._file(run_id)
        try:
            return read_json(file)
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            raise UsageError(f"{file}: not a benchtool results file ({exc})") from None


def _cases(records: list[Record]) -> list[CaseResult]:
    """A file's records as cases: one passed case per (suite, case name), in the records' order."""
    cases: dict[tuple[str, str], CaseResult] = {}
    for record in records:
        nodeid = (f"{VERDICT_NODEID_PREFIX}{record.plugin}" if is_verdict(record)
                  else f"{record.suite}::{record.case}")
        cases.setdefault((record.suite, nodeid), CaseResult(nodeid, record.suite, "passed", 0.0)).records.append(
            record)
    return list(cases.values())
