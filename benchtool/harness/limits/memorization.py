"""Fitting random labels and random pixels (Zhang, Bengio, Hardt, Recht & Vinyals, ICLR 2017,
"Understanding deep learning requires rethinking generalization").

A fraction p of the training labels is replaced by uniformly random classes, or the images
by Gaussian noise, and a network is trained until it fits the training set exactly (100%
training accuracy in eval mode) or its epoch budget runs out.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from benchtool.config import check_budget
from benchtool.contracts.data import Split
from benchtool.contracts.model import TrainRecipe
from benchtool.data.splits import rng_for
from benchtool.errors import UsageError
from benchtool.models.nets import dropout_layers
from benchtool.models.training import check_recipe, evaluate, loss_and_correct, train_epochs

CORRUPTION_FRACTIONS: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
LABEL_NOISE_STREAM = 100  # random stream of the label corruption (distinct from splits/shifts)
PIXEL_NOISE_STREAM = 101  # random stream of the Gaussian images


@dataclass(frozen=True)
class CorruptedLabels:
    """Labels with ``resampled`` examples given a fresh uniform class (which may, with
    probability 1/C, be the true one, as in Zhang et al.)."""

    labels: torch.Tensor
    resampled: torch.Tensor  # bool mask of the examples whose label was redrawn

    @property
    def fraction_resampled(self) -> float:
        return int(self.resampled.sum()) / len(self.resampled) if len(self.resampled) else 0.0


def resampled_count(n: int, fraction: float) -> int:
    """How many of ``n`` labels a corruption ``fraction`` redraws: round half up."""
    return int(math.floor(fraction * n + 0.5))


def corrupt_labels(labels: torch.Tensor, fraction: float, num_classes: int, seed: int) -> CorruptedLabels:
    """Redraw exactly ``round(fraction * n)`` labels, chosen by ``seed``, uniformly from
    ``num_classes``. Corruptions are nested: for one seed the examples redrawn at a smaller
    fraction are redrawn at every larger one, with the same new labels."""
    if not 0.0 <= fraction <= 1.0:
        raise UsageError(f"label corruption fraction must lie in [0, 1], got {fraction}")
    if num_classes < 2:
        raise UsageError(f"label corruption needs num_classes >= 2, got {num_classes}")
    n = len(labels)
    rng = rng_for(seed, LABEL_NOISE_STREAM)
    order = rng.permutation(n)
    fresh = rng.integers(0, num_classes, size=n)
    chosen = order[: resampled_count(n, fraction)]
    out = labels.detach().cpu().numpy().astype(np.int64, copy=True)
    out[chosen] = fresh[chosen]
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    return CorruptedLabels(torch.from_numpy(out).to(labels.device), torch.from_numpy(mask).to(labels.device))


def gaussian_images(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Zhang et al.'s "random pixels": every input replaced by Gaussian noise with the
    per-pixel mean and standard deviation of ``x``."""
    generator = torch.Generator().manual_seed(int(rng_for(seed, PIXEL_NOISE_STREAM).integers(2**62)))
    flat = x.detach().cpu().reshape(len(x), -1).double()
    noise = torch.randn(flat.shape, generator=generator, dtype=torch.float64)
    out = flat.mean(0) + flat.std(0) * noise
    return out.reshape(x.shape).to(dtype=x.dtype, device=x.device)


def subsample(split: Split, examples: int | None, seed: int) -> Split:
    """The first ``examples`` of a seeded permutation of ``split`` (all when None)."""
    if examples is None or examples >= len(split):
        return split
    order = torch.from_numpy(rng_for(seed, LABEL_NOISE_STREAM + 2).permutation(len(split))[:examples])
    return Split(split.x[order], split.y[order])


@dataclass(frozen=True)
class MemorizationRecipe:
    """The training recipe of the memorization runs: ``recipe.epochs`` is the epoch budget
    (training stops early once every training label is fitted), ``train_examples`` trims
    the training set (None: all of it), and ``keep_dropout`` keeps the network's dropout
    (off by default: the runs measure capacity, not regularization)."""

    recipe: TrainRecipe
    train_examples: int | None = None
    keep_dropout: bool = False

    def as_params(self) -> dict[str, float]:
        """The recipe's numbers, for the records."""
        return {"epochs_max": self.recipe.epochs, "batch_size": self.recipe.batch_size, "lr": self.recipe.lr}


def memorization_recipe(budget: str) -> MemorizationRecipe:
    """Adam, lr 3e-3, cosine decay over the epoch budget, no weight decay, no augmentation.
    ``small`` fits 256 training examples in at most 100 epochs; ``default`` the whole
    digits training split in at most 200; ``full`` in at most 400."""
    table = {"small": (150, 32, 256), "default": (200, 64, None), "full": (400, 64, None)}
    epochs, batch, examples = table[check_budget(budget)]
    recipe = TrainRecipe(epochs=epochs, batch_size=batch, optimizer="adam", lr=3e-3, schedule="cosine")
    return MemorizationRecipe(recipe=recipe, train_examples=examples)


@dataclass
class FitHistory:
    """Per-epoch figures of one memorization run (accuracies in eval mode)."""

    train_accuracy: list[float] = field(default_factory=list)  # on the labels it was trained on
    train_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)  # on the test set's true labels
    epochs_to_fit: int | None = None  # first epoch at 100% training accuracy
    steps_per_epoch: int = 0
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.train_accuracy)

    @property
    def best_train_accuracy(self) -> float:
        return max(self.train_accuracy, default=math.nan)


def disable_dropout(model: nn.Module) -> int:
    """Set every dropout layer's rate to 0; returns how many there were."""
    layers = dropout_layers(model)
    for layer in layers:
        layer.p = 0.0
    return len(layers)


def fit_labels(
    model: nn.Module,
    train: Split,
    test: Split,
    setup: MemorizationRecipe,
    *,
    seed: int,
    device: torch.device | str,
) -> FitHistory:
    """Train ``model`` in place on ``train`` until it classifies every training example as
    labelled, or ``setup.recipe.epochs`` run out; the model is left in eval mode."""
    recipe = check_recipe(setup.recipe)
    if recipe.augment != "none":
        raise UsageError(f"memorization runs train without augmentation; the recipe asks for {recipe.augment!r}")
    device = torch.device(device)
    if not setup.keep_dropout:
        disable_dropout(model)
    model.to(device)
    train_on_device, test_on_device = train.to(device), test.to(device)
    history = FitHistory(steps_per_epoch=math.ceil(len(train) / recipe.batch_size))
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model.train()  # evaluate() restores it after every epoch
        epochs = train_epochs(
            model, train_on_device, dataclasses.replace(recipe, schedule="cosine"),  # always decayed, as documented
            lambda outputs, targets: loss_and_correct(outputs, targets, "classification"),
            seed=seed, device=device, label=f"memorization seed {seed}",
        )
        for epoch, _ in enumerate(epochs, start=1):
            train_loss, train_accuracy = evaluate(model, train_on_device, "classification", device)
            history.train_loss.append(train_loss)
            history.train_accuracy.append(train_accuracy)
            history.test_accuracy.append(evaluate(model, test_on_device, "classification", device)[1])
            if train_accuracy == 1.0:
                history.epochs_to_fit = epoch
                break
    model.eval()
    history.seconds = time.perf_counter() - started
    return history
