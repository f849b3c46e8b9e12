"""A Laplace approximation over the network's last linear layer (our own implementation)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from benchtool import hookimpl
from benchtool.contracts.data import Task
from benchtool.contracts.uncertainty import EstimationTask, UncertaintyEstimator
from benchtool.errors import UsageError
from benchtool_uncertainty._sampling import FORWARD_BATCH, sampled_in_chunks
from benchtool_uncertainty._training import residual_variance

PRIOR_PRECISION_GRID = tuple(10.0 ** (k / 4) for k in range(-16, 17))  # 1e-4 .. 1e4, 4 per decade


def last_linear(model: nn.Module, model_name: str) -> nn.Linear:
    """The last ``nn.Linear`` module in registration order: the layer the posterior is over."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UsageError(f"laplace-last-layer needs a model ending in an nn.Linear layer; {model_name!r} has none")
    return linears[-1]


def features_and_outputs(model: nn.Module, layer: nn.Linear, x: torch.Tensor, *,
                         estimator: str = "laplace-last-layer") -> tuple[torch.Tensor, torch.Tensor]:
    """The last layer's inputs (N, H) and the model's outputs (N, C), one forward pass per
    batch of :data:`FORWARD_BATCH` examples; a :class:`UsageError` naming ``estimator`` when
    the model's output is not that layer's output."""
    parts = [_features_and_outputs(model, layer, part, estimator) for part in (x.split(FORWARD_BATCH) or (x,))]
    return torch.cat([features for features, _ in parts]), torch.cat([out for _, out in parts])


