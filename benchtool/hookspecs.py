"""The hook contract between the benchtool host and its plugins.

Registration hooks receive a :class:`~benchtool.registry.Registrar` bound to one kind;
a plugin calls ``registry.add(MyClass)`` (named by ``MyClass.name``) for each thing it
provides (``registry.add(name, obj)`` still works, deprecated). What it adds is checked against its
kind's contract (a ``name``; an attack's ``norm``, ...): a plugin that breaks a rule, implements
a hook not listed here, or registers a name another plugin has is reported and registers
nothing, while every other plugin loads. Lifecycle hooks let stores and reporters be plugins too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from benchtool.plugin_api import PROJECT, hookimpl, hookspec  # the markers, still importable from here

if TYPE_CHECKING:
    from benchtool.commands import Commands
    from benchtool.config import RunConfig
    from benchtool.metrics.catalog import MetricCatalog
    from benchtool.plugin_api import HostView as Host
    from benchtool.registry import Registrar
    from benchtool.results import CaseResult, Record


# --- registration: one hook per kind ------------------------------------------------


@hookspec
def benchtool_register_attacks(registry: Registrar) -> None:
    """Add :class:`~benchtool.contracts.Attack` subclasses."""


@hookspec
def benchtool_register_estimators(registry: Registrar) -> None:
    """Add :class:`~benchtool.contracts.UncertaintyEstimator` subclasses."""


@hookspec
def benchtool_register_strategies(registry: Registrar) -> None:
    """Add :class:`~benchtool.contracts.SearchStrategy` subclasses."""


@hookspec
def benchtool_register_search_spaces(registry: Registrar) -> None:
    """Add :class:`~benchtool.contracts.SearchSpace` subclasses."""


@hookspec
def benchtool_register_models(registry: Registrar) -> None:
    """Add :class:`~benchtool.contracts.ModelSpec` subclasses."""


@hookspec
def benchtool_register_datasets(registry: Registrar) -> None:
    """Add :class:`~benchtool.contracts.Dataset` subclasses."""


@hookspec
def benchtool_register_loss_weightings(registry: Registrar) -> None:
    """Add multi-task loss-weighting schemes (:class:`~benchtool.contracts.LossWeighting`)."""


@hookspec
def benchtool_register_target_functions(registry: Registrar) -> None:
    """Add target functions for the approximation suite (:class:`~benchtool.contracts.TargetFunction`)."""


@hookspec
def benchtool_register_metrics(catalog: MetricCatalog) -> None:
    """Catalogue the metrics this plugin's suites or harness record: ``catalog.register(MetricSpec(...))``
    (:mod:`benchtool.metrics.catalog`), so ``compare``, the leaderboards and the report know their
    direction, unit and tolerance. A name another spec already uses fails the plugin, like a
    taken plugin name."""


# --- lifecycle -----------------------------------------------------------------------


@hookspec
def benchtool_configure(config: RunConfig, host: Host) -> None:
    """Called once the run's configuration is known, before any case runs; ``host`` gives
    the registry, the hooks and ``host.run_metadata(config)``."""


@hookspec
def benchtool_run_metadata(config: RunConfig, metadata: dict[str, Any]) -> None:
    """Add entries (device, driver, versions, ...) to the run's metadata in place."""


@hookspec
def benchtool_past_durations(config: RunConfig) -> dict[str, float]:
    """Seconds each cell took when it last passed at this run's budget and device (keys: the
    node id without directories, ``test_x.py::test_y[ids]``), for the estimate printed
    before a run and its progress lines; a results store answers it."""


@hookspec
def benchtool_record(record: Record) -> None:
    """A figure was recorded (called in the process that measured it)."""


@hookspec
def benchtool_case_finished(config: RunConfig, case: CaseResult) -> None:
    """A case (one test) finished, with its outcome and every record it made."""


@hookspec
def benchtool_session_finish(config: RunConfig, cases: list[CaseResult], exitstatus: int) -> None:
    """The run ended; ``cases`` holds every finished case of every worker."""


@hookspec
def benchtool_terminal_summary(config: RunConfig) -> list[str]:
    """Lines for the end of the run's terminal summary (e.g. where the results were stored)."""


# --- the command line ----------------------------------------------------------------


@hookspec
def benchtool_register_commands(commands: Commands) -> None:
    """Add ``benchtool`` sub-commands with ``commands.add(name, help, handler, configure)``
    (:class:`~benchtool.commands.Commands`); a name another plugin (or the CLI) has is that
    plugin's failure. Called when the CLI starts: keep heavy imports inside the handler."""


@hookspec
def benchtool_register_result_sources(sources: dict[str, Callable[[str], Any]]) -> None:
    """Add readers of stored runs: ``sources["csv"] = CsvRuns`` makes ``--store csv:PATH`` read
    with ``CsvRuns(PATH)``, a :class:`~benchtool.store.source.ResultSource` (``runs``, ``show``,
    ``compare``, ``report``); a scheme another plugin has is that plugin's failure."""
