"""A local attack plugin for the store tests: 'tiny-attack', iterated signed-gradient steps.

Set ``TINY_CRASH_EPS`` to an eps to make the plugin kill its process there (like a
segfault in native code), so the tests can check a crash keeps the finished cases.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from benchtool import hookimpl
from benchtool.contracts.attack import Attack


class TinyAttack(Attack):
    """Projected signed-gradient steps without random start (PGD, Madry et al. 2018), 10 steps."""

    name = "tiny-attack"
    norm = "linf"
    steps = 10

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        if os.environ.get("TINY_CRASH_EPS") == f"{eps:g}":
            os._exit(70)
        x_adv = x.detach().clone()
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
            x_adv = x_adv.detach() + 2.5 * eps / self.steps * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(*bounds)
        return x_adv


@hookimpl
def benchtool_register_attacks(registry):
    registry.add(TinyAttack)
