"""Registers an attack that declares no ``norm``: rule 'declares-norm'."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool.contracts.attack import Attack


class NoNorm(Attack):
    """Returns its input: fine at run time, but its threat model is undeclared."""

    name = "no-norm"
    needs_gradients = False

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        return x.clone()


@hookimpl
def benchtool_register_attacks(registry):
    registry.add(NoNorm)
