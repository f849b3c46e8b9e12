"""scikit-learn's bundled handwritten digits: the embedded default, needs no download.

1797 grey 8x8 images of the digits 0-9 (UCI Optical Recognition of Handwritten Digits,
Alpaydin & Kaynak 1998), pixel counts 0..16 scaled to [0, 1], shape (1, 8, 8).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchtool.contracts.data import DataBundle, Dataset, DatasetInfo, Split
from benchtool.data.bundle import classification_bundle, image_split
from benchtool.data.shift import HELDOUT_CLASSES, NO_LABEL, image_shift_sets
from benchtool.data.splits import stratified_split

SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # train, val, test; stratified per class
HOLDOUT_CLASSES = (0, 1, 2, 3, 4)  # the in-distribution classes of digits-holdout
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


def _keep(split: Split, classes: torch.Tensor) -> tuple[Split, Split]:
    inside = torch.isin(split.y, classes)
    return Split(split.x[inside], split.y[inside]), Split(split.x[~inside], split.y[~inside])


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
        full = Digits().load(root=root, seed=seed)
        classes = torch.tensor(HOLDOUT_CLASSES)
        (train, train_out), (val, val_out), (test, test_out) = (
            _keep(s, classes) for s in (full.train, full.val, full.test)
        )
        heldout_x = torch.cat([train_out.x, val_out.x, test_out.x])
        info = self.info()
        ood = image_shift_sets(info, train, test, seed)
        ood[HELDOUT_CLASSES] = Split(heldout_x, torch.full((len(heldout_x),), NO_LABEL, dtype=torch.int64))
        return DataBundle(
            info=info, train=train, val=val, test=test, ood=ood, in_distribution_classes=HOLDOUT_CLASSES
        )
