"""The trainer: learns, is seeded, leaves the caller's RNG alone, validates recipes."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch

from benchtool.contracts.data import DataBundle
from benchtool.contracts.model import TrainRecipe
from benchtool.data import load_dataset
from benchtool.data.digits import Digits
from benchtool.data.toy import ToyRegression
from benchtool.errors import UsageError
from benchtool.models import TrainHistory, evaluate, train
from benchtool.models.progress import ProgressLine
from benchtool.models.training import augment
from benchtool.models.zoo import LeNetSpec, MlpSpec, ResNet20Spec

ROOT = Path("/nonexistent-benchtool-data-root")
TINY = TrainRecipe(epochs=2, batch_size=64, lr=3e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset(Digits(), root=ROOT, seed=0)


def _trained(
    spec_cls: type, bundle: DataBundle, recipe: TrainRecipe, seed: int = 0
) -> tuple[torch.nn.Module, TrainHistory]:
    torch.manual_seed(seed)
    model = spec_cls().build(bundle.info)
    history = train(model, bundle, recipe, seed=seed, device="cpu", progress=False)
    return model, history


def test_training_records_every_epoch_and_learns(digits: DataBundle) -> None:
    model, history = _trained(MlpSpec, digits, TrainRecipe(epochs=3, batch_size=64, lr=3e-3))
    assert history.epochs == 3 and len(history.val_accuracy) == 3 and history.seconds > 0
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_accuracy[-1] > 0.8  # chance is 0.1
    assert not model.training
    _, accuracy = evaluate(model, digits.test, "classification", torch.device("cpu"))
    assert accuracy > 0.8


def test_same_seed_same_weights_and_the_callers_rng_is_untouched(digits: DataBundle) -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first, _ = _trained(LeNetSpec, digits, TINY, seed=5)
    torch.set_rng_state(before)
    second, _ = _trained(LeNetSpec, digits, TINY, seed=5)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    model = LeNetSpec().build(digits.info)
    state = torch.get_rng_state()
    train(model, digits, TINY, seed=1, device="cpu", progress=False)
    assert torch.equal(torch.get_rng_state(), state)


def test_resnet_with_batchnorm_and_augmentation_trains(digits: DataBundle) -> None:
    recipe = TrainRecipe(epochs=1, batch_size=128, optimizer="sgd", lr=0.05, schedule="cosine", augment="crop-flip")
    model, history = _trained(ResNet20Spec, digits, recipe)
    assert math.isfinite(history.train_loss[0]) and not model.training


def test_regression_training_reports_nan_accuracy() -> None:
    bundle = load_dataset(ToyRegression(), root=ROOT, seed=0)
    _, history = _trained(MlpSpec, bundle, TrainRecipe(epochs=5, batch_size=64, lr=3e-3))
    assert history.val_loss[-1] < history.val_loss[0]
    assert all(math.isnan(a) for a in history.train_accuracy + history.val_accuracy)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("optimizer", "rmsprop", "unknown recipe optimizer 'rmsprop'"), ("schedule", "step", "unknown recipe schedule"),
     ("augment", "mixup", "unknown recipe augment 'mixup'")],
)
def test_bad_recipes_name_the_bad_field(digits: DataBundle, field: str, value: str, message: str) -> None:
    recipe = TrainRecipe(epochs=1, **{field: value})
    with pytest.raises(UsageError, match=message):
        train(MlpSpec().build(digits.info), digits, recipe, seed=0, device="cpu", progress=False)


def test_augment_shifts_and_flips_inside_the_bounds() -> None:
    x = torch.rand(64, 3, 16, 16)
    generator = torch.Generator().manual_seed(0)
    out = augment(x, "crop-flip", (0.0, 1.0), generator)
    assert out.shape == x.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.equal(out, x)
    assert augment(x, "none", (0.0, 1.0), generator) is x
    same = [torch.equal(out[i, :, 2:-2, 2:-2], x[i, :, 2:-2, 2:-2]) for i in range(64)]
    assert 0 < sum(same) < 64  # some images kept their place, most moved or flipped


def test_progress_line_is_silent_when_disabled_and_ends_with_a_summary() -> None:
    quiet = io.StringIO()
    bar = ProgressLine("lenet/digits", 3, enabled=False, stream=quiet)
    bar.update(1, "x")
    bar.close("done")
    assert quiet.getvalue() == ""
    log = io.StringIO()
    bar = ProgressLine("lenet/digits", 3, stream=log)
    bar.update(1, "loss 1")
    bar.close("loss 0.5")
    assert log.getvalue().count("\n") == 1 and "lenet/digits [####################] 3/3 loss 0.5" in log.getvalue()
