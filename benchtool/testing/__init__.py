"""Conformance checks that plugin authors run on their own plugins, in scikit-learn's
style (``check_estimator`` / ``parametrize_with_checks``).

Each plugin kind has a module ``benchtool.testing.<kind>`` with ``checks(obj)`` returning
the :class:`Check` list for that kind; the harness runs the same rules in the suites.

    from benchtool.testing import parametrize_with_checks

    @parametrize_with_checks([MyAttack])
    def test_conformance(plugin, check):
        check(plugin)
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchtool.registry import KINDS, KindSpec


@dataclass(frozen=True)
class Check:
    """One named rule; calling it on a plugin raises AssertionError (or
    :class:`~benchtool.errors.ContractViolation`) when the plugin breaks the rule."""

    name: str
    run: Callable[[Any], None]

    def __call__(self, plugin: Any) -> None:
        self.run(plugin)

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    message: str = ""


class ConformanceError(AssertionError):
    """A plugin failed one or more conformance checks; the message lists each."""


def kind_of(plugin: Any) -> KindSpec:
    """The plugin kind whose base class ``plugin`` (a class or an instance) derives from."""
    cls = plugin if inspect.isclass(plugin) else type(plugin)
    for spec in KINDS.values():
        try:
            base = spec.base_class()
        except (ImportError, AttributeError):
            continue
        if issubclass(cls, base):
            return spec
    raise TypeError(f"{cls.__qualname__} is not a benchtool plugin class; expected a subclass of one of: "
                    + ", ".join(spec.base.split(":")[1] for spec in KINDS.values()))


def instance(plugin: Any) -> Any:
    """The plugin to check: a new default instance of a class, an instance as it is."""
    return plugin() if inspect.isclass(plugin) else plugin


def fresh(plugin: Any, **overrides: Any) -> Any:
    """A new, unused instance: of the class, or of the instance's class with its hyper-parameters
    (``plugin.params``); ``overrides`` replace hyper-parameters."""
    if inspect.isclass(plugin):
        return plugin(**overrides)
    return type(plugin)(**{**plugin.params, **overrides})


def checks_for(plugin: Any) -> list[Check]:
    """Every conformance check for the plugin's kind."""
    spec = kind_of(plugin)
    try:
        module = importlib.import_module(f"benchtool.testing.{spec.kind}")
    except ModuleNotFoundError:
        raise TypeError(f"no conformance checks exist yet for {spec.kind}") from None
    return list(module.checks(plugin))


def _label(plugin: Any) -> str:
    return getattr(plugin, "name", None) or getattr(plugin, "__name__", type(plugin).__name__)


def run_checks(plugin: Any) -> list[CheckResult]:
    """Run every check; never raises for a failing check, reports it instead."""
    results = []
    for check in checks_for(plugin):
        try:
            check(plugin)
        except Exception as exc:  # noqa: BLE001 - a failing check is data here
            results.append(CheckResult(check.name, False, f"{type(exc).__name__}: {exc}"))
        else:
            results.append(CheckResult(check.name, True))
    return results


def check_plugin(plugin: Any) -> list[CheckResult]:
    """Run every check and raise :class:`ConformanceError` naming each failure."""
    results = run_checks(plugin)
    failed = [r for r in results if not r.passed]
    if failed:
        lines = "\n".join(f"  {r.check}: {r.message}" for r in failed)
        raise ConformanceError(f"{_label(plugin)} failed {len(failed)} conformance check(s):\n{lines}")
    return results


def parametrize_with_checks(plugins: Sequence[Any]) -> Any:
    """A ``pytest.mark.parametrize("plugin, check", ...)`` over every plugin's checks."""
    import pytest

    params = [pytest.param(plugin, check, id=f"{_label(plugin)}-{check.name}")
              for plugin in plugins for check in checks_for(plugin)]
    return pytest.mark.parametrize("plugin, check", params)
