"""A plugin with a misspelt hook name: must be an error at start, not a silent no-op."""

from __future__ import annotations

from benchtool import hookimpl


@hookimpl
def benchtool_register_atacks(registry):
    raise AssertionError("never called")
