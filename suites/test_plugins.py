"""Every discovered plugin module loaded and registered: a module that failed fails its own
cell here (named after its entry point), with one line per problem, so a broken plugin is
visible in every run while every other plugin runs."""

from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "plugin_name" not in metafunc.fixturenames:
        return
    from benchtool.pytest.session import session_key

    host = metafunc.config.stash[session_key].host
    names = sorted({*host.sources, *(f.name for f in host.failures)})
    metafunc.parametrize("plugin_name", names)


def test_plugin_loads(plugin_name: str, bt_host) -> None:
    failures = bt_host.failures_of(plugin_name)
    if failures:
        pytest.fail("\n".join(str(f) for f in failures), pytrace=False)
    assert plugin_name in bt_host.sources
