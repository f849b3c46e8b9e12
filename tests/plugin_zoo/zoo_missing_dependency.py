"""A plugin module whose import fails: it needs a package that is not installed."""

from __future__ import annotations

import bt_zoo_dependency_not_installed  # noqa: F401

from benchtool import hookimpl


@hookimpl
def benchtool_register_attacks(registry):
    raise AssertionError("never called: the module cannot be imported")
