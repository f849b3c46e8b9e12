"""The estimator conformance checks catch each broken rule, and only that rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from benchtool.contracts.uncertainty import EstimationTask, UncertaintyEstimator
from benchtool.data.digits import Digits
from benchtool.testing import ConformanceError, check_plugin, run_checks
from benchtool.testing.estimators import conformance_task, datasets_unloadable


class Baseline(UncertaintyEstimator):
    """A correct two-pass estimator (softmax of the logits, and a noisy copy) to break below."""

    name: ClassVar[str] = "baseline"

    def fit(self, task: EstimationTask) -> None:
        self.model = task.model

    def sample(self, x: torch.Tensor) -> Any:
        logits = self.model(x)
        return torch.softmax(torch.stack([logits, logits + torch.randn_like(logits)]), dim=-1)


class NoPassAxis(Baseline):
    """Returns (N, C): forgets the passes axis."""

    def sample(self, x: torch.Tensor) -> Any:
        return torch.softmax(self.model(x), dim=-1)


class Unnormalised(Baseline):
    """Returns exp(logits), not probabilities."""

    def sample(self, x: torch.Tensor) -> Any:
        return self.model(x).exp().unsqueeze(0)


class LoadsDataset(Baseline):
    """Loads a dataset (and so its test split) during fit."""

    def fit(self, task: EstimationTask) -> None:
        Digits().load(root=Path("."), seed=0)
        super().fit(task)


class AdaptsAtTestTime(Baseline):
    """Shifts its logits by the running mean of every input it has seen."""

    def fit(self, task: EstimationTask) -> None:
        super().fit(task)
        self.seen = torch.zeros(())

    def sample(self, x: torch.Tensor) -> Any:
        self.seen = self.seen + x.mean()
        return torch.softmax(self.model(x) + self.seen, dim=-1).unsqueeze(0)


class OwnRandomness(Baseline):
    """Draws noise from a generator of its own that nothing seeds the same way twice."""

    calls = 0

    def sample(self, x: torch.Tensor) -> Any:
        OwnRandomness.calls += 1
        generator = torch.Generator().manual_seed(OwnRandomness.calls)
        logits = self.model(x)
        return torch.softmax(logits + torch.randn(logits.shape, generator=generator), dim=-1).unsqueeze(0)


class SwitchesModelToTrain(Baseline):
    """Puts the caller's model in training mode (BatchNorm statistics drift) and leaves it."""

    def sample(self, x: torch.Tensor) -> Any:
        self.model.train()
        return torch.softmax(self.model(x), dim=-1).unsqueeze(0)


def failed(plugin: Any) -> set[str]:
    return {r.check for r in run_checks(plugin) if not r.passed}


def test_a_correct_estimator_passes_every_check() -> None:
    results = check_plugin(Baseline)
    assert {r.check for r in results} == {
        "declares-tasks", "sample-shape", "probabilities-valid", "fit-without-test-data",
        "same-seed-same-samples", "model-left-as-given",
    }


@pytest.mark.parametrize(
    ("plugin", "broken"),
    [
        (NoPassAxis, "sample-shape"),
        (Unnormalised, "probabilities-valid"),
        (LoadsDataset, "fit-without-test-data"),
        (AdaptsAtTestTime, "fit-without-test-data"),
        (OwnRandomness, "same-seed-same-samples"),
        (SwitchesModelToTrain, "model-left-as-given"),
    ],
)
def test_each_broken_rule_is_caught(plugin: type[UncertaintyEstimator], broken: str) -> None:
    assert broken in failed(plugin)
    with pytest.raises(ConformanceError, match=broken):
        check_plugin(plugin)


def test_rules_that_hold_are_not_blamed() -> None:
    assert failed(Unnormalised) == {"probabilities-valid"}
    # test-time adaptation is detected by repeating a seeded prediction, so an estimator
    # that ignores the seed cannot be cleared of it
    assert failed(OwnRandomness) <= {"same-seed-same-samples", "fit-without-test-data"}


def test_undeclared_task_is_caught() -> None:
    class Misdeclared(Baseline):
        tasks = frozenset({"segmentation"})  # type: ignore[assignment]

    assert "declares-tasks" in failed(Misdeclared)


def test_dataset_guard_restores_loading() -> None:
    with datasets_unloadable(), pytest.raises(AssertionError, match="digits"):
        Digits().load(root=Path("."), seed=0)
    assert len(Digits().load(root=Path("."), seed=0).test) > 0


def test_conformance_task_withholds_the_test_split_and_copies_the_model() -> None:
    first, test = conformance_task("classification")
    second, _ = conformance_task("classification")
    assert not hasattr(first, "test")
    assert first.model is not second.model
    assert not first.model.training
    assert len(test) > 0 and len(first.train) > len(test)
