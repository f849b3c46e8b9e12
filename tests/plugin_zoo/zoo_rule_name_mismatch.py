"""Registers an attack under a name other than its class's ``name``: rule 'name-matches'."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool_attacks.fgsm import FGSM


class Renamed(FGSM):
    """FGSM under a name of its own."""

    name = "fgsm-renamed"


@hookimpl
def benchtool_register_attacks(registry):
    registry.add("fgsm-other", Renamed)
