"""Monte Carlo dropout: dropout kept on at test time as approximate Bayesian inference."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from benchtool import hookimpl
from benchtool.contracts.data import Task
from benchtool.contracts.uncertainty import EstimationTask, UncertaintyEstimator
from benchtool.errors import UsageError
from benchtool.models.nets import dropout_layers
from benchtool_uncertainty._sampling import forward_in_batches, shared_prefix, stochastic_passes
from benchtool_uncertainty._training import residual_variance


def sampling_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` in eval mode (BatchNorm uses its running statistics) with
    only its dropout layers switched on; the caller's model is never touched."""
    network = copy.deepcopy(model).eval().requires_grad_(False)
    for layer in dropout_layers(network):
        layer.train()
    return network


class MCDropout(UncertaintyEstimator):
    """Dropout left on at test time, averaged over T stochastic passes: a variational
    approximation to a Bayesian network's posterior (Gal & Ghahramani, ICML 2016, "Dropout
    as a Bayesian Approximation"). BatchNorm stays frozen; T comes from the budget. The layers
    before the first dropout run once per input, not once per pass (``shared_prefix``).
    Regression adds a homoscedastic noise variance fit to the training residuals."""

    name: ClassVar[str] = "mc-dropout"
    tasks: ClassVar[frozenset[Task]] = frozenset({"classification", "regression"})
    defaults: ClassVar[dict[str, Any]] = {
        "num_samples": None,  # T; None takes the budget's task.num_samples
        "passes_per_call": None,  # None sizes batched chunks by device (see _sampling)
    }

    def fit(self, task: EstimationTask) -> None:
        if not dropout_layers(task.model):
            raise UsageError(
                f"mc-dropout needs a model with dropout layers (nn.Dropout and friends); model "
                f"{task.model_name!r} has none, so its passes would all be the same"
            )
        self.network = sampling_copy(task.model)
        self.split = shared_prefix(self.network)
        self.num_samples = int(self.params["num_samples"] or task.num_samples)
        self.regression = task.info.task == "regression"
        if self.regression:  # the model precision of Gal & Ghahramani, from the training residuals
            train = task.train.to(task.device)
            self.noise_variance = residual_variance(forward_in_batches(task.model, train.x), train.y)

    def sample(self, x: torch.Tensor) -> Iterator[Any]:
        network, inputs = (self.split.rest, self.split.prefix(x)) if self.split else (self.network, x)
        for chunk in stochastic_passes(
            network, inputs, self.num_samples, passes_per_call=self.params["passes_per_call"]
        ):
            if self.regression:
                yield chunk, self.noise_variance.to(chunk.dtype).expand_as(chunk).clone()
            else:
                yield torch.softmax(chunk, dim=-1)


@hookimpl
def benchtool_register_estimators(registry) -> None:
    registry.add(MCDropout)
