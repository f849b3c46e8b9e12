"""The harness's search loop: budgets, parallel workers with out-of-order tells,
executors, and strategies that hang, raise or break the encoding contract."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from benchtool.contracts.nas import Architecture, SearchStrategy, Trial
from benchtool.errors import UsageError
from benchtool.executors.base import Executor, Resources
from benchtool.executors.local import LocalExecutor
from benchtool.harness.nas import Budget, Evaluation, run_search
from benchtool.harness.nas.deadline import POLL_SECONDS, TimedOut, time_limit
from benchtool.testing.strategies import ToyChain, ToyEvaluator, ToyGrid, toy_reward
from benchtool_nas.random_search import RandomSearch
from benchtool_nas.regularized_evolution import RegularizedEvolution


class VariableCost(ToyEvaluator):
    """Evaluations cost 1 + the first decision's index seconds, so they finish out of order."""

    def evaluate(self, arch: Architecture, *, trial_seed: int = 0, timeout: float | None = None) -> Evaluation:
        value = toy_reward(self.space, arch)
        return Evaluation("ok", value, value, 1.0 + arch[0] + (arch[1] if len(arch) > 1 else 0))


class Hangs(SearchStrategy):
    """Proposes four architectures, then loops forever in ``where`` (or sleeps: ``sleep``)."""

    name = "hangs"
    defaults = {"where": "propose", "sleep": False}

    def setup(self) -> None:
        self.count = 0

    def propose(self) -> Architecture:
        self.count += 1
        if self.params["sleep"] and self.count > 4:
            time.sleep(300)  # a C call the old watchdog thread could not interrupt
        while self.params["where"] == "propose" and self.count > 4:
            pass
        return self.space.draw(self.rng)

    def observe(self, trial: Trial, reward: float | None) -> None:
        while self.params["where"] == "observe" and trial.number >= 2:
            pass


class Raises(SearchStrategy):
    name = "raises"

    def propose(self) -> Architecture:
        raise RuntimeError("controller exploded")

    def observe(self, trial: Trial, reward: float | None) -> None:
        pass


class Proposes(SearchStrategy):
    """Proposes a fixed (bad) encoding."""

    name = "proposes"
    defaults = {"arch": None}

    def propose(self) -> Architecture:
        return self.params["arch"]

    def observe(self, trial: Trial, reward: float | None) -> None:
        pass


def test_budget_needs_a_positive_limit() -> None:
    with pytest.raises(UsageError, match="needs evaluations"):
        Budget()
    with pytest.raises(UsageError, match="evaluations must be an integer >= 1, got 0"):
        Budget(evaluations=0)
    with pytest.raises(UsageError, match="seconds must be a finite number > 0"):
        Budget(seconds=float("inf"))


def test_evaluation_budget_is_exact_and_clock_sums_costs() -> None:
    space = ToyChain()
    strategy = RandomSearch()
    result = run_search(strategy, space, VariableCost(space), Budget(evaluations=17), seed=3)
    assert len(result.trials) == 17 and result.stop_reason == "budget" and result.error is None
    assert strategy.finished and not strategy.outstanding
    assert result.clock == pytest.approx(sum(t.cost_seconds for t in result.trials))
    assert [t.number for t in result.trials] == list(range(17))


def test_time_budget_cancels_the_evaluation_that_would_overrun() -> None:
    space = ToyGrid()
    result = run_search(RandomSearch(), space, ToyEvaluator(space), Budget(seconds=5.5))
    assert len(result.trials) == 5 and result.cancelled == 1 and result.clock == 5.0


def test_parallel_workers_tell_out_of_order_on_the_simulated_clock() -> None:
    space = ToyChain()
    result = run_search(RegularizedEvolution(population_size=5, sample_size=2), space, VariableCost(space),
                        Budget(evaluations=40), workers=3, seed=1)
    numbers = [t.number for t in result.trials]
    assert sorted(numbers) == list(range(40)) and numbers != sorted(numbers)
    finishes = [t.finished for t in result.trials]
    assert finishes == sorted(finishes)
    for trial in result.trials:
        assert trial.finished == pytest.approx(trial.started + trial.cost_seconds)
        running = sum(1 for t in result.trials if t.started <= trial.started < t.finished)
        assert running <= 3
    serial = run_search(RandomSearch(), space, VariableCost(space), Budget(evaluations=40), seed=1)
    assert result.clock < serial.clock / 2


def test_a_hanging_propose_ends_the_search_and_keeps_the_results() -> None:
    space = ToyGrid()
    result = run_search(Hangs(), space, ToyEvaluator(space), Budget(evaluations=50), ask_timeout=0.3)
    assert result.stop_reason == "strategy-failed"
    assert str(result.error) == "plugin 'hangs' broke rule 'returns-in-time': propose did not return within 0.3 s"
    assert len(result.trials) == 4


