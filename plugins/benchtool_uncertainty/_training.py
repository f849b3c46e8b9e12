"""Training for estimators that need a loss the zoo trainer does not use (Gaussian NLL,
the heteroscedastic softmax likelihood): the zoo trainer's seeded minibatch loop
(:func:`~benchtool.models.training.train_epochs`) under the model's
:class:`~benchtool.contracts.model.TrainRecipe`, with that loss. Data augmentation is not applied."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from benchtool.contracts.data import Split
from benchtool.contracts.model import TrainRecipe
from benchtool.contracts.uncertainty import EstimationTask
from benchtool.errors import UsageError
from benchtool.models.nets import dropout_layers
from benchtool.models.training import check_recipe, train_epochs

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (network output, targets) -> scalar


def train_with_loss(
    network: nn.Module, split: Split, recipe: TrainRecipe, loss: Loss, *, seed: int, device: torch.device
) -> nn.Module:
    """Train ``network`` on ``split`` with ``loss`` under ``recipe``; return it frozen, in eval
    mode. Dropout stays off: its noise on the outputs would be learnt as aleatoric noise.
    Raises :class:`~benchtool.models.training.TrainingError` when the loss diverges."""
    network = network.to(device).train()
    for layer in dropout_layers(network):
        layer.eval()
    none_right = torch.zeros((), dtype=torch.int64, device=device)
    for _ in train_epochs(
        network, split, check_recipe(recipe), lambda output, targets: (loss(output, targets), none_right),
        seed=seed, device=device, label=f"{type(network).__name__} seed {seed}",
    ):
        pass
    return network.eval().requires_grad_(False)


def train_own(task: EstimationTask, estimator: Any, outputs: int,
              train_: Callable[[nn.Module, TrainRecipe], nn.Module],
              prepare: Callable[[nn.Module], nn.Module] | None = None) -> nn.Module:
    """``train_(network, recipe)`` on a fresh network of the task's model spec with ``outputs``
    outputs (passed through ``prepare`` first, e.g. to add spectral normalisation), under the
    model's recipe. Where the task offers a network cache (``EstimationTask.own_network``) the
    result is kept there, so it trains once per model, dataset, seed, recipe and estimator
    hyper-parameters, like the zoo's networks."""
    if task.build_network is None or task.recipe is None:
        raise UsageError(
            f"estimator {estimator.name!r} trains its own network and needs EstimationTask.build_network and "
            f".recipe; the task for model {task.model_name!r} provides neither"
        )
    build_network, recipe = task.build_network, task.recipe

    def build() -> nn.Module:
        network = build_network(outputs)
        return network if prepare is None else prepare(network)

    def trained(network: nn.Module) -> nn.Module:
        return train_(network, recipe)

    if task.own_network is None:
        return trained(build())
    return task.own_network({"estimator": estimator.name, "params": estimator.params, "outputs": outputs},
                            build, trained)


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
