"""Conformance checks for target functions of the approximation suite: a valid box, a
pointwise, deterministic, finite function there and beyond, and continuity (the
hypothesis of the universal approximation theorem)."""

from __future__ import annotations

from typing import Any

import torch

from benchtool.contracts.limits import TargetFunction
from benchtool.harness.limits.approximation import check_domain, expanded
from benchtool.testing import Check, instance

POINTS = 64
CONTINUITY_POINTS = 2001
REFINEMENT = 10
CONTINUITY_RATIO = 0.6  # max jump must shrink at least this much when the grid is refined 10x


def _points(box: tuple[tuple[float, float], ...], n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.tensor([b[0] for b in box])
    high = torch.tensor([b[1] for b in box])
    return low + (high - low) * torch.rand(n, len(box), generator=g)


def check_declares_name(plugin: Any) -> None:
    name = getattr(plugin, "name", None)
    assert isinstance(name, str) and name, f"a target function must declare a non-empty name, got {name!r}"


def check_domain_valid(plugin: Any) -> None:
    check_domain(instance(plugin))


def check_finite_inside_and_outside(plugin: Any) -> None:
    """Finite values of shape (N,) on the box and on the wider box the suite also scores."""
    target = instance(plugin)
    box = check_domain(target)
    for where in (box, expanded(box)):
        target(_points(where, POINTS))  # the base class raises on a bad shape or NaN


def check_deterministic(plugin: Any) -> None:
    target = instance(plugin)
    x = _points(check_domain(target), POINTS)
    assert torch.equal(target(x), target(x)), "the same inputs gave different values"


def check_pointwise(plugin: Any) -> None:
    """f of a batch equals f of each row alone."""
    target = instance(plugin)
    x = _points(check_domain(target), 8)
    rows = torch.cat([target(x[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(target(x), rows, rtol=1e-6, atol=1e-6), "f(batch) differs from f applied row by row"


def _max_jump(target: TargetFunction, axis: int, points: int) -> float:
    box = check_domain(target)
    anchor = torch.tensor([lo + (hi - lo) / 3 for lo, hi in box], dtype=torch.float64)
    line = anchor.repeat(points, 1)
    line[:, axis] = torch.linspace(box[axis][0], box[axis][1], points, dtype=torch.float64)
    return float(target(line).double().diff().abs().max())


def check_continuous(plugin: Any) -> None:
    """Along each axis through a point a third of the way into the box, the largest step between neighbouring grid
    points shrinks when the grid is refined: a jump would stay the same size."""
    target = instance(plugin)
    for axis in range(len(check_domain(target))):
        coarse = _max_jump(target, axis, CONTINUITY_POINTS)
        fine = _max_jump(target, axis, (CONTINUITY_POINTS - 1) * REFINEMENT + 1)
        assert fine <= CONTINUITY_RATIO * coarse or fine < 1e-9, (
            f"along axis {axis} the largest step between neighbours went from {coarse:.3g} to {fine:.3g} "
            f"when the grid was refined {REFINEMENT}x: the function looks discontinuous"
        )


def checks(plugin: Any) -> list[Check]:
    return [
        Check("declares-name", check_declares_name),
        Check("domain-valid", check_domain_valid),
        Check("finite-inside-and-outside", check_finite_inside_and_outside),
        Check("deterministic", check_deterministic),
        Check("pointwise", check_pointwise),
        Check("continuous", check_continuous),
    ]
