"""The read side of stored results: what ``runs``, ``show``, ``compare``, ``report`` and
``run --resume`` read, whatever holds the runs.

:class:`~benchtool.store.db.ResultStore` (SQLite, what a run writes) and
:class:`~benchtool.store.json_source.JsonRecords` (``--bt-json`` files) implement it;
``--store json:PATH`` (or a ``PATH`` ending in ``.json``) selects the second.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from benchtool.errors import UsageError
from benchtool.results import CaseResult
from benchtool.store.db import STORE_ENV, ResultStore, RunInfo, resolve_store_path

JSON_PREFIX = "json:"
READ_HELP = "; or json:PATH (or PATH.json): a --bt-json file, or a folder of them, each a run"


@runtime_checkable
class ResultSource(Protocol):
    """Stored runs, read-only; a context manager that releases what it opened."""

    path: Path  # printed by the commands: where the runs were read
    records_only: bool  # True: no case outcomes, messages or run metadata beyond the records

    def runs(self, limit: int | None = None) -> list[RunInfo]:
        """Runs, newest first (``limit`` of them when given)."""

    def resolve(self, spec: str) -> str:
        """A run id from ``spec``: the id, a unique prefix of it, ``latest`` or ``latest~N``."""

    def run(self, run_id: str) -> RunInfo:
        """One run's metadata and counts."""

    def cases(self, run_id: str) -> list[CaseResult]:
        """Its finished cases with their records, in the order they finished."""

    def __enter__(self) -> ResultSource: ...

    def __exit__(self, *exc: object) -> None: ...


def open_source(option: str | os.PathLike[str] | None = None) -> ResultSource:
    """The source ``--store`` names: ``json:PATH`` or ``PATH.json`` a ``--bt-json`` file or a folder
    of them; anything else the SQLite store (default: ``$BENCHTOOL_STORE``, else the project's),
    opened read-only."""
    text = os.fspath(option) if option is not None else os.environ.get(STORE_ENV, "")
    if text.startswith(JSON_PREFIX) or text.endswith(".json"):
        from benchtool.store.json_source import JsonRecords

        return JsonRecords(text.removeprefix(JSON_PREFIX))
    return ResultStore(resolve_store_path(option), readonly=True)


def sqlite_store(option: str | os.PathLike[str] | None, purpose: str) -> ResultStore:
    """The SQLite store ``--store`` names, for ``purpose`` that needs what only it keeps."""
    source = open_source(option)
    if not isinstance(source, ResultStore):
        raise UsageError(f"{purpose} needs a results database (SQLite), not the --bt-json records {option}; "
                         "expected --store PATH to a .db file")
    return source
