"""Training for estimators that need a loss the zoo trainer does not use (Gaussian NLL,
the heteroscedastic softmax likelihood): a plain minibatch loop that follows the model's
:class:`~benchtool.contracts.model.TrainRecipe` (epochs, batch size, optimizer, lr, weight
decay, schedule) with the zoo trainer's optimizer. Data augmentation is not applied."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from benchtool.contracts.data import Split
from benchtool.contracts.model import TrainRecipe
from benchtool.contracts.uncertainty import EstimationTask
from benchtool.errors import UsageError
from benchtool.models.training import check_recipe, make_optimizer

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (network output, targets) -> scalar
DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    """The model's dropout modules (functional dropout inside ``forward`` is not visible)."""
    return [m for m in model.modules() if isinstance(m, DROPOUT_TYPES)]


def train_with_loss(
    network: nn.Module, split: Split, recipe: TrainRecipe, loss: Loss, *, seed: int, device: torch.device
) -> nn.Module:
    """Train ``network`` on ``split`` with ``loss`` under ``recipe``; return it frozen, in eval
    mode. Dropout stays off: its noise on the outputs would be learnt as aleatoric noise."""
    network = network.to(device).train()
    for layer in dropout_layers(network):
        layer.eval()
    optimizer = make_optimizer(network, check_recipe(recipe))
    steps_per_epoch = max(1, math.ceil(len(split) / recipe.batch_size))
    total_steps = recipe.epochs * steps_per_epoch
    schedule = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
        if recipe.schedule == "cosine" else None
    )
    order = torch.Generator().manual_seed(seed)
    x, y = split.x.to(device), split.y.to(device)
    for _ in range(recipe.epochs):
        for step, batch in enumerate(torch.randperm(len(split), generator=order).split(recipe.batch_size)):
            if len(batch) < 2 and step:  # a lone last example would break BatchNorm
                continue
            batch = batch.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss(network(x[batch]), y[batch]).backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
    return network.eval().requires_grad_(False)


def build_for_training(task: EstimationTask, outputs: int, estimator: str) -> tuple[nn.Module, TrainRecipe]:
    """A fresh network of the task's model spec with ``outputs`` outputs, and its recipe."""
    if task.build_network is None or task.recipe is None:
        raise UsageError(
            f"estimator {estimator!r} trains its own network and needs EstimationTask.build_network and "
            f".recipe; the task for model {task.model_name!r} provides neither"
        )
    return task.build_network(outputs), task.recipe


def gaussian_head(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a ``(N, 2D)`` output into mean and log-variance, each ``(N, D)``."""
    mean, log_variance = output.chunk(2, dim=-1)
    return mean, log_variance


def gaussian_nll(output: torch.Tensor, target: torch.Tensor, beta: float = 0.0) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood of ``target`` under a mean/log-variance head, up
    to the constant (Kendall & Gal 2017, Eq. 8). ``beta > 0`` weights each term by the
    detached variance to the power beta, the beta-NLL of Seitzer et al. (ICLR 2022), so badly
    fit regions are not simply explained away as noise."""
    mean, log_variance = gaussian_head(output)
    target = target.reshape(mean.shape)
    terms = 0.5 * (torch.exp(-log_variance) * (target - mean) ** 2 + log_variance)
    if beta:
        terms = terms * torch.exp(beta * log_variance.detach())
    return terms.mean()


def residual_variance(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Maximum-likelihood homoscedastic noise variance per output, ``(D,)`` in float64: the
    aleatoric part of estimators whose network predicts only a mean."""
    residuals = targets.reshape(predictions.shape).double() - predictions.double()
    return residuals.square().mean(0).clamp_min(torch.finfo(torch.float32).tiny)
