"""The same 'tiny-attack', deliberately degraded: one step of a tenth of eps (a regression)."""

from __future__ import annotations

from benchtool import hookimpl
from tiny_strong import TinyAttack


class WeakTinyAttack(TinyAttack):
    """A broken version of TinyAttack: a single step, so it finds far fewer adversarial points."""

    steps = 1

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        return x + (super().perturb(model, x, y, eps, bounds=bounds, generator=generator) - x) * 0.1


@hookimpl
def benchtool_register_attacks(registry):
    registry.add(WeakTinyAttack)
