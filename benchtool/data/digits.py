"""scikit-learn's bundled handwritten digits: the embedded default, needs no download.

1797 grey 8x8 images of the digits 0-9 (UCI Optical Recognition of Handwritten Digits,
Alpaydin & Kaynak 1998), pixel counts 0..16 scaled to [0, 1], shape (1, 8, 8). In MNIST's
layout (:func:`digits_in_mnist_layout`) they are the far-OOD set of Fashion-MNIST.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchtool.contracts.data import DataBundle, Dataset, DatasetInfo
from benchtool.data.bundle import classification_bundle, image_split
from benchtool.data.holdout import HOLDOUT_CLASSES, holdout_bundle
from benchtool.data.splits import stratified_split

SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # train, val, test; stratified per class
MNIST_BOX, MNIST_SIDE = 20, 28  # MNIST centres each digit's 20x20 box in a 28x28 image (LeCun et al. 1998)
# Linf eps of adversarial training and headline results: 0.1 of the [0, 1] range, 1.6 of the
# 17 grey levels (0..16): the Fashion-MNIST eps, below the 0.3 of MNIST because 8x8 digits
# carry far less redundancy per pixel than 28x28 ones
REFERENCE_EPS = 0.1
# eps sweeps per attack norm, in pixels of [0, 1] (Madry et al. 2018's MNIST range, finer at the low end)
EPS_SWEEPS = {"linf": (0.0, 0.05, 0.1, 0.2, 0.3), "l2": (0.0, 0.25, 0.5, 1.0, 2.0)}


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.reshape(-1, 1, 8, 8), digits.target.astype(np.int64)


class Digits(Dataset):
    """Handwritten digits 8x8 (scikit-learn), 10 classes, stratified 70/10/20 split per seed."""

    name = "digits"

    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name, task="classification", input_shape=(1, 8, 8), num_classes=10, bounds=(0.0, 1.0),
            description=self.__doc__ or "", reference_eps=REFERENCE_EPS, recipe_family="digits",
            eps_sweeps=dict(EPS_SWEEPS),
        )

    def load(self, *, root: Path, seed: int, download: bool = False) -> DataBundle:
        images, labels = _digits_arrays()
        train, val, test = (
            image_split(images[idx], labels[idx], scale=16.0)
            for idx in stratified_split(labels, SPLIT_FRACTIONS, seed)
        )
        return classification_bundle(self.info(), train, val, test, seed)


def digits_in_mnist_layout(side: int = MNIST_SIDE) -> torch.Tensor:
    """Every digit as a ``(1, side, side)`` image in [0, 1] laid out as MNIST's: the 8x8 image
    resized (bilinear) to a box of 20/28 of ``side`` and centred on a zero background."""
    images, _ = _digits_arrays()
    box = round(side * MNIST_BOX / MNIST_SIDE)
    x = F.interpolate(torch.from_numpy(images.astype(np.float32) / 16.0), size=(box, box), mode="bilinear",
                      align_corners=False)
    before = (side - box) // 2
    after = side - box - before
    return F.pad(x, (before, after, before, after)).clamp(0.0, 1.0)


class DigitsHoldout(Dataset):
    """Digits 0-4 for training and testing; digits 5-9 are the ``heldout-classes`` OOD set."""

    name = "digits-holdout"

    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name, task="classification", input_shape=(1, 8, 8), num_classes=len(HOLDOUT_CLASSES),
            bounds=(0.0, 1.0), description=self.__doc__ or "", reference_eps=REFERENCE_EPS, recipe_family="digits",
            eps_sweeps=dict(EPS_SWEEPS),
        )

    def load(self, *, root: Path, seed: int, download: bool = False) -> DataBundle:
        return holdout_bundle(Digits().load(root=root, seed=seed), self.info(), HOLDOUT_CLASSES, seed)
