"""A multi-task problem built from the digits images, for comparing loss weightings
(Kendall, Gal & Cipolla, CVPR 2018, "Multi-Task Learning Using Uncertainty to Weigh Losses
for Scene Geometry and Semantics").

Three tasks share one encoder and differ in loss type, scale and noise:

- ``digit``: the class, cross-entropy (scale ~0.1-2.3); metric: test accuracy.
- ``centre``: the ink's centre of mass (row, column) in pixels, mean squared error
  (scale ~0.3-1 px^2); the training targets carry Gaussian noise of ``CENTRE_NOISE`` px
  (homoscedastic task noise), validation and test targets are clean; metric: RMSE in pixels.
- ``reconstruction``: the 64 pixel intensities from the shared code, mean squared error
  (scale ~0.01); metric: RMSE.

Methods are compared by Delta_m (Maninis, Radosavovic & Kokkinos, CVPR 2019): the mean
relative change of each task's metric against a baseline, signed so that better is
positive, in percent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from benchtool.config import check_budget
from benchtool.contracts.data import DataBundle, Split
from benchtool.contracts.limits import LossWeighting, TaskSpec
from benchtool.data.splits import rng_for
from benchtool.errors import ContractViolation, UsageError

TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("digit", "classification"),
    TaskSpec("centre", "regression"),
    TaskSpec("reconstruction", "regression"),
)
METRIC_OF_TASK = {"digit": "accuracy", "centre": "rmse_px", "reconstruction": "rmse"}
HIGHER_IS_BETTER = {"digit": True, "centre": False, "reconstruction": False}
CENTRE_NOISE = 0.5  # px: std of the Gaussian noise on the training centre targets
CENTRE_NOISE_STREAM = 102
CODE_SIZE = 16  # width of the shared representation: the bottleneck the tasks compete for


@dataclass
class MultiTaskSplit:
    """Inputs and every task's targets for one split."""

    x: torch.Tensor  # (N, 1, 8, 8) images in [0, 1]
    digit: torch.Tensor  # (N,) int64
    centre: torch.Tensor  # (N, 2) pixels (row, column)
    image: torch.Tensor  # (N, 64) flattened pixels in [0, 1]

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> MultiTaskSplit:
        return MultiTaskSplit(self.x.to(device), self.digit.to(device), self.centre.to(device), self.image.to(device))

    def rows(self, index: torch.Tensor) -> MultiTaskSplit:
        return MultiTaskSplit(self.x[index], self.digit[index], self.centre[index], self.image[index])


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """The intensity-weighted mean (row, column) of each image ``(N, 1, H, W)``, in pixels;
    the image centre for a blank image."""
    n, _, height, width = images.shape
    mass = images.reshape(n, height, width).double()
    total = mass.sum(dim=(1, 2))
    rows = torch.arange(height, dtype=torch.float64, device=images.device)
    cols = torch.arange(width, dtype=torch.float64, device=images.device)
    row = (mass.sum(dim=2) * rows).sum(dim=1) / total.clamp_min(1e-12)
    col = (mass.sum(dim=1) * cols).sum(dim=1) / total.clamp_min(1e-12)
    blank = total <= 0
    row[blank], col[blank] = (height - 1) / 2, (width - 1) / 2
    return torch.stack([row, col], dim=1).to(images.dtype)


@dataclass
class MultiTaskProblem:
    """The three splits of the multi-task problem and the number of digit classes."""

    train: MultiTaskSplit
    val: MultiTaskSplit
    test: MultiTaskSplit
    num_classes: int


def multitask_problem(bundle: DataBundle, seed: int) -> MultiTaskProblem:
    """The multi-task problem built from an image classification bundle (digits)."""
    if bundle.info.task != "classification" or len(bundle.info.input_shape) != 3:
        raise UsageError(f"the multi-task problem needs an image classification dataset, got {bundle.info.name!r} "
                         f"({bundle.info.task}, input shape {bundle.info.input_shape})")
    low, high = bundle.info.bounds
    generator = torch.Generator().manual_seed(int(rng_for(seed, CENTRE_NOISE_STREAM).integers(2**62)))
    out = {}
    for name in ("train", "val", "test"):
        split: Split = getattr(bundle, name)
        x = ((split.x - low) / (high - low)).float()
        centre = centre_of_mass(x)
        if name == "train":
            centre = centre + CENTRE_NOISE * torch.randn(centre.shape, generator=generator)
        out[name] = MultiTaskSplit(x, split.y.long(), centre, x.reshape(len(x), -1))
    return MultiTaskProblem(**out, num_classes=int(bundle.info.num_classes or 0))


