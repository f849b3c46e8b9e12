"""Results history: every run, case and record in SQLite; the ``runs|show|compare`` commands.

``benchtool.store.plugin`` is the lifecycle plugin that writes runs; ``ResultStore`` reads
and writes the database; ``compare`` judges metric regressions between two runs.
"""

from __future__ import annotations

from benchtool.store.db import SCHEMA_VERSION, ResultStore, RunInfo, resolve_store_path
from benchtool.store.load import ResultSet, load_result_set

__all__ = ["SCHEMA_VERSION", "ResultSet", "ResultStore", "RunInfo", "load_result_set", "resolve_store_path"]
