"""The attack conformance checks: every built-in passes; broken attacks fail exactly the
rules they break."""

from __future__ import annotations

import pytest
import torch

from benchtool.contracts.attack import Attack
from benchtool.testing import ConformanceError, check_plugin, parametrize_with_checks, run_checks
from benchtool_attacks.apgd import ATTACKS as APGD_ATTACKS
from benchtool_attacks.cw_l2 import CarliniWagnerL2
from benchtool_attacks.deepfool import DeepFool
from benchtool_attacks.eot import EOT
from benchtool_attacks.fgsm import FGSM
from benchtool_attacks.pgd import PGD
from benchtool_attacks.pgd_l2 import PGDL2
from benchtool_attacks.square import SquareAttack

BUILTINS = [FGSM, PGD, PGDL2, EOT, CarliniWagnerL2, DeepFool, SquareAttack, *APGD_ATTACKS]


@parametrize_with_checks(BUILTINS)
def test_builtin_attack_conforms(plugin, check):
    check(plugin)


def signed_noise(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, x.shape, generator=generator).to(x.dtype) * 2 - 1


class ExceedsEps(Attack):
    """Steps twice as far as allowed (broken on purpose)."""

    name = "exceeds-eps"
    norm = "linf"
    needs_gradients = False

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        return torch.clamp(x + 2 * eps * signed_noise(x, generator), *bounds)


class MutatesModel(Attack):
    """Switches the model to training mode and runs it, moving BatchNorm statistics (broken on purpose)."""

    name = "mutates-model"
    norm = "linf"
    needs_gradients = False

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        model.train()
        model(x)
        return torch.clamp(x + eps * signed_noise(x, generator), *bounds)


class ModifiesInput(Attack):
    """Writes its answer into the caller's tensor (broken on purpose)."""

    name = "modifies-input"
    norm = "linf"
    needs_gradients = False

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        x.copy_(torch.clamp(x + eps * signed_noise(x, generator), *bounds))
        return x.clone()


class IgnoresSeed(Attack):
    """Draws from the global RNG instead of the generator (broken on purpose)."""

    name = "ignores-seed"
    norm = "linf"
    needs_gradients = False

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        return torch.clamp(x + eps * (2 * torch.rand(x.shape) - 1), *bounds)


class AllBroken(ExceedsEps):
    """Exceeds eps, mutates the model and modifies its input (broken on purpose)."""

    name = "all-broken"

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        model.train()
        model(x)
        x_adv = torch.clamp(x + 2 * eps * signed_noise(x, generator), *bounds)
        x.add_(1.0)
        return x_adv


@pytest.mark.parametrize(("plugin", "expected"), [
    (ExceedsEps, {"norm-bound"}),
    (MutatesModel, {"model-unchanged"}),
    (ModifiesInput, {"input-untouched"}),
    (IgnoresSeed, {"deterministic"}),
    (AllBroken, {"norm-bound", "model-unchanged", "input-untouched"}),
])
def test_broken_attack_fails_exactly_its_rules(plugin, expected):
    failed = {r.check for r in run_checks(plugin) if not r.passed}
    assert failed == expected


def test_check_plugin_names_each_failure():
    with pytest.raises(ConformanceError, match=r"exceeds-eps failed 1 conformance check\(s\):\n  norm-bound: .*exceeds eps"):
        check_plugin(ExceedsEps)


class SwallowsHyperparameters(FGSM):
    """Accepts any keyword (broken on purpose)."""

    def __init__(self, **hyperparams):
        super().__init__()


def test_declaration_checks():
    failed = {r.check for r in run_checks(SwallowsHyperparameters) if not r.passed}
    assert failed == {"rejects-unknown-hyperparameter"}
