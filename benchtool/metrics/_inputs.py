"""Metric inputs: NumPy or torch (any device) in, validated float64 NumPy arrays out.

Metrics reduce N values to a few numbers once per evaluation, so they run on the host;
the per-pass work that needs the GPU lives in :mod:`benchtool.kernels`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchtool.kernels._arrays import check_probabilities, host


def floats(x: Any, name: str, ndim: tuple[int, ...] = (1,)) -> np.ndarray:
    """Finite float64 values of one of the allowed ranks."""
    values = host(x)
    if values.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric; got dtype {values.dtype}")
    if values.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dims; got shape {values.shape}")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or inf")
    return values


def probabilities(probs: Any, name: str = "probs") -> np.ndarray:
    """Validated (N, C) float64 class probabilities."""
    values = floats(probs, name, (2,))
    check_probabilities(values, name)
    return values


def labels_for(labels: Any, n: int, c: int) -> np.ndarray:
    """Validated (N,) integer labels in [0, C)."""
    values = host(labels)
    if values.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers; got dtype {values.dtype}")
    if values.shape != (n,):
        raise ValueError(f"labels has shape {values.shape}; expected ({n},) to match probs")
    if n and (values.min() < 0 or values.max() >= c):
        raise ValueError(f"labels must lie in [0, {c}); found values in [{values.min()}, {values.max()}]")
    return values.astype(np.int64)


def correctness(correct: Any, n: int) -> np.ndarray:
    """Validated (N,) booleans from bool or 0/1 values."""
    values = host(correct)
    if values.shape != (n,):
        raise ValueError(f"correct has shape {values.shape}; expected ({n},)")
    if values.dtype != np.bool_ and not np.isin(values, (0, 1)).all():
        raise ValueError("correct must be bool or 0/1; found other values")
    return values.astype(bool)


def same_shape(name: str, x: np.ndarray, like_name: str, like: np.ndarray) -> None:
    if x.shape != like.shape:
        raise ValueError(f"{name} has shape {x.shape}; expected {like.shape} like {like_name}")
