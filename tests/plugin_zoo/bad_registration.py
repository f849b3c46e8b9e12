"""A plugin whose registration breaks two ways: each is reported, neither stops the others."""

from __future__ import annotations

from benchtool import hookimpl


@hookimpl
def benchtool_register_attacks(registry):
    registry.add("not-an-attack", object)


@hookimpl
def benchtool_register_estimators(registry):
    raise RuntimeError("estimator registry exploded")
