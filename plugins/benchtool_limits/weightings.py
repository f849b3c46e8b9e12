"""Multi-task loss-weighting schemes: equal, fixed (a hand-tuning grid), learned
homoscedastic uncertainty (Kendall et al. 2018) and GradNorm (Chen et al. 2018)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from benchtool import hookimpl
from benchtool.contracts.limits import LossWeighting, TaskSpec
from benchtool.errors import HyperparameterError


class EqualWeighting(LossWeighting):
    """The plain sum of the task losses: every task weighted 1."""

    name: ClassVar[str] = "equal"

    def combine(self, losses: torch.Tensor, shared: Sequence[torch.Tensor]) -> torch.Tensor:
        return losses.sum()

    def task_weights(self) -> torch.Tensor:
        return torch.ones(len(self.tasks))


class FixedWeighting(LossWeighting):
    """Hand-set constant weights, tuned over a grid: the grid-search baseline of Kendall et al. 2018.

    :meth:`variants` is the hand-tuning grid (their Fig. 2 and Table 1 compare with the best
    weighting such a search finds). ``weights`` (one per task, default all 1). The grid holds the first task's weight at 1
    and tries every combination of ``levels`` for the others: Adam's step is invariant to
    scaling the whole objective, so only the ratios between weights matter.
    """

    name: ClassVar[str] = "fixed"
    defaults: ClassVar[dict[str, Any]] = {"weights": None, "levels": (0.1, 1.0, 10.0, 100.0)}
    # a 2 x 2 grid at small (a smoke test of the tuning): the full 4 x 4 grid is 16 trainings per seed
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = {"small": {"levels": (1.0, 10.0)}}

    def build(self, tasks: Sequence[TaskSpec], device: torch.device) -> None:
        weights = self.params["weights"]
        if weights is None:
            weights = [1.0] * len(tasks)
        if len(weights) != len(tasks) or any(not float(w) > 0 for w in weights):
            raise HyperparameterError(
                f"loss weighting 'fixed': weights must be {len(tasks)} positive numbers (one per task), got {weights!r}"
            )
        self._weights = torch.tensor([float(w) for w in weights], device=device)

    def combine(self, losses: torch.Tensor, shared: Sequence[torch.Tensor]) -> torch.Tensor:
        return (self._weights.to(losses.device) * losses).sum()

    def task_weights(self) -> torch.Tensor:
        return self._weights

    def variants(self, tasks: Sequence[TaskSpec]) -> list[dict[str, Any]]:
        levels = tuple(float(v) for v in self.params["levels"])
        return [{"weights": (1.0, *rest)} for rest in itertools.product(levels, repeat=len(tasks) - 1)]


class UncertaintyWeighting(LossWeighting):
    """Learned homoscedastic task uncertainty (Kendall, Gal & Cipolla, CVPR 2018, "Multi-Task
    Learning Using Uncertainty to Weigh Losses for Scene Geometry and Semantics").

    Each task learns s_i = log sigma_i^2. A regression task (Gaussian likelihood, Eq. 7)
    contributes 1/(2 sigma^2) L_i + log sigma = 1/2 exp(-s_i) L_i + 1/2 s_i; a
    classification task (scaled softmax, Eq. 10) contributes 1/sigma^2 L_i + log sigma =
    exp(-s_i) L_i + 1/2 s_i. s is learned rather than sigma so the weight stays positive and
    the objective finite. ``lr`` is the log-variances' own Adam learning rate: at a
    network's 1e-3 they would need thousands of steps to reach a task's log-variance.
    """

    name: ClassVar[str] = "uncertainty"
    defaults: ClassVar[dict[str, Any]] = {"lr": 0.05, "init_log_variance": 0.0}

    def build(self, tasks: Sequence[TaskSpec], device: torch.device) -> None:
        init = float(self.params["init_log_variance"])
        self.log_variance = torch.full((len(tasks),), init, device=device, requires_grad=True)
        self._scale = torch.tensor([0.5 if t.kind == "regression" else 1.0 for t in tasks], device=device)

    def parameters(self) -> list[torch.Tensor]:
        return [self.log_variance]

    def combine(self, losses: torch.Tensor, shared: Sequence[torch.Tensor]) -> torch.Tensor:
        s = self.log_variance
        return (self._scale * torch.exp(-s) * losses + 0.5 * s).sum()

    def task_weights(self) -> torch.Tensor:
        return (self._scale * torch.exp(-self.log_variance)).detach()

    def extras(self) -> dict[str, float]:
        sigma = torch.exp(0.5 * self.log_variance.detach()).cpu()
        return {f"sigma/{task.name}": float(v) for task, v in zip(self.tasks, sigma)}


class GradNormWeighting(LossWeighting):
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018): weights that balance gradient norms.

    Learns weights w_i so each task's gradient norm on the last shared layer, G_i = ||grad_W w_i L_i||, tracks
    mean(G) * r_i^alpha, where r_i is the task's loss ratio L_i(t)/L_i(0) relative to the
    mean ratio. The target is a constant and the weights are renormalized to sum to the
    number of tasks after every step (Sec. 3.2). The network sees sum_i w_i L_i with w
    held fixed; w sees only the gradient-norm loss. ``lr`` is the weights' learning rate.
    """

    name: ClassVar[str] = "gradnorm"
    defaults: ClassVar[dict[str, Any]] = {"alpha": 1.5, "lr": 0.025}
    differentiates_shared: ClassVar[bool] = True

    def build(self, tasks: Sequence[TaskSpec], device: torch.device) -> None:
        self.w = torch.ones(len(tasks), device=device, requires_grad=True)
        self._initial_losses: torch.Tensor | None = None

    def parameters(self) -> list[torch.Tensor]:
        return [self.w]

    def combine(self, losses: torch.Tensor, shared: Sequence[torch.Tensor]) -> torch.Tensor:
        if not shared:
            raise ValueError("loss weighting 'gradnorm' needs the last shared layer's parameters (shared=...)")
        detached = losses.detach()
        if self._initial_losses is None:
            self._initial_losses = detached.clamp_min(1e-12).clone()
        norms = torch.stack([self._gradient_norm(loss, shared) for loss in losses])
        grad_norms = self.w * norms  # G_i: differentiable in w only
        ratio = detached / self._initial_losses
        target = grad_norms.mean().detach() * (ratio / ratio.mean()) ** float(self.params["alpha"])
        gradnorm_loss = (grad_norms - target).abs().sum()
        return (self.w.detach() * losses).sum() + gradnorm_loss

    @staticmethod
    def _gradient_norm(loss: torch.Tensor, shared: Sequence[torch.Tensor]) -> torch.Tensor:
        grads = torch.autograd.grad(loss, list(shared), retain_graph=True, allow_unused=True)
        squares = [g.pow(2).sum() for g in grads if g is not None]
        return torch.stack(squares).sum().sqrt().detach() if squares else loss.new_zeros(())

    def after_step(self) -> None:
        with torch.no_grad():
            self.w.clamp_(min=1e-4)
            self.w.mul_(len(self.tasks) / self.w.sum())

    def task_weights(self) -> torch.Tensor:
        return self.w.detach()


@hookimpl
def benchtool_register_loss_weightings(registry) -> None:  # noqa: ANN001 - a benchtool.registry.Registrar
    """Add the built-in loss-weighting schemes."""
    for scheme in (EqualWeighting, FixedWeighting, UncertaintyWeighting, GradNormWeighting):
        registry.add(scheme)
