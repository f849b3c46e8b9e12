"""Registers an attack under a name other than its class's ``name`` with the deprecated
``registry.add(name, cls)``: rule 'name-matches' (and a DeprecationWarning)."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool_attacks.fgsm import FGSM


class Renamed(FGSM):
    """FGSM under a name of its own."""

    name = "fgsm-renamed"


@hookimpl
def benchtool_register_attacks(registry):
    registry.add("fgsm-other", Renamed)