def _features_and_outputs(model: nn.Module, layer: nn.Linear, x: torch.Tensor,
                          estimator: str) -> tuple[torch.Tensor, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}

    def capture(_module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen["features"], seen["output"] = inputs[0], output

    handle = layer.register_forward_hook(capture)
    try:
        out = model(x)
    finally:
        handle.remove()
    if "output" not in seen or not torch.equal(seen["output"], out):
        raise UsageError(
            f"{estimator} needs the model's output to be its last nn.Linear layer's output "
            f"(no operation after it); layer {layer} is not the output"
        )
    return seen["features"].flatten(1), out


def design(features: torch.Tensor, bias: bool) -> torch.Tensor:
    """The last layer's inputs in float64, ``[phi, 1]`` when it has a bias (the bias is then
    part of its posterior), else ``phi``."""
    if not bias:
        return features.double()
    ones = torch.ones(len(features), 1, dtype=torch.float64, device=features.device)
    return torch.cat([features.double(), ones], dim=1)


@dataclass
class KroneckerPosterior:
    """Posterior precision ``A (x) G + tau I`` over the last layer's weights (and bias, if it
    has one), kept as the eigendecompositions of A (features) and G (outputs), so the prior
    is added exactly (Ritter, Botev & Barber, ICLR 2018; the eigenbasis form of Daxberger et
    al., NeurIPS 2021, "Laplace Redux"). H' below is H + 1 with a bias, H without."""

    feature_basis: torch.Tensor  # Q_A, (H', H')
    feature_eigenvalues: torch.Tensor  # (H',)
    output_basis: torch.Tensor  # Q_G, (C, C)
    output_eigenvalues: torch.Tensor  # (C,)
    prior_precision: float = 1.0
    bias: bool = True  # whether A is over [phi, 1] (the layer has a bias) or phi

    @classmethod
    def from_factors(cls, a: torch.Tensor, g: torch.Tensor, bias: bool = True) -> KroneckerPosterior:
        eig_a, basis_a = torch.linalg.eigh(a)
        eig_g, basis_g = torch.linalg.eigh(g)
        return cls(basis_a, eig_a.clamp_min(0), basis_g, eig_g.clamp_min(0), bias=bias)

    def projected_squares(self, features: torch.Tensor) -> torch.Tensor:
        """``a_ni^2``, (N, H'): the layer's inputs (:func:`design`) in A's eigenbasis, squared;
        they do not depend on the prior precision."""
        return (design(features, self.bias) @ self.feature_basis).square()

    def output_variances(self, features: torch.Tensor, prior_precision: float | None = None) -> torch.Tensor:
        """Variances of the outputs in G's eigenbasis, (N, C): the output covariance of
        input n is ``Q_G diag(v_n) Q_G^T`` with ``v_nk = sum_i a_ni^2 / (l_i g_k + tau)``."""
        return self.variances_of(self.projected_squares(features), prior_precision)

    def variances_of(self, squares: torch.Tensor, prior_precision: float | None = None) -> torch.Tensor:
        """:meth:`output_variances` from the :meth:`projected_squares` of the features."""
        tau = self.prior_precision if prior_precision is None else prior_precision
        inverse = 1.0 / (self.feature_eigenvalues[:, None] * self.output_eigenvalues[None, :] + tau)
        return squares @ inverse

    def marginal_variances(self, variances: torch.Tensor) -> torch.Tensor:
        """Per-output variances (the covariance's diagonal) from eigenbasis variances."""
        return variances @ self.output_basis.square().T

    def draw(self, outputs: torch.Tensor, variances: torch.Tensor, t: int) -> torch.Tensor:
        """``t`` samples of the outputs, (t, N, C)."""
        noise = torch.randn((t, *outputs.shape), dtype=torch.float64, device=outputs.device)
        perturbation = (variances.sqrt() * noise) @ self.output_basis.T
        return (outputs.double() + perturbation).to(outputs.dtype)


def probit_nll(logits: torch.Tensor, marginal: torch.Tensor, labels: torch.Tensor) -> float:
    """NLL of the probit-approximated predictive ``softmax(f / sqrt(1 + pi/8 var))`` (MacKay 1992)."""
    scaled = logits.double() / torch.sqrt(1.0 + math.pi / 8.0 * marginal)
    return float(F.cross_entropy(scaled, labels))


def gaussian_nll(mean: torch.Tensor, variance: torch.Tensor, target: torch.Tensor) -> float:
    target = target.reshape(mean.shape).double()
    return float((0.5 * torch.log(2 * math.pi * variance) + (target - mean.double()) ** 2 / (2 * variance)).mean())


class LaplaceLastLayer(UncertaintyEstimator):
    """A Gaussian posterior over the last linear layer at the trained weights, with the
    Kronecker-factored generalised Gauss-Newton as its precision and an isotropic prior
    whose precision is chosen on the validation split by NLL (MacKay 1992; Ritter et al.
    2018; Daxberger et al. 2021, "Laplace Redux"); the bias is in the posterior when the layer
    has one. Regression uses a homoscedastic noise
    variance fit to the training residuals. Predictions sample the linearised outputs."""

    name: ClassVar[str] = "laplace-last-layer"
    tasks: ClassVar[frozenset[Task]] = frozenset({"classification", "regression"})
    defaults: ClassVar[dict[str, Any]] = {
        "num_samples": None,  # T; None takes the budget's task.num_samples
        "prior_precision": None,  # None tunes it on validation over PRIOR_PRECISION_GRID
    }

    def fit(self, task: EstimationTask) -> None:
        self.model = task.model
        self.layer = last_linear(task.model, task.model_name)
        self.num_samples = int(self.params["num_samples"] or task.num_samples)
        self.regression = task.info.task == "regression"
        train, val = task.train.to(task.device), task.val.to(task.device)
        with torch.no_grad():
            features, outputs = features_and_outputs(self.model, self.layer, train.x)
            bias = self.layer.bias is not None
            phi = design(features, bias)
            if self.regression:
                self.noise_variance = residual_variance(outputs, train.y)
                g = torch.diag(1.0 / self.noise_variance)
            else:
                p = torch.softmax(outputs.double(), dim=-1)
                g = torch.diag(p.mean(0)) - p.T @ p / len(p)  # mean of diag(p) - p p^T
            self.posterior = KroneckerPosterior.from_factors(phi.T @ phi, g, bias)
            fixed = self.params["prior_precision"]
            self.posterior.prior_precision = float(fixed) if fixed is not None else self._tune(val)

    def _tune(self, val: Any) -> float:
        """The grid's prior precision with the lowest validation NLL."""
        features, outputs = features_and_outputs(self.model, self.layer, val.x)
        squares = self.posterior.projected_squares(features)
        scores = []
        for tau in PRIOR_PRECISION_GRID:
            variances = self.posterior.variances_of(squares, tau)
            marginal = self.posterior.marginal_variances(variances)
            if self.regression:
                scores.append(gaussian_nll(outputs, marginal + self.noise_variance, val.y))
            else:
                scores.append(probit_nll(outputs, marginal, val.y))
        return PRIOR_PRECISION_GRID[min(range(len(scores)), key=scores.__getitem__)]

    def sample(self, x: torch.Tensor) -> Iterator[Any]:
        features, outputs = features_and_outputs(self.model, self.layer, x)
        variances = self.posterior.output_variances(features)
        bytes_per_sample = outputs.numel() * 8 * 3  # noise, perturbation, sample in float64

        def draw(t: int) -> Any:
            samples = self.posterior.draw(outputs, variances, t)
            if self.regression:
                noise = self.noise_variance.to(samples.dtype).expand_as(samples)
                return samples, noise.clone()
            return torch.softmax(samples, dim=-1)

        yield from sampled_in_chunks(draw, self.num_samples, bytes_per_sample, x.device)


@hookimpl
def benchtool_register_estimators(registry) -> None:
    registry.add(LaplaceLastLayer)
