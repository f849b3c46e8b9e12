"""Deep ensembles: M independently seeded networks, their predictions averaged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from benchtool import hookimpl
from benchtool.contracts.data import Task
from benchtool.contracts.uncertainty import EstimationTask, UncertaintyEstimator, seeded
from benchtool.errors import UsageError
from benchtool_uncertainty._training import build_for_training, gaussian_head, gaussian_nll, train_with_loss

MEMBERS_BY_BUDGET = {"small": 3, "default": 5, "full": 5}  # the paper's M = 5


class DeepEnsemble(UncertaintyEstimator):
    """M networks trained from independent seeds, treated as a uniformly weighted mixture
    (Lakshminarayanan, Pritzel & Blundell, NeurIPS 2017, "Simple and Scalable Predictive
    Uncertainty Estimation using Deep Ensembles"). Classification members are the zoo's
    networks (cross-entropy, a proper scoring rule); regression members predict a mean and
    a variance trained by Gaussian NLL, as in the paper. Adversarial training is omitted."""

    name: ClassVar[str] = "deep-ensemble"
    tasks: ClassVar[frozenset[Task]] = frozenset({"classification", "regression"})
    defaults: ClassVar[dict[str, Any]] = {"members": None}  # M; None takes MEMBERS_BY_BUDGET

    def fit(self, task: EstimationTask) -> None:
        count = int(self.params["members"] or MEMBERS_BY_BUDGET[task.budget])
        if count < 2:
            raise UsageError(f"deep-ensemble needs members >= 2, got {count}")
        self.regression = task.info.task == "regression"
        if self.regression:
            self.members = [self._gaussian_member(task, task.seed + i) for i in range(count)]
        else:
            self.members = [task.model] + [task.train_member(task.seed + i) for i in range(1, count)]

    def _gaussian_member(self, task: EstimationTask, seed: int) -> nn.Module:
        with seeded(seed, task.device):
            network, recipe = build_for_training(task, 2 * task.info.output_dim, self.name)
            return train_with_loss(network, task.train, recipe, gaussian_nll, seed=seed, device=task.device)

    def sample(self, x: torch.Tensor) -> Iterator[Any]:
        for member in self.members:
            out = member(x)
            if self.regression:
                mean, log_variance = gaussian_head(out)
                yield mean.unsqueeze(0), log_variance.exp().unsqueeze(0)
            else:
                yield torch.softmax(out, dim=-1).unsqueeze(0)


@hookimpl
def benchtool_register_estimators(registry) -> None:
    registry.add("deep-ensemble", DeepEnsemble)
