"""Registers an attack class that does not implement ``perturb``."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool.contracts.attack import Attack


class Incomplete(Attack):
    """Declares a norm but never implements perturb."""

    name = "incomplete"
    norm = "linf"


@hookimpl
def benchtool_register_attacks(registry):
    registry.add(Incomplete)
