"""Behaviour of the built-in estimators beyond the conformance rules: the method is right."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from benchtool.contracts.model import TrainRecipe
from benchtool.contracts.uncertainty import EstimationTask
from benchtool.data import toy
from benchtool.errors import HyperparameterError, UsageError
from benchtool.models.nets import MLP, dropout_layers
from benchtool.testing.estimators import conformance_task
from benchtool_uncertainty._training import gaussian_nll, residual_variance
from benchtool_uncertainty.deep_ensemble import DeepEnsemble
from benchtool_uncertainty.heteroscedastic import Heteroscedastic, heteroscedastic_softmax_nll
from benchtool_uncertainty.laplace_last_layer import (
    KroneckerPosterior,
    LaplaceLastLayer,
    features_and_outputs,
    last_linear,
    design,
)
from benchtool_uncertainty.mc_dropout import MCDropout
from benchtool_uncertainty.temperature_scaling import TemperatureScaling, fit_temperature


def without_dropout(task: EstimationTask) -> EstimationTask:
    model = nn.Sequential(*[m for m in task.model if not isinstance(m, nn.Dropout)])
    return dataclasses.replace(task, model=model, model_name="no-dropout-net")


def test_mc_dropout_refuses_a_model_without_dropout() -> None:
    task, _ = conformance_task("classification")
    with pytest.raises(UsageError, match="no-dropout-net.*has none"):
        MCDropout().fit_checked(without_dropout(task))


def test_mc_dropout_samples_a_copy_with_only_dropout_on() -> None:
    task, test = conformance_task("classification")
    estimator = MCDropout()
    estimator.fit_checked(task)
    network = estimator.network
    assert network is not task.model
    assert all(layer.training for layer in dropout_layers(network))
    assert not any(m.training for m in network.modules() if isinstance(m, nn.BatchNorm1d))
    assert not any(m.training for m in task.model.modules())
    stats = estimator.predict(test.x, seed=0)
    assert float(stats.mutual_information.max()) > 0  # the passes differ


def test_temperature_recovers_a_known_temperature() -> None:
    generator = torch.Generator().manual_seed(0)
    true_logits = 3.0 * torch.randn(20000, 5, generator=generator)
    labels = torch.multinomial(torch.softmax(true_logits, -1), 1, generator=generator).squeeze(1)
    assert fit_temperature(2.0 * true_logits, labels) == pytest.approx(2.0, rel=0.05)
    assert fit_temperature(0.5 * true_logits, labels) == pytest.approx(0.5, rel=0.05)


def test_temperature_is_one_when_validation_is_classified_perfectly() -> None:
    logits = torch.tensor([[3.0, 0.0], [0.0, 1.0], [2.0, 1.5]])
    assert fit_temperature(logits, torch.tensor([0, 1, 0])) == 1.0  # NLL has no minimum: T -> 0
    confident_error = torch.tensor([[1.0, 0.0], [0.0, 1.0], [4.0, 0.0]])
    assert fit_temperature(confident_error, torch.tensor([0, 1, 1])) > 1.0  # soften


def test_temperature_scaling_keeps_the_predicted_class() -> None:
    task, test = conformance_task("classification")
    estimator = TemperatureScaling()
    estimator.fit_checked(task)
    stats = estimator.predict(test.x)
    assert torch.equal(stats.mean.argmax(1), task.model(test.x).argmax(1))
    assert estimator.temperature > 0


@settings(max_examples=20)
@given(hidden=st.integers(1, 5), classes=st.integers(1, 4), tau=st.floats(1e-3, 1e3), seed=st.integers(0, 999),
       bias=st.booleans())
def test_kronecker_posterior_matches_the_dense_computation(hidden: int, classes: int, tau: float, seed: int,
                                                           bias: bool) -> None:
    generator = torch.Generator().manual_seed(seed)
    phi = torch.randn(7, hidden, generator=generator, dtype=torch.float64)
    width = hidden + bias  # with a bias, A is over [phi, 1]
    a_root = torch.randn(width, width, generator=generator, dtype=torch.float64)
    g_root = torch.randn(classes, classes, generator=generator, dtype=torch.float64)
    a, g = a_root @ a_root.T, g_root @ g_root.T
    posterior = KroneckerPosterior.from_factors(a, g, bias)
    posterior.prior_precision = tau
    # dense: precision A (x) G + tau I over column-major vec(W), W of shape (C, H') (H' = H + 1 with a bias)
    covariance = torch.linalg.inv(torch.kron(a, g) + tau * torch.eye(width * classes, dtype=torch.float64))
    for features, row in zip(phi, design(phi, bias)):
        jacobian = torch.kron(row[None, :], torch.eye(classes, dtype=torch.float64))
        dense = jacobian @ covariance @ jacobian.T
        variances = posterior.output_variances(features[None])[0]
        rebuilt = posterior.output_basis @ torch.diag(variances) @ posterior.output_basis.T
        assert torch.allclose(rebuilt, dense, rtol=1e-6, atol=1e-9)
        assert torch.allclose(posterior.marginal_variances(variances[None])[0], torch.diagonal(dense), atol=1e-9)


def test_laplace_regression_is_bayesian_linear_regression_on_the_features() -> None:
    task, test = conformance_task("regression")
    estimator = LaplaceLastLayer(prior_precision=2.0)
    estimator.fit_checked(task)
    layer = last_linear(task.model, "tiny")
    with torch.no_grad():
        train_phi, outputs = features_and_outputs(task.model, layer, task.train.x)
        test_phi, _ = features_and_outputs(task.model, layer, test.x)
    noise = residual_variance(outputs, task.train.y)
    inputs = design(train_phi, bias=True)
    covariance = torch.linalg.inv(inputs.T @ inputs / noise + 2.0 * torch.eye(inputs.shape[1], dtype=torch.float64))
    query = design(test_phi, bias=True)
    expected = ((query @ covariance) * query).sum(1)
    got = estimator.posterior.output_variances(test_phi)[:, 0]
    assert torch.allclose(got, expected, rtol=1e-6)


def test_laplace_tunes_the_prior_on_validation_and_grows_variance_away_from_the_data() -> None:
    task, test = conformance_task("regression")
    estimator = LaplaceLastLayer(num_samples=200)
    estimator.fit_checked(task)
    assert estimator.posterior.prior_precision > 0
    near = estimator.predict(test.x, seed=0).epistemic_variance.mean()
    far = estimator.predict(test.x + 40.0, seed=0).epistemic_variance.mean()
    assert far > 10 * near


def test_laplace_needs_the_output_to_be_the_last_linear_layer() -> None:
    task, _ = conformance_task("classification")
    scaled = nn.Sequential(task.model, nn.Softmax(dim=-1))
    with pytest.raises(UsageError, match="last nn.Linear"):
        LaplaceLastLayer().fit_checked(dataclasses.replace(task, model=scaled))
    convolutional = nn.Sequential(nn.Unflatten(1, (1, 4)), nn.Conv1d(1, 3, 4), nn.Flatten())
    with pytest.raises(UsageError, match="has none"):
        LaplaceLastLayer().fit_checked(dataclasses.replace(task, model=convolutional.eval()))


def test_gaussian_nll_matches_torch() -> None:
    generator = torch.Generator().manual_seed(0)
    output, target = torch.randn(50, 2, generator=generator), torch.randn(50, 1, generator=generator)
    expected = F.gaussian_nll_loss(output[:, :1], target, output[:, 1:].exp())
    assert float(gaussian_nll(output, target)) == pytest.approx(float(expected), rel=1e-5)


def test_heteroscedastic_softmax_loss_without_noise_is_cross_entropy() -> None:
    generator = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(20, 4, generator=generator), torch.randint(0, 4, (20,), generator=generator)
    output = torch.cat([logits, torch.full_like(logits, -60.0)], dim=1)  # sigma = e^-30
    loss = heteroscedastic_softmax_nll(5)(output, labels)
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-5)


def test_heteroscedastic_tracks_the_noise_level_where_the_data_is() -> None:
    """Kendall & Gal's regression head on the toy data: the predicted standard deviation
    follows the true one (0.05 .. 0.30) inside the support."""
    bundle = toy.ToyRegression().load(root=Path("."), seed=0)
    task = EstimationTask(
        info=bundle.info, train=bundle.train, val=bundle.val, model=MLP(bundle.info).eval(), model_name="mlp",
        train_member=lambda seed: MLP(bundle.info), device=torch.device("cpu"), seed=0, num_samples=1,
        budget="small", build_network=lambda k: MLP(dataclasses.replace(bundle.info, output_dim=k)),
        recipe=TrainRecipe(epochs=100, batch_size=64, lr=3e-3, schedule="cosine"),
    )
    estimator = Heteroscedastic()
    estimator.fit_checked(task)
    grid = np.concatenate([np.linspace(-3.8, -1.2, 40), np.linspace(1.2, 3.8, 40)])
    moments = estimator.predict(torch.tensor(grid, dtype=torch.float32).reshape(-1, 1))
    predicted = moments.aleatoric_variance[:, 0].sqrt().numpy()
    true = toy.noise_std(grid)
    assert np.corrcoef(predicted, true)[0, 1] > 0.8
    assert np.median(np.abs(predicted - true) / true) < 0.35


def test_deep_ensemble_size_comes_from_the_budget_or_the_parameter() -> None:
    task, _ = conformance_task("classification")
    default = DeepEnsemble()
    default.fit_checked(task)
    assert len(default.members) == 2  # small budget
    assert default.members[0] is task.model
    four = DeepEnsemble(members=4)
    four.fit_checked(task)
    assert len(four.members) == 4
    with pytest.raises(HyperparameterError, match="members >= 2"):
        DeepEnsemble(members=1).fit_checked(task)


def test_deep_ensemble_regression_members_go_through_the_network_cache(tmp_path: Path) -> None:
    """Each regression member is cached by its own seed (the harness's own_network, here on a
    temporary folder): a second fit trains nothing and gets the same members; a larger ensemble
    reuses the smaller one's members and trains only the new one."""
    from benchtool.models.trained import own_network

    task, _ = conformance_task("regression")
    trained_seeds: list[int] = []

    def cache(trains, build, train_):  # the harness's cache, counting what it trains
        def counted(network):
            trained_seeds.append(trains["member_seed"])
            return train_(network)
        return own_network("mlp", task.info, task.seed, task.recipe, trains, build, counted, device="cpu",
                           cache_dir=tmp_path)

    cached_task = dataclasses.replace(task, own_network=cache)
    first, again = DeepEnsemble(), DeepEnsemble()
    first.fit_checked(cached_task)
    again.fit_checked(cached_task)
    assert trained_seeds == [task.seed, task.seed + 1]  # the second fit loaded both
    for a, b in zip(first.members, again.members):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    uncached = DeepEnsemble()
    uncached.fit_checked(task)  # no cache: the very networks the cache holds
    for a, b in zip(first.members, uncached.members):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    DeepEnsemble(members=3).fit_checked(cached_task)
    assert trained_seeds == [task.seed, task.seed + 1, task.seed + 2]


