"""Seeded splits and the derived shift/OOD transforms, property-tested."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from benchtool.data.shift import gaussian_noise_images, impulse_noise, rotate_images
from benchtool.data.splits import controlled_counts, random_split, rng_for, stratified_split

fractions = st.lists(st.integers(1, 10), min_size=2, max_size=4).map(lambda w: [x / sum(w) for x in w])


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.integers(0, 6), min_size=1, max_size=300), fractions=fractions, seed=st.integers(0, 99))
@example(labels=[0, 0, 0, 0, 0, 1, 2], fractions=[1 / 9, 1 / 9, 5 / 9, 2 / 9], seed=0)  # tiny classes tied at 0.5
@example(labels=[0, 0, 0, 0, 0, 0, 0, 1, 2, 3], fractions=[0.3, 0.7], seed=0)
def test_stratified_split_partitions_in_proportion_per_class(
    labels: list[int], fractions: list[float], seed: int
) -> None:
    labels_arr = np.array(labels)
    parts = stratified_split(labels_arr, fractions, seed)
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(len(labels)))  # a partition
    for part, fraction in zip(parts, fractions):
        assert abs(len(part) - fraction * len(labels)) <= 1  # overall size, rounded once
        for cls in np.unique(labels_arr):
            in_class = (labels_arr == cls).sum()
            assert abs((labels_arr[part] == cls).sum() - fraction * in_class) < 1  # its share, rounded once
    again = stratified_split(labels_arr, fractions, seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=8), fractions=fractions)
def test_controlled_counts_round_every_entry_and_margin_once(sizes: list[int], fractions: list[float]) -> None:
    sizes_arr, parts = np.array(sizes), np.array(fractions)
    counts = controlled_counts(sizes_arr, parts)
    exact = np.outer(sizes_arr, parts)
    assert (np.abs(counts - exact) < 1).all() and (counts >= 0).all()
    assert np.array_equal(counts.sum(1), sizes_arr)
    assert (np.abs(counts.sum(0) - parts * sizes_arr.sum()) < 1).all()


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 200), fractions=fractions, seed=st.integers(0, 99))
def test_random_split_partitions(n: int, fractions: list[float], seed: int) -> None:
    parts = random_split(n, fractions, seed)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(n))


def test_split_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        random_split(10, [0.5, 0.6], 0)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        rng_for(-1, 0)


@settings(max_examples=25, deadline=None)
@given(size=st.integers(2, 12), channels=st.integers(1, 3), seed=st.integers(0, 999))
def test_rotation_by_quarter_turns_matches_rot90(size: int, channels: int, seed: int) -> None:
    x = torch.from_numpy(np.random.default_rng(seed).random((3, channels, size, size), dtype=np.float32))
    assert torch.allclose(rotate_images(x, 0.0, (0.0, 1.0)), x, atol=1e-5)
    assert torch.allclose(rotate_images(x, 90.0, (0.0, 1.0)), torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)
    assert torch.allclose(rotate_images(x, 180.0, (0.0, 1.0)), torch.rot90(x, 2, dims=(2, 3)), atol=1e-5)


def test_rotation_fills_with_the_lower_bound_and_stays_in_bounds() -> None:
    x = torch.full((2, 1, 8, 8), 3.0)
    rotated = rotate_images(x, 45.0, (-1.0, 3.0))
    assert float(rotated[0, 0, 0, 0]) == pytest.approx(-1.0)  # a corner comes from outside the frame
    assert float(rotated.min()) >= -1.0 and float(rotated.max()) <= 3.0


@settings(max_examples=20, deadline=None)
@given(fraction=st.floats(0.0, 1.0), seed=st.integers(0, 999))
def test_impulse_noise_hits_the_requested_fraction(fraction: float, seed: int) -> None:
    x = torch.full((40, 1, 10, 10), 0.5)
    noisy = impulse_noise(x, fraction, (0.0, 1.0), np.random.default_rng(seed))
    hit = noisy != 0.5
    assert set(noisy[hit].unique().tolist()) <= {0.0, 1.0}
    assert abs(float(hit.float().mean()) - fraction) < 0.06


def test_gaussian_noise_images_match_the_data_statistics() -> None:
    like = torch.from_numpy(np.random.default_rng(0).uniform(0.3, 0.7, (500, 1, 4, 4)).astype(np.float32))
    noise = gaussian_noise_images(300, like, (0.0, 1.0), rng_for(0, 1))
    assert noise.shape == (300, 1, 4, 4) and noise.dtype == torch.float32
    assert float(noise.mean()) == pytest.approx(float(like.mean()), abs=0.01)
    assert float(noise.std()) == pytest.approx(float(like.std()), rel=0.1)
