"""Evidential deep learning: one forward pass predicts the parameters of a conjugate prior
(a Dirichlet over class probabilities, a Normal-Inverse-Gamma over a Gaussian's mean and
variance), whose spread is the epistemic uncertainty."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from benchtool import hookimpl
from benchtool.contracts.data import Split, Task
from benchtool.contracts.model import TrainRecipe
from benchtool.contracts.uncertainty import EstimationTask, UncertaintyEstimator
from benchtool.errors import HyperparameterError
from benchtool.models.nets import dropout_layers, output_size
from benchtool.models.training import check_recipe, train_epochs
from benchtool_uncertainty._training import train_own

EVIDENCE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,  # Sensoy et al.'s choice
    "softplus": F.softplus,
    "exp": lambda logits: torch.exp(logits.clamp(max=10.0)),  # clamped: exp overflows in float32
}
POSITIVE = 1e-6  # added to softplus outputs that must be strictly positive (nu, beta)


def dirichlet(logits: torch.Tensor, evidence: str) -> torch.Tensor:
    """Concentrations ``alpha = evidence(logits) + 1`` of the Dirichlet, (N, K)."""
    return EVIDENCE[evidence](logits) + 1.0


def kl_to_uniform_dirichlet(alpha: torch.Tensor) -> torch.Tensor:
    """``KL(Dir(alpha) || Dir(1, ..., 1))`` per row, (N,)."""
    k = alpha.shape[-1]
    strength = alpha.sum(-1)
    return (torch.lgamma(strength) - math.lgamma(k) - torch.lgamma(alpha).sum(-1)
            + ((alpha - 1.0) * (torch.digamma(alpha) - torch.digamma(strength)[..., None])).sum(-1))


def evidential_classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, kl_weight: float, evidence: str
) -> torch.Tensor:
    """Sensoy et al. (2018), Eq. 5 and Sec. 4: the expected squared error of the one-hot label
    under the Dirichlet, ``sum_j (y_j - p_j)^2 + p_j (1 - p_j) / (S + 1)``, plus
    ``kl_weight`` times the KL of the misleading evidence (the Dirichlet with the true
    class's evidence removed) to the uniform Dirichlet."""
    alpha = dirichlet(logits, evidence)
    strength = alpha.sum(-1, keepdim=True)
    p = alpha / strength
    y = F.one_hot(labels, alpha.shape[-1]).to(alpha.dtype)
    risk = ((y - p).square() + p * (1.0 - p) / (strength + 1.0)).sum(-1)
    misleading = y + (1.0 - y) * alpha  # alpha-tilde: the true class's concentration set to 1
    return (risk + kl_weight * kl_to_uniform_dirichlet(misleading)).mean()


def normal_inverse_gamma(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(gamma, nu, alpha, beta)``, each (N, D), from a (N, 4D) head: softplus evidence with
    nu, beta > 0 and alpha > 1 (Amini et al. 2020, Sec. 3.3)."""
    gamma, nu, alpha, beta = output.chunk(4, dim=-1)
    return gamma, F.softplus(nu) + POSITIVE, F.softplus(alpha) + 1.0, F.softplus(beta) + POSITIVE


def evidential_regression_loss(output: torch.Tensor, target: torch.Tensor, regulariser: float) -> torch.Tensor:
    """Amini et al. (2020), Eqs. 8-10: the negative log-likelihood of the target under the
    Student-t that the NIG evidence implies, plus ``regulariser * |y - gamma| * (2 nu + alpha)``,
    which shrinks the evidence where the prediction is wrong."""
    gamma, nu, alpha, beta = normal_inverse_gamma(output)
    target = target.reshape(gamma.shape)
    omega = 2.0 * beta * (1.0 + nu)
    nll = (0.5 * torch.log(math.pi / nu) - alpha * torch.log(omega)
           + (alpha + 0.5) * torch.log(nu * (target - gamma).square() + omega)
           + torch.lgamma(alpha) - torch.lgamma(alpha + 0.5))
    evidence_penalty = (target - gamma).abs() * (2.0 * nu + alpha)
    return (nll + regulariser * evidence_penalty).mean()


def train_annealed(
    network: nn.Module, split: Split, recipe: TrainRecipe,
    loss: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor], *, seed: int, device: torch.device,
) -> nn.Module:
    """The zoo trainer's seeded minibatch loop under ``recipe`` with a loss that also takes the
    epoch (0-based, for annealing); returns the network frozen, in eval mode, dropout off."""
    network = network.to(device).train()
    for layer in dropout_layers(network):
        layer.eval()
    epoch = [0]
    none_right = torch.zeros((), dtype=torch.int64, device=device)
    for _ in train_epochs(
        network, split, check_recipe(recipe), lambda out, targets: (loss(out, targets, epoch[0]), none_right),
        seed=seed, device=device, label=f"evidential {type(network).__name__} seed {seed}",
    ):
        epoch[0] += 1
    return network.eval().requires_grad_(False)


class Evidential(UncertaintyEstimator):
    """Evidential deep learning: a network of the model's spec whose single forward pass
    gives the parameters of a conjugate prior over the likelihood's parameters.

    Classification (Sensoy, Kaplan & Kandemir, NeurIPS 2018, "Evidential Deep Learning to
    Quantify Classification Uncertainty"): non-negative evidence ``e`` of the logits gives a
    Dirichlet ``alpha = e + 1``, trained by the expected squared error plus the KL of the
    misleading evidence to the uniform Dirichlet, annealed by ``min(1, epoch / 10)``; the
    prediction is ``alpha / S`` (T = 1), the own OOD score the vacuity ``u = K / S``. The
    evidence is ``exp`` (clamped at e^10) by default, not the paper's ReLU: with ReLU whole
    classes lose their gradient once their evidence dies, and lenet on digits-holdout at
    budget small reaches 58% accuracy (softplus 97%, exp 98%).

    Regression (Amini, Schwarting, Soleimany & Rus, NeurIPS 2020, "Deep Evidential
    Regression"): a Normal-Inverse-Gamma head ``(gamma, nu, alpha, beta)`` trained by the
    NIG negative log-likelihood plus ``lambda |y - gamma| (2 nu + alpha)``; aleatoric
    ``E[sigma^2] = beta / (alpha - 1)``, epistemic ``Var[mu] = beta / (nu (alpha - 1))``.
    The harness takes epistemic variance as the spread of the passes' means, so ``sample``
    yields two passes at ``gamma -+ sqrt(Var[mu])`` (a symmetric two-point quadrature: its
    mean is gamma and its variance Var[mu], exactly), each with variance ``E[sigma^2]``.
    Meinert et al. (AAAI 2023) show the NIG's split is a heuristic, not a posterior."""

    name: ClassVar[str] = "evidential"
    tasks: ClassVar[frozenset[Task]] = frozenset({"classification", "regression"})
    score_name: ClassVar[str | None] = "vacuity"
    defaults: ClassVar[dict[str, Any]] = {
        "evidence": "exp",  # classification: exp, softplus or relu (the paper's; see the class docstring)
        "anneal_epochs": 10,  # classification: the KL weight is min(1, epoch / anneal_epochs)
        "regulariser": 0.01,  # regression: lambda, the evidence regulariser's weight
    }

    def fit(self, task: EstimationTask) -> None:
        self.regression = task.info.task == "regression"
        if self.params["evidence"] not in EVIDENCE:
            raise HyperparameterError(f"evidential: evidence must be one of {sorted(EVIDENCE)}, got {self.params['evidence']!r}")
        width = output_size(task.info)
        evidence, anneal = str(self.params["evidence"]), max(1, int(self.params["anneal_epochs"]))
        regulariser = float(self.params["regulariser"])

        def loss(output: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
            if self.regression:
                return evidential_regression_loss(output, targets, regulariser)
            return evidential_classification_loss(output, targets, min(1.0, epoch / anneal), evidence)

        self.network = train_own(
            task, self, 4 * width if self.regression else width,
            lambda network, recipe: train_annealed(network, task.train, recipe, loss, seed=task.seed,
                                                   device=task.device),
        )

    def sample(self, x: torch.Tensor) -> Any:
        output = self.network(x)
        if self.regression:
            # in float64, so that the two points' spread returns Var[mu] without cancellation
            gamma, nu, alpha, beta = (part.double() for part in normal_inverse_gamma(output))
            aleatoric = beta / (alpha - 1.0)
            spread = torch.sqrt(aleatoric / nu)  # sqrt(Var[mu])
            means = torch.stack([gamma - spread, gamma + spread])
            return means, torch.stack([aleatoric, aleatoric])
        alpha = dirichlet(output, str(self.params["evidence"]))
        return (alpha / alpha.sum(-1, keepdim=True)).unsqueeze(0)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Vacuity ``u = K / S`` (classification); for regression the epistemic variance
        ``Var[mu]`` summed over outputs."""
        output = self.network(x)
        if self.regression:
            _, nu, alpha, beta = normal_inverse_gamma(output)
            return (beta / (nu * (alpha - 1.0))).sum(-1)
        alpha = dirichlet(output, str(self.params["evidence"]))
        return alpha.shape[-1] / alpha.sum(-1)


@hookimpl
def benchtool_register_estimators(registry) -> None:
    registry.add(Evidential)
