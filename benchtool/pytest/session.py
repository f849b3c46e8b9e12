"""The run's state on the pytest config, and which process role this one plays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from benchtool.config import RunConfig
from benchtool.results import CaseResult


@dataclass
class BenchSession:
    """Per-run state kept on the pytest config."""

    config: RunConfig
    host: Any
    cases: list[CaseResult] = field(default_factory=list)
    outcomes: dict[str, tuple[str, float, str]] = field(default_factory=dict)
    load_errors: dict[tuple[str, int], str] = field(default_factory=dict)  # a dataset that failed to load
    models: dict[tuple[str, str, int], Any] = field(default_factory=dict)
    # per suite test with a dataset fixture: (node id, the task it declares, cells it got)
    dataset_tests: list[tuple[str, str, int]] = field(default_factory=list)


session_key = pytest.StashKey[BenchSession]()
cell_worker_key = pytest.StashKey[bool]()  # set where pytest runs cells for an executor's controller


def bench_session(config: pytest.Config) -> BenchSession:
    """The run's state (the bridge made it in ``pytest_configure``)."""
    return config.stash[session_key]


def is_worker(config: pytest.Config) -> bool:
    """Whether this process runs cells for a controller elsewhere (a pytest-xdist or an
    executor worker): the controller alone collects cases, prints tables, writes results."""
    return hasattr(config, "workerinput") or config.stash.get(cell_worker_key, False)


def cell_nodeids(items: list[pytest.Item]) -> list[str]:
    """The node ids of the items that record figures (``bt_record``): the cells a run's
    estimate and progress lines count (in the controller, or listed by a pytest-xdist worker)."""
    return [item.nodeid for item in items if "bt_record" in getattr(item, "fixturenames", ())]
