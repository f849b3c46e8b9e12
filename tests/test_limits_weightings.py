"""Loss weightings: the formulas on hand-computed values, the fixed grid, GradNorm's
mechanics, the contract's checks, conformance, and registration through entry points."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from benchtool.contracts.limits import LossWeighting, TaskSpec
from benchtool.errors import ContractViolation, HyperparameterError
from benchtool.testing import check_plugin, parametrize_with_checks, registered, run_checks
from benchtool_limits.weightings import EqualWeighting, FixedWeighting, GradNormWeighting, UncertaintyWeighting

CLS_REG = (TaskSpec("label", "classification"), TaskSpec("value", "regression"))


@parametrize_with_checks(registered("loss_weightings"))
def test_registered_weighting_conforms(plugin, check):
    check(plugin)


def test_uncertainty_matches_kendall_formula_on_hand_computed_values() -> None:
    # classification: exp(-s) L + s/2; regression: 1/2 exp(-s) L + s/2 (Kendall et al. 2018, Eq. 7 and 10)
    weighting = UncertaintyWeighting()
    weighting.start(CLS_REG)
    with torch.no_grad():
        weighting.log_variance.copy_(torch.tensor([0.0, math.log(4.0)]))
    total = weighting.total_loss(torch.tensor([0.7, 3.0]))
    # 1 * 0.7 + 0  +  0.5 * 0.25 * 3.0 + 0.5 * ln 4
    assert float(total.detach()) == pytest.approx(0.7 + 0.375 + 0.5 * math.log(4.0), rel=1e-6)
    assert weighting.weights() == pytest.approx({"label": 1.0, "value": 0.125})
    assert weighting.extras() == pytest.approx({"sigma/label": 1.0, "sigma/value": 2.0})


@given(st.floats(0.01, 50.0), st.floats(0.01, 50.0))
def test_uncertainty_optimum_is_sigma_squared_equal_to_the_loss(cls_loss: float, reg_loss: float) -> None:
    """d/ds vanishes at s = ln(2 L) (classification) and s = ln L (regression)."""
    weighting = UncertaintyWeighting()
    weighting.start(CLS_REG)
    with torch.no_grad():
        weighting.log_variance.copy_(torch.tensor([math.log(2 * cls_loss), math.log(reg_loss)]))
    weighting.total_loss(torch.tensor([cls_loss, reg_loss])).backward()
    assert weighting.log_variance.grad.abs().max() < 1e-5


def test_uncertainty_parameters_get_their_own_learning_rate() -> None:
    weighting = UncertaintyWeighting(lr=0.2)
    weighting.start(CLS_REG)
    (group,) = weighting.parameter_groups(1e-3)
    assert group["lr"] == 0.2 and group["params"] == [weighting.log_variance]
    assert EqualWeighting().parameter_groups(1e-3) == []


def test_equal_and_fixed_are_weighted_sums() -> None:
    losses = torch.tensor([1.0, 2.0, 4.0])
    tasks = (*CLS_REG, TaskSpec("other", "regression"))
    equal, fixed = EqualWeighting(), FixedWeighting(weights=(1.0, 0.5, 10.0))
    equal.start(tasks)
    fixed.start(tasks)
    assert float(equal.total_loss(losses)) == 7.0
    assert float(fixed.total_loss(losses)) == pytest.approx(1.0 + 1.0 + 40.0)
    assert fixed.weights() == {"label": 1.0, "value": 0.5, "other": 10.0}


def test_fixed_grid_is_every_level_for_all_but_the_first_task() -> None:
    tasks = (*CLS_REG, TaskSpec("other", "regression"))
    grid = FixedWeighting().variants(tasks)
    assert len(grid) == 16  # levels (0.1, 1, 10, 100) for two tasks
    assert {v["weights"][0] for v in grid} == {1.0}
    levels = (0.1, 1.0, 10.0, 100.0)
    assert {v["weights"][1:] for v in grid} == {(a, b) for a in levels for b in levels}
    assert FixedWeighting(levels=(1.0, 2.0)).variants(CLS_REG) == [{"weights": (1.0, 1.0)}, {"weights": (1.0, 2.0)}]


@pytest.mark.parametrize("weights", [(1.0,), (1.0, -1.0), (1.0, 0.0)])
def test_fixed_rejects_bad_weights(weights) -> None:
    with pytest.raises(HyperparameterError, match="positive numbers"):
        FixedWeighting(weights=weights).start(CLS_REG)


def test_unknown_hyperparameter_names_the_scheme() -> None:
    with pytest.raises(TypeError, match="uncertainty.*nonsense"):
        UncertaintyWeighting(nonsense=1)


def _shared_problem() -> tuple[torch.Tensor, torch.Tensor]:
    """Two task losses through one shared matrix; task 0's gradient is 10x task 1's."""
    shared = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    x = torch.tensor([1.0, 1.0])
    out = x @ shared
    return shared, torch.stack([10.0 * out.sum(), out.sum()])


def test_gradnorm_network_sees_the_weighted_sum_only() -> None:
    weighting = GradNormWeighting()
    weighting.start(CLS_REG)
    with torch.no_grad():
        weighting.w.copy_(torch.tensor([0.5, 1.5]))
    shared, losses = _shared_problem()
    weighting.total_loss(losses, [shared]).backward()
    # d/dW (0.5 * 10 sum(xW) + 1.5 * sum(xW)) = 6.5 * x 1^T
    assert torch.allclose(shared.grad, torch.full((2, 2), 6.5))


def test_gradnorm_lowers_the_weight_of_the_task_with_the_larger_gradient() -> None:
    weighting = GradNormWeighting()
    weighting.start(CLS_REG)
    shared, losses = _shared_problem()
    weighting.total_loss(losses, [shared]).backward()  # first call: loss ratios are 1
    grad = weighting.w.grad
    assert grad[0] > 0 > grad[1]  # gradient descent shrinks w_0 and grows w_1
    with torch.no_grad():
        weighting.w.sub_(0.1 * grad)
    weighting.after_step()
    assert float(weighting.w.detach().sum()) == pytest.approx(2.0)  # renormalized to the number of tasks
    assert weighting.w[0] < weighting.w[1]


def test_gradnorm_needs_the_shared_layer() -> None:
    weighting = GradNormWeighting()
    weighting.start(CLS_REG)
    with pytest.raises(ContractViolation, match="plugin 'gradnorm' raised ValueError: .*shared"):
        weighting.total_loss(torch.ones(2, requires_grad=True))


# --- the contract catches broken schemes -------------------------------------------


class VectorObjective(EqualWeighting):
    """Returns the losses unsummed (broken on purpose)."""

    name: ClassVar[str] = "vector-objective"

    def combine(self, losses, shared):
        return losses * 1.0


class NegativeWeights(EqualWeighting):
    """Reports a negative weight (broken on purpose)."""

    name: ClassVar[str] = "negative-weights"

    def task_weights(self):
        return -torch.ones(len(self.tasks))


class EditsLosses(EqualWeighting):
    """Zeroes the caller's loss vector in place (broken on purpose)."""

    name: ClassVar[str] = "edits-losses"

    def combine(self, losses, shared):
        total = losses.sum()
        losses.data.zero_()
        return total


