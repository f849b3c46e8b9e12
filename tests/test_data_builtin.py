"""The embedded datasets: split sizes, bounds, seeding, OOD sets, memoization, registration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from benchtool.contracts.data import DataBundle, Dataset, DatasetInfo, Split
from benchtool.data import NO_LABEL, OOD_SETS, clear_cache, load_dataset
from benchtool.data.digits import Digits, DigitsHoldout, digits_in_mnist_layout
from benchtool.data.holdout import HOLDOUT_CLASSES, holdout_bundle, keep_classes
from benchtool.data.toy import BOUNDS, GAP, SUPPORT, ToyRegression
from benchtool.errors import ContractViolation
from benchtool.host import load_host

ROOT = Path("/nonexistent-benchtool-data-root")  # the embedded datasets never read it


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset(Digits(), root=ROOT, seed=0)


def _rows(split: Split) -> set[bytes]:
    return {row.numpy().tobytes() for row in split.x}


def test_digits_split_sizes_partition_all_1797_images(digits: DataBundle) -> None:
    sizes = (len(digits.train), len(digits.val), len(digits.test))
    assert sum(sizes) == 1797
    assert sizes == pytest.approx((0.7 * 1797, 0.1 * 1797, 0.2 * 1797), abs=6)
    # the digits set holds a few duplicate images, so compare counts of distinct rows
    assert len(_rows(digits.train) & _rows(digits.test)) <= 3


def test_digits_split_is_stratified(digits: DataBundle) -> None:
    for split, fraction in ((digits.train, 0.7), (digits.val, 0.1), (digits.test, 0.2)):
        counts = torch.bincount(split.y, minlength=10).numpy()
        totals = np.bincount(np.concatenate([s.y.numpy() for s in (digits.train, digits.val, digits.test)]))
        assert np.all(np.abs(counts - fraction * totals) <= 1)


def test_digits_info_and_bounds(digits: DataBundle) -> None:
    info = digits.info
    assert (info.task, info.input_shape, info.num_classes, info.bounds) == ("classification", (1, 8, 8), 10, (0, 1))
    for split in (digits.train, digits.val, digits.test, *digits.ood.values()):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert float(split.x.min()) >= 0.0 and float(split.x.max()) <= 1.0
    assert float(digits.train.x.max()) == 1.0  # scaled by 16, not by 255


def test_digits_split_depends_on_seed_only() -> None:
    a = Digits().load(root=ROOT, seed=3)
    b = Digits().load(root=ROOT, seed=3)
    c = Digits().load(root=ROOT, seed=4)
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.ood["noise"].x, b.ood["noise"].x)
    assert not torch.equal(a.test.x, c.test.x)


def test_digits_ood_sets(digits: DataBundle) -> None:
    assert set(digits.ood) == {"noise", "rotated", "corrupted", "uniform-noise"} <= set(OOD_SETS)
    n = len(digits.test)
    assert all(len(split) == n for split in digits.ood.values())
    assert torch.all(digits.ood["noise"].y == NO_LABEL)
    assert torch.equal(digits.ood["rotated"].y, digits.test.y)
    assert torch.equal(digits.ood["corrupted"].y, digits.test.y)
    assert not torch.equal(digits.ood["rotated"].x, digits.test.x)
    changed = (digits.ood["corrupted"].x != digits.test.x).float().mean()
    assert 0.05 < float(changed) < 0.2  # 20% of pixels hit, about half already at the value set
    uniform = digits.ood["uniform-noise"]
    assert torch.all(uniform.y == NO_LABEL) and 0.0 <= float(uniform.x.min()) and float(uniform.x.max()) <= 1.0
    assert abs(float(uniform.x.mean()) - 0.5) < 0.02 and abs(float(uniform.x.var()) - 1 / 12) < 0.005


def test_digits_holdout_keeps_classes_0_to_4() -> None:
    bundle = load_dataset(DigitsHoldout(), root=ROOT, seed=0)
    full = load_dataset(Digits(), root=ROOT, seed=0)
    assert bundle.info.num_classes == 5 and bundle.in_distribution_classes == HOLDOUT_CLASSES
    for split in (bundle.train, bundle.val, bundle.test):
        assert int(split.y.max()) <= 4 and int(split.y.min()) >= 0
    heldout = bundle.ood["heldout-classes"]
    assert torch.all(heldout.y == NO_LABEL)
    in_dist = sum(len(s) for s in (bundle.train, bundle.val, bundle.test))
    assert in_dist + len(heldout) == 1797
    assert len(bundle.test) == int((full.test.y <= 4).sum())
    assert set(bundle.ood) == {"noise", "rotated", "corrupted", "uniform-noise", "heldout-classes"}


def test_digits_in_mnist_layout_centres_each_digit_in_a_20_pixel_box() -> None:
    images = digits_in_mnist_layout()
    assert images.shape == (1797, 1, 28, 28) and images.dtype == torch.float32
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    ink_rows = images.sum(dim=(0, 1, 3)).nonzero()[:, 0]
    ink_cols = images.sum(dim=(0, 1, 2)).nonzero()[:, 0]
    assert int(ink_rows.min()) >= 4 and int(ink_rows.max()) <= 23  # inside the centred 20x20 box
    assert int(ink_cols.min()) >= 4 and int(ink_cols.max()) <= 23
    assert digits_in_mnist_layout(56).shape[-2:] == (56, 56)


def test_keep_classes_relabels_in_the_order_given() -> None:
    split = Split(torch.arange(8.0).reshape(8, 1), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]))
    inside, outside = keep_classes(split, (3, 1))
    assert inside.y.tolist() == [1, 0, 1, 0] and inside.x[:, 0].tolist() == [1.0, 3.0, 5.0, 7.0]
    assert outside.y.tolist() == [0, 2, 0, 2]


def test_holdout_bundle_keeps_far_ood_sets_and_rebuilds_shifts(digits: DataBundle) -> None:
    far = Split(torch.zeros(3, 1, 8, 8), torch.full((3,), NO_LABEL))
    full = dataclasses.replace(digits, ood={**digits.ood, "far": far})
    info = DigitsHoldout().info()
    bundle = holdout_bundle(full, info, HOLDOUT_CLASSES, seed=0, heldout_from=("test",))
    assert bundle.ood["far"] is far
    assert len(bundle.ood["rotated"]) == len(bundle.test) < len(digits.test)
    assert len(bundle.ood["heldout-classes"]) == int((digits.test.y >= 5).sum())
    with pytest.raises(ValueError, match="heldout_from must name some of"):
        holdout_bundle(full, info, HOLDOUT_CLASSES, seed=0, heldout_from=("tset",))
    with pytest.raises(ValueError, match="declares 5 classes"):
        holdout_bundle(full, info, (0, 1, 2), seed=0)


def test_toy_regression_has_a_gap_and_heteroscedastic_noise() -> None:
    bundle = load_dataset(ToyRegression(), root=ROOT, seed=0)
    info = bundle.info
    assert (info.task, info.input_shape, info.num_classes, info.output_dim) == ("regression", (1,), None, 1)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (600, 200, 200)
    for split in (bundle.train, bundle.val, bundle.test):
        x = split.x[:, 0]
        assert split.y.shape == (len(split), 1) and split.y.dtype == torch.float32
        assert torch.all((x >= SUPPORT[0]) & (x <= SUPPORT[1]))
        assert not torch.any((x > GAP[0]) & (x < GAP[1]))
    gap = bundle.ood["gap"].x[:, 0]
    assert torch.all((gap > GAP[0]) & (gap < GAP[1])) and len(gap) == 100
    beyond = bundle.ood["extrapolation"].x[:, 0]
    assert torch.all((beyond.abs() >= SUPPORT[1]) & (beyond.abs() <= BOUNDS[1]))
    assert ToyRegression.gap == GAP
    # noise grows left to right: residuals on the right are larger
    from benchtool.data.toy import mean

    x, y = bundle.train.x[:, 0].numpy(), bundle.train.y[:, 0].numpy()
    residual = np.abs(y - mean(x))
    assert residual[x > 2].mean() > 2 * residual[x < -2].mean()


def test_load_dataset_memoizes_per_dataset_root_and_seed(tmp_path: Path) -> None:
    clear_cache()
    first = load_dataset(Digits(), root=tmp_path, seed=1)
    assert load_dataset(Digits(), root=tmp_path, seed=1) is first
    assert load_dataset(Digits(), root=tmp_path, seed=2) is not first
    assert load_dataset(Digits(), root=tmp_path / "other", seed=1) is not first


class _WrongShape(Dataset):
    name = "wrong-shape"

    def info(self) -> DatasetInfo:
        return DatasetInfo("wrong-shape", "classification", (1, 4, 4), 2, (0.0, 1.0))

    def load(self, *, root: Path, seed: int, download: bool = False) -> DataBundle:
        split = Split(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.int64))
        return DataBundle(self.info(), split, split, split)


def test_load_dataset_checks_the_bundle_against_info() -> None:
    with pytest.raises(ContractViolation, match="wrong-shape.*shape"):
        load_dataset(_WrongShape(), root=ROOT, seed=0)


def test_plugin_registers_every_builtin_dataset() -> None:
    host = load_host(["benchtool.data.plugin"], use_entry_points=False)
    assert host.registry.names("datasets") == sorted(
        ["digits", "digits-holdout", "toy-regression", "mnist", "fashion-mnist", "fashion-mnist-holdout", "cifar10",
         "svhn"]
    )
    for entry in host.entries("datasets"):
        info = entry.create().info()
        assert info.name == entry.name and info.description
