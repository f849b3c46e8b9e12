"""Expectation over Transformation: PGD on the loss averaged over random transformations
(``eot``), and PGD on a randomized model's expected prediction (``eot-pgd``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from benchtool import hookimpl
from benchtool.contracts.attack import Norm, ThreatModel
from benchtool_attacks._common import attack_loss, forward_in_chunks, per_example, rows_per_call
from benchtool_attacks.pgd import PGD


@dataclass(frozen=True)
class RandomTransformations:
    """A distribution of differentiable transformations of a batch: rotation by up to
    ``rotation`` degrees, scaling by a factor in ``scale``, translation by up to
    ``translation`` of the image size, brightness shift up to ``brightness`` and Gaussian
    noise of standard deviation up to ``noise`` (both as fractions of the bounds' range).
    Geometric ones apply to (N, C, H, W) images only; pixels moved in from outside the frame
    take the lower bound."""

    rotation: float
    scale: tuple[float, float]
    translation: float
    brightness: float
    noise: float

    def __call__(self, x: torch.Tensor, generator: torch.Generator, bounds: tuple[float, float]) -> torch.Tensor:
        low, high = bounds
        span = high - low

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(len(x), generator=generator, device=x.device, dtype=x.dtype)

        out = x
        if x.ndim == 4:
            angle = uniform(-self.rotation, self.rotation) * (math.pi / 180)
            zoom = uniform(*self.scale)
            shift = uniform(-2 * self.translation, 2 * self.translation), uniform(-2 * self.translation, 2 * self.translation)
            cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
            theta = torch.stack([torch.stack([cos, -sin, shift[0]], 1), torch.stack([sin, cos, shift[1]], 1)], 1)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            out = F.grid_sample(x - low, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + low
        out = out + per_example(uniform(-self.brightness, self.brightness) * span, out)
        std = per_example(uniform(0.0, self.noise) * span, out)
        out = out + std * torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        return torch.clamp(out, low, high)


class EOT(PGD):
    """Expectation over Transformation (Athalye, Engstrom, Ilyas & Kwok, ICML 2018,
    "Synthesizing Robust Adversarial Examples"): Linf PGD on the cross-entropy averaged over
    ``samples`` transformations drawn afresh at every step, so the example stays adversarial
    under the whole distribution.

    The distribution is the paper's for 2D images (its Table 4): ``rotation=22.5`` degrees,
    ``scale=(0.9, 1.4)``, ``brightness=0.05``, Gaussian ``noise`` up to 0.1; translation,
    "any in-bounds" there, is ``translation=0.1`` of the size here. Optimisation as ``pgd``
    (``steps=40``, ``rel_stepsize=None``, ``random_start=True``) with ``samples=10``
    transformations per gradient; budget ``small`` uses 20 steps.
    """

    name: ClassVar[str] = "eot"
    norm: ClassVar[Norm] = "linf"
    threat_model: ClassVar[ThreatModel] = "transformation"  # scored on plain inputs it is not at its best
    defaults: ClassVar[dict[str, Any]] = {
        **PGD.defaults, "samples": 10,
        "rotation": 22.5, "scale": (0.9, 1.4), "translation": 0.1, "brightness": 0.05, "noise": 0.1,
    }

    def __init__(self, **hyperparams: Any) -> None:
        super().__init__(**hyperparams)
        samples = self.params["samples"]
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"attack 'eot': samples must be an int >= 1, got {samples!r}")
        p = self.params
        self.transformations = RandomTransformations(
            float(p["rotation"]), tuple(p["scale"]), float(p["translation"]), float(p["brightness"]), float(p["noise"])
        )

    def loss_gradient(self, model, x_adv, y, targeted, generator, bounds):
        samples = self.params["samples"]
        x_req = x_adv.detach().requires_grad_(True)
        batch = x_req.repeat(samples, *([1] * (x_req.ndim - 1)))
        logits = forward_in_chunks(model, self.transformations(batch, generator, bounds))
        (grad,) = torch.autograd.grad(attack_loss(logits, y.repeat(samples), targeted), x_req)
        return grad


class ExpectedPrediction(torch.nn.Module):
    """A randomized model's prediction averaged over ``samples`` of its own draws: each input
    goes through ``samples`` times in one batch (where a randomized model draws afresh for every
    copy) and the output is the log of the mean class probabilities, so a cross-entropy on it
    is ``-log E[p_y]``. On a CPU the examples go through in groups of :func:`rows_per_call`
    rows, all copies of an example in one call (the copies' draws depend on it)."""

    def __init__(self, model: torch.nn.Module, samples: int) -> None:
        super().__init__()
        self.model, self.samples = model, samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        examples = max(1, rows_per_call(x, len(x) * self.samples) // self.samples)
        return torch.cat([self._expected(group) for group in x.split(examples)])

    def _expected(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x.repeat(self.samples, *([1] * (x.ndim - 1))))
        log_probs = F.log_softmax(logits.reshape(self.samples, len(x), -1), dim=-1)
        return torch.logsumexp(log_probs, dim=0) - math.log(self.samples)


def draws_randomly(model: torch.nn.Module, x: torch.Tensor, probe: int = 16) -> bool:
    """Whether ``model`` answers two copies of the same inputs, in one batch, differently."""
    head = x[:probe].detach()
    with torch.no_grad():
        first, second = model(torch.cat([head, head])).chunk(2)
    return not torch.allclose(first, second, rtol=1e-5, atol=1e-6)


class EOTPGD(PGD):
    """Expectation over Transformation against a randomized defense (Athalye, Carlini &
    Wagner, ICML 2018, "Obfuscated Gradients Give a False Sense of Security", section 4.1.3):
    Linf PGD on the model's prediction averaged over ``samples`` of its own random draws (the
    random resizing and padding of Xie et al. 2018 in ``lenet-randomized``), so each step
    follows the expectation over the defense's randomness instead of one draw. Unlike ``eot``
    it adds no transformations of its own: its threat model is the plain perturbation.

    The loss is the cross-entropy of the averaged prediction, ``-log E[p_y]``: the defense is
    judged on one fresh draw, so the attack lowers the expected probability of the true class.
    (The mean of the per-draw cross-entropies, ``eot``'s objective, lets the draws already fooled
    dominate the gradient: on ``lenet-randomized`` / Fashion-MNIST at eps 0.1, 10 draws per step
    left 0.163 of 1000 examples robust with it and 0.117 with this loss, where PGD left 0.219.)

    Each step's gradient is an estimate from ``samples`` draws, so the step size decreases, as
    stochastic approximation needs to converge (Robbins & Monro 1951): from ``anneal_from`` * eps
    down to 0 on a cosine (Loshchilov & Hutter, ICLR 2017, "SGDR"). With PGD's constant
    2.5 * eps / steps the steps stay small against the gradient's noise: on 500 Fashion-MNIST test
    images at eps 0.1, 40 steps of 20 draws left 0.112 robust with it and 0.066 with the cosine
    from 0.5 * eps (0.064 from 1.0, 0.088 from 0.25), where PGD left 0.194. On a model whose two
    passes over the same input agree, one pass is the expectation and the attack is ``pgd``
    exactly, constant step included.

    Hyper-parameters: ``pgd``'s, ``samples=20``, the draws AutoAttack averages over for
    randomized defenses (Croce & Hein, ICML 2020), and ``anneal_from=0.5``; budget ``small``
    uses 20 steps of 10 draws.
    """

    name: ClassVar[str] = "eot-pgd"
    defaults: ClassVar[dict[str, Any]] = {**PGD.defaults, "samples": 20, "anneal_from": 0.5}
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = {"small": {"steps": 20, "samples": 10}}

    def __init__(self, **hyperparams: Any) -> None:
        super().__init__(**hyperparams)
        samples, anneal_from = self.params["samples"], self.params["anneal_from"]
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"attack {self.name!r}: samples must be an int >= 1, got {samples!r}")
        if not 0 < anneal_from <= 2:
            raise ValueError(f"attack {self.name!r}: anneal_from must lie in (0, 2] (a fraction of eps), "
                             f"got {anneal_from!r}")

    def annealed_steps(self, eps: float) -> list[float]:
        """The absolute step of each iteration on a randomized model: ``anneal_from * eps``
        decreasing to 0 on a half cosine."""
        steps, first = self.params["steps"], self.params["anneal_from"] * eps
        return [first * 0.5 * (1 + math.cos(math.pi * k / steps)) for k in range(steps)]

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        samples = self.params["samples"]
        if samples > 1 and eps > 0 and len(x) and draws_randomly(model, x):
            expected = ExpectedPrediction(model, samples)
            return self.ascend(expected, x, y, eps, self.annealed_steps(eps), bounds=bounds, generator=generator,
                               targeted=targeted)
        return super().perturb(model, x, y, eps, bounds=bounds, generator=generator, targeted=targeted)


@hookimpl
def benchtool_register_attacks(registry) -> None:
    registry.add(EOT)
    registry.add(EOTPGD)
