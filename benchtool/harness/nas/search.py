"""The search loop the harness owns: ask, evaluate, tell, until the budget is spent.

Budgets count evaluations or seconds on the evaluator's clock (simulated for a table).
``workers`` evaluations run at once: inline, an evaluation finishes at its start time
plus its cost on the clock, so tells arrive out of order exactly as on a cluster of
``workers`` machines; with an :class:`~benchtool.executors.base.Executor` they run
there in parallel, ``workers`` in flight, and are told in the order they were asked (the
oldest in flight first, whichever really finished first). That order is part of the
search's inputs, not of the machine: a search through Ray, through the local executor, on
a busy or an idle machine asks and tells the same trials (only the wall-clock costs
differ), so a seed fixes its trajectory. (Inline, with wall-clock costs and
``workers > 1``, the simulated order follows measured seconds: pass an executor when that
matters.) A strategy whose ``setup``/``propose``/
``observe`` raises, breaks its contract or does not return within its limit (the guard
of :mod:`benchtool.contracts._guard`, as for every plugin call) ends the search with what
it found so far: a search always ends (NNI #4891).
"""

from __future__ import annotations

import heapq
import math
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from benchtool.contracts.nas import Architecture, SearchSpace, SearchStrategy, Trial
from benchtool.errors import ContractViolation, UsageError
from benchtool.harness.nas.evaluators import Evaluation, Evaluator

if TYPE_CHECKING:
    from benchtool.executors.base import Executor, Resources

TRIAL_SEED_STREAM = 7  # keeps per-trial draws independent of the strategy's own stream


@dataclass(frozen=True)
class Budget:
    """When a search stops asking: after ``evaluations`` asks, or once the clock has
    reached ``seconds``; an evaluation that would end past ``seconds`` is cancelled."""

    evaluations: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.evaluations is None and self.seconds is None:
            raise UsageError("a NAS budget needs evaluations=N or seconds=S (or both)")
        if self.evaluations is not None and (not isinstance(self.evaluations, int) or self.evaluations < 1):
            raise UsageError(f"budget evaluations must be an integer >= 1, got {self.evaluations!r}")
        if self.seconds is not None and not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise UsageError(f"budget seconds must be a finite number > 0, got {self.seconds!r}")


@dataclass(frozen=True)
class TrialRecord:
    """One told trial, as the harness saw it."""

    number: int
    arch: Architecture
    key: str
    status: str  # ok | failed | timeout
    val_accuracy: float | None
    test_accuracy: float | None
    cost_seconds: float
    started: float  # clock when asked
    finished: float  # clock when told
    detail: str = ""


@dataclass
class SearchResult:
    """Every told trial in tell order, why the search stopped, and what broke, if anything."""

    strategy: str
    space: str
    seed: int
    budget: Budget
    workers: int
    trials: list[TrialRecord] = field(default_factory=list)
    stop_reason: str = "budget"  # "budget" | "strategy-failed"
    error: ContractViolation | None = None
    cancelled: int = 0  # evaluations that would have ended past the time budget

    @property
    def clock(self) -> float:
        return self.trials[-1].finished if self.trials else 0.0

    @property
    def failed_evaluations(self) -> int:
        return sum(t.status != "ok" for t in self.trials)

    def incumbent(self, upto: int | None = None) -> TrialRecord | None:
        """The trial with the best validation accuracy among the first ``upto`` told
        (the earliest on ties): what the search would return then."""
        best = None
        for trial in self.trials[:upto]:
            if trial.val_accuracy is not None and (best is None or trial.val_accuracy > best.val_accuracy):
                best = trial
        return best


@dataclass(order=True)
class _Running:
    finished: float
    sequence: int
    trial: Trial = field(compare=False)
    started: float = field(compare=False)
    evaluation: Evaluation | None = field(compare=False, default=None)
    future: Future | None = field(compare=False, default=None)


