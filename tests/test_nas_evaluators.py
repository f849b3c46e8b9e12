"""Evaluators and tables: lookups on a simulated clock, real child training with its
cache, and every way a table file can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchtool.contracts.model import TrainRecipe
from benchtool.data import load_dataset
from benchtool.data.digits import Digits
from benchtool.errors import UsageError
from benchtool.harness.nas import Budget, NasTable, TabularEvaluator, TrainingEvaluator, run_search
from benchtool.testing.strategies import ToyGrid, toy_reward
from benchtool_nas.random_search import RandomSearch
from benchtool_nas.spaces import ConvChainSmall

ONE_EPOCH = TrainRecipe(epochs=1, batch_size=128, optimizer="adam", lr=3e-3)


def toy_table(space: ToyGrid, seeds: int = 2) -> NasTable:
    archs = list(space.enumerate())
    base = np.array([toy_reward(space, a) for a in archs])
    shift = np.linspace(-0.01, 0.01, seeds)
    return NasTable(
        meta={"space": space.name, "training_seeds": list(range(seeds))},
        keys=[space.key(a) for a in archs],
        params=np.arange(len(archs), dtype=np.int64) + 100,
        val_accuracy=base[:, None] + shift,
        test_accuracy=base[:, None] - shift,
        train_seconds=np.tile(np.arange(1.0, seeds + 1.0), (len(archs), 1)) * (1 + np.arange(len(archs)) % 3)[:, None],
    )


def test_table_round_trips_through_json(tmp_path: Path) -> None:
    space = ToyGrid()
    table = toy_table(space)
    table.save(tmp_path / "t.json")
    loaded = NasTable.load(tmp_path / "t.json")
    assert loaded.keys == table.keys and loaded.meta["space"] == "toy-grid"
    np.testing.assert_allclose(loaded.val_accuracy, table.val_accuracy, atol=1e-6)
    np.testing.assert_array_equal(loaded.params, table.params)
    loaded.check_space(space)
    assert loaded.best_test == pytest.approx(table.test_accuracy.mean(axis=1).max(), abs=1e-6)


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("{not json", "not valid JSON"),
    (json.dumps({"format": "other"}), "expected format"),
    (json.dumps({"format": "benchtool-nas-table/1", "architectures": {}}), "no architectures"),
    (json.dumps({"format": "benchtool-nas-table/1", "training_seeds": [0, 1], "architectures": {
        "0.0.0.0": {"params": 1, "val_accuracy": [0.5], "test_accuracy": [0.5, 0.5], "train_seconds": [1, 1]}}}),
     "val_accuracy must list 2 values"),
])
def test_bad_table_files_are_clear_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=message):
        NasTable.load(path)


def test_table_must_cover_its_space() -> None:
    space = ToyGrid()
    table = toy_table(space)
    wrong_name = NasTable({"space": "other"}, table.keys, table.params, table.val_accuracy,
                          table.test_accuracy, table.train_seconds)
    with pytest.raises(UsageError, match="is for space 'other'"):
        wrong_name.check_space(space)
    partial = NasTable(table.meta, table.keys[:-1], table.params[:-1], table.val_accuracy[:-1],
                       table.test_accuracy[:-1], table.train_seconds[:-1])
    with pytest.raises(UsageError, match="holds 119 architectures, the space has 120"):
        partial.check_space(space)
    bogus = NasTable(table.meta, [*table.keys[:-1], "9.9.9.9"], table.params, table.val_accuracy,
                     table.test_accuracy, table.train_seconds)
    with pytest.raises(UsageError, match="position 0"):
        bogus.check_space(space)


def test_tabular_evaluator_answers_one_seed_and_charges_its_time() -> None:
    space = ToyGrid()
    table = toy_table(space)
    evaluator = TabularEvaluator(space, table)
    arch = (1, 2, 3, 4)
    row = table.row(space.key(arch))
    for trial_seed in (0, 1, 2, 7):
        result = evaluator.evaluate(arch, trial_seed=trial_seed)
        seed = trial_seed % 2
        assert result.status == "ok" and result.val_accuracy == pytest.approx(table.val_accuracy[row, seed])
        assert result.cost_seconds == table.train_seconds[row, seed]
        assert result.test_accuracy == pytest.approx(table.test_accuracy[row].mean())
    assert evaluator.test_accuracy(arch) == pytest.approx(table.test_accuracy[row].mean())
    slow = evaluator.evaluate(arch, trial_seed=1, timeout=0.5)
    assert slow.status == "timeout" and slow.reward is None and slow.cost_seconds == 0.5


def test_tabular_evaluator_needs_a_table() -> None:
    with pytest.raises(UsageError, match="has no table"):
        TabularEvaluator(ToyGrid())


@pytest.fixture(scope="module")
def digits():
    return load_dataset(Digits(), root=Path("."), seed=0)


def test_training_evaluator_trains_caches_and_resumes(tmp_path: Path, digits) -> None:
    space = ConvChainSmall()
    arch = (0, 1, 1, 0, 0, 0)  # one 3x3 layer, stride 1, 8 filters
    cache = tmp_path / "cache.jsonl"
    evaluator = TrainingEvaluator(space, digits, ONE_EPOCH, train_seed=3, cache_file=cache)
    first = evaluator.evaluate(arch)
    model = space.build(arch, digits.info)
    assert first.status == "ok" and not first.cached and first.cost_seconds > 0
    assert 0.3 < first.val_accuracy <= 1.0 and 0.3 < first.test_accuracy <= 1.0
    assert first.params == sum(p.numel() for p in model.parameters())
    again = evaluator.evaluate(arch)
    assert again.cached and again.cost_seconds == 0.0 and again.val_accuracy == first.val_accuracy
    cache.write_text(cache.read_text() + '{"torn": ')  # a writer killed mid-line
    resumed = TrainingEvaluator(space, digits, ONE_EPOCH, train_seed=3, cache_file=cache)
    assert resumed.evaluate(arch).cached and resumed.recorded(arch).cost_seconds == first.cost_seconds
    other_seed = TrainingEvaluator(space, digits, ONE_EPOCH, train_seed=4, cache_file=cache)
    assert other_seed.recorded(arch) is None


def test_training_evaluator_pickles_for_remote_workers(digits) -> None:
    import copy as copying
    import pickle

    evaluator = TrainingEvaluator(ConvChainSmall(), digits, ONE_EPOCH, train_seed=2)
    assert pickle.dumps(evaluator)  # what an executor sends to another process
    copy = copying.deepcopy(evaluator)  # the same __getstate__/__setstate__ path, no unpickling
    assert copy.train_seed == 2 and copy.recipe == ONE_EPOCH and copy.space.name == "conv-chain-small"
    assert copy._lock is not evaluator._lock


def test_training_is_seeded_and_times_out(digits) -> None:
    space = ConvChainSmall()
    arch = (0, 0, 0, 1, 1, 0)
    a = TrainingEvaluator(space, digits, ONE_EPOCH, train_seed=1, clock="cpu").evaluate(arch)
    b = TrainingEvaluator(space, digits, ONE_EPOCH, train_seed=1).evaluate(arch)
    assert a.val_accuracy == b.val_accuracy and a.test_accuracy == b.test_accuracy
    long_recipe = TrainRecipe(epochs=500, batch_size=16)
    timed = TrainingEvaluator(space, digits, long_recipe).evaluate(arch, timeout=0.3)
    assert timed.status == "timeout" and timed.reward is None and "within 0.3 s" in timed.detail
    with pytest.raises(UsageError, match="clock 'gpu'"):
        TrainingEvaluator(space, digits, ONE_EPOCH, clock="gpu")


def test_a_search_with_real_training(digits) -> None:
    space = ConvChainSmall()
    evaluator = TrainingEvaluator(space, digits, ONE_EPOCH, device=torch.device("cpu"))
    result = run_search(RandomSearch(), space, evaluator, Budget(evaluations=3), seed=0)
    assert result.error is None and len(result.trials) == 3
    assert all(t.status == "ok" and t.val_accuracy > 0.2 for t in result.trials)
