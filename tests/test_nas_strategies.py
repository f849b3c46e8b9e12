"""Strategy plugins: conformance, and the behaviour each method's paper describes."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from benchtool.contracts.nas import Trial
from benchtool.errors import HyperparameterError, UsageError
from benchtool.host import load_host
from benchtool.harness.nas import Budget, run_search
from benchtool.registry import KINDS, PluginSource, Registrar, Registry
from benchtool.testing import parametrize_with_checks, registered
from benchtool.testing.strategies import ToyChain, ToyEvaluator, ToyGrid, toy_reward
from benchtool_nas import tpe as tpe_module
from benchtool_nas._controller import ControllerParams, forward_backward
from benchtool_nas.local_search import LocalSearch
from benchtool_nas.random_search import RandomSearch
from benchtool_nas.regularized_evolution import RegularizedEvolution
from benchtool_nas.reinforce import Reinforce

HAS_OPTUNA = importlib.util.find_spec("optuna") is not None


@parametrize_with_checks(registered("strategies"))
def test_strategy_conformance(plugin, check) -> None:  # noqa: ANN001
    check(plugin)


def test_builtin_strategies_are_registered_through_entry_points() -> None:
    names = load_host().registry.names("strategies")
    expected = {"random-search", "regularized-evolution", "local-search", "reinforce"} | ({"tpe"} if HAS_OPTUNA else set())
    assert expected <= set(names)


def test_tpe_without_optuna_is_noted_not_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tpe_module, "optuna", None)
    registry = Registry()
    source = PluginSource("tpe", "benchtool_nas.tpe", "benchtool", "0")
    tpe_module.benchtool_register_strategies(registry=Registrar(registry, KINDS["strategies"], source))
    assert registry.names("strategies") == []
    assert [(kind, name) for kind, name, _, _ in registry.unavailable] == [("strategies", "tpe")]
    assert "benchtool[optuna]" in registry.unavailable[0][3]


def test_hyper_parameters_are_checked() -> None:
    with pytest.raises(TypeError, match="unknown hyper-parameter"):
        RegularizedEvolution(population=3)
    with pytest.raises(HyperparameterError, match="sample_size <= population_size"):
        RegularizedEvolution(population_size=3, sample_size=5)
    with pytest.raises(HyperparameterError, match="initial_samples"):
        LocalSearch(initial_samples=0)
    with pytest.raises(HyperparameterError, match="baseline_decay"):
        Reinforce(baseline_decay=1.0)


def test_a_strategy_instance_runs_one_search() -> None:
    strategy = RandomSearch()
    strategy.start(ToyGrid(), 0)
    with pytest.raises(UsageError, match="already started"):
        strategy.start(ToyGrid(), 0)
    with pytest.raises(UsageError, match="not an outstanding trial"):
        strategy.tell(Trial(5, (0, 0, 0, 0)), 0.5)
    with pytest.raises(UsageError, match="was not started"):
        RandomSearch().ask()


def test_random_search_does_not_repeat_while_unseen_architectures_are_easy_to_find() -> None:
    space = ToyGrid()
    result = run_search(RandomSearch(), space, ToyEvaluator(space), Budget(evaluations=space.size // 2), seed=9)
    assert len({t.arch for t in result.trials}) == space.size // 2


def test_regularized_evolution_mutates_population_members() -> None:
    space = ToyChain()
    strategy = RegularizedEvolution(population_size=6, sample_size=3)
    strategy.start(space, 0)
    told = []
    for _ in range(6):  # the random initial population
        trial = strategy.ask()
        strategy.tell(trial, toy_reward(space, trial.arch))
        told.append(trial.arch)
    for _ in range(30):
        trial = strategy.ask()
        population = told[-6:]
        assert any(trial.arch in space.neighbours(parent) or _one_change(space, parent, trial.arch)
                   for parent in population), f"{trial.arch} is no mutation of the population"
        strategy.tell(trial, toy_reward(space, trial.arch))
        told.append(trial.arch)


def _one_change(space: ToyChain, parent: tuple[int, ...], child: tuple[int, ...]) -> bool:
    a, b = space.describe(parent), space.describe(child)
    return sum(a[k] != b[k] for k in a.keys() & b.keys()) == 1


def test_local_search_climbs_from_the_best_initial_sample() -> None:
    space = ToyGrid()
    strategy = LocalSearch(initial_samples=5)
    strategy.start(space, 3)
    initial = [strategy.ask() for _ in range(5)]
    for trial in initial:
        strategy.tell(trial, toy_reward(space, trial.arch))
    best = max(initial, key=lambda t: toy_reward(space, t.arch)).arch
    neighbours = set(space.neighbours(best)) - {t.arch for t in initial}  # known ones are not asked again
    for _ in range(len(neighbours)):
        trial = strategy.ask()
        assert trial.arch in neighbours
        strategy.tell(trial, toy_reward(space, trial.arch))


def test_local_search_finds_the_optimum_of_a_small_space() -> None:
    space = ToyGrid()
    optimum = max(toy_reward(space, a) for a in space.enumerate())
    result = run_search(LocalSearch(), space, ToyEvaluator(space), Budget(evaluations=80), seed=0)
    assert result.incumbent().val_accuracy == optimum


def test_reinforce_gradient_matches_autograd() -> None:
    layers, hidden = 2, 5
    counts = np.array([2, 3, 2, 4], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    weights = ControllerParams.zeros(layers, hidden, int(counts.sum()))
    weights.flat[:] = np.random.default_rng(0).uniform(-0.5, 0.5, weights.flat.shape)
    grads = ControllerParams.zeros(layers, hidden, int(counts.sum()))
    decisions, choices, advantage, beta = np.arange(4), np.array([1, 2, 0, 3]), 0.7, 0.3
    log_p, entropy = forward_backward(
        weights.W, weights.b, weights.A, weights.a, weights.E, weights.g,
        grads.W, grads.b, grads.A, grads.a, grads.E, grads.g,
        decisions, choices, offsets, counts, advantage, beta,
    )
    t = {k: torch.tensor(getattr(weights, k), requires_grad=True) for k in "W b A a E g".split()}
    h = [torch.zeros(hidden, dtype=torch.float64) for _ in range(layers)]
    c = [torch.zeros(hidden, dtype=torch.float64) for _ in range(layers)]
    total_log_p = total_entropy = torch.zeros((), dtype=torch.float64)
    for step in range(4):
        x = t["g"] if step == 0 else t["E"][offsets[decisions[step - 1]] + choices[step - 1]]
        for layer in range(layers):
            z = t["W"][layer] @ torch.cat([x, h[layer]]) + t["b"][layer]
            i, f = torch.sigmoid(z[:hidden]), torch.sigmoid(z[hidden:2 * hidden])
            g, o = torch.tanh(z[2 * hidden:3 * hidden]), torch.sigmoid(z[3 * hidden:])
            c[layer] = f * c[layer] + i * g
            h[layer] = x = o * torch.tanh(c[layer])
        rows = slice(offsets[decisions[step]], offsets[decisions[step]] + counts[decisions[step]])
        logits = torch.log_softmax(t["A"][rows] @ h[-1] + t["a"][rows], 0)
        total_log_p = total_log_p + logits[choices[step]]
        total_entropy = total_entropy - (logits.exp() * logits).sum()
    (-(advantage * total_log_p + beta * total_entropy)).backward()
    assert log_p == pytest.approx(total_log_p.item()) and entropy == pytest.approx(total_entropy.item())
    for name, tensor in t.items():
        np.testing.assert_allclose(getattr(grads, name), tensor.grad.numpy(), atol=1e-12, err_msg=name)


def test_reinforce_learns_to_prefer_high_reward_decisions() -> None:
    space = ToyGrid()
    chance = np.mean([toy_reward(space, a) for a in space.enumerate()])
    strategy = Reinforce(learning_rate=0.02)
    result = run_search(strategy, space, ToyEvaluator(space), Budget(evaluations=300), seed=1)
    rewards = [t.val_accuracy for t in result.trials]
    assert np.mean(rewards[-60:]) > chance + 0.2
    favourite = max(set(t.arch for t in result.trials[-60:]), key=[t.arch for t in result.trials].count)
    assert strategy.log_prob(favourite) > np.log(1 / space.size) + 2.0  # far above uniform
    baseline = rewards[0]
    for reward in rewards[1:]:
        baseline = 0.95 * baseline + 0.05 * reward
    assert strategy.baseline == pytest.approx(baseline)
