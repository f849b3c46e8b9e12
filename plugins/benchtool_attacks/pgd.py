"""Projected Gradient Descent in the Linf ball."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from benchtool import hookimpl
from benchtool.contracts.attack import Attack, Norm
from benchtool_attacks._common import (
    attack_loss, l2_normalized, project_l2, project_linf, uniform_l2, uniform_linf,
)


class PGD(Attack):
    """Projected gradient ascent on the cross-entropy from a random start in the Linf ball
    (Madry et al., ICLR 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks").

    Hyper-parameters: ``steps=40`` (Madry et al.'s MNIST adversary), ``rel_stepsize=None``
    meaning a step of 2.5 * eps / steps (the rule of Madry's lab robustness library,
    Engstrom et al. 2019: any coordinate can cross the ball from the random start; Madry et
    al.'s MNIST setting is ``rel_stepsize=0.01/0.3``), ``random_start=True``.
    Budget ``small`` uses 20 steps.
    """

    name: ClassVar[str] = "pgd"
    norm: ClassVar[Norm] = "linf"
    supports_targeted: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {"steps": 40, "rel_stepsize": None, "random_start": True}
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = {"small": {"steps": 20}}

    def __init__(self, **hyperparams: Any) -> None:
        super().__init__(**hyperparams)
        steps, rel = self.params["steps"], self.params["rel_stepsize"]
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"attack {self.name!r}: steps must be an int >= 0, got {steps!r}")
        if rel is not None and not rel > 0:
            raise ValueError(f"attack {self.name!r}: rel_stepsize must be > 0 or None, got {rel!r}")

    def stepsize(self, eps: float) -> float:
        """The absolute step size at ``eps``."""
        rel = self.params["rel_stepsize"]
        return eps * (2.5 / max(self.params["steps"], 1) if rel is None else rel)

    def loss_gradient(
        self, model: torch.nn.Module, x_adv: torch.Tensor, y: torch.Tensor, targeted: bool,
        generator: torch.Generator, bounds: tuple[float, float],
    ) -> torch.Tensor:
        """The gradient to ascend at ``x_adv``: of the cross-entropy (subclasses change it)."""
        x_req = x_adv.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(attack_loss(model(x_req), y, targeted), x_req)
        return grad

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        steps = [self.stepsize(eps)] * self.params["steps"]
        return self.ascend(model, x, y, eps, steps, bounds=bounds, generator=generator, targeted=targeted)

    def ascend(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: list[float], *,
        bounds: tuple[float, float], generator: torch.Generator, targeted: bool,
    ) -> torch.Tensor:
        """Projected ascent from the (random) start, one iteration per absolute step size in ``steps``."""
        x = x.detach()
        if eps == 0:
            return x.clone()  # the ball is the point itself
        linf = self.norm == "linf"
        project = project_linf if linf else project_l2
        x_adv = x.clone()
        if self.params["random_start"]:
            x_adv = project((uniform_linf if linf else uniform_l2)(x, eps, generator), x, eps, bounds)
        for alpha in steps:
            grad = self.loss_gradient(model, x_adv, y, targeted, generator, bounds)
            direction = grad.sign() if linf else l2_normalized(grad)
            x_adv = project(x_adv.detach() + alpha * direction, x, eps, bounds).detach()
        return x_adv


@hookimpl
def benchtool_register_attacks(registry) -> None:
    registry.add(PGD)
