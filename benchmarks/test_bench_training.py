"""Hot paths of the model zoo: one training epoch, and a checkpoint-cache hit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchtool.contracts.data import DataBundle
from benchtool.contracts.model import TrainRecipe
from benchtool.data import load_dataset
from benchtool.data.digits import Digits
from benchtool.models import train, trained_model
from benchtool.models.zoo import LeNetSpec, ResNet20Spec

ONE_EPOCH = TrainRecipe(epochs=1, batch_size=32, lr=3e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset(Digits(), root=Path("/nonexistent"), seed=0)


@pytest.mark.parametrize("spec_cls", [LeNetSpec, ResNet20Spec], ids=lambda s: s.name)
def test_one_training_epoch_on_digits(benchmark, digits: DataBundle, spec_cls: type) -> None:  # noqa: ANN001
    def one_epoch() -> float:
        model = spec_cls().build(digits.info)
        return train(model, digits, ONE_EPOCH, seed=0, device="cpu", progress=False).train_loss[-1]

    loss = benchmark.pedantic(one_epoch, rounds=3, iterations=1)
    assert loss > 0


def test_cached_lenet_load(benchmark, digits: DataBundle, tmp_path: Path) -> None:  # noqa: ANN001
    def load() -> torch.nn.Module:
        return trained_model(LeNetSpec(), digits, seed=0, budget="small", device="cpu", cache_dir=tmp_path,
                             progress=False)

    load()  # the miss: trains once
    model = benchmark(load)
    assert not model.training
