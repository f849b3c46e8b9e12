"""The ``-p`` values pytest saw, read as benchtool's: plugin modules to load and names to block."""

from __future__ import annotations

import sys

import pytest

from benchtool.errors import BenchtoolError


def plugin_args(config: pytest.Config) -> tuple[list[str], list[str]]:
    """(modules, blocked) from the -p values pytest saw, read by benchtool's one parser: the
    modules that implement benchtool hooks, and every name to block but pytest's own plugins'
    (``-p no:cacheprovider`` is for pytest, not a benchtool name that matches nothing)."""
    from importlib.metadata import entry_points

    from benchtool.host import ENTRY_POINT_GROUP, parse_plugin_args

    try:
        plugins = parse_plugin_args(getattr(config.known_args_namespace, "plugins", None) or [])
    except BenchtoolError as exc:
        raise pytest.UsageError(str(exc)) from None
    ours = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} | set(plugins.modules)
    pytest_names = {name for name, plugin in config.pluginmanager.list_name_plugin() if plugin is not None}
    for ep in entry_points(group="pytest11"):
        pytest_names |= {ep.name, ep.value.partition(":")[0]}
    try:
        from _pytest.config import default_plugins, essential_plugins

        pytest_names |= {*default_plugins, *essential_plugins}
    except ImportError:  # pytest's internals moved: at worst a needless warning
        pass
    blocked = [name for name in plugins.blocked
               if name in ours or not {name, f"pytest_{name}", name.removeprefix("pytest_")} & pytest_names]
    return [m for m in plugins.modules if has_benchtool_hooks(m)], blocked


def has_benchtool_hooks(module_name: str) -> bool:
    """Whether a -p module (already imported by pytest) is meant for benchtool: it marks a hook
    or names a function like one (the host then reports a missing @hookimpl)."""
    module = sys.modules.get(module_name)
    if module is None:
        return False
    return any(hasattr(obj, "benchtool_impl") or (attr.startswith("benchtool_") and callable(obj))
               for attr, obj in vars(module).items())
