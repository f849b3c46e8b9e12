"""Fast Gradient Sign Method."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from benchtool import hookimpl
from benchtool.contracts.attack import Attack, Norm


class FGSM(Attack):
    """One signed-gradient step of size eps (Goodfellow, Shlens & Szegedy, ICLR 2015,
    "Explaining and Harnessing Adversarial Examples"): x' = clip(x + eps * sign(dL/dx))."""

    name: ClassVar[str] = "fgsm"
    norm: ClassVar[Norm] = "linf"
    supports_targeted: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {}

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        x_req = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(x_req), y)
        (grad,) = torch.autograd.grad(loss, x_req)
        step = -eps if targeted else eps  # targeted: descend towards the target class
        return torch.clamp(x.detach() + step * grad.sign(), *bounds)


@hookimpl
def benchtool_register_attacks(registry) -> None:
    registry.add(FGSM)
