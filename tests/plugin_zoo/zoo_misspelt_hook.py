"""Installed with a misspelt hook (``benchtool_register_attack``, no ``s``) next to a valid
one: the plugin fails as a whole (neither its attack nor its estimator is registered) and
every other plugin loads."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool_uncertainty.softmax import Softmax


class TypoSoftmax(Softmax):
    """Plain softmax under another name: would be registered if the plugin had no typo."""

    name = "typo-softmax"


@hookimpl
def benchtool_register_attack(registry):
    raise AssertionError("never called: the hook does not exist")


@hookimpl
def benchtool_register_estimators(registry):
    registry.add(TypoSoftmax)
