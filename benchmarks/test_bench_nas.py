"""Hot paths of NAS on the tabular benchmark: one 300-evaluation search per strategy,
and one ask + tell of the REINFORCE controller (target: a median <= 2 ms)."""

from __future__ import annotations

import pytest

from benchtool.harness.nas import Budget, TabularEvaluator, run_search
from benchtool_nas.random_search import RandomSearch
from benchtool_nas.regularized_evolution import RegularizedEvolution
from benchtool_nas.reinforce import Reinforce
from benchtool_nas.spaces import ConvChainSmall

EVALUATIONS = 300


@pytest.fixture(scope="module")
def evaluator() -> TabularEvaluator:
    return TabularEvaluator(ConvChainSmall())


@pytest.mark.parametrize("strategy_cls", [RandomSearch, RegularizedEvolution, Reinforce], ids=lambda s: s.name)
def test_search_300_evaluations(benchmark, evaluator: TabularEvaluator, strategy_cls: type) -> None:  # noqa: ANN001
    run_search(strategy_cls(), evaluator.space, evaluator, Budget(evaluations=2))  # kernels loaded
    seeds = iter(range(10_000))

    def search() -> int:
        result = run_search(strategy_cls(), evaluator.space, evaluator, Budget(evaluations=EVALUATIONS),
                            seed=next(seeds))
        return len(result.trials)

    assert benchmark.pedantic(search, rounds=5, iterations=1) == EVALUATIONS


def test_controller_ask_tell(benchmark, evaluator: TabularEvaluator) -> None:  # noqa: ANN001
    controller = Reinforce()
    controller.start(evaluator.space, 0)
    rewards = iter(0.5 + 0.001 * (i % 400) for i in range(10**7))

    def ask_tell() -> None:
        trial = controller.ask()
        controller.tell(trial, next(rewards))

    benchmark.pedantic(ask_tell, rounds=300, iterations=1, warmup_rounds=10)
    assert controller.baseline is not None
