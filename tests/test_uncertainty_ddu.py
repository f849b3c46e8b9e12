"""DDU (Mukhoti et al., CVPR 2023) and the optional own-score contract it introduced."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest
import torch
from torch import nn

from benchtool.contracts.uncertainty import UncertaintyEstimator
from benchtool.errors import ContractViolation
from benchtool.testing import run_checks
from benchtool.testing.estimators import conformance_task
from benchtool_uncertainty.ddu import DDU, ClassGaussians, SoftSpectralNorm, spectrally_normalised
from benchtool_uncertainty.softmax import Softmax


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def spectral_norm(weight: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2))


@pytest.mark.parametrize("coefficient", [1.0, 3.0])
def test_soft_spectral_norm_bounds_the_largest_singular_value(coefficient: float) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(20, 30)
    with torch.no_grad():
        layer.weight.mul_(10.0)
    assert spectral_norm(layer.weight) > 3 * coefficient
    spectrally_normalised(nn.Sequential(layer, nn.Linear(30, 2)), coefficient)
    for _ in range(30):  # one power iteration per training forward
        layer(torch.zeros(1, 20))
    assert spectral_norm(layer.weight) == pytest.approx(coefficient, rel=1e-3)


def test_soft_spectral_norm_leaves_a_small_weight_alone_and_skips_the_classifier() -> None:
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 5), nn.ReLU(), nn.Linear(5, 3))
    small = network[0].weight.detach().clone() * 0.01
    with torch.no_grad():
        network[0].weight.copy_(small)
    spectrally_normalised(network, 3.0)
    assert torch.equal(network[0].weight, small)
    assert isinstance(network[0].parametrizations.weight[0], SoftSpectralNorm)
    assert not hasattr(network[4], "parametrizations")  # the classifier is not normalised


def test_class_gaussians_match_a_mixture_of_multivariate_normals() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(torch.tensor([40, 60, 100]))
    features = torch.randn(200, 4, generator=generator) @ torch.randn(4, 4, generator=generator) + labels[:, None]
    density = ClassGaussians.fit(features, labels, 3)
    assert density.jitter == 0.0
    z = torch.randn(7, 4, generator=generator).double()
    expected = []
    for c, weight in enumerate((0.2, 0.3, 0.5)):
        rows = features[labels == c].double()
        normal = torch.distributions.MultivariateNormal(rows.mean(0), torch.cov(rows.T))
        expected.append(normal.log_prob(z) + torch.log(torch.tensor(weight, dtype=torch.float64)))
    assert torch.allclose(density.log_density(z), torch.logsumexp(torch.stack(expected), 0), atol=1e-9)


def test_class_gaussians_add_jitter_for_a_dead_feature() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat(50)
    features = torch.cat([torch.randn(100, 3, generator=generator), torch.zeros(100, 1)], dim=1)  # a dead ReLU
    density = ClassGaussians.fit(features, labels, 2)
    assert density.jitter > 0
    assert torch.isfinite(density.log_density(features)).all()


def test_density_scores_far_inputs_as_more_out_of_distribution() -> None:
    task, test = conformance_task("classification")
    estimator = DDU()
    estimator.fit_checked(task)
    near, far = estimator.own_score(test.x), estimator.own_score(test.x + 20.0)
    assert float(far.min()) > float(near.max())
    assert estimator.own_score(test.x).shape == (len(test.x),)


def test_without_spectral_norm_the_given_model_is_used() -> None:
    task, test = conformance_task("classification")
    estimator = DDU(spectral_norm=False)
    estimator.fit_checked(task)
    assert estimator.network is task.model
    stats = estimator.predict(test.x)
    assert torch.allclose(stats.mean, torch.softmax(task.model(test.x), -1), atol=1e-6)


def test_every_class_needs_two_training_examples() -> None:
    task, _ = conformance_task("classification")
    keep = task.train.y != 2
    keep[torch.nonzero(task.train.y == 2)[0]] = True  # one example of class 2
    train = dataclasses.replace(task.train, x=task.train.x[keep], y=task.train.y[keep])
    lonely = dataclasses.replace(task, train=train)
    with pytest.raises(Exception, match=r"classes \[2\]"):
        DDU(spectral_norm=False).fit_checked(lonely)


# --- the optional own-score contract --------------------------------------------------------


def test_own_score_is_none_for_an_estimator_without_one() -> None:
    task, test = conformance_task("classification")
    estimator = Softmax()
    estimator.fit_checked(task)
    assert estimator.own_score(test.x) is None


class WrongShape(Softmax):
    """A softmax whose own score has the wrong shape."""

    name: ClassVar[str] = "wrong-shape-score"
    score_name: ClassVar[str | None] = "broken"

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), 2)


class NonFinite(WrongShape):
    """A softmax whose own score is NaN."""

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), float("nan"))


class Undeclared(Softmax):
    """A softmax that implements ``score`` but never names it."""

    name: ClassVar[str] = "undeclared-score"

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(1)


class Adapting(WrongShape):
    """A score that remembers the last batch it saw."""

    def score(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = getattr(self, "seen", 0.0) + float(x.sum())
        return x.sum(1) + self.seen


@pytest.mark.parametrize(("plugin", "rule"), [(WrongShape, "output-shape"), (NonFinite, "output-finite")])
def test_own_score_is_validated_by_the_harness(plugin: type[UncertaintyEstimator], rule: str) -> None:
    task, test = conformance_task("classification")
    estimator = plugin()
    estimator.fit_checked(task)
    with pytest.raises(ContractViolation, match=rule):
        estimator.own_score(test.x)
    failed = {r.check for r in run_checks(plugin) if not r.passed}
    assert failed == {"own-score"}


def test_conformance_catches_an_undeclared_or_adapting_score() -> None:
    assert {r.check for r in run_checks(Undeclared) if not r.passed} == {"own-score"}
    assert {r.check for r in run_checks(Adapting) if not r.passed} == {"own-score"}
    assert "own-score" not in {r.check for r in run_checks(Softmax)}
