"""The read side of stored results: what ``runs``, ``show``, ``compare``, ``report`` and
``run --resume`` read, whatever holds the runs.

:class:`~benchtool.store.db.ResultStore` (SQLite, what a run writes) implements it, and so do
the readers plugins register for ``--store SCHEME:PATH`` through
``benchtool_register_result_sources``: the store plugin's ``json``
(:class:`~benchtool.store.json_source.JsonRecords`, ``--bt-json`` files; a ``PATH`` ending in
``.json`` means it too), or a third party's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from benchtool.errors import UsageError
from benchtool.host import SOURCE_SCHEME, load_host
from benchtool.results import CaseResult
from benchtool.store.db import STORE_ENV, ResultStore, RunInfo, resolve_store_path

JSON_SCHEME = "json"


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
    """The source ``--store`` names: ``SCHEME:PATH`` read by the reader a plugin registered for
    SCHEME (``json:PATH``, and ``PATH.json``: ``--bt-json`` files); anything else the SQLite store
    (default: ``$BENCHTOOL_STORE``, else the project's), opened read-only."""
    text = os.fspath(option) if option is not None else os.environ.get(STORE_ENV, "")
    scheme, colon, path = text.partition(":")
    if not (colon and SOURCE_SCHEME.fullmatch(scheme)):
        if not text.endswith(".json"):
            return ResultStore(resolve_store_path(option), readonly=True)
        scheme, path = JSON_SCHEME, text
    readers = load_host().result_sources  # loads the plugins only for a SCHEME:PATH
    if scheme not in readers:
        known = ", ".join(f"{name}:PATH" for name in readers) or "none: is the store plugin blocked?"
        raise UsageError(f"--store {text}: no plugin reads {scheme!r} sources; expected a results database path "
                         f"or one of: {known}")
    return readers[scheme][1](path)


def sqlite_store(option: str | os.PathLike[str] | None, purpose: str) -> ResultStore:
    """The SQLite store ``--store`` names, for ``purpose`` that needs what only it keeps."""
    source = open_source(option)
    if not isinstance(source, ResultStore):
        raise UsageError(f"{purpose} needs a results database (SQLite), not the --bt-json records {option}; "
                         "expected --store PATH to a .db file")
    return source
