"""Attack contract: the plugin implements ``perturb``; the harness owns ``__call__``.

Learned from foolbox 3 (Rauber et al. 2020): the base class checks every invariant on
every call, so a plugin cannot report a result that breaks its threat model.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, final

import torch
from torch import nn

from benchtool._moved import moved_names
from benchtool.contracts._guard import guard
from benchtool.contracts._params import BudgetedHyperParams
from benchtool.contracts._state import ModelSnapshot
from benchtool.errors import ContractViolation

Norm = Literal["linf", "l2"]
ThreatModel = Literal["perturbation", "transformation"]
NORM_TOLERANCE = 1e-6


def norm_tolerance(norm: Norm, eps: float, bounds: tuple[float, float], x: torch.Tensor) -> float:
    """The slack of the norm bound: 1e-6, plus the rounding of ``x + delta - x`` at the data's
    scale (a few ulps per coordinate, summed in quadrature for L2) and of eps itself, so
    float32 data in [0, 255] is held to the same rule as data in [0, 1]."""
    ulp = torch.finfo(x.dtype).eps if x.is_floating_point() else 0.0
    per_coordinate = 2 * ulp * max(abs(bounds[0]), abs(bounds[1]))
    dims = x[0].numel() if len(x) else 1
    return NORM_TOLERANCE + per_coordinate * (math.sqrt(dims) if norm == "l2" else 1.0) + 4 * ulp * eps


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
    eps: float = 0.0


@dataclass
class AttackAttempt:
    """One guarded run over an eps sweep: the outputs that kept their form, and every rule
    broken (empty when the attack kept its contract). Conformance checks read the rules."""

    outcomes: list[AttackOutcome]
    violations: list[ContractViolation]

    def rules(self) -> set[str]:
        return {v.rule for v in self.violations}

    def raise_first(self) -> list[AttackOutcome]:
        """The outcomes, or the first violation raised."""
        if self.violations:
            raise self.violations[0]
        return self.outcomes


def output_violations(
    plugin: str, norm: Norm, x: torch.Tensor, x_adv: Any, eps: float, bounds: tuple[float, float]
) -> list[ContractViolation]:
    """Every rule ``x_adv`` breaks as the answer for ``x`` at ``eps``: form, finiteness,
    data bounds and the norm bound (checked in data space, one device sync)."""
    if not isinstance(x_adv, torch.Tensor):
        return [ContractViolation(plugin, "output-type", f"perturb returned {type(x_adv).__name__}, expected a Tensor")]
    form = []
    if x_adv.shape != x.shape:
        form.append(ContractViolation(
            plugin, "output-shape", f"got shape {tuple(x_adv.shape)}, expected {tuple(x.shape)}"))
    if x_adv.dtype != x.dtype:
        form.append(ContractViolation(plugin, "output-dtype", f"got dtype {x_adv.dtype}, expected {x.dtype}"))
    if x_adv.device != x.device:
        form.append(ContractViolation(plugin, "output-device", f"got device {x_adv.device}, expected {x.device}"))
    if form or x.numel() == 0:
        return form
    x_adv = x_adv.detach()
    finite, below, above, worst = torch.stack([
        torch.isfinite(x_adv).all().to(x_adv.dtype), x_adv.min(), x_adv.max(),
        perturbation_norms(x_adv - x, norm).max(),
    ]).tolist()
    if not finite:
        return [ContractViolation(plugin, "output-finite", "x_adv contains NaN or inf")]
    found = []
    low, high = bounds
    if below < low - NORM_TOLERANCE or above > high + NORM_TOLERANCE:
        found.append(ContractViolation(
            plugin, "bounds", f"x_adv spans [{below:.6g}, {above:.6g}], outside the data bounds [{low}, {high}]"))
    slack = norm_tolerance(norm, eps, bounds, x)
    if worst > eps + slack:
        found.append(ContractViolation(
            plugin, "norm-bound", f"max {norm} perturbation {worst:.6g} exceeds eps={eps} (+{slack:.3g})"))
    return found


class Attack(BudgetedHyperParams, ABC):
    """An adversarial attack. Subclasses declare their threat model and implement ``perturb``.

    Hyper-parameters are declared in ``defaults`` (values from the method's paper) and can
    be overridden as keyword arguments; an unknown keyword is an error. ``budget_overrides``
    names the (documented) cheaper settings a run of budget ``small`` or ``default`` uses.
    """

    kind_label: ClassVar[str] = "attack"
    norm: ClassVar[Norm]
    needs_gradients: ClassVar[bool] = True
    supports_targeted: ClassVar[bool] = False
    # "perturbation": x_adv is meant to fool the model as it is; "transformation": x_adv is
    # meant to survive random transformations (EOT), so on plain inputs it is not at its best
    threat_model: ClassVar[ThreatModel] = "perturbation"

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

    def perturb_sweep(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps_list: Sequence[float],
        *,
        bounds: tuple[float, float],
        generator: torch.Generator,
        targeted: bool = False,
    ) -> list[torch.Tensor] | None:
        """Adversarial inputs for every eps of a sweep from one run, or None (this default)
        for one ``perturb`` per eps. Minimum-norm attacks override it: they search once and
        restrict the perturbation they found to each eps (as foolbox 3 does)."""
        return None

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
        return self.sweep(model, x, y, [eps], bounds=bounds, seed=seed, targeted=targeted)[0]

    @final
    def sweep(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps_list: Sequence[float],
        *,
        bounds: tuple[float, float],
        seed: int = 0,
        targeted: bool = False,
    ) -> list[AttackOutcome]:
        """One outcome per eps; the first broken rule raises ContractViolation."""
        return self.attempt(model, x, y, eps_list, bounds=bounds, seed=seed, targeted=targeted).raise_first()

    @final
    def attempt(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps_list: Sequence[float],
        *,
        bounds: tuple[float, float],
        seed: int = 0,
        targeted: bool = False,
        repeat: bool = False,
    ) -> AttackAttempt:
        """Run the attack over ``eps_list`` under the harness's guard and collect every rule it
        broke, without raising: returns in time and without an exception, the norm bound, data
        bounds, output form, the caller's ``x`` untouched, the model's parameters, buffers,
        train/eval and ``requires_grad`` flags and hooks unchanged (a changed model is
        restored, whatever else happened); with ``repeat``, a second run from the same seed
        and the same model state must give bit-identical ``x_adv``."""
        eps_list = self._validated(x, y, eps_list, bounds, targeted)
        x = x.detach()
        snapshot = ModelSnapshot.take(model)
        try:
            raw, violations = self._guarded_run(model, x, y, eps_list, bounds, seed, targeted)
        except ContractViolation as failure:  # it raised or did not return in time: no outputs
            raw, violations = [], [failure]
        changed = snapshot.violation(model, self.name)
        if changed is not None:
            violations.append(changed)
            snapshot.restore(model)
        outcomes = []
        for eps, (x_adv, forward_queries, gradient_queries, seconds) in zip(eps_list, raw):
            found = output_violations(self.name, self.norm, x, x_adv, eps, bounds)
            violations += found
            if isinstance(x_adv, torch.Tensor) and not {"output-shape", "output-dtype", "output-device"} & {
                v.rule for v in found
            }:
                outcomes.append(AttackOutcome(x_adv.detach(), forward_queries, gradient_queries, seconds, eps))
        if repeat and outcomes:
            try:
                again, _ = self._guarded_run(model, x, y, eps_list, bounds, seed, targeted)
            except ContractViolation as failure:
                again = []
                violations.append(failure)
            finally:
                snapshot.restore(model)
            for first, (second, *_) in zip(outcomes, again):
                if not (isinstance(second, torch.Tensor) and torch.equal(first.x_adv, second.detach())):
                    violations.append(ContractViolation(
                        self.name, "deterministic", f"two runs with seed {seed} at eps={first.eps} gave different x_adv"))
                    break
        return AttackAttempt(outcomes, violations)

    def _validated(
        self, x: torch.Tensor, y: torch.Tensor, eps_list: Sequence[float], bounds: tuple[float, float], targeted: bool
    ) -> list[float]:
        """The caller's arguments, checked: a bad one is the caller's error, not the plugin's."""
        eps_list = [float(e) for e in eps_list]
        if not eps_list or any(not math.isfinite(e) or e < 0 for e in eps_list):
            raise ValueError(f"eps must be a non-empty list of finite values >= 0, got {eps_list}")
        if targeted and not self.supports_targeted:
            raise ContractViolation(self.name, "targeted-support", "targeted attack asked of an untargeted attack")
        if len(y) != len(x):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)} labels")
        low, high = bounds
        if x.numel():
            below, above = torch.stack([x.min(), x.max()]).tolist()
            if below < low or above > high:
                raise ValueError(f"inputs span [{below:.6g}, {above:.6g}], outside the declared bounds [{low}, {high}]")
        return eps_list

    def _guarded_run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_list: list[float],
        bounds: tuple[float, float], seed: int, targeted: bool,
    ) -> tuple[list[tuple[Any, int, int, float]], list[ContractViolation]]:
        """Call the plugin with the model's weights frozen, queries counted, time measured, a
        generator seeded per run and its own copy of ``x`` (so every call sees the original,
        and one that writes into it is caught): (x_adv, forward queries, gradient queries,
        seconds) per eps."""
        requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
        violations: list[ContractViolation] = []

        def timed(call: str, run: Callable[[QueryCounter, torch.Tensor, torch.Generator], Any]
                  ) -> tuple[Any, int, int, float]:
            x_in = x.detach().clone()
            counter = QueryCounter(model)
            generator = torch.Generator(device=x.device).manual_seed(seed)
            if x.is_cuda:
                torch.cuda.synchronize(x.device)
            start = time.perf_counter()
            with guard(self.name, "attacks", call):
                result = run(counter, x_in, generator)
                if x.is_cuda:
                    torch.cuda.synchronize(x.device)  # the plugin's queued kernels are its time too
            seconds = time.perf_counter() - start
            if not violations and not torch.equal(x_in, x):
                violations.append(ContractViolation(self.name, "input-untouched", "perturb modified its input x in place"))
            return result, counter.forward_queries, counter.gradient_queries, seconds

        try:
            for p in model.parameters():
                p.requires_grad_(False)  # gradients w.r.t. the input only
            with torch.enable_grad() if self.needs_gradients else torch.no_grad():
                swept = None
                if type(self).perturb_sweep is not Attack.perturb_sweep:
                    swept, *cost = timed("perturb_sweep", lambda counter, x_in, generator: self.perturb_sweep(
                        counter, x_in, y, eps_list, bounds=bounds, generator=generator, targeted=targeted))
                if swept is not None:
                    if not isinstance(swept, (list, tuple)) or len(swept) != len(eps_list):
                        got = len(swept) if isinstance(swept, (list, tuple)) else type(swept).__name__
                        return [], [*violations, ContractViolation(
                            self.name, "output-type", f"perturb_sweep returned {got}, expected {len(eps_list)} tensors")]
                    return [(x_adv, *cost) for x_adv in swept], violations
                return [timed("perturb", lambda counter, x_in, generator, eps=eps: self.perturb(
                    counter, x_in, y, eps, bounds=bounds, generator=generator, targeted=targeted))
                    for eps in eps_list], violations
        finally:
            for name, p in model.named_parameters():
                p.requires_grad_(requires_grad.get(name, p.requires_grad))


# The robustness harness (evaluation, eps sweeps, model checks) moved to
# benchtool.harness.robustness; the old names keep working here with a DeprecationWarning.
__getattr__ = moved_names(__name__, dict.fromkeys(
    ("eps_sweep", "AttackWarning", "model_warnings", "RobustnessReport", "evaluate"), "benchtool.harness.robustness"))