class MultiTaskNet(nn.Module):
    """A shared ReLU encoder (pixels -> 128 -> ``CODE_SIZE``) with one small head per task."""

    def __init__(self, pixels: int, classes: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(pixels, 128), nn.ReLU(), nn.Linear(128, CODE_SIZE), nn.ReLU()
        )
        self.heads = nn.ModuleDict({
            "digit": nn.Sequential(nn.Linear(CODE_SIZE, 64), nn.ReLU(), nn.Linear(64, classes)),
            "centre": nn.Sequential(nn.Linear(CODE_SIZE, 64), nn.ReLU(), nn.Linear(64, 2)),
            "reconstruction": nn.Sequential(nn.Linear(CODE_SIZE, 64), nn.ReLU(), nn.Linear(64, pixels), nn.Sigmoid()),
        })

    def shared_parameters(self) -> list[torch.Tensor]:
        """The last shared layer's parameters (where GradNorm measures gradient norms)."""
        return [self.encoder[3].weight]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        code = self.encoder(x)
        return {name: head(code) for name, head in self.heads.items()}


def task_losses(outputs: Mapping[str, torch.Tensor], batch: MultiTaskSplit) -> torch.Tensor:
    """Each task's mean loss, in ``TASKS`` order: cross-entropy, then mean squared errors."""
    return torch.stack([
        F.cross_entropy(outputs["digit"], batch.digit),
        F.mse_loss(outputs["centre"], batch.centre),
        F.mse_loss(outputs["reconstruction"], batch.image),
    ])


@torch.no_grad()
def task_metrics(net: MultiTaskNet, split: MultiTaskSplit) -> dict[str, float]:
    """Each task's metric on ``split``: accuracy, centre RMSE (pixels), reconstruction RMSE."""
    was_training = net.training
    net.eval()
    out = net(split.x)
    net.train(was_training)
    return {
        "digit": float((out["digit"].argmax(1) == split.digit).float().mean()),
        "centre": float((out["centre"] - split.centre).pow(2).sum(1).mean().sqrt()),
        "reconstruction": float((out["reconstruction"] - split.image).pow(2).mean().sqrt()),
    }


def delta_m(metrics: Mapping[str, float], baseline: Mapping[str, float]) -> float:
    """Delta_m in percent (Maninis et al. 2019): mean over tasks of the relative change
    against ``baseline``, positive when better."""
    changes = []
    for task, value in baseline.items():
        sign = 1.0 if HIGHER_IS_BETTER[task] else -1.0
        changes.append(sign * (metrics[task] - value) / value)
    return 100.0 * sum(changes) / len(changes)


@dataclass(frozen=True)
class MultiTaskRecipe:
    """Adam on the network (``lr``); the weighting's own parameters use its ``lr`` if it declares one."""

    epochs: int
    batch_size: int = 64
    lr: float = 1e-3


def multitask_recipe(budget: str) -> MultiTaskRecipe:
    """``small``: 10 epochs (a smoke test); ``default``: 60; ``full``: 150 (digits: 20 steps per epoch)."""
    epochs = {"small": 10, "default": 60, "full": 150}
    return MultiTaskRecipe(epochs=epochs[check_budget(budget)])


@dataclass
class MultiTaskRun:
    """One trained network: metrics per split, and the weighting's state after each epoch."""

    weighting: str
    params: dict[str, object]
    val: dict[str, float]
    test: dict[str, float]
    states: list[dict[str, float]] = field(default_factory=list)  # weighting.state() per epoch
    seconds: float = 0.0


def train_multitask(
    weighting: LossWeighting,
    problem: MultiTaskProblem,
    recipe: MultiTaskRecipe,
    *,
    seed: int,
    device: torch.device | str,
) -> MultiTaskRun:
    """Train a fresh :class:`MultiTaskNet` with ``weighting`` combining the task losses."""
    return train_multitask_together([weighting], problem, recipe, seeds=[seed], device=device)[0]


