"""Deep Deterministic Uncertainty: one forward pass, a Gaussian density on the features."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from benchtool import hookimpl
from benchtool.contracts.data import Task
from benchtool.contracts.uncertainty import EstimationTask, UncertaintyEstimator
from benchtool.errors import UsageError
from benchtool_uncertainty._sampling import forward_in_batches
from benchtool_uncertainty._training import train_own, train_with_loss
from benchtool_uncertainty.laplace_last_layer import features_and_outputs

# Jitter added to a class covariance's diagonal until its Cholesky factorisation succeeds
# (the official DDU code's search, from 0 up): features after a ReLU have dead units.
JITTERS = (0.0, *(10.0**k for k in range(-12, 1)))


class SoftSpectralNorm(nn.Module):
    """A weight parametrisation ``W / max(1, sigma(W) / c)``: the largest singular value of
    the weight (reshaped to a matrix, Miyato et al., ICLR 2018) is bounded by ``coefficient``,
    estimated by one power iteration per training step (Behrmann et al., ICML 2019's
    "soft" form used by DDU; ``c = 1`` is Miyato's exact normalisation)."""

    def __init__(self, weight: torch.Tensor, coefficient: float) -> None:
        super().__init__()
        rows, cols = weight.shape[0], weight[0].numel()
        self.coefficient = float(coefficient)
        # drawn from torch's generator, which the harness seeds for fit
        self.register_buffer("u", F.normalize(torch.randn(rows, dtype=weight.dtype, device=weight.device), dim=0))
        self.register_buffer("v", F.normalize(torch.randn(cols, dtype=weight.dtype, device=weight.device), dim=0))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        matrix = weight.flatten(1)
        if self.training:
            with torch.no_grad():
                self.v.copy_(F.normalize(matrix.T @ self.u, dim=0))
                self.u.copy_(F.normalize(matrix @ self.v, dim=0))
        sigma = self.u @ matrix @ self.v
        return weight / torch.clamp(sigma / self.coefficient, min=1.0)


def spectrally_normalised(network: nn.Module, coefficient: float) -> nn.Module:
    """``network`` with :class:`SoftSpectralNorm` on the weight of every convolution and
    linear layer of its feature extractor (all but the last linear layer, the classifier)."""
    layers = [m for m in network.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]
    for layer in layers[:-1]:
        parametrize.register_parametrization(layer, "weight", SoftSpectralNorm(layer.weight, coefficient))
    return network


def frozen(network: nn.Module) -> nn.Module:
    """The trained network with its parametrisations baked into plain weights (eval mode:
    the power iteration's last estimate), frozen: sampling costs one ordinary forward pass."""
    network.eval()
    for module in list(network.modules()):
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return network.requires_grad_(False)


def classifier_layer(network: nn.Module, model_name: str) -> nn.Linear:
    linears = [m for m in network.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UsageError(f"ddu needs a model ending in an nn.Linear layer; {model_name!r} has none")
    return linears[-1]


def features_and_logits(network: nn.Module, layer: nn.Linear, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's inputs (N, H) and the network's outputs (N, C), in one forward pass."""
    return features_and_outputs(network, layer, x, estimator="ddu")


@dataclass
class ClassGaussians:
    """Gaussian discriminant analysis on features: one Gaussian per class with its own
    covariance, and the class frequencies as the mixture weights, all in float64."""

    means: torch.Tensor  # (C, H)
    cholesky: torch.Tensor  # (C, H, H), lower triangular factors of the covariances
    log_weights: torch.Tensor  # (C,)
    jitter: float

    @classmethod
    def fit(cls, features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> ClassGaussians:
        z = features.double()
        present = [c for c in range(num_classes) if int((labels == c).sum()) >= 2]
        if len(present) < num_classes:
            missing = sorted(set(range(num_classes)) - set(present))
            raise UsageError(f"ddu needs at least 2 training examples of every class; classes {missing} have fewer")
        means = torch.stack([z[labels == c].mean(0) for c in range(num_classes)])
        covariances = torch.stack([torch.cov(z[labels == c].T, correction=1).reshape(z.shape[1], z.shape[1])
                                   for c in range(num_classes)])
        eye = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
        for jitter in JITTERS:
            factors, info = torch.linalg.cholesky_ex(covariances + jitter * eye)
            if int(info.max()) == 0:
                break
        else:
            raise UsageError("ddu: a class covariance of the features is not positive definite even with jitter 1")
        counts = torch.bincount(labels, minlength=num_classes).double()
        return cls(means, factors, (counts / counts.sum()).log(), jitter)

    def log_joint(self, features: torch.Tensor) -> torch.Tensor:
        """``log q(z | y) + log q(y)`` for every class, (N, C)."""
        centred = features.double()[None, :, :] - self.means[:, None, :]  # (C, N, H)
        whitened = torch.linalg.solve_triangular(self.cholesky, centred.transpose(1, 2), upper=False)  # (C, H, N)
        log_det = 2.0 * self.cholesky.diagonal(dim1=1, dim2=2).log().sum(1)  # (C,)
        dim = features.shape[1]
        log_density = -0.5 * (whitened.square().sum(1) + log_det[:, None] + dim * math.log(2 * math.pi))
        return (log_density + self.log_weights[:, None]).T

    def log_density(self, features: torch.Tensor) -> torch.Tensor:
        """``log q(z) = log sum_y q(z | y) q(y)``, (N,)."""
        return torch.logsumexp(self.log_joint(features), dim=1)


class DDU(UncertaintyEstimator):
    """Deep Deterministic Uncertainty (Mukhoti, Kirsch, van Amersfoort, Torr & Gal, CVPR
    2023, "Deep Deterministic Uncertainty: A New Simple Baseline"). A network of the model's
    spec trained by cross-entropy with (soft) spectral normalisation on its feature
    extractor, which with residual connections (where the architecture has them) keeps the
    features sensitive and smooth; then Gaussian discriminant analysis on its training
    features (one Gaussian per class, own covariance, jitter for positive definiteness).
    One deterministic forward pass: the softmax is the prediction and its aleatoric part
    (T = 1), the negative log feature density ``-log q(z)`` the epistemic, own OOD score.
    ``spectral_norm=False`` fits the density on the given model's features instead (the
    paper's ablation). Spectral normalisation bounds each convolution's reshaped weight
    matrix, not the convolution operator, and leaves BatchNorm unconstrained."""

    name: ClassVar[str] = "ddu"
    tasks: ClassVar[frozenset[Task]] = frozenset({"classification"})
    score_name: ClassVar[str | None] = "feature-density"
    defaults: ClassVar[dict[str, Any]] = {
        "spectral_norm": True,  # train an SN network of the model's spec; False uses the given model
        "coefficient": 3.0,  # the Lipschitz bound c per layer (the paper's 3 for Wide-ResNet)
    }

    def fit(self, task: EstimationTask) -> None:
        num_classes = int(task.info.num_classes or 0)
        if self.params["spectral_norm"]:
            coefficient = float(self.params["coefficient"])
            network = train_own(
                task, self, num_classes,
                lambda net, recipe: train_with_loss(net, task.train, recipe, F.cross_entropy, seed=task.seed,
                                                    device=task.device),
                prepare=lambda net: spectrally_normalised(net.to(task.device), coefficient),
            )
            self.network = frozen(network)
        else:
            self.network = task.model
        self.layer = classifier_layer(self.network, task.model_name)
        train = task.train.to(task.device)
        features = forward_in_batches(lambda x: features_and_logits(self.network, self.layer, x)[0], train.x)
        self.density = ClassGaussians.fit(features, train.y, num_classes)

    def sample(self, x: torch.Tensor) -> torch.Tensor:
        _, logits = features_and_logits(self.network, self.layer, x)
        return torch.softmax(logits, dim=-1).unsqueeze(0)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        features, _ = features_and_logits(self.network, self.layer, x)
        return -self.density.log_density(features)


@hookimpl
def benchtool_register_estimators(registry) -> None:
    registry.add(DDU)
