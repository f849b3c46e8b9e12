"""Attack contract: the plugin implements ``perturb``; the harness owns ``__call__``.

Learned from foolbox 3 (Rauber et al. 2020): the base class checks every invariant on
every call, so a plugin cannot report a result that breaks its threat model.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, final

import torch
import torch.nn.functional as F
from torch import nn

from benchtool.contracts._guard import guard
from benchtool.contracts._params import BudgetedHyperParams
from benchtool.contracts._state import ModelSnapshot
from benchtool.contracts.data import DatasetInfo
from benchtool.errors import ContractViolation

Norm = Literal["linf", "l2"]
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


# --- the harness's measurements -------------------------------------------------------

# eps sweeps per (dataset, norm), in data space; other datasets get a sweep scaled to their
# bounds and size (see eps_sweep). Linf values for MNIST-like data follow Madry et al. 2018,
# for CIFAR-like data the 8/255 of RobustBench (Croce et al. 2021).
DEFAULT_EPS: dict[tuple[str, Norm], tuple[float, ...]] = {
    ("digits", "linf"): (0.0, 0.05, 0.1, 0.2, 0.3),
    ("digits", "l2"): (0.0, 0.25, 0.5, 1.0, 2.0),
    ("mnist", "linf"): (0.0, 0.1, 0.2, 0.3),
    ("mnist", "l2"): (0.0, 0.5, 1.0, 2.0),
    ("fashion-mnist", "linf"): (0.0, 0.05, 0.1, 0.2),
    ("fashion-mnist", "l2"): (0.0, 0.5, 1.0, 1.5),
    ("cifar10", "linf"): (0.0, 2 / 255, 4 / 255, 8 / 255),
    ("cifar10", "l2"): (0.0, 0.25, 0.5, 1.0),
    ("svhn", "linf"): (0.0, 2 / 255, 4 / 255, 8 / 255),
    ("svhn", "l2"): (0.0, 0.25, 0.5, 1.0),
}


def eps_sweep(requested: Sequence[float] | None, info: DatasetInfo, norm: Norm) -> list[float]:
    """The eps values to run: ``requested`` (``--bt-eps``, in the attack's own norm) when
    given, else the dataset's default for ``norm``, else one scaled to the data: Linf
    fractions (0, 1%, 3%, 10%) of the bounds' range, L2 a quarter of that times sqrt(dims)."""
    if requested:
        return [float(e) for e in requested]
    if (info.name, norm) in DEFAULT_EPS:
        return list(DEFAULT_EPS[info.name, norm])
    low, high = info.bounds
    linf = [f * (high - low) for f in (0.0, 0.01, 0.03, 0.1)]
    return linf if norm == "linf" else [e * math.sqrt(math.prod(info.input_shape)) / 4 for e in linf]


class AttackWarning(UserWarning):
    """The model makes gradient-based evaluation unreliable (AutoAttack's checks)."""


def model_warnings(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    """AutoAttack-style checks of the model on clean inputs (Croce & Hein, ICML 2020,
    "Reliable evaluation of adversarial robustness"): outputs that look like probabilities
    instead of logits, randomized outputs, and examples whose input gradient is all zero."""
    notes = []
    with torch.enable_grad():
        x_req = x.detach().clone().requires_grad_(True)
        logits = model(x_req)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x_req)
    logits = logits.detach()
    with torch.no_grad():
        again = model(x)
    if logits.min() >= 0 and logits.max() <= 1 and torch.allclose(logits.sum(1), torch.ones_like(logits[:, 0]), atol=1e-4):
        notes.append("the model's outputs look like probabilities (rows in [0, 1] summing to 1), not logits: "
                     "cross-entropy on them has vanishing gradients and weakens gradient attacks")
    if not torch.allclose(logits, again, rtol=1e-5, atol=1e-6):
        notes.append("the model's outputs change between two forward passes of the same inputs (randomized "
                     "defense or training mode?): use expectation over its randomness (EOT) to evaluate it")
    zero = int((grad.reshape(len(grad), -1).abs().amax(dim=1) == 0).sum())
    if zero:
        notes.append(f"{zero} of {len(x)} examples have an all-zero input gradient: gradient masking makes "
                     "gradient attacks report robustness that a black-box attack (square) may not confirm")
    return notes


@dataclass
class RobustnessReport:
    """What the harness measured of one attack at one eps, on a fresh forward pass of the
    unwrapped model: per-example correctness and perturbation norms, queries and time.
    An example is robust when it is classified correctly both clean and attacked (the
    convention of AutoAttack and RobustBench)."""

    attack: str
    norm: Norm
    eps: float
    clean_correct: torch.Tensor  # bool [n], on the CPU
    adversarial_correct: torch.Tensor  # bool [n]: x_adv classified correctly
    norms: torch.Tensor  # float [n], ||x_adv - x|| in ``norm``
    forward_queries: int
    gradient_queries: int
    seconds: float
    warnings: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.clean_correct)

    @property
    def robust_correct(self) -> torch.Tensor:
        return self.clean_correct & self.adversarial_correct

    @property
    def clean_accuracy(self) -> float:
        return self.clean_correct.float().mean().item()

    @property
    def robust_accuracy(self) -> float:
        return self.robust_correct.float().mean().item()

    @property
    def success_rate(self) -> float:
        """Fraction of the originally correct examples that the attack made wrong (NaN if none)."""
        correct = int(self.clean_correct.sum())
        return int((self.clean_correct & ~self.adversarial_correct).sum()) / correct if correct else math.nan

    @property
    def mean_norm(self) -> float:
        return self.norms.mean().item()

    @property
    def max_norm(self) -> float:
        return self.norms.max().item()


