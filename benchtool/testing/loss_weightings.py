"""Conformance checks for multi-task loss weightings, on a tiny two-task problem built here
whose losses flow through one shared weight matrix (so GradNorm-style schemes can look at
per-task gradients)."""

from __future__ import annotations

import math
from typing import Any

import torch

from benchtool.contracts.limits import LossWeighting, TaskSpec
from benchtool.errors import ContractViolation
from benchtool.testing import Check, fresh

TASKS = (TaskSpec("label", "classification"), TaskSpec("value", "regression"))
STEPS = 5


class ToyProblem:
    """A shared linear layer feeding a 3-class head and a scalar regression head."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(16, 4, generator=g)
        self.labels = torch.randint(0, 3, (16,), generator=g)
        self.values = 10.0 * torch.randn(16, generator=g)  # a larger scale than the cross-entropy
        self.shared = torch.randn(4, 5, generator=g).requires_grad_(True)
        self.head_label = torch.randn(5, 3, generator=g).requires_grad_(True)
        self.head_value = torch.randn(5, generator=g).requires_grad_(True)

    def parameters(self) -> list[torch.Tensor]:
        return [self.shared, self.head_label, self.head_value]

    def losses(self) -> torch.Tensor:
        code = torch.tanh(self.x @ self.shared)
        ce = torch.nn.functional.cross_entropy(code @ self.head_label, self.labels)
        mse = (code @ self.head_value - self.values).pow(2).mean()
        return torch.stack([ce, mse])


def _run(weighting: LossWeighting, steps: int = STEPS) -> tuple[list[float], list[dict[str, float]]]:
    """Train the toy problem with ``weighting``; the objective and state after each step."""
    problem = ToyProblem()
    weighting.start(TASKS)
    optimizer = torch.optim.Adam([{"params": problem.parameters(), "lr": 1e-2}, *weighting.parameter_groups(1e-2)])
    totals, states = [], []
    for _ in range(steps):
        total = weighting.total_loss(problem.losses(), [problem.shared])
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        weighting.after_step()
        totals.append(float(total.detach()))
        states.append(weighting.state())
    return totals, states


def check_declares_name(plugin: Any) -> None:
    name = getattr(plugin, "name", None)
    assert isinstance(name, str) and name, f"a loss weighting must declare a non-empty name, got {name!r}"


def check_rejects_unknown_hyperparameter(plugin: Any) -> None:
    try:
        fresh(plugin, not_a_hyperparameter=1)
    except TypeError:
        return
    raise AssertionError("an unknown hyper-parameter must raise TypeError")


def check_objective_valid(plugin: Any) -> None:
    totals, states = _run(fresh(plugin))
    assert all(math.isfinite(t) for t in totals), f"objective not finite over {STEPS} steps: {totals}"
    for state in states:
        assert all(math.isfinite(v) for v in state.values()), f"state not finite: {state}"
        assert {f"weight/{t.name}" for t in TASKS} <= set(state), f"state lacks a weight per task: {state}"


def check_every_task_pulls(plugin: Any) -> None:
    """d objective / d L_i > 0 for every task: no task is ignored or pushed the wrong way."""
    weighting = fresh(plugin)
    problem = ToyProblem()
    weighting.start(TASKS)
    losses = problem.losses()
    losses.retain_grad()
    weighting.total_loss(losses, [problem.shared]).backward()
    grad = losses.grad
    assert grad is not None and bool((grad > 0).all()), f"d objective / d task loss must be > 0, got {grad}"


def check_deterministic(plugin: Any) -> None:
    first, second = _run(fresh(plugin)), _run(fresh(plugin))
    assert first == second, "two fresh instances on the same problem gave different objectives or weights"


def check_setup_restarts(plugin: Any) -> None:
    """A second ``setup`` starts afresh: running again reproduces the first run."""
    weighting = fresh(plugin)
    first = _run(weighting)
    assert _run(weighting) == first, "setup() must reset the scheme's learned state"


def check_variants_valid(plugin: Any) -> None:
    weighting = fresh(plugin)
    variants = weighting.variants(TASKS)
    assert isinstance(variants, list) and variants, f"variants() must return a non-empty list, got {variants!r}"
    for params in variants:
        variant = fresh(plugin, **params)
        variant.start(TASKS)
        variant.weights()


def check_requires_setup(plugin: Any) -> None:
    try:
        fresh(plugin).total_loss(torch.ones(2))
    except ContractViolation:
        return
    raise AssertionError("total_loss before setup must raise ContractViolation")


def checks(plugin: Any) -> list[Check]:
    return [
        Check("declares-name", check_declares_name),
        Check("rejects-unknown-hyperparameter", check_rejects_unknown_hyperparameter),
        Check("objective-valid", check_objective_valid),
        Check("every-task-pulls", check_every_task_pulls),
        Check("deterministic", check_deterministic),
        Check("setup-restarts", check_setup_restarts),
        Check("variants-valid", check_variants_valid),
        Check("requires-setup", check_requires_setup),
    ]
