"""``--bt-resume RUN_ID``: deselect the cases a stored run already finished.

A pytest plugin the bridge registers when the option is given, before ``benchtool_configure``;
it resolves the id once, and the store plugin then appends the cases that run now to that run.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchtool.errors import UsageError
from benchtool.store.db import ResultStore, case_key, resolve_store_path

STORE_PLUGIN = "store"


class ResumeFilter:
    """Skips (deselects) every case the resumed run has stored; checks the run can be resumed."""

    def __init__(self, config: Any, host: Any) -> None:
        if STORE_PLUGIN not in host.sources:
            raise UsageError(f"--bt-resume needs the results store plugin {STORE_PLUGIN!r}, which is blocked here")
        with ResultStore(resolve_store_path(config.options.get("store")), create=False) as store:
            run = store.run(store.resolve(config.options["resume"]))
            same = (("--bt-budget", run.budget, config.budget), ("--bt-seed", run.seed, config.seed))
            for option, stored, now in same:
                if stored not in ("", None) and stored != now:
                    raise UsageError(
                        f"--bt-resume {run.id}: that run used {option} {stored}, this one {now}; "
                        "resume with the run's own options (benchtool run --resume reuses them)"
                    )
            self.run_id = config.options["resume"] = run.id  # the store plugin appends to this run
            self.finished = {case_key(nodeid) for nodeid in store.finished_nodeids(run.id)}

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        done = [item for item in items if case_key(item.nodeid) in self.finished]
        if done:
            config.hook.pytest_deselected(items=done)
            items[:] = [item for item in items if case_key(item.nodeid) not in self.finished]

    def pytest_report_header(self) -> list[str]:
        return [f"benchtool: resuming run {self.run_id}: its {len(self.finished)} finished case(s) are skipped"]
