"""A zoo of deliberately broken attacks, one broken rule each (loaded with -p)."""

from __future__ import annotations

import torch

from benchtool import hookimpl
from benchtool.contracts.attack import Attack


class _Broken(Attack):
    norm = "linf"
    needs_gradients = False


class Raises(_Broken):
    """Raises inside perturb."""

    name = "broken-raises"

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        raise RuntimeError("this attack always crashes")


class WrongShape(_Broken):
    """Returns one example too few."""

    name = "broken-shape"

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        return x[1:].clone()


class NanOutput(_Broken):
    """Returns NaN inputs."""

    name = "broken-nan"

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        return torch.full_like(x, float("nan"))


class ExceedsEps(_Broken):
    """Steps twice as far as allowed."""

    name = "broken-eps"

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        return torch.clamp(x + 2 * eps + 0.01, *bounds) if eps else x + 0.01


class MutatesModel(_Broken):
    """Scales the model's first parameter."""

    name = "broken-model"

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        with torch.no_grad():
            next(model.parameters()).mul_(1.5)
        return x.clone()


class ModifiesInput(_Broken):
    """Writes into the caller's tensor."""

    name = "broken-input"

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        x.add_(0.0 if eps == 0 else eps / 2).clamp_(*bounds)
        return x.clone()


BROKEN = {cls.name: cls for cls in (Raises, WrongShape, NanOutput, ExceedsEps, MutatesModel, ModifiesInput)}
EXPECTED_RULE = {
    "broken-raises": "this attack always crashes",
    "broken-shape": "output-shape",
    "broken-nan": "output-finite",
    "broken-eps": "norm-bound",
    "broken-model": "model-unchanged",
    "broken-input": "input-untouched",
}


@hookimpl
def benchtool_register_attacks(registry):
    for cls in BROKEN.values():
        registry.add(cls)
