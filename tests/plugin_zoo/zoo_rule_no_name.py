"""Registers an estimator whose class declares no ``name``: rule 'declares-name'."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool_uncertainty.softmax import Softmax


class Nameless(Softmax):
    """Softmax with its ``name`` removed."""

    name = None


@hookimpl
def benchtool_register_estimators(registry):
    registry.add(Nameless)
