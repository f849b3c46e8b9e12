"""Carlini & Wagner's L2 attack."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from benchtool import hookimpl
from benchtool.contracts.attack import Norm
from benchtool_attacks._common import MinimumNormAttack, logit_margin


class Adam:
    """Adam (Kingma & Ba 2015) on one tensor, updated in place: the optimizer of Carlini &
    Wagner's code, without torch.optim's per-step overhead."""

    def __init__(self, param: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.param, self.lr, self.betas, self.eps = param, lr, betas, eps
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)
        self.t = 0

    def rows(self, param: torch.Tensor, keep: torch.Tensor) -> "Adam":
        """This optimizer's state for the rows ``keep`` of its tensor, now optimizing ``param``."""
        kept = Adam(param, self.lr, self.betas, self.eps)
        kept.m, kept.v, kept.t = self.m[keep], self.v[keep], self.t
        return kept

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        beta1, beta2 = self.betas
        self.t += 1
        self.m.mul_(beta1).add_(grad, alpha=1 - beta1)
        self.v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denominator = (self.v / (1 - beta2**self.t)).sqrt_().add_(self.eps)
        self.param.addcdiv_(self.m, denominator, value=-self.lr / (1 - beta1**self.t))


class CarliniWagnerL2(MinimumNormAttack):
    """Carlini & Wagner L2 (IEEE S&P 2017, "Towards Evaluating the Robustness of Neural
    Networks"): Adam on tanh-space inputs minimizing ||x' - x||^2 + c * max(Z_y - max_{i!=y}
    Z_i, -kappa), with a binary search over c per example; keeps the smallest adversarial.

    A minimum-norm attack: it searches once per sweep and the harness's eps ball is applied
    by projecting the perturbation found. The paper's hyper-parameters (its released code):
    ``binary_search_steps=9``, ``max_iterations=10000``, ``learning_rate=0.01``,
    ``initial_const=0.001``, ``confidence=0`` (kappa), ``abort_early=True`` (an example
    leaves a search step when its loss has not fallen by 0.01% over a tenth of the iterations:
    the authors' rule per batch, at their default batch of one example). Budget
    ``small`` (a smoke test) uses 5 x 100 iterations (5 x 50 left a 3-class toy model
    at 52% robust accuracy at L2 eps 3). ``default`` uses 5 x 1000 iterations from
    ``initial_const=1``: from 0.001 the search spends its first three steps raising a const
    too small to fool these models (each step costs about the same, early abort or not),
    and on 300 Fashion-MNIST test images the robust accuracies at L2 eps 0.5 / 1 / 1.5
    were within one example of 9 x 1000 from 0.001 (lenet 0.560 / 0.200 / 0.043 against
    0.557 / 0.200 / 0.043, lenet-at 0.777 / 0.680 / 0.520 against 0.777 / 0.677 / 0.520) at
    49% and 63% of its time; 9 x 300 iterations, as cheap, left up to 0.06 more robust.
    """

    name: ClassVar[str] = "cw-l2"
    norm: ClassVar[Norm] = "l2"
    supports_targeted: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {
        "binary_search_steps": 9, "max_iterations": 10000, "learning_rate": 0.01,
        "initial_const": 0.001, "confidence": 0.0, "abort_early": True,
    }
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = {
        "small": {"binary_search_steps": 5, "max_iterations": 100},
        "default": {"binary_search_steps": 5, "max_iterations": 1000, "initial_const": 1.0},
    }

    def __init__(self, **hyperparams: Any) -> None:
        super().__init__(**hyperparams)
        p = self.params
        for key in ("binary_search_steps", "max_iterations"):
            if not isinstance(p[key], int) or p[key] < 1:
                raise ValueError(f"attack 'cw-l2': {key} must be an int >= 1, got {p[key]!r}")
        for key in ("learning_rate", "initial_const"):
            if not p[key] > 0:
                raise ValueError(f"attack 'cw-l2': {key} must be > 0, got {p[key]!r}")
        if not p["confidence"] >= 0:
            raise ValueError(f"attack 'cw-l2': confidence must be >= 0, got {p['confidence']!r}")

    def minimal(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bounds: tuple[float, float], targeted: bool
    ) -> torch.Tensor:
        """The smallest adversarial example found per input (``x`` itself where none was)."""
        p = self.params
        low, high = bounds
        mid, half = (high + low) / 2, (high - low) / 2
        w0 = torch.atanh(((x - mid) / half).clamp(-1, 1) * 0.999999)
        n = len(x)
        lower = torch.zeros(n, device=x.device, dtype=x.dtype)
        upper = torch.full_like(lower, 1e10)
        const = torch.full_like(lower, p["initial_const"])
        best_l2 = torch.full_like(lower, math.inf)
        best = x.clone()
        for _ in range(p["binary_search_steps"]):
            succeeded = self.search_step(model, x, y, w0, (mid, half), const, targeted, best, best_l2)
            upper = torch.where(succeeded, torch.minimum(upper, const), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, const))
            const = torch.where(succeeded | (upper < 1e9), (lower + upper) / 2, const * 10)
        return best

    def search_step(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, w0: torch.Tensor,
        scale: tuple[float, float], const: torch.Tensor, targeted: bool, best: torch.Tensor, best_l2: torch.Tensor,
    ) -> torch.Tensor:
        """One step of the binary search: Adam from the unperturbed point at each example's
        ``const``, updating ``best``/``best_l2`` in place; whether each example was adversarial.

        Early abort is per example, as in the authors' code at its default batch size of one:
        every tenth of the iterations an example whose loss fell by less than 0.01% leaves the
        batch, so the examples still descending no longer carry the converged ones."""
        p = self.params
        mid, half = scale
        kappa = p["confidence"]
        check_every = max(p["max_iterations"] // 10, 1)
        active = torch.arange(len(x), device=x.device)  # rows of the full batch still optimized
        x_a, y_a, w0_a, const_a = x, y, w0, const
        modifier = torch.zeros_like(x, requires_grad=True)
        adam = Adam(modifier, p["learning_rate"])
        previous = torch.full_like(const, math.inf)
        succeeded = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for iteration in range(p["max_iterations"]):
            x_new = torch.tanh(w0_a + modifier) * half + mid
            logits = model(x_new)
            l2 = (x_new - x_a).pow(2).flatten(1).sum(1)
            margin = logit_margin(logits, y_a, targeted)  # < -kappa: adversarial enough
            loss = l2 + const_a * torch.clamp(margin + kappa, min=0)
            (grad,) = torch.autograd.grad(loss.sum(), modifier)
            adam.step(grad)
            with torch.no_grad():
                adversarial = margin.detach() + kappa < 0
                improved = adversarial & (l2.detach() < best_l2[active])
                rows = active[improved]
                best_l2[rows] = l2.detach()[improved]
                best[rows] = x_new.detach()[improved]
                succeeded[active[adversarial]] = True
            if p["abort_early"] and iteration % check_every == 0:
                current = loss.detach()
                keep = current <= previous * 0.9999
                if not keep.any():
                    break
                if not keep.all():
                    active, x_a, y_a, w0_a, const_a = active[keep], x_a[keep], y_a[keep], w0_a[keep], const_a[keep]
                    modifier = modifier.detach()[keep].requires_grad_(True)
                    adam = adam.rows(modifier, keep)
                    current = current[keep]
                previous = current
        return succeeded


@hookimpl
def benchtool_register_attacks(registry) -> None:
    registry.add(CarliniWagnerL2)
