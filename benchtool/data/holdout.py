"""Held-out classes: a dataset's first classes for training and testing, the others as OOD.

The protocol of open-set OOD detection (e.g. Fashion-MNIST 0-4 against 5-9): a model never
sees the held-out classes, which are all of a kind with its training data, so telling them
apart is harder than telling noise or another domain apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from benchtool.contracts.data import DataBundle, DatasetInfo, Split
from benchtool.data.shift import HELDOUT_CLASSES, NO_LABEL, image_shift_sets

HOLDOUT_CLASSES = (0, 1, 2, 3, 4)  # the in-distribution classes of every *-holdout dataset
SPLITS = ("train", "val", "test")


def keep_classes(split: Split, classes: Sequence[int]) -> tuple[Split, Split]:
    """(the examples of ``classes``, relabelled 0..len(classes)-1 in that order; the others)."""
    kept = torch.as_tensor(list(classes), dtype=split.y.dtype)
    inside = torch.isin(split.y, kept)
    relabel = torch.full((int(split.y.max()) + 1 if len(split.y) else 1,), NO_LABEL, dtype=split.y.dtype)
    relabel[kept] = torch.arange(len(kept), dtype=split.y.dtype)
    return Split(split.x[inside], relabel[split.y[inside]]), Split(split.x[~inside], split.y[~inside])


def holdout_bundle(full: DataBundle, info: DatasetInfo, classes: Sequence[int], seed: int,
                   heldout_from: Sequence[str] = SPLITS) -> DataBundle:
    """``full`` restricted to ``classes`` in every split; the images of the other classes in the
    ``heldout_from`` splits are the ``heldout-classes`` OOD set. The shift sets are rebuilt from
    the kept classes; ``full``'s other OOD sets (far-OOD ones, not derived from its splits) are kept."""
    unknown = sorted(set(heldout_from) - set(SPLITS))
    if unknown or not heldout_from:
        raise ValueError(f"heldout_from must name some of {SPLITS}, got {tuple(heldout_from)}")
    if info.num_classes != len(classes):
        raise ValueError(f"dataset {info.name!r} declares {info.num_classes} classes, holds out all but {classes}")
    (train, train_out), (val, val_out), (test, test_out) = (
        keep_classes(s, classes) for s in (full.train, full.val, full.test)
    )
    ood = image_shift_sets(info, train, test, seed) if len(info.input_shape) == 3 else {}
    ood.update({name: split for name, split in full.ood.items() if name not in ood})
    outside = {"train": train_out, "val": val_out, "test": test_out}
    heldout_x = torch.cat([outside[name].x for name in SPLITS if name in heldout_from])
    ood[HELDOUT_CLASSES] = Split(heldout_x, torch.full((len(heldout_x),), NO_LABEL, dtype=torch.int64))
    return DataBundle(info=info, train=train, val=val, test=test, ood=ood, in_distribution_classes=tuple(classes))