def train_multitask_together(
    weightings: Sequence[LossWeighting],
    problem: MultiTaskProblem,
    recipe: MultiTaskRecipe,
    *,
    seeds: Sequence[int],
    device: torch.device | str,
) -> list[MultiTaskRun]:
    """Train one fresh :class:`MultiTaskNet` per (weighting, seed) pair, each as
    :func:`train_multitask` would alone: its seed's initial weights and batches, its
    gradient that of its own weighting's objective (the objectives are summed and share no
    parameter), Adam's elementwise step. Several networks run as one batched forward and
    backward pass (``torch.func.vmap`` over their stacked parameters and batches) and one
    fused Adam step: on one CPU thread, ``fixed``'s 16 x 3 tuning runs train 3x faster than
    one after another, 8 seeds of ``equal`` or ``uncertainty`` 2x, with the same figures to
    float32 rounding (tested). A scheme that :attr:`~LossWeighting.differentiates_shared`
    trains one network at a time."""
    if not weightings or len(seeds) != len(weightings):
        raise UsageError(f"train_multitask_together: got {len(weightings)} loss weighting(s) and {len(seeds)} "
                         "seed(s); expected one seed per weighting, at least one")
    if len(weightings) > 1 and any(w.differentiates_shared for w in weightings):
        return [run for weighting, seed in zip(weightings, seeds)
                for run in train_multitask_together([weighting], problem, recipe, seeds=[seed], device=device)]
    device = torch.device(device)
    train = problem.train.to(device)
    nets = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            nets.append(MultiTaskNet(train.image.shape[1], problem.num_classes).to(device))
    for weighting in weightings:
        weighting.start(TASKS, device)
    groups = [
        {"params": [p for net in nets for p in net.parameters()], "lr": recipe.lr},
        *(group for weighting in weightings for group in weighting.parameter_groups(recipe.lr)),
    ]
    # Several networks: fused, one call for all their tensors (the default per-tensor loop was
    # half of their step). One keeps the default, so a lone run's figures are what they were.
    optimizer = torch.optim.Adam(groups, fused=len(nets) > 1 or None)
    losses_of = _task_losses_of(nets)
    shuffles = [torch.Generator().manual_seed(seed) for seed in seeds]
    runs = [MultiTaskRun(w.name, dict(w.params), {}, {}) for w in weightings]
    started = time.perf_counter()
    for epoch in range(recipe.epochs):
        for net in nets:
            net.train()
        orders = [torch.randperm(len(train), generator=shuffle).split(recipe.batch_size) for shuffle in shuffles]
        for chunks in zip(*orders):
            index = chunks[0] if len(chunks) == 1 else torch.stack(chunks)  # (networks, batch) rows
            losses = losses_of(train.rows(index.to(device)))
            totals = [w.total_loss(task_loss, net.shared_parameters())
                      for w, task_loss, net in zip(weightings, losses, nets)]
            optimizer.zero_grad(set_to_none=True)
            (totals[0] if len(totals) == 1 else torch.stack(totals).sum()).backward()
            optimizer.step()
            for weighting in weightings:
                weighting.finish_step()
        for weighting, run in zip(weightings, runs):
            state = weighting.state()
            if not all(math.isfinite(v) for v in state.values()):
                raise ContractViolation(weighting.name, "state-finite",
                                        f"non-finite state after epoch {epoch + 1}: {state}")
            run.states.append(state)
    seconds = (time.perf_counter() - started) / len(nets)
    val, test = problem.val.to(device), problem.test.to(device)
    for net, run in zip(nets, runs):
        run.val, run.test, run.seconds = task_metrics(net, val), task_metrics(net, test), seconds
    return runs


def _task_losses_of(nets: Sequence[MultiTaskNet]) -> Callable[[MultiTaskSplit], torch.Tensor]:
    """A function of a batch (one network's rows, or ``(networks, batch)`` rows for several):
    each network's task losses on its rows, shape ``(networks, tasks)``. Several networks run
    as one forward pass over their stacked parameters (the stack keeps each network's own
    parameters the leaves their gradients reach, which GradNorm differentiates against)."""
    if len(nets) == 1:
        return lambda batch: task_losses(nets[0](batch.x), batch)[None]
    names = [name for name, _ in nets[0].named_parameters()]
    per_name = list(zip(*(list(net.parameters()) for net in nets)))

    def losses(params: dict[str, torch.Tensor], x: torch.Tensor, digit: torch.Tensor, centre: torch.Tensor,
               image: torch.Tensor) -> torch.Tensor:
        return task_losses(torch.func.functional_call(nets[0], params, (x,)), MultiTaskSplit(x, digit, centre, image))

    def losses_of(batch: MultiTaskSplit) -> torch.Tensor:
        stacked = {name: torch.stack(ps) for name, ps in zip(names, per_name)}
        return torch.func.vmap(losses)(stacked, batch.x, batch.digit, batch.centre, batch.image)

    return losses_of
