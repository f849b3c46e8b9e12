"""A tiny benchtool plugin for the scale-out tests and benchmark: one generated dataset,
two small models, and a session hook that writes each case's outcome to a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchtool import hookimpl
from benchtool.contracts.data import DataBundle, Dataset, DatasetInfo, Split
from benchtool.contracts.model import ModelSpec, TrainRecipe

OUTCOMES_ENV = "BENCHTOOL_TEST_OUTCOMES"
EPOCHS_ENV = "BENCHTOOL_TEST_EPOCHS"


class Blobs(Dataset):
    """Three Gaussian blobs in 8 dimensions, generated from the seed (no files)."""

    name = "blobs"

    def info(self) -> DatasetInfo:
        return DatasetInfo("blobs", "classification", (8,), 3, (-8.0, 8.0))

    def load(self, *, root: Path, seed: int, download: bool = False) -> DataBundle:
        gen = torch.Generator().manual_seed(seed)
        centers = torch.randn(3, 8, generator=gen) * 1.5
        y = torch.randint(0, 3, (600,), generator=gen)
        x = (centers[y] + torch.randn(600, 8, generator=gen)).clamp(-8.0, 8.0)
        return DataBundle(self.info(), Split(x[:400], y[:400]), Split(x[400:500], y[400:500]),
                          Split(x[500:], y[500:]))


class _Tiny(ModelSpec):
    def recipe(self, info: DatasetInfo, budget: str) -> TrainRecipe:
        return TrainRecipe(epochs=int(os.environ.get(EPOCHS_ENV, "2")), batch_size=50, lr=1e-2)


class TinyMLP(_Tiny):
    """A 2-layer perceptron."""

    name = "tiny-mlp"

    def build(self, info: DatasetInfo) -> nn.Module:
        return nn.Sequential(nn.Linear(info.input_shape[0], 32), nn.ReLU(), nn.Linear(32, info.num_classes or 1))


class TinyLinear(_Tiny):
    """A linear classifier."""

    name = "tiny-linear"

    def build(self, info: DatasetInfo) -> nn.Module:
        return nn.Linear(info.input_shape[0], info.num_classes or 1)


@hookimpl
def benchtool_register_datasets(registry: Any) -> None:
    registry.add(Blobs)


@hookimpl
def benchtool_register_models(registry: Any) -> None:
    registry.add(TinyMLP)
    registry.add(TinyLinear)


@hookimpl
def benchtool_session_finish(config: Any, cases: list[Any], exitstatus: int) -> None:
    path = os.environ.get(OUTCOMES_ENV)
    if path:
        Path(path).write_text(json.dumps({case.nodeid: case.outcome for case in cases}))


def train_trial(arch: dict[str, int], seed: int) -> dict[str, Any]:
    """A NAS-like trial: train an MLP of ``arch`` on blobs and return its validation accuracy."""
    from benchtool.executors import task_device

    torch.set_num_threads(1)
    device = task_device("cpu")
    bundle = Blobs().load(root=Path("."), seed=0)
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = 8
    for _ in range(arch["depth"]):
        layers += [nn.Linear(width, arch["width"]), nn.ReLU()]
        width = arch["width"]
    model = nn.Sequential(*layers, nn.Linear(width, 3)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = bundle.train.x.to(device), bundle.train.y.to(device)
    for _ in range(arch["steps"]):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (model(bundle.val.x.to(device)).argmax(1) == bundle.val.y.to(device)).float().mean().item()
    return {"arch": arch, "seed": seed, "val_accuracy": accuracy, "device": str(device), "pid": os.getpid()}
