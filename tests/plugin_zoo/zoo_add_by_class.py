"""A well-behaved plugin registering with ``registry.add(cls)``: the name comes from ``cls.name``."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool_attacks.fgsm import FGSM


class ByClass(FGSM):
    """FGSM, registered by its class alone."""

    name = "by-class-fgsm"


@hookimpl
def benchtool_register_attacks(registry):
    registry.add(ByClass)