def evaluate(
    attack: Attack,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps_list: Sequence[float],
    *,
    bounds: tuple[float, float],
    seed: int = 0,
    batch_size: int | None = None,
    determinism_examples: int = 8,
) -> list[RobustnessReport]:
    """Attack ``x`` (untargeted) at every eps, batch by batch, and measure the result on a
    fresh forward pass: the plugin never reports its own accuracy. First warns about the
    model (:func:`model_warnings`) and checks on ``determinism_examples`` inputs at the
    largest eps (where iterative attacks finish soonest), on the CPU, that the same seed
    gives the same ``x_adv``."""
    if len(x) == 0:
        raise ValueError("evaluate needs at least one example")
    size = batch_size or len(x)
    notes = tuple(model_warnings(model, x[:size], y[:size]))
    for note in notes:
        warnings.warn(f"{attack.name}: {note}", AttackWarning, stacklevel=2)
    if determinism_examples:
        # On the CPU: the rule is about the plugin's seeding, while some CUDA kernels
        # (grid_sample's backward, atomics) add in a nondeterministic order by design.
        k = determinism_examples
        probe = model if x.device.type == "cpu" else copy.deepcopy(model).cpu()
        attack.attempt(probe, x[:k].cpu(), y[:k].cpu(), [max(eps_list)], bounds=bounds, seed=seed,
                       repeat=True).raise_first()
    clean, attacked, norms = [], [[] for _ in eps_list], [[] for _ in eps_list]
    forward = [0] * len(eps_list)
    gradient = [0] * len(eps_list)
    seconds = [0.0] * len(eps_list)
    for index, start in enumerate(range(0, len(x), size)):
        xb, yb = x[start:start + size], y[start:start + size]
        outcomes = attack.sweep(model, xb, yb, eps_list, bounds=bounds, seed=seed + index)
        with torch.no_grad():
            clean.append((model(xb).argmax(1) == yb).cpu())
            for i, outcome in enumerate(outcomes):
                attacked[i].append((model(outcome.x_adv).argmax(1) == yb).cpu())
                norms[i].append(perturbation_norms(outcome.x_adv - xb, attack.norm).cpu())
                forward[i] += outcome.forward_queries
                gradient[i] += outcome.gradient_queries
                seconds[i] += outcome.seconds
    clean_correct = torch.cat(clean)
    return [
        RobustnessReport(attack.name, attack.norm, float(eps), clean_correct, torch.cat(attacked[i]),
                         torch.cat(norms[i]), forward[i], gradient[i], seconds[i], notes)
        for i, eps in enumerate(eps_list)
    ]
