"""The approximation suite's mechanics: widths and grids as documented, the batched
networks' independence, the least-squares refit, and the target-function contract."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch

from benchtool.contracts.limits import TargetFunction
from benchtool.errors import ContractViolation, UsageError
from benchtool.harness.limits.approximation import (
    OUTSIDE_MARGIN, TOLERANCE, WIDTHS, ApproximationRecipe, ApproximationResult, ShallowNetworks, WidthFit,
    approximation_recipe, check_domain, evaluation_sets, expanded, fit_widths, inside,
)
from benchtool.testing import parametrize_with_checks, registered, run_checks
from benchtool_limits.targets import Absolute, ProductSine, Sine, TriangleWave

@parametrize_with_checks(registered("target_functions"))
def test_registered_target_conforms(plugin, check):
    check(plugin)


def test_widths_and_grids_are_as_documented() -> None:
    assert WIDTHS == (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    assert OUTSIDE_MARGIN == 0.5 and TOLERANCE == 0.05
    assert [approximation_recipe(b).steps for b in ("small", "default", "full")] == [100, 1500, 6000]
    with pytest.raises(UsageError, match="huge"):
        approximation_recipe("huge")


def test_evaluation_grid_in_one_dimension() -> None:
    grid_in, grid_out = evaluation_sets(((-1.0, 1.0),))
    assert grid_in.shape == (2001, 1)
    assert float(grid_in.min()) == -1.0 and float(grid_in.max()) == 1.0
    assert not inside(grid_out, ((-1.0, 1.0),)).any()
    assert float(grid_out.min()) == pytest.approx(-2.0) and float(grid_out.max()) == pytest.approx(2.0)
    assert len(grid_out) == 2000  # 1000 points on each side, the inside grid's spacing (0.001)
    spacing = grid_out[:, 0].sort().values.diff()
    assert torch.allclose(spacing[spacing < 0.5], torch.full_like(spacing[spacing < 0.5], 0.001), atol=1e-5)


def test_evaluation_grid_in_two_dimensions() -> None:
    box = ((-1.0, 1.0), (0.0, 4.0))
    grid_in, grid_out = evaluation_sets(box)
    assert grid_in.shape == (101 * 101, 2)
    assert inside(grid_in, box).all() and not inside(grid_out, box).any()
    assert inside(grid_out, expanded(box)).all()
    assert expanded(box) == ((-2.0, 2.0), (-2.0, 6.0))
    assert len(grid_out) == 201 * 201 - 101 * 101


def test_each_width_gets_only_its_own_gradient() -> None:
    """Summing the widths' losses trains each exactly as alone: a width's loss moves only its units."""
    nets = ShallowNetworks((1, 2, 4), ((-1.0, 1.0),), torch.Generator().manual_seed(0))
    x = torch.linspace(-1, 1, 9)[:, None]
    per_width = nets(x).pow(2).mean(dim=1)
    per_width[1].backward()
    owner = nets.owner
    assert owner.tolist() == [0, 1, 1, 2, 2, 2, 2]
    for grad in (nets.hidden_weight.grad[0], nets.hidden_bias.grad, nets.out_weight.grad):
        assert (grad[owner != 1] == 0).all() and (grad[owner == 1] != 0).any()
    assert nets.out_bias.grad.tolist()[0] == 0 and nets.out_bias.grad.tolist()[2] == 0


def test_batched_output_equals_each_width_computed_alone() -> None:
    nets = ShallowNetworks((2, 3), ((-1.0, 1.0), (-1.0, 1.0)), torch.Generator().manual_seed(1))
    x = torch.randn(5, 2)
    out = nets(x)
    for k, cols in enumerate((slice(0, 2), slice(2, 5))):
        hidden = torch.tanh(x @ nets.hidden_weight[:, cols] + nets.hidden_bias[cols])
        alone = hidden @ nets.out_weight[cols] + nets.out_bias[k]
        assert torch.allclose(out[k], alone, atol=1e-6)


def test_refit_solves_the_output_layer_exactly() -> None:
    nets = ShallowNetworks((4, 8), ((-1.0, 1.0),), torch.Generator().manual_seed(2))
    x = torch.linspace(-1, 1, 64)[:, None]
    for k, cols in enumerate((slice(0, 4), slice(4, 12))):
        with torch.no_grad():  # a target this width's hidden units can express exactly
            features = nets.features(x)[:, cols]
            target = features @ torch.linspace(-2.0, 3.0, features.shape[1]) + 0.25
        nets.refit_output_layer(x, target, ridge=0.0)
        with torch.no_grad():
            assert float((nets(x)[k] - target).abs().max()) < 1e-4


def test_fit_widths_records_every_width_and_reduces_error() -> None:
    recipe = ApproximationRecipe(steps=60, train_points=(128, 256))
    result = fit_widths(Sine(), recipe, seed=0, widths=(1, 32))
    assert [f.width for f in result.fits] == [1, 32]
    assert all(math.isfinite(v) for f in result.fits for v in vars(f).values())
    assert result.fits[1].inside_rms < 0.5 * result.fits[0].inside_rms
    assert result.target_range == pytest.approx(2.0, abs=1e-3)
    assert set(result.loss_curves) == {1, 32} and len(result.loss_curves[1]) == len(result.loss_steps)
    assert fit_widths(Sine(), recipe, seed=0, widths=(1, 32)).fits == result.fits  # seeded


def test_width_needed_is_the_first_width_within_tolerance() -> None:
    fits = [WidthFit(w, 0, err, 0, 0, 0) for w, err in ((1, 0.5), (2, 0.09), (4, 0.05), (8, 0.2))]
    result = ApproximationResult("t", (1, 2, 4, 8), fits, target_range=2.0)
    assert result.width_needed() == 2.0  # 0.09 <= 5% of 2
    assert result.width_needed(tolerance=0.01) == math.inf


class Jump(TargetFunction):
    """A step function (broken on purpose: not continuous)."""

    name: ClassVar[str] = "jump"
    domain: ClassVar[tuple[tuple[float, float], ...]] = ((-1.0, 1.0),)

    def evaluate(self, x):
        return (x[:, 0] > 0.1).to(x.dtype)


class WrongShape(Jump):
    name: ClassVar[str] = "wrong-shape"

    def evaluate(self, x):
        return x.clone()


class BadDomain(Sine):
    name: ClassVar[str] = "bad-domain"
    domain: ClassVar[tuple[tuple[float, float], ...]] = ((1.0, -1.0),)


def test_conformance_catches_broken_targets() -> None:
    failed = lambda plugin: {r.check for r in run_checks(plugin) if not r.passed}  # noqa: E731
    assert failed(Jump) == {"continuous"}
    assert "finite-inside-and-outside" in failed(WrongShape)
    assert "domain-valid" in failed(BadDomain)
    with pytest.raises(ContractViolation, match="output-shape"):
        WrongShape()(torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"expected inputs of shape \(N, 2\)"):
        ProductSine()(torch.zeros(3, 1))
    with pytest.raises(ContractViolation, match="domain-valid"):
        check_domain(BadDomain())


def test_targets_evaluate_as_documented() -> None:
    x = torch.tensor([[-1.0], [-0.75], [-0.5], [0.0], [0.25]], dtype=torch.float64)
    assert TriangleWave()(x).tolist() == pytest.approx([0.0, 1.0, 0.0, 0.0, 1.0])
    assert Absolute()(x).tolist() == pytest.approx([1.0, 0.75, 0.5, 0.0, 0.25])
    assert TriangleWave(teeth=1)(x).tolist() == pytest.approx([0.0, 0.25, 0.5, 1.0, 0.75])
    assert ProductSine()(torch.tensor([[0.5, -0.5]])).item() == pytest.approx(-1.0)
