"""``laplace-last-layer`` against laplace-torch (Daxberger et al., NeurIPS 2021, "Laplace
Redux"), the reference implementation, on the same trained network and the same prior.

Ours treats the last layer's weight and bias as one matrix ``[W b]`` acting on ``[phi, 1]``,
so its Kronecker factor A is over the features with a bias column; laplace-torch (through
curvlinops' KFAC, ``separate_weight_and_bias=True``) gives the bias a block of its own. The
two therefore agree exactly on an equivalent network whose last layer has no bias and reads
``[phi, 1]`` with the weight ``[W b]``: laplace-torch runs on that one, ours on the original.
A last layer without a bias is compared as it is: ours then leaves the bias column out.
Both then add the prior exactly in the eigenbasis (laplace-torch's ``KronDecomposed``, no
damping), so the functional covariance of the logits must match to rounding, and with it
laplace-torch's probit predictive (``pred_type="glm", link_approx="probit"``), computed here
from our posterior by the same formula. Our estimator samples that Gaussian over the logits
(``link_approx="mc"`` in laplace-torch's terms); its draws differ from laplace-torch's, so the
Monte Carlo predictives agree only to Monte Carlo error, tested with a bound of that size.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from benchtool.contracts.data import DatasetInfo, Split
from benchtool.contracts.uncertainty import EstimationTask
from benchtool.testing.estimators import raw_samples
from benchtool_uncertainty.laplace_last_layer import LaplaceLastLayer, features_and_outputs

laplace = pytest.importorskip(
    "laplace",
    reason="laplace-torch is not installed: pip install --no-deps laplace-torch curvlinops-for-pytorch "
           "backpack-for-pytorch einops einconv unfoldNd linear_operator opt-einsum",
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PRIOR_PRECISIONS = (0.5, 20.0)
HIDDEN = 16
MC_SAMPLES = 4000
TINY_PROBABILITY = 1e-4  # differences below this are immaterial in a predictive probability


class AppendOne(nn.Module):
    """``[phi, 1]``: the bias column, so a bias-free linear layer computes ``W phi + b``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], dim=1)


def digits_splits() -> tuple[Split, Split, Split]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.as_tensor(x / 16.0, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return Split(x[:600], y[:600]), Split(x[600:800], y[600:800]), Split(x[800:900], y[800:900])


def trained_mlp(last_bias: bool) -> tuple[nn.Module, Split, Split, Split]:
    """A small MLP trained full-batch on digits for a moment: confident but not saturated."""
    train, val, test = digits_splits()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 10, bias=last_bias))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(train.x), train.y).backward()
        optimizer.step()
    return model.eval().requires_grad_(False), train, val, test


@pytest.fixture(scope="module")
def trained(one_torch_thread: None) -> tuple[nn.Module, Split, Split, Split]:
    return trained_mlp(last_bias=True)


def bias_free_equivalent(model: nn.Sequential) -> nn.Sequential:
    """The same function with the last layer's bias folded into a ``[phi, 1]`` input (a copy
    whose last layer takes gradients, as laplace-torch needs); an unchanged copy when that
    layer has no bias."""
    model = copy.deepcopy(model)
    if model[-1].bias is None:
        model[-1].requires_grad_(True)
        return model
    body, last = model[:-1], model[-1]
    folded = nn.Linear(last.in_features + 1, last.out_features, bias=False)
    with torch.no_grad():
        folded.weight.copy_(torch.cat([last.weight, last.bias[:, None]], dim=1))
    return nn.Sequential(*body, AppendOne(), folded)


def ours(model: nn.Module, train: Split, val: Split, tau: float, num_samples: int = 1) -> LaplaceLastLayer:
    info = DatasetInfo("digits-crosscheck", "classification", (64,), 10, (0.0, 1.0))
    estimator = LaplaceLastLayer(prior_precision=tau, num_samples=num_samples)
    estimator.fit_checked(EstimationTask(
        info=info, train=train, val=val, model=model, model_name="mlp-crosscheck",
        train_member=lambda seed: model, device=torch.device("cpu"), seed=0, num_samples=num_samples, budget="small",
    ))
    return estimator


