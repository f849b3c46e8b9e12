"""Dataset contract: what a dataset declares, and the tensors it hands the suites."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import torch

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class DatasetInfo:
    """What attacks, models and metrics read instead of constants."""

    name: str
    task: Task
    input_shape: tuple[int, ...]  # per example: (C, H, W) for images, (D,) for vectors
    num_classes: int | None  # None for regression
    bounds: tuple[float, float]  # the valid input box, in data space
    output_dim: int = 1  # regression targets per example
    description: str = ""
    # The Linf eps (in data units) at which results on this dataset are usually reported and
    # adversarially trained zoo models are trained; None: 0.1 of the bounds' range.
    reference_eps: float | None = None
    # The zoo's recipe family (benchtool.models.recipes): "digits", "mnist", "cifar10", "svhn",
    # "toy"; None: the family closest in size.
    recipe_family: str | None = None
    # The eps an attack of each norm ("linf", "l2") sweeps by default, in data units, starting
    # at 0; a norm not given gets a sweep scaled to the bounds and input size
    # (benchtool.harness.robustness.eps_sweep).
    eps_sweeps: dict[str, tuple[float, ...]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        low, high = self.bounds
        if not low < high:
            raise ValueError(f"dataset {self.name!r}: bounds {self.bounds} must satisfy low < high")
        if self.task == "classification" and (self.num_classes is None or self.num_classes < 2):
            raise ValueError(f"dataset {self.name!r}: a classification task needs num_classes >= 2")
        if self.reference_eps is not None and not 0 < self.reference_eps <= high - low:
            raise ValueError(f"dataset {self.name!r}: reference_eps {self.reference_eps} must lie in (0, {high - low}]")
        for norm, sweep in self.eps_sweeps.items():
            if not sweep or any(e < 0 for e in sweep) or list(sweep) != sorted(sweep):
                raise ValueError(f"dataset {self.name!r}: eps_sweeps[{norm!r}] = {sweep!r}; expected increasing eps >= 0")

    @property
    def attack_eps(self) -> float:
        """:attr:`reference_eps`, or 0.1 of the bounds' range where the dataset declares none."""
        low, high = self.bounds
        return self.reference_eps if self.reference_eps is not None else 0.1 * (high - low)


@dataclass
class Split:
    """Inputs and targets of one split; ``y`` is int64 labels or float regression targets."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"split has {len(self.x)} inputs but {len(self.y)} targets")

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class DataBundle:
    """A loaded dataset: fixed splits for one seed, plus named out-of-distribution sets."""

    info: DatasetInfo
    train: Split
    val: Split
    test: Split
    ood: dict[str, Split] = field(default_factory=dict)
    # what the in-distribution classes are, if the bundle holds out some (e.g. [0..4])
    in_distribution_classes: tuple[int, ...] | None = None


class Dataset(ABC):
    """A dataset plugin. ``info()`` is cheap; ``load()`` reads or generates the data."""

    name: ClassVar[str]

    @abstractmethod
    def info(self) -> DatasetInfo:
        """Shape, classes, bounds: without loading anything."""

    @abstractmethod
    def load(self, *, root: Path, seed: int, download: bool = False) -> DataBundle:
        """Return the splits for ``seed``. Never downloads unless ``download`` is True;
        a missing local file is a :class:`~benchtool.errors.UsageError` naming the
        expected path and files."""
