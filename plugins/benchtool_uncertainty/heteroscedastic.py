"""Heteroscedastic aleatoric uncertainty: the network predicts its own noise level."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, ClassVar

import torch

from benchtool import hookimpl
from benchtool.contracts.data import Task
from benchtool.contracts.uncertainty import EstimationTask, UncertaintyEstimator
from benchtool.models.nets import output_size
from benchtool_uncertainty._sampling import sampled_in_chunks
from benchtool_uncertainty._training import gaussian_head, gaussian_nll, train_own, train_with_loss


def noisy_logits(output: torch.Tensor, t: int) -> torch.Tensor:
    """``t`` draws of logits ``f + sigma * eps`` from a ``(N, 2C)`` logits/log-variance head."""
    logits, log_variance = gaussian_head(output)
    noise = torch.randn((t, *logits.shape), dtype=logits.dtype, device=logits.device)
    return logits + (0.5 * log_variance).exp() * noise


def heteroscedastic_softmax_nll(train_samples: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Kendall & Gal (2017), Eq. 12: the NLL of the label under the softmax of Gaussian-
    corrupted logits, the expectation estimated with ``train_samples`` draws."""

    def loss(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(noisy_logits(output, train_samples), dim=-1)  # (T, N, C)
        picked = log_probs.gather(-1, labels.expand(train_samples, -1).unsqueeze(-1)).squeeze(-1)
        return (math.log(train_samples) - torch.logsumexp(picked, dim=0)).mean()

    return loss


class Heteroscedastic(UncertaintyEstimator):
    """A network of the model's spec with twice the outputs, trained to predict a mean and
    a log-variance (Kendall & Gal, NeurIPS 2017, "What Uncertainties Do We Need in Bayesian
    Deep Learning for Computer Vision?"). Regression: one pass giving mean and aleatoric
    variance, trained by Gaussian NLL. Classification: Gaussian noise on the logits, sampled
    T times, trained by the expected softmax likelihood. Aleatoric only: no weight posterior,
    and dropout stays off in training. Regression trains with beta-NLL (Seitzer et al., ICLR
    2022, beta = 0.5), which fits the mean where plain NLL explains misfit away as noise."""

    name: ClassVar[str] = "heteroscedastic"
    tasks: ClassVar[frozenset[Task]] = frozenset({"classification", "regression"})
    defaults: ClassVar[dict[str, Any]] = {
        "num_samples": None,  # T logit draws (classification); None takes task.num_samples
        "train_samples": 10,  # logit draws per example in the training loss
        "beta": 0.5,  # regression: the beta-NLL weight (Seitzer et al. 2022); 0 is the plain NLL
    }

    def fit(self, task: EstimationTask) -> None:
        self.regression = task.info.task == "regression"
        loss = (partial(gaussian_nll, beta=float(self.params["beta"])) if self.regression
                else heteroscedastic_softmax_nll(int(self.params["train_samples"])))
        self.network = train_own(
            task, self, 2 * output_size(task.info),
            lambda network, recipe: train_with_loss(network, task.train, recipe, loss, seed=task.seed,
                                                    device=task.device),
        )
        self.num_samples = int(self.params["num_samples"] or task.num_samples)

    def sample(self, x: torch.Tensor) -> Iterator[Any]:
        output = self.network(x)
        if self.regression:
            mean, log_variance = gaussian_head(output)
            yield mean.unsqueeze(0), log_variance.exp().unsqueeze(0)
            return
        bytes_per_sample = output.numel() * output.element_size() * 2  # noise and logits
        yield from sampled_in_chunks(
            lambda t: torch.softmax(noisy_logits(output, t), dim=-1), self.num_samples, bytes_per_sample, x.device
        )


@hookimpl
def benchtool_register_estimators(registry) -> None:
    registry.add(Heteroscedastic)
