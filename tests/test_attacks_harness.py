"""The harness side of the attack contract: guarded runs, sweeps, metrics on a fresh
forward pass, AutoAttack-style warnings, budgets and eps defaults."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from benchtool.contracts.attack import Attack, norm_tolerance, output_violations
from benchtool.contracts.data import DatasetInfo
from benchtool.errors import ContractViolation
from benchtool.harness.robustness import AttackWarning, eps_sweep, evaluate, model_warnings
from benchtool.testing.attacks import tiny_model
from benchtool_attacks.cw_l2 import CarliniWagnerL2
from benchtool_attacks.deepfool import DeepFool
from benchtool_attacks.fgsm import FGSM
from benchtool_attacks.square import SquareAttack

BOUNDS = (0.0, 1.0)


def batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((n, 1, 4, 4), generator=generator), torch.randint(0, 3, (n,), generator=generator)


class Identity(Attack):
    """Returns the inputs unchanged."""

    name = "identity"
    norm = "linf"
    needs_gradients = False

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        return x.clone()


class WrongSweep(Identity):
    """Overrides the sweep but returns one tensor too few (broken on purpose)."""

    name = "wrong-sweep"

    def perturb_sweep(self, model, x, y, eps_list, *, bounds, generator, targeted=False):
        return [x.clone() for _ in eps_list][1:]


class TrainsModel(Identity):
    """Changes a weight (broken on purpose)."""

    name = "trains-model"

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        with torch.no_grad():
            next(model.parameters()).add_(1.0)
        return x.clone()


def test_identity_metrics_equal_clean_and_cost_nothing():
    model = tiny_model()
    x, y = batch(12)
    [report] = evaluate(Identity(), model, x, y, [0.1], bounds=BOUNDS)
    clean = (model(x).argmax(1) == y).float().mean().item()
    assert report.clean_accuracy == report.robust_accuracy == pytest.approx(clean)
    assert report.max_norm == 0 and report.forward_queries == 0 and report.success_rate == 0


def test_queries_are_counted_through_the_wrapper():
    x, y = batch(5)
    outcome = FGSM()(tiny_model(), x, y, 0.1, bounds=BOUNDS)
    assert (outcome.forward_queries, outcome.gradient_queries) == (5, 5)
    square = SquareAttack(queries=20)(tiny_model(), x, y, 0.1, bounds=BOUNDS)
    assert square.gradient_queries == 0 and 5 <= square.forward_queries <= 20 * 5


def test_minimum_norm_attack_runs_once_per_sweep():
    x, y = batch(6)
    outcomes = DeepFool().sweep(tiny_model(), x, y, [0.0, 0.5, 1.0, 4.0], bounds=BOUNDS)
    assert len({(o.forward_queries, o.gradient_queries) for o in outcomes}) == 1
    norms = [(o.x_adv - x).flatten(1).norm(dim=1).max().item() for o in outcomes]
    assert norms[0] == 0 and all(n <= e + 1e-5 for n, e in zip(norms, [0.0, 0.5, 1.0, 4.0]))


def test_sweep_of_wrong_length_is_a_violation():
    x, y = batch(3)
    with pytest.raises(ContractViolation, match="perturb_sweep returned 1, expected 2 tensors"):
        WrongSweep().sweep(tiny_model(), x, y, [0.1, 0.2], bounds=BOUNDS)


def test_changed_model_is_restored_after_the_violation():
    model = tiny_model()
    before = [p.clone() for p in model.parameters()]
    x, y = batch(3)
    attempt = TrainsModel().attempt(model, x, y, [0.1], bounds=BOUNDS)
    assert attempt.rules() == {"model-unchanged"}
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_weights_keep_requires_grad_and_inputs_stay_put():
    model = tiny_model()
    x, y = batch(4)
    x_before = x.clone()
    FGSM()(model, x, y, 0.2, bounds=BOUNDS)
    assert all(p.requires_grad for p in model.parameters())
    assert torch.equal(x, x_before)


def test_bad_arguments_are_the_callers_error():
    x, y = batch(2)
    with pytest.raises(ValueError, match="eps must be"):
        FGSM()(tiny_model(), x, y, -0.1, bounds=BOUNDS)
    with pytest.raises(ValueError, match=r"outside the declared bounds \[0.0, 0.5\]"):
        FGSM()(tiny_model(), x, y, 0.1, bounds=(0.0, 0.5))
    with pytest.raises(ContractViolation, match="targeted-support"):
        DeepFool()(tiny_model(), x, y, 0.1, bounds=BOUNDS, targeted=True)


def test_warnings_for_probabilities_randomness_and_zero_gradients():
    x, y = batch(8)
    assert model_warnings(tiny_model(), x, y) == []
    softmax = nn.Sequential(tiny_model(), nn.Softmax(dim=1))
    assert any("probabilities" in note for note in model_warnings(softmax, x, y))
    assert any("change between two forward passes" in note for note in model_warnings(tiny_model().train(), x, y))
    constant = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    nn.init.zeros_(constant[1].weight)
    assert any("8 of 8 examples have an all-zero input gradient" in n for n in model_warnings(constant, x, y))
    with pytest.warns(AttackWarning, match="probabilities"):
        evaluate(FGSM(), softmax, x, y, [0.1], bounds=BOUNDS)


@given(scale=st.sampled_from([1.0, 255.0]), over=st.floats(1e-3, 1.0))
def test_norm_bound_tolerates_rounding_not_real_excess(scale, over):
    x = torch.rand((3, 1, 4, 4), generator=torch.Generator().manual_seed(0)) * scale
    eps = 0.1 * scale
    rounded = torch.clamp(x + eps, 0, scale)  # exactly eps up to float32 rounding
    assert output_violations("a", "linf", x, rounded, eps, (0.0, scale)) == []
    beyond = torch.clamp(x + eps + over * scale * 1e-2, 0, scale)
    if (beyond - x).abs().max() > eps + norm_tolerance("linf", eps, (0.0, scale), x):
        assert [v.rule for v in output_violations("a", "linf", x, beyond, eps, (0.0, scale))] == ["norm-bound"]
    assert norm_tolerance("linf", 0.3, (0.0, 1.0), x) < 2e-6


def test_at_budget_keeps_explicit_hyperparameters():
    cw = CarliniWagnerL2(learning_rate=0.1, max_iterations=7).at_budget("small")
    assert cw.params["binary_search_steps"] == 5
    assert cw.params["max_iterations"] == 7 and cw.params["learning_rate"] == 0.1
    assert CarliniWagnerL2().at_budget("full").params == CarliniWagnerL2.defaults
    with pytest.raises(TypeError, match="unknown hyper-parameter"):
        CarliniWagnerL2(lr=0.1)


def test_eps_sweeps():
    from benchtool.data.digits import Digits
    from benchtool.data.local import FashionMnist

    digits = Digits().info()
    assert eps_sweep(None, digits, "linf") == [0.0, 0.05, 0.1, 0.2, 0.3]  # declared by the dataset
    assert eps_sweep(None, FashionMnist().info(), "l2") == [0.0, 0.5, 1.0, 1.5]
    assert eps_sweep([0.0, 0.4], digits, "l2") == [0.0, 0.4]
    other = DatasetInfo("pixels", "classification", (3, 4, 4), 2, (0.0, 255.0))
    assert eps_sweep(None, other, "linf") == pytest.approx([0.0, 2.55, 7.65, 25.5])
    assert eps_sweep(None, other, "l2")[-1] == pytest.approx(25.5 * math.sqrt(48) / 4)
    with pytest.raises(ValueError, match=r"eps_sweeps\['linf'\] = \(0.1, 0.05\); expected increasing eps >= 0"):
        DatasetInfo("bad", "classification", (1, 2, 2), 2, (0.0, 1.0), eps_sweeps={"linf": (0.1, 0.05)})


def test_moved_harness_names_still_import_from_contracts_with_a_deprecation_warning() -> None:
    from benchtool.contracts import attack as old
    from benchtool.harness import robustness

    with pytest.warns(DeprecationWarning, match="moved to benchtool.harness.robustness.evaluate"):
        assert old.evaluate is robustness.evaluate
    with pytest.raises(AttributeError, match="no_such_name"):
        old.no_such_name  # noqa: B018
