"""Attack contract: the plugin implements ``perturb``; the harness owns ``__call__``.

Learned from foolbox 3 (Rauber et al. 2020): the base class checks every invariant on
every call, so a plugin cannot report a result that breaks its threat model.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, final

import torch
from torch import nn

from benchtool.contracts._state import ModelSnapshot, verify_untouched
from benchtool.errors import ContractViolation

Norm = Literal["linf", "l2"]
NORM_TOLERANCE = 1e-6


class QueryCounter(nn.Module):
    """Wraps a model and counts the examples it was asked about.

    ``forward_queries`` counts examples passed forward; ``gradient_queries`` counts
    examples whose gradient flowed back through the model output.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forward_queries = 0
        self.gradient_queries = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        n = int(x.shape[0])
        self.forward_queries += n
        if out.requires_grad:
            out.register_hook(self._count_gradient(n))
        return out

    def _count_gradient(self, n: int):
        def hook(grad: torch.Tensor) -> None:
            self.gradient_queries += n

        return hook


def perturbation_norms(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Per-example norm of ``delta`` (first axis is the batch)."""
    flat = delta.reshape(delta.shape[0], -1)
    if norm == "linf":
        return flat.abs().amax(dim=1) if flat.shape[1] else torch.zeros(len(flat), device=flat.device)
    return flat.norm(p=2, dim=1)


@dataclass
class AttackOutcome:
    """What the harness measured of one attack call."""

    x_adv: torch.Tensor
    forward_queries: int
    gradient_queries: int
    seconds: float


class Attack(ABC):
    """An adversarial attack. Subclasses declare their threat model and implement ``perturb``.

    Hyper-parameters are declared in ``defaults`` (values from the method's paper) and can
    be overridden as keyword arguments; an unknown keyword is an error.
    """

    name: ClassVar[str]
    norm: ClassVar[Norm]
    needs_gradients: ClassVar[bool] = True
    supports_targeted: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **hyperparams: Any) -> None:
        unknown = sorted(set(hyperparams) - set(self.defaults))
        if unknown:
            raise TypeError(
                f"attack {self.name!r}: unknown hyper-parameter(s) {unknown}; expected some of {sorted(self.defaults)}"
            )
        self.params: dict[str, Any] = {**self.defaults, **hyperparams}

    @abstractmethod
    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        *,
        bounds: tuple[float, float],
        generator: torch.Generator,
        targeted: bool = False,
    ) -> torch.Tensor:
        """Return adversarial inputs within ``eps`` of ``x`` (in ``self.norm``) and inside
        ``bounds``. ``y`` holds true labels, or target labels when ``targeted``. Use
        ``generator`` for every random draw so a seed fixes the result."""

    @final
    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        *,
        bounds: tuple[float, float],
        seed: int = 0,
        targeted: bool = False,
    ) -> AttackOutcome:
        """Run the attack and enforce the contract; a violation raises ContractViolation."""
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if targeted and not self.supports_targeted:
            raise ContractViolation(self.name, "targeted-support", "targeted attack asked of an untargeted attack")
        x_original = x.detach().clone()
        snapshot = ModelSnapshot.take(model)
        requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
        counter = QueryCounter(model)
        generator = torch.Generator(device=x.device).manual_seed(seed)
        start = time.perf_counter()
        try:
            for p in model.parameters():
                p.requires_grad_(False)  # gradients w.r.t. the input only
            with torch.enable_grad() if self.needs_gradients else torch.no_grad():
                x_adv = self.perturb(counter, x, y, eps, bounds=bounds, generator=generator, targeted=targeted)
            if x.is_cuda:
                torch.cuda.synchronize(x.device)
        finally:
            for name, p in model.named_parameters():
                p.requires_grad_(requires_grad[name])
        seconds = time.perf_counter() - start
        verify_untouched(self.name, x_original, x)
        snapshot.verify(model, self.name)
        x_adv = self._check_output(x_original, x_adv, eps, bounds)
        return AttackOutcome(x_adv, counter.forward_queries, counter.gradient_queries, seconds)

    def _check_output(
        self, x: torch.Tensor, x_adv: Any, eps: float, bounds: tuple[float, float]
    ) -> torch.Tensor:
        name = self.name
        if not isinstance(x_adv, torch.Tensor):
            raise ContractViolation(name, "output-type", f"perturb returned {type(x_adv).__name__}, expected a Tensor")
        if x_adv.shape != x.shape:
            raise ContractViolation(name, "output-shape", f"got shape {tuple(x_adv.shape)}, expected {tuple(x.shape)}")
        if x_adv.dtype != x.dtype:
            raise ContractViolation(name, "output-dtype", f"got dtype {x_adv.dtype}, expected {x.dtype}")
        if x_adv.device != x.device:
            raise ContractViolation(name, "output-device", f"got device {x_adv.device}, expected {x.device}")
        x_adv = x_adv.detach()
        if not torch.isfinite(x_adv).all():
            raise ContractViolation(name, "output-finite", "x_adv contains NaN or inf")
        low, high = bounds
        below, above = float(x_adv.min()), float(x_adv.max())
        if below < low - NORM_TOLERANCE or above > high + NORM_TOLERANCE:
            raise ContractViolation(
                name, "bounds", f"x_adv spans [{below:.6g}, {above:.6g}], outside the data bounds [{low}, {high}]"
            )
        norms = perturbation_norms(x_adv - x, self.norm)
        worst = float(norms.max()) if len(norms) else 0.0
        if worst > eps + NORM_TOLERANCE:
            raise ContractViolation(
                name, "norm-bound", f"max {self.norm} perturbation {worst:.6g} exceeds eps={eps} (+{NORM_TOLERANCE})"
            )
        return x_adv
