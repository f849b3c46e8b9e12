"""The robustness harness: attack every example at every eps, measure the result on a fresh
forward pass, and check the model the way AutoAttack does before trusting gradient attacks.

The plugin's side is :class:`benchtool.contracts.attack.Attack` (``perturb``, guarded by
``attempt``/``sweep``); this module is the harness's side: :func:`evaluate`, the eps sweeps
per dataset and the checks of the model.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchtool.contracts.attack import Attack, Norm, perturbation_norms
from benchtool.contracts.data import DatasetInfo
from benchtool.contracts.model import RandomizedModel

JUDGING_KEY = 1  # the draw stream adversarial examples are judged under (attacks see stream 0)


def eps_sweep(requested: Sequence[float] | None, info: DatasetInfo, norm: Norm) -> list[float]:
    """The eps values to run: ``requested`` (``--bt-eps``, in the attack's own norm) when
    given, else the dataset's declared sweep for ``norm`` (:attr:`DatasetInfo.eps_sweeps`),
    else one scaled to the data: Linf fractions (0, 1%, 3%, 10%) of the bounds' range, L2 a
    quarter of that times sqrt(dims)."""
    if requested:
        return [float(e) for e in requested]
    if norm in info.eps_sweeps:
        return list(info.eps_sweeps[norm])
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


def judging_draws(model: nn.Module) -> AbstractContextManager[object]:
    """Where ``model`` (or a module inside it) is a :class:`RandomizedModel`, its draws from
    the judging stream, independent of every draw the attack saw; otherwise nothing changes.
    A randomized defense must be judged under randomness the attacker did not see, as a deployed
    one draws afresh for every query: an attack that keeps the point where its draw happened to
    fool the model (best-point tracking, early stopping) must not be credited for that draw."""
    for module in model.modules():
        if isinstance(module, RandomizedModel):
            return module.independent_draws(JUDGING_KEY)
    return nullcontext()


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
    fresh forward pass (a randomized model's under :func:`judging_draws`): the plugin never
    reports its own accuracy. First warns about the
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
        with torch.no_grad(), judging_draws(model):
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


# --- the gradient probe of the masking checks -------------------------------------------

FIRST_ORDER_STEP = 1e-4  # the probe's step, as a fraction of the data range (Linf)
FIRST_ORDER_TOLERANCE = 0.5  # relative error beyond which the gradient did not predict the change


@dataclass
class GradientProbe:
    """Per example: whether the input gradient of the classification margin is all zero, and
    the relative error of its first-order prediction of the margin's change one tiny step
    against the gradient's sign. On a smooth (or piecewise-linear) model the error is near 0; a quantizing input
    layer zeroes the gradient, and a randomized or shattered one makes the change unrelated to
    the gradient (Athalye, Carlini & Wagner, ICML 2018, sections 4.1-4.2)."""

    zero_gradient: torch.Tensor  # bool [n]
    relative_error: torch.Tensor  # float [n]

    @property
    def n(self) -> int:
        return len(self.zero_gradient)

    @property
    def masked(self) -> torch.Tensor:
        return self.zero_gradient | (self.relative_error > FIRST_ORDER_TOLERANCE)

    @property
    def masked_share(self) -> float:
        return self.masked.float().mean().item()


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The true class's logit minus the largest other one: piecewise linear in the logits, so
    it never saturates the way cross-entropy does on confident examples."""
    true = logits.gather(1, y[:, None])[:, 0]
    others = logits.scatter(1, y[:, None], float("-inf"))
    return true - others.amax(1)


def gradient_probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, bounds: tuple[float, float]) -> GradientProbe:
    """Probe ``model``'s input gradients at ``x`` (see :class:`GradientProbe`): one gradient of
    the margin, one step of ``FIRST_ORDER_STEP`` of the range against its sign (the direction a
    gradient attack takes, kept inside ``bounds``), and the margin there. Along the sign the
    first-order term is the gradient's L1 norm times the step, so a piecewise-linear network's
    kinks and float rounding stay small beside it (a random direction's term cancels out)."""
    low, high = bounds
    with torch.enable_grad():
        x_req = x.detach().clone().requires_grad_(True)
        margin = _margin(model(x_req), y)
        (grad,) = torch.autograd.grad(margin.sum(), x_req)
    step = ((x - FIRST_ORDER_STEP * (high - low) * grad.sign()).clamp(low, high) - x).detach()
    with torch.no_grad():
        change = _margin(model(x + step), y) - margin.detach()
    predicted = (grad * step).reshape(len(x), -1).sum(1)
    scale = torch.maximum(change.abs(), predicted.abs()).clamp_min(torch.finfo(x.dtype).tiny)
    zero = grad.reshape(len(x), -1).abs().amax(1) == 0
    return GradientProbe(zero.cpu(), ((change - predicted).abs() / scale).cpu())