def run_search(
    strategy: SearchStrategy,
    space: SearchSpace,
    evaluator: Evaluator,
    budget: Budget,
    *,
    seed: int = 0,
    workers: int = 1,
    executor: Executor | None = None,
    resources: Resources | None = None,
    eval_timeout: float | None = None,
    ask_timeout: float | None = None,
    start_timeout: float | None = None,
) -> SearchResult:
    """Run one seeded search of ``strategy`` over ``space`` and return every told trial.

    ``eval_timeout`` bounds one evaluation (on the evaluator's clock); ``ask_timeout``
    bounds each ``propose``/``observe`` and ``start_timeout`` the strategy's ``setup``
    (default: the run's limits, :class:`benchtool.contracts._guard.TimeoutPolicy`); a
    strategy that raises or breaks a rule ends the search with
    ``stop_reason="strategy-failed"`` and the :class:`ContractViolation` in ``error``.
    """
    if evaluator.space is not space:
        raise UsageError(f"the evaluator is for space {evaluator.space.name!r}, the search for {space.name!r}")
    if not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers must be an integer >= 1, got {workers!r}")
    result = SearchResult(strategy.name, space.name, seed, budget, workers)
    trial_seeds = np.random.default_rng([seed, TRIAL_SEED_STREAM])
    running: list[_Running] = []
    clock, asked, sequence = 0.0, 0, 0

    def may_ask() -> bool:
        return (budget.evaluations is None or asked < budget.evaluations) and (
            budget.seconds is None or clock < budget.seconds
        )

    try:
        strategy.start(space, seed, timeout=start_timeout)
        while True:
            while len(running) < workers and may_ask():
                trial = strategy.ask(timeout=ask_timeout)
                trial_seed = int(trial_seeds.integers(2**31))
                entry = _Running(0.0, sequence, trial, clock)
                if executor is None:
                    entry.evaluation = _evaluate_inline(evaluator, trial.arch, trial_seed, eval_timeout)
                    entry.finished = clock + entry.evaluation.cost_seconds
                    heapq.heappush(running, entry)
                else:
                    entry.future = executor.submit(evaluator.evaluate, trial.arch, trial_seed=trial_seed,
                                                   timeout=eval_timeout, resources=resources)
                    running.append(entry)
                asked += 1
                sequence += 1
            if not running:
                break
            entry = heapq.heappop(running) if executor is None else _next_finished(running)
            evaluation = entry.evaluation
            end = entry.started + evaluation.cost_seconds
            if budget.seconds is not None and end > budget.seconds:
                result.cancelled += 1
                clock = max(clock, budget.seconds)
                continue
            clock = max(clock, end)
            strategy.tell(entry.trial, evaluation.reward, timeout=ask_timeout)
            result.trials.append(TrialRecord(
                entry.trial.number, entry.trial.arch, space.key(entry.trial.arch), evaluation.status,
                evaluation.val_accuracy, evaluation.test_accuracy, evaluation.cost_seconds,
                entry.started, clock, evaluation.detail,
            ))
    except ContractViolation as exc:
        result.stop_reason, result.error = "strategy-failed", exc
        for entry in running:
            if entry.future is not None:
                entry.future.cancel()
    finally:
        strategy.finish()
    return result


def _evaluate_inline(evaluator: Evaluator, arch: Architecture, trial_seed: int, timeout: float | None) -> Evaluation:
    try:
        return evaluator.evaluate(arch, trial_seed=trial_seed, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - a broken evaluation is a failed trial, not a dead search
        return Evaluation.failed(f"{type(exc).__name__}: {exc}")


def _next_finished(running: list[_Running]) -> _Running:
    """The oldest call in flight, once it has finished: the tell order is the ask order,
    whatever order the executor's workers finish in (the others keep running meanwhile)."""
    entry = min(running, key=lambda e: e.sequence)
    wait([entry.future])
    running.remove(entry)
    try:
        entry.evaluation = entry.future.result()
    except Exception as exc:  # noqa: BLE001 - a worker's failure is the trial's failure
        entry.evaluation = Evaluation.failed(f"{type(exc).__name__}: {exc}")
    return entry
