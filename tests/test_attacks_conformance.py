"""The attack conformance checks: every registered attack passes; broken attacks fail exactly
the rules they break."""

from __future__ import annotations

import pytest
import torch

from benchtool.contracts.attack import Attack
from benchtool.testing import ConformanceError, check_plugin, parametrize_with_checks, registered, run_checks
from benchtool_attacks.fgsm import FGSM

pytest_plugins = ["pytester"]


@parametrize_with_checks(registered("attacks"))
def test_registered_attack_conforms(plugin, check):
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


# --- expected failures declared by the plugin (scikit-learn's _xfail_checks) -------------------

XFAIL_SUITE = '''
import torch
from benchtool.contracts.attack import Attack
from benchtool.testing import parametrize_with_checks


class Declared(Attack):
    """Exceeds eps and says so."""

    name = "declared"
    norm = "linf"
    needs_gradients = False
    _xfail_checks = {"norm-bound": "steps twice as far, on purpose"}

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        noise = torch.randint(0, 2, x.shape, generator=generator).to(x.dtype) * 2 - 1
        return torch.clamp(x + 2 * eps * noise, *bounds)


class Stale(Declared):
    """Keeps to eps, yet still declares that it does not."""

    name = "stale"

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        return x.clone()


@parametrize_with_checks([Declared, Stale])
def test_conformance(plugin, check):
    check(plugin)
'''


def test_a_declared_failing_check_is_xfailed_and_a_declared_passing_one_fails_strictly(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_declared=XFAIL_SUITE)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-k", "norm-bound", "-rxX")
    result.assert_outcomes(xfailed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_conformance[[]stale-norm-bound[]]*",
                                 "[[]XPASS(strict)[]] steps twice as far, on purpose",
                                 "XFAIL *test_conformance[[]declared-norm-bound[]] - steps twice as far, on purpose"])


class DeclaresItFails(ExceedsEps):
    name = "declares-it-fails"
    _xfail_checks = {"norm-bound": "steps twice as far, on purpose"}


class DeclaresAPassingCheck(FGSM):
    name = "declares-a-passing-check"
    _xfail_checks = {"norm-bound": "no longer true"}


def test_run_checks_reports_declared_failures_as_expected_and_stale_declarations_as_failures() -> None:
    declared = {r.check: r for r in run_checks(DeclaresItFails)}["norm-bound"]
    assert (declared.passed, declared.expected_failure) == (True, "steps twice as far, on purpose")
    assert declared.message.startswith("expected failure (steps twice as far, on purpose): ")
    check_plugin(DeclaresItFails)
    stale = {r.check: r for r in run_checks(DeclaresAPassingCheck)}["norm-bound"]
    assert not stale.passed
    assert stale.message == "passed, but _xfail_checks declares it fails (no longer true); remove it"


def test_an_xfail_for_a_check_that_does_not_exist_names_the_valid_ones() -> None:
    class Misspelt(FGSM):
        name = "misspelt"
        _xfail_checks = {"norm-bounds": "typo"}

    with pytest.raises(TypeError, match=r"misspelt declares _xfail_checks for \['norm-bounds'\], which are not its "
                                        r"checks; expected names among \[.*'norm-bound'"):
        parametrize_with_checks([Misspelt])
