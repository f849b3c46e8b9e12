"""Conformance checks for search strategies: what any SearchStrategy must do, run on two
small toy spaces (one with a conditional walk) with a deterministic reward.

    from benchtool.testing import check_plugin
    check_plugin(MyStrategy)          # or benchtool check mypkg.module:MyStrategy
"""

from __future__ import annotations

import math
import zlib
from typing import Any

from benchtool.contracts.nas import Architecture, Decision, SearchFinished, SearchSpace
from benchtool.harness.nas.evaluators import Evaluation, Evaluator
from benchtool.harness.nas.search import Budget, SearchResult, run_search
from benchtool.testing import Check, fresh

CHECK_EVALUATIONS = 40


class ToyGrid(SearchSpace):
    """Four independent decisions with 2-5 choices (120 architectures)."""

    name = "toy-grid"

    def decisions(self) -> tuple[Decision, ...]:
        return (Decision("a", (0, 1)), Decision("b", (0, 1, 2)), Decision("c", (0, 1, 2, 3)),
                Decision("d", (0, 1, 2, 3, 4)))


class ToyChain(SearchSpace):
    """A depth (1-3) then, per level, an operation (4) and a width (3): a conditional walk."""

    name = "toy-chain"

    def decisions(self) -> tuple[Decision, ...]:
        levels = [(Decision(f"op{i}", ("conv", "pool", "skip", "dense")), Decision(f"width{i}", (8, 16, 32)))
                  for i in range(3)]
        return (Decision("depth", (1, 2, 3)), *[d for level in levels for d in level])

    def next_decision(self, prefix: Architecture) -> int | None:
        if not prefix:
            return 0
        return len(prefix) if len(prefix) < 1 + 2 * (prefix[0] + 1) else None


def toy_reward(space: SearchSpace, arch: Architecture) -> float:
    """A deterministic landscape in [0, 1): prefers high choice indices, plus a
    per-architecture wiggle, so search beats chance but local optima exist."""
    counts = [len(space.decision_list[d].choices) for d in space.walk(arch)]
    drift = sum(c / max(n - 1, 1) for c, n in zip(arch, counts)) / len(arch)
    wiggle = (zlib.crc32(space.key(arch).encode()) % 1000) / 1000.0
    return 0.6 * drift + 0.39 * wiggle


class ToyEvaluator(Evaluator):
    """Rewards from :func:`toy_reward`; each evaluation costs 1 simulated second;
    every ``fail_every``-th evaluation fails (0: none)."""

    def __init__(self, space: SearchSpace, fail_every: int = 0) -> None:
        self.space = space
        self.fail_every = fail_every
        self.calls = 0

    def evaluate(self, arch: Architecture, *, trial_seed: int = 0, timeout: float | None = None) -> Evaluation:
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            return Evaluation.failed("toy failure", cost_seconds=1.0)
        value = toy_reward(self.space, arch)
        return Evaluation("ok", value, value, 1.0)


def _search(plugin: Any, space: SearchSpace, *, evaluations: int = CHECK_EVALUATIONS, seed: int = 0,
            workers: int = 1, fail_every: int = 0) -> SearchResult:
    result = run_search(fresh(plugin), space, ToyEvaluator(space, fail_every), Budget(evaluations=evaluations),
                        seed=seed, workers=workers)
    if result.error is not None:
        raise result.error
    return result


def check_asks_valid_canonical(plugin: Any) -> None:
    """Every ask is a complete, canonical architecture of the space (the harness raises
    ContractViolation otherwise), on a fixed and on a conditional walk."""
    for space in (ToyGrid(), ToyChain()):
        result = _search(plugin, space)
        assert len(result.trials) == CHECK_EVALUATIONS, f"{space.name}: {len(result.trials)} trials told"
        for trial in result.trials:
            assert space.canonical(trial.arch) == trial.arch


def check_tolerates_failed_evaluations(plugin: Any) -> None:
    """Rewards of None and NaN (failed or timed-out evaluations) do not crash it."""
    _search(plugin, ToyChain(), fail_every=3)
    strategy = fresh(plugin)
    strategy.start(ToyGrid(), seed=1)
    for i in range(12):
        trial = strategy.ask()
        strategy.tell(trial, (None, math.nan, 0.5)[i % 3])
    strategy.tell(strategy.ask(), None)


def check_tolerates_out_of_order(plugin: Any) -> None:
    """Several asks outstanding, told in any order (parallel workers)."""
    space = ToyChain()
    strategy = fresh(plugin)
    strategy.start(space, seed=2)
    for round_ in range(4):
        batch = [strategy.ask() for _ in range(6)]
        order = batch[::-1] if round_ % 2 == 0 else batch[1::2] + batch[0::2]
        for trial in order:
            strategy.tell(trial, toy_reward(space, trial.arch))
    assert not strategy.outstanding
    _search(plugin, space, workers=4)


def check_deterministic(plugin: Any) -> None:
    """The same seed gives the same trajectory, also with tells out of order."""
    space = ToyChain()
    for workers in (1, 3):
        first = [t.arch for t in _search(plugin, space, seed=5, workers=workers).trials]
        second = [t.arch for t in _search(plugin, space, seed=5, workers=workers).trials]
        assert first == second, f"two runs with seed 5 and {workers} worker(s) asked different architectures"


def check_stops_when_budget_spent(plugin: Any) -> None:
    """The harness stops asking at the budget (evaluations or seconds); an ask after
    ``finish`` raises SearchFinished instead of reaching the plugin."""
    space = ToyGrid()
    strategy = fresh(plugin)
    result = run_search(strategy, space, ToyEvaluator(space), Budget(evaluations=12))
    assert result.error is None and len(result.trials) == 12 and strategy.finished
    try:
        strategy.ask()
    except SearchFinished:
        pass
    else:
        raise AssertionError("ask() after the budget was spent returned an architecture")
    timed = run_search(fresh(plugin), space, ToyEvaluator(space), Budget(seconds=7.5), workers=2)
    assert timed.error is None and timed.clock <= 7.5 and len(timed.trials) == 14, (
        f"a 7.5 s budget with 2 workers and 1 s evaluations told {len(timed.trials)} trials, expected 14"
    )


def checks(plugin: Any) -> list[Check]:
    """Every conformance check for a search strategy class or instance."""
    return [
        Check("asks-valid-canonical", check_asks_valid_canonical),
        Check("tolerates-failed-evaluations", check_tolerates_failed_evaluations),
        Check("tolerates-out-of-order", check_tolerates_out_of_order),
        Check("deterministic", check_deterministic),
        Check("stops-when-budget-spent", check_stops_when_budget_spent),
    ]
