"""Reference implementations the benchmarks hold the attack plugins against."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def textbook_pgd(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
    bounds: tuple[float, float],
) -> torch.Tensor:
    """The textbook Linf PGD loop (Madry et al. 2018) with no random start, nothing else: what
    the PGD plugin run through the harness must match bit for bit, and how fast it is."""
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        delta = torch.clamp(x_adv.detach() + alpha * grad.sign() - x, -eps, eps)
        x_adv = torch.clamp(x + delta, *bounds)
    return x_adv
