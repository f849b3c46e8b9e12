"""A plugin whose registration breaks two ways: each is reported, neither stops the others."""

from __future__ import annotations

from benchtool import hookimpl


class NotAnAttack:
    """Named like a plugin, but derives from no benchtool base class."""

    name = "not-an-attack"


@hookimpl
def benchtool_register_attacks(registry):
    registry.add(NotAnAttack)


@hookimpl
def benchtool_register_estimators(registry):
    raise RuntimeError("estimator registry exploded")
