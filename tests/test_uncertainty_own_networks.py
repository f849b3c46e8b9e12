"""Estimators that train a network of their own keep it in the checkpoint cache, like the
zoo's networks and the ensemble's members: a second fit loads it instead of training."""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import pytest
import torch

from benchtool.models import trained as trained_module
from benchtool.models.trained import own_network
from benchtool.testing.estimators import conformance_task
from benchtool_uncertainty.ddu import DDU
from benchtool_uncertainty.evidential import Evidential
from benchtool_uncertainty.heteroscedastic import Heteroscedastic

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cached_task(task_kind: str, cache: Path):
    task, test = conformance_task(task_kind)
    trains = partial(own_network, task.model_name, task.info, task.seed, task.recipe, device=task.device,
                     cache_dir=cache)
    return dataclasses.replace(task, own_network=trains), test


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The cache keys that through_cache really trained."""
    calls: list[str] = []
    real = trained_module.through_cache

    def counting(key, build, train_, **kwargs):
        def train_counted(network):
            calls.append(key["model"])
            return train_(network)
        return real(key, build, train_counted, **kwargs)

    monkeypatch.setattr(trained_module, "through_cache", counting)
    return calls


@pytest.mark.parametrize(("plugin", "task_kind"), [(DDU, "classification"), (Evidential, "classification"),
                                                   (Evidential, "regression"), (Heteroscedastic, "regression")])
def test_an_own_network_trains_once_and_predicts_the_same_from_the_cache(
    plugin, task_kind: str, tmp_path: Path, trainings: list[str]
) -> None:
    task, test = cached_task(task_kind, tmp_path)
    first = plugin()
    first.fit_checked(task)
    assert trainings == [f"conformance-tiny.{plugin.name}"]
    second = plugin()
    second.fit_checked(task)
    assert len(trainings) == 1  # loaded, not trained again
    assert torch.allclose(first.predict(test.x).mean, second.predict(test.x).mean, atol=1e-6)


def test_other_hyper_parameters_are_another_network(tmp_path: Path, trainings: list[str]) -> None:
    task, _ = cached_task("classification", tmp_path)
    Heteroscedastic().fit_checked(task)
    Heteroscedastic(train_samples=3).fit_checked(task)
    Heteroscedastic(train_samples=3).fit_checked(task)
    assert len(trainings) == 2
    assert len(list((tmp_path / "checkpoints").glob("conformance-tiny.heteroscedastic-*.pt"))) == 2


def test_without_a_cache_every_fit_trains(trainings: list[str]) -> None:
    task, _ = conformance_task("classification")
    assert task.own_network is None
    DDU().fit_checked(task)
    DDU().fit_checked(task)
    assert trainings == []  # trained directly, not through the cache
