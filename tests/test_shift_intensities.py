"""Shift intensities (``benchtool.data.shift``): MNIST-C corruptions at five levels (Mu &
Gilmer 2019) and Ovadia et al. 2019's rotation and translation series: shapes, bounds,
seeding, level monotonicity, argument checks and the documented table."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from benchtool.contracts.data import DatasetInfo, Split
from benchtool.data.digits import Digits
from benchtool.data.shift import (
    CORRUPTIONS,
    INTENSITIES,
    ROTATION_SERIES,
    corrupt,
    corrupted_test_sets,
    corruption_table,
    roll_images,
    rotation_sets,
    stripe_columns,
    translation_series,
    translation_sets,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """200 test digits, 8x8 in [0, 1]."""
    return Digits().load(root=ROOT, seed=0).test.x[:200]


def _info(side: int, bounds: tuple[float, float] = (0.0, 1.0)) -> DatasetInfo:
    return DatasetInfo(name="img", task="classification", input_shape=(1, side, side), num_classes=10, bounds=bounds)


def test_at_least_eight_corruptions_each_with_five_documented_levels() -> None:
    assert len(CORRUPTIONS) >= 8 and INTENSITIES == (1, 2, 3, 4, 5)
    table = corruption_table()
    for name, corruption in CORRUPTIONS.items():
        assert corruption.name == name and corruption.description and corruption.parameters
        assert len(corruption.levels) == 5
        assert f"| `{name}` |" in table


def test_docs_page_carries_the_table() -> None:
    page = (ROOT / "docs" / "shift.md").read_text()
    begin, end = "<!-- corruptions: begin -->\n", "<!-- corruptions: end -->"
    assert page[page.index(begin) + len(begin):page.index(end)] == corruption_table(), \
        "docs/shift.md is stale: paste benchtool.data.shift.corruption_table() between its markers"


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(CORRUPTIONS)), intensity=st.sampled_from(INTENSITIES),
       n=st.integers(1, 3), channels=st.integers(1, 3), side=st.sampled_from([2, 5, 8, 13, 28]),
       low=st.floats(-2, 1), span=st.floats(0.5, 3), seed=st.integers(0, 2**31))
def test_corruptions_keep_shape_dtype_bounds_and_are_seeded(name: str, intensity: int, n: int, channels: int,
                                                           side: int, low: float, span: float, seed: int) -> None:
    bounds = (low, low + span)
    x = low + span * torch.rand(n, channels, side, side, generator=torch.Generator().manual_seed(seed))
    before = x.clone()
    out = corrupt(x, name, intensity, bounds, seed)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert out.min() >= bounds[0] and out.max() <= bounds[1]
    assert torch.equal(x, before)  # the caller's images are untouched
    assert torch.equal(out, corrupt(x, name, intensity, bounds, seed))


@pytest.mark.parametrize("side", [8, 28])
@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_change_from_clean_grows_with_the_intensity(digits: torch.Tensor, name: str, side: int) -> None:
    """On real digits (8x8, and upsampled to 28x28) the mean absolute change from the clean
    image is non-decreasing over the five levels, and level 1 already changes the images."""
    x = digits if side == 8 else F.interpolate(digits, size=(side, side), mode="bilinear").clamp(0, 1)
    for seed in (0, 1):
        change = [float((corrupt(x, name, level, (0.0, 1.0), seed) - x).abs().mean()) for level in INTENSITIES]
        assert change[0] > 1e-3
        assert all(b >= a for a, b in itertools.pairwise(change)), f"{name} at {side}x{side}, seed {seed}: {change}"


def test_seeds_give_different_draws(digits: torch.Tensor) -> None:
    for name in ("shot-noise", "impulse-noise", "glass-blur", "fog", "rotate"):
        assert not torch.equal(corrupt(digits, name, 3, (0.0, 1.0), 0), corrupt(digits, name, 3, (0.0, 1.0), 1))


def test_deterministic_corruptions_do_what_the_table_says(digits: torch.Tensor) -> None:
    x = digits
    assert torch.allclose(corrupt(x, "brightness", 2, (0.0, 1.0), 0), (x + 0.2).clamp(0, 1))
    low_contrast = corrupt(x, "contrast", 5, (0.0, 1.0), 0)
    assert torch.allclose(low_contrast.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(low_contrast - low_contrast.mean(dim=(2, 3), keepdim=True),
                          0.05 * (x - x.mean(dim=(2, 3), keepdim=True)), atol=1e-6)
    assert stripe_columns(28, 14) == [0, 27, 1, 26, 2, 25, 3, 24, 4, 23, 5, 22, 6, 21]  # MNIST-C's 7 + 7
    striped = corrupt(x, "stripe", 3, (0.0, 1.0), 0)  # 8 of 28 columns -> 2 of 8
    assert torch.allclose(striped[..., [0, 7]], 1 - x[..., [0, 7]]) and torch.equal(striped[..., 1:7], x[..., 1:7])


def test_bounds_other_than_unit_are_respected() -> None:
    x = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
    bright = corrupt(x, "brightness", 5, (-1.0, 1.0), 0)  # +0.5 of the [0, 1] range = +1.0 here
    assert torch.allclose(bright, (x + 1.0).clamp(-1, 1))


def test_bad_arguments_name_the_value_and_what_was_expected(digits: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="unknown corruption 'blur'; expected one of"):
        corrupt(digits, "blur", 1, (0.0, 1.0), 0)
    for bad in (0, 6):
        with pytest.raises(ValueError, match=rf"intensity must be one of \(1, 2, 3, 4, 5\), got {bad}"):
            corrupt(digits, "fog", bad, (0.0, 1.0), 0)
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        corrupt(digits, "fog", 1, (0.0, 1.0), -1)
    with pytest.raises(ValueError, match=r"expects \(N, C, H, W\) images, got shape \(8, 8\)"):
        corrupt(digits[0, 0], "fog", 1, (0.0, 1.0), 0)
    with pytest.raises(ValueError, match="finite image bounds"):
        corrupt(digits, "fog", 1, (0.0, float("inf")), 0)


def test_corrupted_test_sets_keep_labels_and_are_lazy(digits: torch.Tensor) -> None:
    test = Split(digits[:10], torch.arange(10))
    sets = corrupted_test_sets(_info(8), test, seed=3)
    assert iter(sets) is sets  # a generator: nothing is built before it is asked for
    built = list(sets)
    assert [(name, level) for name, level, _ in built] == [(n, i) for n in CORRUPTIONS for i in INTENSITIES]
    for name, level, split in built:
        assert torch.equal(split.y, test.y) and split.y is not test.y
        assert torch.equal(split.x, corrupt(test.x, name, level, (0.0, 1.0), 3))
    assert len(list(corrupted_test_sets(_info(8), test, 0, names=["fog"], intensities=[2, 4]))) == 2


def test_ovadia_rotation_series(digits: torch.Tensor) -> None:
    test = Split(digits[:20], torch.zeros(20, dtype=torch.int64))
    rotated = dict(rotation_sets(_info(8), test))
    assert tuple(rotated) == ROTATION_SERIES == tuple(range(0, 181, 15))
    assert torch.allclose(rotated[0].x, test.x, atol=1e-6)
    assert torch.allclose(rotated[180].x, torch.rot90(test.x, 2, dims=(2, 3)), atol=1e-5)
    assert all(torch.equal(split.y, test.y) for split in rotated.values())


def test_ovadia_translation_series_rolls_with_wraparound(digits: torch.Tensor) -> None:
    assert translation_series(28) == tuple(range(0, 27, 2))  # the paper's 0, 2, ..., 26 pixels
    assert translation_series(8) == tuple(range(8))
    x = torch.arange(16.0).reshape(1, 1, 2, 8)
    assert roll_images(x, 3)[0, 0, 0].tolist() == [5, 6, 7, 0, 1, 2, 3, 4]
    test = Split(digits[:5], torch.arange(5))
    shifted = dict(translation_sets(test))
    assert tuple(shifted) == tuple(range(8)) and torch.equal(shifted[0].x, test.x)
    assert np.isclose(float(shifted[5].x.sum()), float(test.x.sum()))  # wraparound loses nothing