def reference(model: nn.Module, train: Split, tau: float, dtype: torch.dtype) -> object:
    """laplace-torch's last-layer KFAC Laplace, fit full-batch (one batch, so its Kronecker
    factors are those of the whole training set, not a sum of per-batch products)."""
    equivalent = bias_free_equivalent(model).to(dtype)
    la = laplace.Laplace(equivalent, "classification", subset_of_weights="last_layer", hessian_structure="kron",
                         prior_precision=tau)
    data = torch.utils.data.TensorDataset(train.x.to(dtype), train.y)
    la.fit(torch.utils.data.DataLoader(data, batch_size=len(train)))
    return la


def our_covariance(estimator: LaplaceLastLayer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) and their posterior covariance (N, C, C): ``Q_G diag(v_n) Q_G^T``."""
    features, logits = features_and_outputs(estimator.model, estimator.layer, x)
    variances = estimator.posterior.output_variances(features)
    basis = estimator.posterior.output_basis
    return logits.double(), torch.einsum("ck,nk,dk->ncd", basis, variances, basis)


@pytest.mark.parametrize("tau", PRIOR_PRECISIONS)
def test_functional_covariance_and_probit_predictive_match(trained, tau: float) -> None:
    assert_matches_reference(*trained, tau)


def test_a_last_layer_without_bias_has_no_bias_in_its_posterior(one_torch_thread: None) -> None:
    model, train, val, test = trained_mlp(last_bias=False)
    assert ours(model, train, val, 1.0).posterior.feature_basis.shape == (HIDDEN, HIDDEN)
    assert_matches_reference(model, train, val, test, PRIOR_PRECISIONS[1])


def assert_matches_reference(model: nn.Module, train: Split, val: Split, test: Split, tau: float) -> None:
    estimator = ours(model, train, val, tau)
    la = reference(model, train, tau, torch.float64)
    f_mu, f_var = la._glm_predictive_distribution(test.x.double())
    logits, covariance = our_covariance(estimator, test.x)
    assert torch.allclose(f_mu, logits, atol=1e-5)
    scale = float(covariance.abs().max())
    assert float((f_var - covariance).abs().max()) <= 1e-6 * scale
    # the probit predictive both define: softmax(f / sqrt(1 + pi/8 diag(Sigma)))
    probit = torch.softmax(logits / torch.sqrt(1.0 + math.pi / 8.0 * covariance.diagonal(dim1=1, dim2=2)), dim=-1)
    reference_probit = la(test.x.double(), pred_type="glm", link_approx="probit")
    assert float((probit - reference_probit).abs().max()) <= 1e-3


def test_sampled_predictive_matches_to_monte_carlo_error(trained) -> None:
    """Our sampled predictive vs laplace-torch's GLM predictive samples (``link_approx="mc"``):
    independent draws from the same Gaussian over the logits, so each probability may differ
    only by Monte Carlo error: within 5 standard errors of the difference (each side's own),
    per entry, or by less than ``TINY_PROBABILITY``. A probability of order 1e-5 is a
    softmax of a Gaussian far in its tail: its draws are so skewed that 4000 of them estimate
    its standard error too low (on one machine 3 of 1000 such entries sat 5.0-5.5 estimated
    errors apart, 2e-5 in probability), while a wrong covariance moves the probabilities in
    the body of the distribution by far more than either bound."""
    model, train, val, test = trained
    tau = PRIOR_PRECISIONS[0]
    estimator = ours(model, train, val, tau, num_samples=MC_SAMPLES)
    # the mean of the raw passes (the harness's kernels reduce them the same way, see
    # tests/test_kernels_predictive.py), which keeps their thread pool out of this test
    passes = torch.cat(raw_samples(estimator, test.x, seed=0)).double()
    mc = passes.mean(0)
    la = reference(model, train, tau, torch.float64)
    samples = la.predictive_samples(test.x.double(), pred_type="glm", n_samples=MC_SAMPLES,
                                    generator=torch.Generator().manual_seed(1))
    reference_mc = samples.mean(0)
    standard_error = torch.sqrt(samples.var(0) / MC_SAMPLES + passes.var(0) / len(passes))
    assert torch.all((mc - reference_mc).abs() <= 5.0 * standard_error + TINY_PROBABILITY)
    assert float((mc - reference_mc).abs().mean()) <= 1e-3
