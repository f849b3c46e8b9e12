"""The bridge's own pytest hooks: how a feature joins the run's configuration, and how a
plugin adds an executor."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from benchtool.executors.registry import ExecutorRegistry
    from benchtool.pytest.session import BenchSession


@pytest.hookspec
def pytest_benchtool_configure(config: pytest.Config, bench: BenchSession) -> None:
    """A feature's step of the run's configuration, once the core options are checked and the
    benchtool host is loaded, before the plugins' ``benchtool_configure``: check this feature's
    own options and set its part of ``bench.config``. A :class:`~benchtool.errors.BenchtoolError`
    is a usage error (one line, exit 4; ``benchtool run``: 2)."""


@pytest.hookspec(historic=True)
def pytest_benchtool_register_executors(registry: ExecutorRegistry) -> None:
    """Add executors with ``registry.add(MyExecutor)``; each declares its own options then.
    Called when the bridge declares its options, and for a plugin registered later at once."""
