"""The deterministic softmax baseline."""

from __future__ import annotations

from typing import ClassVar

import torch

from benchtool import hookimpl
from benchtool.contracts.data import Task
from benchtool.contracts.uncertainty import EstimationTask, UncertaintyEstimator


class Softmax(UncertaintyEstimator):
    """The trained network's softmax output as its own confidence: the baseline that
    Hendrycks & Gimpel (ICLR 2017, "A Baseline for Detecting Misclassified and
    Out-of-Distribution Examples") showed is informative but overconfident. T = 1."""

    name: ClassVar[str] = "softmax"
    tasks: ClassVar[frozenset[Task]] = frozenset({"classification"})

    def fit(self, task: EstimationTask) -> None:
        self.model = task.model

    def sample(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=-1).unsqueeze(0)


@hookimpl
def benchtool_register_estimators(registry) -> None:
    registry.add(Softmax)
