"""Temperature scaling: one scalar that softens or sharpens the logits, fit on validation."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from benchtool import hookimpl
from benchtool.contracts.data import Task
from benchtool.contracts.uncertainty import EstimationTask, UncertaintyEstimator
from benchtool_uncertainty._sampling import forward_in_batches

LOG_TEMPERATURE_BOUNDS = (-4.0, 4.0)  # T in [0.018, 55]: far beyond any useful calibration


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The temperature T > 0 minimising the NLL of ``softmax(logits / T)`` on ``labels``,
    by L-BFGS on log T (a convex 1-D problem in 1/T).

    When every example is classified correctly the NLL falls monotonically as T -> 0 and
    has no minimum: the data give no evidence for any temperature, and T = 1 is kept
    rather than sharpening every prediction to one-hot (common on small validation splits).
    """
    logits = logits.detach().double()
    if bool((logits.argmax(1) == labels).all()):
        return 1.0
    log_t = torch.zeros((), dtype=torch.float64, device=logits.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().clamp(*LOG_TEMPERATURE_BOUNDS).exp())


class TemperatureScaling(UncertaintyEstimator):
    """Divide the logits by a temperature fit on the validation split by NLL (Guo, Pleiss,
    Sun & Weinberger, ICML 2017, "On Calibration of Modern Neural Networks"). It changes
    confidence, never the predicted class. T = 1 pass."""

    name: ClassVar[str] = "temperature-scaling"
    tasks: ClassVar[frozenset[Task]] = frozenset({"classification"})
    defaults: ClassVar[dict[str, Any]] = {}

    def fit(self, task: EstimationTask) -> None:
        self.model = task.model
        val = task.val.to(task.device)
        self.temperature = fit_temperature(forward_in_batches(task.model, val.x), val.y)

    def sample(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x) / self.temperature, dim=-1).unsqueeze(0)


@hookimpl
def benchtool_register_estimators(registry) -> None:
    registry.add(TemperatureScaling)
