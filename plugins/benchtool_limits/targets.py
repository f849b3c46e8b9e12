"""Continuous target functions for the universal-approximation suite (Hornik, Stinchcombe
& White 1989): smooth and non-smooth, in one and two dimensions."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from benchtool import hookimpl
from benchtool.contracts.limits import TargetFunction


class Sine(TargetFunction):
    """sin(2 pi x) on [-1, 1]: two periods of a smooth function."""

    name: ClassVar[str] = "sine"
    domain: ClassVar[tuple[tuple[float, float], ...]] = ((-1.0, 1.0),)

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(2 * math.pi * x[:, 0])


class Absolute(TargetFunction):
    """|x| on [-1, 1]: continuous with a kink at 0 (not differentiable there)."""

    name: ClassVar[str] = "abs"
    domain: ClassVar[tuple[tuple[float, float], ...]] = ((-1.0, 1.0),)
    smooth: ClassVar[bool] = False

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0].abs()


class TriangleWave(TargetFunction):
    """A triangle wave with ``teeth`` teeth of height 1 on [-1, 1]: the continuous sawtooth,
    with 2 * teeth - 1 kinks inside the domain."""

    name: ClassVar[str] = "triangle-wave"
    domain: ClassVar[tuple[tuple[float, float], ...]] = ((-1.0, 1.0),)
    smooth: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {"teeth": 4}

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        phase = (x[:, 0] + 1.0) * self.params["teeth"] / 2.0  # one tooth per unit of phase
        return 1.0 - 2.0 * (phase - torch.floor(phase) - 0.5).abs()


class ProductSine(TargetFunction):
    """sin(pi x1) * sin(pi x2) on [-1, 1]^2: a smooth 2-D saddle of four bumps."""

    name: ClassVar[str] = "product-sine"
    domain: ClassVar[tuple[tuple[float, float], ...]] = ((-1.0, 1.0), (-1.0, 1.0))

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1])


@hookimpl
def benchtool_register_target_functions(registry) -> None:  # noqa: ANN001 - a benchtool.registry.Registrar
    """Add the built-in target functions."""
    for target in (Sine, Absolute, TriangleWave, ProductSine):
        registry.add(target)
