"""Registers a second attack named 'fgsm': the host must refuse, naming both plugins."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool_attacks.fgsm import FGSM


@hookimpl
def benchtool_register_attacks(registry):
    registry.add(FGSM)
