"""Conformance checks that plugin authors run on their own plugins, in scikit-learn's
style (``check_estimator`` / ``parametrize_with_checks``).

Each plugin kind has a module ``benchtool.testing.<kind>`` with ``checks(obj)`` returning
the :class:`Check` list for that kind; the harness runs the same rules in the suites.

    from benchtool.testing import parametrize_with_checks

    @parametrize_with_checks([MyAttack])
    def test_conformance(plugin, check):
        check(plugin)

A plugin class may declare the checks it is known to fail, with why, as scikit-learn's
``_xfail_checks`` tag does: ``_xfail_checks = {"seed-determinism": "uses cuDNN atomics"}``.
``parametrize_with_checks`` marks those ``xfail(strict=True)`` (a check that passes after all
fails the run, so the declaration is removed once fixed); ``run_checks`` reports them as
expected failures. ``registered(kind)`` lists every installed plugin of a kind, so a test
over all of them needs no hand-kept list.
"""

from __future__ import annotations

import functools
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
    """One check's outcome. ``passed`` means as declared: a check the plugin declares in
    ``_xfail_checks`` passes when it fails (``expected_failure`` holds the reason) and fails
    when it passes."""

    check: str
    passed: bool
    message: str = ""
    expected_failure: str = ""


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


def xfail_checks(plugin: Any, checks: Sequence[Check] | None = None) -> dict[str, str]:
    """The plugin's ``_xfail_checks`` (check name -> why it fails), each name one of its checks."""
    declared = getattr(plugin, "_xfail_checks", {})
    names = [check.name for check in (checks_for(plugin) if checks is None else checks)]
    if not isinstance(declared, dict) or not all(isinstance(k, str) and isinstance(v, str) and v
                                                 for k, v in declared.items()):
        raise TypeError(f"{_label(plugin)} declares _xfail_checks = {declared!r}; expected a dict of check name "
                        "to the reason it fails")
    unknown = sorted(set(declared) - set(names))
    if unknown:
        raise TypeError(f"{_label(plugin)} declares _xfail_checks for {unknown}, which are not its checks; "
                        f"expected names among {names}")
    return dict(declared)


def registered(kind: str) -> list[Any]:
    """Every plugin of ``kind`` the installed plugins register (entry points), by name."""
    return [entry.obj for entry in _installed_host().registry.entries(kind)]


@functools.cache
def _installed_host() -> Any:
    from benchtool.host import load_host

    return load_host()


def _label(plugin: Any) -> str:
    return getattr(plugin, "name", None) or getattr(plugin, "__name__", type(plugin).__name__)


def run_checks(plugin: Any) -> list[CheckResult]:
    """Run every check; never raises for a failing check, reports it instead."""
    results = []
    checks = checks_for(plugin)
    expected = xfail_checks(plugin, checks)
    for check in checks:
        reason = expected.get(check.name, "")
        try:
            check(plugin)
        except Exception as exc:  # noqa: BLE001 - a failing check is data here
            error = f"{type(exc).__name__}: {exc}"
            message = f"expected failure ({reason}): {error}" if reason else error
            results.append(CheckResult(check.name, bool(reason), message, reason))
        else:
            message = f"passed, but _xfail_checks declares it fails ({reason}); remove it" if reason else ""
            results.append(CheckResult(check.name, not reason, message, reason))
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
    """A ``pytest.mark.parametrize("plugin, check", ...)`` over every plugin's checks; a check
    the plugin declares in ``_xfail_checks`` is marked ``xfail(strict=True)`` with its reason."""
    import pytest

    params = []
    for plugin in plugins:
        checks = checks_for(plugin)
        expected = xfail_checks(plugin, checks)
        params += [pytest.param(plugin, check, id=f"{_label(plugin)}-{check.name}",
                                marks=[pytest.mark.xfail(strict=True, reason=expected[check.name])]
                                if check.name in expected else [])
                   for check in checks]
    return pytest.mark.parametrize("plugin, check", params)
