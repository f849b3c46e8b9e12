"""A well-behaved local plugin: one attack, loaded with -p."""

from __future__ import annotations

import torch

from benchtool import hookimpl
from benchtool.contracts.attack import Attack


class NoiseAttack(Attack):
    """Uniform random noise inside the eps ball (a weak, gradient-free reference)."""

    name = "local-noise"
    norm = "linf"
    needs_gradients = False

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        noise = (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * eps
        return torch.clamp(x + noise, *bounds)


@hookimpl
def benchtool_register_attacks(registry):
    registry.add(NoiseAttack)
