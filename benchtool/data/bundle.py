"""Assemble a :class:`DataBundle` from arrays: one place that fixes dtypes and checks sizes."""

from __future__ import annotations

import numpy as np
import torch

from benchtool.contracts.data import DataBundle, DatasetInfo, Split
from benchtool.data.shift import image_shift_sets
from benchtool.errors import UsageError


def image_split(images: np.ndarray, labels: np.ndarray, scale: float = 255.0) -> Split:
    """A split of float32 images in [0, 1] (``images / scale``) and int64 labels."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / np.float32(scale))
    return Split(x, torch.from_numpy(np.asarray(labels, dtype=np.int64)))


def check_labels(name: str, labels: np.ndarray, num_classes: int) -> None:
    """Labels read from a user's files must name one of the dataset's classes."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise UsageError(
            f"dataset {name!r}: labels must lie in [0, {num_classes}), found {labels.min()}..{labels.max()}"
        )


def classification_bundle(info: DatasetInfo, train: Split, val: Split, test: Split, seed: int) -> DataBundle:
    """A bundle of image splits plus the derived OOD/shift sets of :mod:`benchtool.data.shift`."""
    for split_name, split in (("train", train), ("val", val), ("test", test)):
        if tuple(split.x.shape[1:]) != info.input_shape:
            raise ValueError(
                f"dataset {info.name!r}: {split_name} inputs have shape {tuple(split.x.shape[1:])}, "
                f"its info declares {info.input_shape}"
            )
    ood = image_shift_sets(info, train, test, seed) if len(info.input_shape) == 3 else {}
    return DataBundle(info=info, train=train, val=val, test=test, ood=ood)
