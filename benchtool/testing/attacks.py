"""Conformance checks for attacks: the harness's rules, run by hypothesis on generated
batches, bounds and eps sweeps against a tiny deterministic model built here.

Each rule is its own check, so a broken attack fails exactly the rules it breaks: every
check reads the same guarded runs (``Attack.attempt`` with ``repeat=True``, cached per
generated case) and asserts that its own rules are absent from the violations.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from torch import nn

from benchtool.contracts.attack import Attack, AttackAttempt
from benchtool.testing import Check, instance

INPUT_SHAPE = (1, 4, 4)
NUM_CLASSES = 4  # the fewest APGD-T's targeted DLR loss needs
BOUNDS = ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0))
MAX_EXAMPLES = 6
CONFORMANCE_BUDGET = "small"  # the rules do not depend on iteration counts; keep checks quick

RULES: dict[str, tuple[str, ...]] = {
    "output-form": ("output-type", "output-shape", "output-dtype", "output-device", "output-finite"),
    "bounds": ("bounds",),
    "norm-bound": ("norm-bound",),
    "input-untouched": ("input-untouched",),
    "model-unchanged": ("model-unchanged",),
    "deterministic": ("deterministic",),
    "runs": ("no-exception", "returns-in-time"),  # an attack that always raises breaks no other rule
}


def tiny_model() -> nn.Module:
    """A small conv net with BatchNorm (non-trivial running statistics) and dropout, in eval
    mode, with fixed weights: anything that trains it or switches it to training mode shows."""
    generator = torch.Generator().manual_seed(1234)
    model = nn.Sequential(
        nn.Conv2d(INPUT_SHAPE[0], 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(4 * 2 * 2, NUM_CLASSES),
    )
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
        bn = model[1]
        bn.running_var.abs_().add_(0.5)
    return model.eval()


@dataclass(frozen=True)
class Case:
    """One generated call: batch size, data bounds, eps sweep, seed, targeted."""

    n: int
    bounds: tuple[float, float]
    eps_list: tuple[float, ...]
    seed: int
    targeted: bool

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs inside the bounds (some exactly on them) and labels, fixed by the seed."""
        generator = torch.Generator().manual_seed(self.seed)
        low, high = self.bounds
        x = low + (high - low) * torch.rand((self.n, *INPUT_SHAPE), generator=generator)
        on_edge = torch.rand(x.shape, generator=generator)
        x = torch.where(on_edge < 0.1, torch.full_like(x, low), torch.where(on_edge > 0.9, torch.full_like(x, high), x))
        return x, torch.randint(0, NUM_CLASSES, (self.n,), generator=generator)


def cases(attack: Attack) -> st.SearchStrategy[Case]:
    """Batches of 1-5 examples, one of :data:`BOUNDS`, 1-3 eps (0 included) as fractions of
    the range (times sqrt(dims) for L2), targeted when the attack supports it."""
    scale = math.sqrt(math.prod(INPUT_SHAPE)) if attack.norm == "l2" else 1.0
    fraction = st.one_of(st.just(0.0), st.floats(0.0, 0.5, allow_nan=False, allow_infinity=False))

    @st.composite
    def build(draw: st.DrawFn) -> Case:
        low, high = draw(st.sampled_from(BOUNDS))
        eps_list = tuple(f * (high - low) * scale for f in draw(st.lists(fraction, min_size=1, max_size=3)))
        targeted = draw(st.booleans()) if attack.supports_targeted else False
        return Case(draw(st.integers(1, 5)), (low, high), eps_list, draw(st.integers(0, 2**16)), targeted)

    return build()


@lru_cache(maxsize=512)
def guarded_attempt(attack: Attack, case: Case) -> AttackAttempt:
    """The harness's guarded run of ``attack`` on ``case`` (repeated, for determinism); cached,
    so all rule checks of one plugin read the same runs."""
    x, y = case.tensors()
    return attack.attempt(
        tiny_model(), x, y, case.eps_list, bounds=case.bounds, seed=case.seed, targeted=case.targeted, repeat=True
    )


@cache
def _cached_instance(plugin: Any) -> Attack:
    """The attack to check, at the conformance budget (explicit hyper-parameters kept); one per
    plugin, so every check reads the same cached runs."""
    return instance(plugin).at_budget(CONFORMANCE_BUDGET)


def _rule_check(check_name: str, rules: tuple[str, ...]) -> Check:
    def run(plugin: Any) -> None:
        attack = _cached_instance(plugin)

        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate],  # report the first failing case; shrinking reruns attacks
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        @given(case=cases(attack))
        def holds(case: Case) -> None:
            broken = [v for v in guarded_attempt(attack, case).violations if v.rule in rules]
            assert not broken, f"{case}: {broken[0]}"

        holds()

    return Check(check_name, run)


def check_declares_threat_model(plugin: Any) -> None:
    """Name, norm, gradient need, targeted support, documented defaults; builds with them."""
    cls = plugin if inspect.isclass(plugin) else type(plugin)
    assert isinstance(getattr(cls, "name", None), str) and cls.name, "attack must declare a non-empty `name`"
    assert cls.norm in ("linf", "l2"), f"attack {cls.name!r}: norm must be 'linf' or 'l2', got {cls.norm!r}"
    assert isinstance(cls.needs_gradients, bool), f"attack {cls.name!r}: needs_gradients must be a bool"
    assert isinstance(cls.supports_targeted, bool), f"attack {cls.name!r}: supports_targeted must be a bool"
    assert isinstance(cls.defaults, dict), f"attack {cls.name!r}: defaults must be a dict"
    assert (inspect.getdoc(cls) or "").strip(), f"attack {cls.name!r}: needs a docstring citing its method"
    for budget, overrides in cls.budget_overrides.items():
        unknown = set(overrides) - set(cls.defaults)
        assert not unknown, f"attack {cls.name!r}: budget_overrides[{budget!r}] sets unknown {sorted(unknown)}"
    instance = cls()
    assert instance.params == cls.defaults, f"attack {cls.name!r}: params {instance.params} != defaults"


def check_rejects_unknown_hyperparameter(plugin: Any) -> None:
    """A misspelt hyper-parameter is an error, not silently ignored."""
    cls = plugin if inspect.isclass(plugin) else type(plugin)
    try:
        cls(not_a_hyperparameter=1)
    except TypeError:
        return
    raise AssertionError(f"attack {cls.name!r} accepted an unknown hyper-parameter")


def checks(plugin: Any) -> list[Check]:
    """Every conformance check for an attack class or instance."""
    return [
        Check("declares-threat-model", check_declares_threat_model),
        Check("rejects-unknown-hyperparameter", check_rejects_unknown_hyperparameter),
        *(_rule_check(name, rules) for name, rules in RULES.items()),
    ]