def test_a_sleeping_propose_is_stopped_at_its_limit() -> None:
    space = ToyGrid()
    started = time.monotonic()
    result = run_search(Hangs(sleep=True), space, ToyEvaluator(space), Budget(evaluations=50), ask_timeout=0.3)
    assert time.monotonic() - started < 5
    assert str(result.error) == "plugin 'hangs' broke rule 'returns-in-time': propose did not return within 0.3 s"
    assert len(result.trials) == 4


def test_a_hanging_observe_ends_the_search() -> None:
    space = ToyGrid()
    result = run_search(Hangs(where="observe"), space, ToyEvaluator(space), Budget(evaluations=50), ask_timeout=0.3)
    assert str(result.error) == "plugin 'hangs' broke rule 'returns-in-time': observe did not return within 0.3 s"
    assert len(result.trials) == 2


def test_an_exception_in_the_plugin_fails_its_search_only() -> None:
    space = ToyGrid()
    result = run_search(Raises(), space, ToyEvaluator(space), Budget(evaluations=5))
    assert result.error.rule == "no-exception"
    assert str(result.error) == "plugin 'raises' raised RuntimeError: controller exploded"
    assert result.trials == []


@pytest.mark.parametrize("arch, rule", [
    ([0, 1, 2, 3], "canonical-architecture"),  # a list, not the canonical tuple
    ((0, 1, 2), "valid-architecture"),
    ((0, 1, 2, 9), "valid-architecture"),
])
def test_non_canonical_proposals_break_the_contract(arch: object, rule: str) -> None:
    space = ToyGrid()
    result = run_search(Proposes(arch=arch), space, ToyEvaluator(space), Budget(evaluations=3))
    assert result.error.rule == rule and result.error.plugin == "proposes"


def test_a_failing_evaluator_gives_failed_trials_not_a_dead_search() -> None:
    class Broken(ToyEvaluator):
        def evaluate(self, arch: Architecture, *, trial_seed: int = 0, timeout: float | None = None) -> Evaluation:
            if arch[0] == 1:
                raise RuntimeError("out of memory")
            return super().evaluate(arch)

    space = ToyGrid()
    result = run_search(RegularizedEvolution(population_size=4, sample_size=2), space, Broken(space),
                        Budget(evaluations=30))
    failed = [t for t in result.trials if t.status == "failed"]
    assert result.error is None and len(result.trials) == 30 and failed
    assert all(t.val_accuracy is None and "out of memory" in t.detail for t in failed)
    assert result.failed_evaluations == len(failed)


def test_evaluator_must_be_for_the_searched_space() -> None:
    with pytest.raises(UsageError, match="evaluator is for space 'toy-chain'"):
        run_search(RandomSearch(), ToyGrid(), ToyEvaluator(ToyChain()), Budget(evaluations=1))


class ThreadExecutor(Executor):
    """Real concurrency through the executor contract (what a Ray executor provides)."""

    name = "threads"

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(workers)
        self.workers = workers

    def submit(self, fn, /, *args, resources: Resources | None = None, retries: int = 0, **kwargs) -> Future:  # noqa: ANN001
        return self.pool.submit(fn, *args, **kwargs)

    def capacity(self) -> Resources:
        return Resources(cpus=float(self.workers))

    def close(self) -> None:
        self.pool.shutdown()


def test_executor_searches_match_inline_and_tolerate_concurrency() -> None:
    space = ToyChain()
    inline = run_search(RandomSearch(), space, ToyEvaluator(space), Budget(evaluations=20), seed=4)
    local = run_search(RandomSearch(), space, ToyEvaluator(space), Budget(evaluations=20), seed=4,
                       executor=LocalExecutor())
    assert local.trials == inline.trials

    class Slow(ToyEvaluator):
        def evaluate(self, arch: Architecture, *, trial_seed: int = 0, timeout: float | None = None) -> Evaluation:
            time.sleep(0.002 * (arch[0] + 1))
            return super().evaluate(arch)

    with ThreadExecutor(3) as executor:
        result = run_search(RegularizedEvolution(population_size=4, sample_size=2), space, Slow(space),
                            Budget(evaluations=24), workers=executor.slots(), executor=executor, seed=2)
    assert result.error is None and sorted(t.number for t in result.trials) == list(range(24))


def test_time_limit_interrupts_python_loops_and_leaves_no_stray_exception() -> None:
    with pytest.raises(TimedOut, match="spin did not return within 0.1 s"):
        with time_limit(0.1, "spin"):
            while True:
                pass
    for _ in range(200):  # many limits that never fire
        with time_limit(5.0, "quick"):
            sum(range(100))
    time.sleep(3 * POLL_SECONDS)  # a stray asynchronous exception would surface here
    with pytest.raises(ValueError, match="timeout must be > 0"):
        with time_limit(0, "zero"):
            pass


def test_inner_time_limit_reports_itself_outer_keeps_running() -> None:
    with time_limit(5.0, "outer"):
        with pytest.raises(TimedOut, match="inner"):
            with time_limit(0.1, "inner"):
                while True:
                    pass
