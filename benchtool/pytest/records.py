"""A case's figures: ``bt_record`` and ``bt_case``, and the records a case's report carries
to the controller (:mod:`benchtool.pytest.collector`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchtool.pytest.session import BenchSession, bench_session
from benchtool.registry import KINDS
from benchtool.results import Record

RECORDS_PROPERTY = "benchtool_records"
MODEL_DATA_FIXTURES = ("model", "dataset")
PLUGIN_FIXTURES = {spec.fixture: spec for spec in KINDS.values() if spec.fixture not in MODEL_DATA_FIXTURES}
records_key = pytest.StashKey[list[Record]]()


@dataclass(frozen=True)
class CaseInfo:
    """Which plugin, model and dataset a case runs, for records and for suites."""

    suite: str
    case: str
    kind: str
    plugin: str
    model: str
    dataset: str


def case_info(item: pytest.Item) -> CaseInfo:
    params = getattr(getattr(item, "callspec", None), "params", {})
    plugin_kind, plugin_name = "", ""
    for fixture, spec in PLUGIN_FIXTURES.items():
        if fixture in params:
            plugin_kind, plugin_name = spec.kind, params[fixture]
            break
    stem = Path(str(item.fspath)).stem
    return CaseInfo(
        suite=stem.removeprefix("test_"),
        case=item.name,
        kind=plugin_kind,
        plugin=plugin_name,
        model=params.get("model", ""),
        dataset=params.get("dataset", ""),
    )


def is_bench_case(item: pytest.Item) -> bool:
    """A suite case: it uses a registry-parametrized fixture or records figures."""
    names = set(getattr(item, "fixturenames", ()))
    return "bt_record" in names or any(spec.fixture in names for spec in KINDS.values())


class Recorder:
    """The ``bt_record`` fixture: ``bt_record(metric, value, unit="", **params)`` and
    ``bt_record.series(metric, x, y, x_label=..., y_label=...)``."""

    def __init__(self, item: pytest.Item, bench: BenchSession) -> None:
        self._item = item
        self._bench = bench
        self._info = case_info(item)
        item.stash[records_key] = []

    def __call__(self, metric: str, value: float, unit: str = "", *, params: dict[str, Any] | None = None,
                 **context: str) -> Record:
        return self._add(metric, float(value), unit, params, None, context)

    def proportion(self, metric: str, successes: float, n: int, *, params: dict[str, Any] | None = None,
                   **context: str) -> list[Record]:
        """A proportion ``successes / n`` with its 95% Wilson interval: ``metric``,
        ``<metric>_ci_low`` and ``<metric>_ci_high`` (the report draws them as a band). ``n``
        counts independent trials; ``successes`` may be fractional when each trial is itself a
        mean (an example's rate over random draws counts as one trial). Nothing is recorded
        for ``n == 0`` (a proportion of nothing is undefined)."""
        from benchtool.claims.stats import wilson_interval  # scipy loads only when a suite records one

        if n <= 0:
            return []
        low, high = wilson_interval(successes, int(n))
        return [self._add(name, float(value), "fraction", params, None, context)
                for name, value in ((metric, successes / n), (f"{metric}_ci_low", low), (f"{metric}_ci_high", high))]

    def series(self, metric: str, x: Any, y: Any, *, x_label: str = "", y_label: str = "", unit: str = "",
               params: dict[str, Any] | None = None, **context: str) -> Record:
        xs = [float(v) for v in x]
        ys = [float(v) for v in y]
        series = {"x": xs, "y": ys, "x_label": x_label, "y_label": y_label}
        return self._add(metric, None, unit, params, series, context)

    def _add(self, metric: str, value: float | None, unit: str, params: dict[str, Any] | None,
             series: dict[str, Any] | None, context: dict[str, str]) -> Record:
        from benchtool.metrics.catalog import warn_if_unknown

        info = self._info
        unknown = set(context) - {"kind", "plugin", "model", "dataset"}
        if unknown:
            raise TypeError(f"bt_record: unknown context field(s) {sorted(unknown)}")
        warn_if_unknown(metric, unit, stacklevel=4)  # at the suite's bt_record(...) line, once per name
        cfg = self._bench.config
        record = Record(
            suite=info.suite, case=info.case,
            kind=context.get("kind", info.kind), plugin=context.get("plugin", info.plugin),
            model=context.get("model", info.model), dataset=context.get("dataset", info.dataset),
            params=dict(params or {}), metric=metric, value=value, unit=unit,
            seed=cfg.seed, device=str(cfg.device), series=series,
        )
        self._item.stash[records_key].append(record)
        self._bench.host.hook.benchtool_record(record=record)
        return record


@pytest.fixture
def bt_record(request: pytest.FixtureRequest) -> Recorder:
    """Record a figure of this case (it goes to the leaderboard, --bt-json and the store)."""
    return Recorder(request.node, bench_session(request.config))


@pytest.fixture
def bt_case(request: pytest.FixtureRequest) -> CaseInfo:
    return case_info(request.node)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """A suite case's teardown report carries its records (to a pytest-xdist or executor controller)."""
    report = yield
    if report.when == "teardown" and is_bench_case(item):
        records = item.stash.get(records_key, [])
        report.user_properties.append((RECORDS_PROPERTY, [r.to_json() for r in records]))
    return report
