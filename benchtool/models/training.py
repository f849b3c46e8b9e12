"""The trainer: one seeded loop for every (model, dataset, recipe), on the chosen device.

Classification minimises cross-entropy, regression mean squared error. Batches are drawn
from in-memory tensors on the device (no DataLoader), shuffled by a generator seeded
with ``seed``; dropout draws from torch's global generator, seeded for the loop and
restored afterwards, so training never disturbs the caller's random state.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from benchtool.contracts.data import DataBundle, Split, Task
from benchtool.contracts.model import TrainRecipe
from benchtool.errors import BenchtoolError, choices_error
from benchtool.models.progress import ProgressLine

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "cosine")
AUGMENTATIONS = ("none", "crop", "crop-flip")
EVAL_BATCH = 1024


class TrainingError(BenchtoolError):
    """Training could not produce a usable model (a diverged loss)."""


@dataclass
class TrainHistory:
    """Per-epoch figures of one training run; accuracies are NaN for regression."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.train_loss)


def check_recipe(recipe: TrainRecipe) -> TrainRecipe:
    """Reject a recipe the trainer cannot run, naming the bad field."""
    if recipe.optimizer not in OPTIMIZERS:
        raise choices_error("recipe optimizer", recipe.optimizer, OPTIMIZERS)
    if recipe.schedule not in SCHEDULES:
        raise choices_error("recipe schedule", recipe.schedule, SCHEDULES)
    if recipe.augment not in AUGMENTATIONS:
        raise choices_error("recipe augment", recipe.augment, AUGMENTATIONS)
    for name in ("epochs", "batch_size"):
        if getattr(recipe, name) < 1:
            raise ValueError(f"recipe {name} must be >= 1, got {getattr(recipe, name)}")
    if not recipe.lr > 0:
        raise ValueError(f"recipe lr must be > 0, got {recipe.lr}")
    return recipe


def make_optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )
    return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)


def augment(x: torch.Tensor, kind: str, bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 1/8 of the image size (padding with the lower bound) and,
    for ``crop-flip``, horizontal flips: the CIFAR augmentation of He et al. 2016."""
    if kind == "none":
        return x
    if x.ndim != 4:
        raise ValueError(f"augment {kind!r} needs (N, C, H, W) images, got shape {tuple(x.shape)}")
    n, channels, height, width = x.shape
    pad = max(1, height // 8)
    padded = F.pad(x, (pad, pad, pad, pad), value=bounds[0])
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator)
    rows = (dy + torch.arange(height)).to(x.device)
    cols = (dx + torch.arange(width)).to(x.device)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(channels, device=x.device)[None, :, None, None]
    out = padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]
    if kind == "crop-flip":
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out


def loss_and_correct(outputs: torch.Tensor, targets: torch.Tensor, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss of a batch and how many predictions were right (0 for regression), both
    as tensors on the batch's device, so a training step never waits for the GPU."""
    if task == "classification":
        return F.cross_entropy(outputs, targets), (outputs.argmax(1) == targets).sum()
    return F.mse_loss(outputs, targets.reshape(outputs.shape)), outputs.new_zeros((), dtype=torch.int64)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, task: Task, device: torch.device) -> tuple[float, float]:
    """Mean loss and accuracy (NaN for regression) of ``model`` in eval mode on ``split``;
    the model's train/eval flag is restored."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(split), EVAL_BATCH):
        x = split.x[start : start + EVAL_BATCH].to(device)
        y = split.y[start : start + EVAL_BATCH].to(device)
        loss, right = loss_and_correct(model(x), y, task)
        total_loss += float(loss) * len(x)
        correct += int(right)
    model.train(was_training)
    n = max(len(split), 1)
    return total_loss / n, (correct / n if task == "classification" else math.nan)


def train(
    model: nn.Module,
    bundle: DataBundle,
    recipe: TrainRecipe,
    *,
    seed: int,
    device: torch.device | str,
    progress: bool = True,
    label: str | None = None,
) -> TrainHistory:
    """Train ``model`` in place on ``bundle.train`` with ``recipe``; evaluate ``bundle.val``
    after every epoch. The model is left on ``device`` in eval mode."""
    check_recipe(recipe)
    device = torch.device(device)
    task = bundle.info.task
    model.to(device)
    x_train, y_train = bundle.train.x.to(device), bundle.train.y.to(device)
    steps_per_epoch = math.ceil(len(x_train) / recipe.batch_size)
    optimizer = make_optimizer(model, recipe)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs * steps_per_epoch)
        if recipe.schedule == "cosine" else None
    )
    shuffle = torch.Generator().manual_seed(seed)
    bar = ProgressLine(label or f"train seed {seed}", recipe.epochs, enabled=progress)
    history = TrainHistory()
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for epoch in range(1, recipe.epochs + 1):
            model.train()
            total_loss = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            seen = 0
            for batch in torch.randperm(len(x_train), generator=shuffle).split(recipe.batch_size):
                if len(batch) < 2 and seen:  # a lone last example would break BatchNorm
                    continue
                batch = batch.to(device)
                x = augment(x_train[batch], recipe.augment, bundle.info.bounds, shuffle)
                loss, right = loss_and_correct(model(x), y_train[batch], task)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                total_loss += loss.detach() * len(batch)
                correct += right
                seen += len(batch)
            epoch_loss = float(total_loss) / seen
            if not math.isfinite(epoch_loss):
                raise TrainingError(f"training {bar.label} diverged: the loss is {epoch_loss} in epoch {epoch}")
            val_loss, val_accuracy = evaluate(model, bundle.val, task, device)
            history.train_loss.append(epoch_loss)
            history.train_accuracy.append(int(correct) / seen if task == "classification" else math.nan)
            history.val_loss.append(val_loss)
            history.val_accuracy.append(val_accuracy)
            bar.update(epoch, _status(history))
    model.eval()
    history.seconds = time.perf_counter() - started
    bar.close(_status(history))
    return history


def _status(history: TrainHistory) -> str:
    status = f"loss {history.train_loss[-1]:.4f} val_loss {history.val_loss[-1]:.4f}"
    if not math.isnan(history.val_accuracy[-1]):
        status += f" val_acc {history.val_accuracy[-1]:.3f}"
    return status
