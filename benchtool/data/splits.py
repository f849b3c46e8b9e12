"""Seeded index splits: the same seed gives the same partition on every machine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Salts keep the random streams of one seed independent (splitting vs. noise vs. shifts).
SPLIT_STREAM = 0
SHIFT_STREAM = 1
GENERATE_STREAM = 2


def rng_for(seed: int, stream: int) -> np.random.Generator:
    """A generator for one purpose (``stream``) of one seed."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, stream])


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    parts = np.asarray(fractions, dtype=np.float64)
    if parts.ndim != 1 or len(parts) < 2 or (parts < 0).any() or abs(parts.sum() - 1.0) > 1e-9:
        raise ValueError(f"fractions must be >= 0, at least two, and sum to 1; got {list(fractions)}")
    return parts


def _cut(indices: np.ndarray, parts: np.ndarray) -> list[np.ndarray]:
    bounds = np.rint(np.cumsum(parts) * len(indices)).astype(np.int64)
    bounds[-1] = len(indices)
    return np.split(indices, bounds[:-1])


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Partition ``range(len(labels))`` into ``len(fractions)`` sorted index arrays whose
    sizes follow ``fractions`` overall and (within about one example) in every class.

    Each class is shuffled and its members placed at evenly spaced positions in [0, 1];
    all examples are ordered by position (ties broken at random) and cut once, so small
    classes are never rounded away from a part."""
    parts = _check_fractions(fractions)
    labels = np.asarray(labels)
    rng = rng_for(seed, SPLIT_STREAM)
    members, positions = [], []
    for cls in np.unique(labels):
        shuffled = rng.permutation(np.flatnonzero(labels == cls))
        members.append(shuffled)
        positions.append((np.arange(len(shuffled)) + 0.5) / len(shuffled))
    if not members:
        return [np.empty(0, dtype=np.int64) for _ in parts]
    everyone, position = np.concatenate(members), np.concatenate(positions)
    order = np.lexsort((rng.random(len(everyone)), position))
    return [np.sort(piece) for piece in _cut(everyone[order], parts)]


def random_split(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Partition ``range(n)`` into sorted index arrays of the given fractions."""
    parts = _check_fractions(fractions)
    return [np.sort(piece) for piece in _cut(rng_for(seed, SPLIT_STREAM).permutation(n), parts)]
