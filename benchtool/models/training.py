"""The trainer: one seeded loop for every (model, dataset, recipe), on the chosen device.

Classification minimises cross-entropy, regression mean squared error. Batches are drawn
from in-memory tensors on the device (no DataLoader), shuffled by a generator seeded
with ``seed``; dropout draws from torch's global generator, seeded for the loop and
restored afterwards, so training never disturbs the caller's random state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
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
ADVERSARIES = ("none", "fgsm-rs", "pgd")
FGSM_RS_STEP = 1.25  # Wong, Rice & Kolter 2020: step alpha = 1.25 eps from a uniform start
PGD_REL_STEP = 2.5  # Madry's lab robustness library: step 2.5 eps / steps
EVAL_BATCH = 1024

# (outputs, targets) -> (mean loss, number of right predictions), both tensors on the batch's device
StepLoss = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
BatchInputs = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # (inputs, shuffle generator) -> inputs
# (inputs, labels, shuffle generator) -> the inputs to train on (adversarial examples)
BatchAdversary = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


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
    if recipe.adversary not in ADVERSARIES:
        raise choices_error("recipe adversary", recipe.adversary, ADVERSARIES)
    if recipe.adversary != "none" and not recipe.adversary_eps > 0:
        raise ValueError(f"recipe adversary_eps must be > 0 for adversary {recipe.adversary!r}, "
                         f"got {recipe.adversary_eps}")
    if recipe.adversary == "pgd" and recipe.adversary_steps < 1:
        raise ValueError(f"recipe adversary_steps must be >= 1 for adversary 'pgd', got {recipe.adversary_steps}")
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


def adversarial_examples(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: TrainRecipe, bounds: tuple[float, float],
    generator: torch.Generator,
) -> torch.Tensor:
    """Linf adversarial examples of a training batch for ``recipe.adversary``: ``fgsm-rs``, one
    signed-gradient step of 1.25 eps from a uniform random start in the ball ("fast
    adversarial training", Wong, Rice & Kolter, ICLR 2020), or ``pgd``, ``adversary_steps``
    steps of 2.5 eps / steps from a random start (Madry et al., ICLR 2018). Crafted with the
    model in eval mode (no dropout noise in the adversary); the caller's mode is restored.
    Draws from ``generator`` (on the CPU), so a seed fixes the examples."""
    eps, low, high = recipe.adversary_eps, bounds[0], bounds[1]
    steps, step = (1, FGSM_RS_STEP * eps) if recipe.adversary == "fgsm-rs" else (
        recipe.adversary_steps, PGD_REL_STEP * eps / recipe.adversary_steps)
    was_training = model.training
    model.eval()
    start = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device, x.dtype) * eps
    x_adv = torch.clamp(x + start, low, high)
    for _ in range(steps):
        x_req = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(F.cross_entropy(model(x_req), y), x_req)
        x_adv = x_adv.detach() + step * grad.sign()
        x_adv = torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), low, high)
    model.train(was_training)
    return x_adv.detach()


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


@dataclass(frozen=True)
class EpochTotals:
    """What one epoch of :func:`train_epochs` saw: its mean loss, right predictions and examples."""

    loss: float
    correct: int
    seen: int


def train_epochs(
    model: nn.Module,
    split: Split,
    recipe: TrainRecipe,
    step_loss: StepLoss,
    *,
    seed: int,
    device: torch.device,
    label: str,
    inputs: BatchInputs | None = None,
    adversary: BatchAdversary | None = None,
) -> Iterator[EpochTotals]:
    """Run ``recipe``'s minibatch steps on ``split`` (``make_optimizer``, the cosine schedule,
    batches shuffled by a generator seeded with ``seed``, a lone last batch skipped for
    BatchNorm), yielding each epoch's totals. ``inputs`` transforms each batch's inputs
    (augmentation, drawing from the shuffle generator); ``adversary`` then replaces them given
    their labels (adversarial training). The model's train/eval modes and torch's
    global generator are the caller's. Raises :class:`TrainingError` when the loss diverges."""
    x_train, y_train = split.x.to(device), split.y.to(device)
    steps_per_epoch = max(1, math.ceil(len(x_train) / recipe.batch_size))
    optimizer = make_optimizer(model, recipe)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs * steps_per_epoch)
        if recipe.schedule == "cosine" else None
    )
    shuffle = torch.Generator().manual_seed(seed)
    for epoch in range(1, recipe.epochs + 1):
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        for batch in torch.randperm(len(x_train), generator=shuffle).split(recipe.batch_size):
            if len(batch) < 2 and seen:  # a lone last example would break BatchNorm
                continue
            batch = batch.to(device)
            x = x_train[batch] if inputs is None else inputs(x_train[batch], shuffle)
            if adversary is not None:
                x = adversary(x, y_train[batch], shuffle)
            loss, right = step_loss(model(x), y_train[batch])
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
            raise TrainingError(f"training {label} diverged: the loss is {epoch_loss} in epoch {epoch}")
        yield EpochTotals(epoch_loss, int(correct), seen)


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
    task, bounds = bundle.info.task, bundle.info.bounds
    model.to(device)
    bar = ProgressLine(label or f"train seed {seed}", recipe.epochs, enabled=progress)
    history = TrainHistory()
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model.train()  # evaluate() restores it after every epoch
        epochs = train_epochs(
            model, bundle.train, recipe, lambda outputs, targets: loss_and_correct(outputs, targets, task),
            seed=seed, device=device, label=bar.label,
            inputs=lambda x, generator: augment(x, recipe.augment, bounds, generator),
            adversary=None if recipe.adversary == "none" else (
                lambda x, y, generator: adversarial_examples(model, x, y, recipe, bounds, generator)),
        )
        for epoch, totals in enumerate(epochs, start=1):
            val_loss, val_accuracy = evaluate(model, bundle.val, task, device)
            history.train_loss.append(totals.loss)
            history.train_accuracy.append(totals.correct / totals.seen if task == "classification" else math.nan)
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