def test_deep_ensemble_regression_needs_a_network_builder() -> None:
    task, _ = conformance_task("regression")
    with pytest.raises(UsageError, match="build_network"):
        DeepEnsemble().fit_checked(dataclasses.replace(task, build_network=None))


def test_estimators_reject_unknown_hyperparameters() -> None:
    with pytest.raises(TypeError, match="num_sample"):
        MCDropout(num_sample=3)


def test_mc_dropout_regression_adds_the_residual_noise() -> None:
    task, test = conformance_task("regression")
    estimator = MCDropout(num_samples=6)
    estimator.fit_checked(task)
    moments = estimator.predict(test.x, seed=1)
    assert torch.allclose(moments.aleatoric_variance, estimator.noise_variance.float().expand_as(moments.mean))
    assert float(moments.epistemic_variance.mean()) > 0
    assert math.isfinite(float(moments.total_variance.sum()))


class RecordsBatches(MCDropout):
    """MC dropout that notes the size of every batch ``sample`` is handed."""

    name = "records-batches"

    def sample(self, x: torch.Tensor):
        self.batches.append(len(x))
        return super().sample(x)


@pytest.mark.parametrize("task_kind", ["classification", "regression"])
def test_predict_samples_in_batches_and_joins_them_in_order(task_kind: str, monkeypatch) -> None:
    """Memory of one ``sample`` call is bounded by PREDICT_BATCH, not N; the statistics of the
    batches line up with the examples, and per-example figures of a deterministic pass equal
    those of one big batch."""
    import benchtool.contracts.uncertainty as contract

    task, test = conformance_task(task_kind)
    x = torch.cat([test.x] * 3)
    estimator = RecordsBatches(num_samples=4)
    estimator.fit_checked(task)
    estimator.batches = []
    whole = estimator.predict(x, seed=3)
    monkeypatch.setattr(contract, "PREDICT_BATCH", 7)
    estimator.batches = []
    batched = estimator.predict(x, seed=3)
    assert estimator.batches == [7] * (len(x) // 7) + ([len(x) % 7] if len(x) % 7 else [])
    for field in dataclasses.fields(whole):
        assert getattr(batched, field.name).shape == getattr(whole, field.name).shape
    assert torch.equal(batched.mean, estimator.predict(x, seed=3).mean)  # the same seed, the same draws
    still = copy.deepcopy(task.model)
    for layer in dropout_layers(still):
        layer.p = 0.0  # every pass the same: figures must not depend on the batching
    deterministic = RecordsBatches(num_samples=2)
    deterministic.fit_checked(dataclasses.replace(task, model=still))
    deterministic.batches = []
    one = deterministic.predict(x[:7])
    assert torch.allclose(deterministic.predict(x).mean[:7], one.mean, atol=1e-6)


def test_own_score_scores_in_batches_and_joins_them_in_order(monkeypatch) -> None:
    import benchtool.contracts.uncertainty as contract
    from benchtool_uncertainty.ddu import DDU

    class RecordsScoreBatches(DDU):
        name = "records-score-batches"

        def score(self, x: torch.Tensor) -> torch.Tensor:
            self.batches.append(len(x))
            return super().score(x)

    task, test = conformance_task("classification")
    estimator = RecordsScoreBatches(spectral_norm=False)
    estimator.fit_checked(task)
    estimator.batches = []
    whole = estimator.own_score(test.x)
    monkeypatch.setattr(contract, "PREDICT_BATCH", 7)
    estimator.batches = []
    batched = estimator.own_score(test.x)
    assert max(estimator.batches) == 7 and sum(estimator.batches) == len(test.x)
    assert torch.allclose(whole, batched, rtol=1e-5)