class DetachedObjective(EqualWeighting):
    """Returns a constant (broken on purpose)."""

    name: ClassVar[str] = "detached"

    def combine(self, losses, shared):
        return losses.detach().sum()


@pytest.mark.parametrize("broken, rule", [
    (VectorObjective, "output-scalar"),
    (NegativeWeights, "weights-valid"),
    (EditsLosses, "input-untouched"),
    (DetachedObjective, "output-differentiable"),
])
def test_contract_names_the_broken_rule(broken: type[LossWeighting], rule: str) -> None:
    weighting = broken()
    weighting.start(CLS_REG)
    with pytest.raises(ContractViolation, match=rule):
        weighting.total_loss(torch.tensor([1.0, 2.0], requires_grad=True).clone())
        weighting.weights()


def test_conformance_reports_broken_schemes() -> None:
    failed = {r.check for r in run_checks(DetachedObjective) if not r.passed}
    assert {"objective-valid", "every-task-pulls"} <= failed
    check_plugin(EqualWeighting)  # no error


def test_wrong_number_of_losses_is_a_clear_error() -> None:
    weighting = EqualWeighting()
    weighting.start(CLS_REG)
    with pytest.raises(ValueError, match="expected 2 task losses"):
        weighting.total_loss(torch.ones(3))


def test_setup_rejects_duplicate_task_names() -> None:
    with pytest.raises(ValueError, match="unique"):
        EqualWeighting().start((TaskSpec("a", "regression"), TaskSpec("a", "regression")))
    with pytest.raises(ValueError, match="kind"):
        TaskSpec("a", "ranking")  # type: ignore[arg-type]


def test_builtins_are_registered_through_entry_points() -> None:
    from benchtool.host import load_host

    registry = load_host().registry
    assert {"equal", "fixed", "uncertainty", "gradnorm"} <= set(registry.names("loss_weightings"))
    assert {"sine", "abs", "triangle-wave", "product-sine"} <= set(registry.names("target_functions"))
    assert registry.get("loss_weightings", "uncertainty").source.name == "loss-weightings"
