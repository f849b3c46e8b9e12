"""Yardsticks for the kernels: the straightforward NumPy implementation (the oracle for
tests, the speed baseline), a plain parallel sum (the read-bandwidth roofline) and a
parallel copy (the read+write bandwidth that bounds streaming).

The NumPy version makes several full passes and input-sized temporaries; it computes in
the input's dtype (pass float64 for a reference).
"""

from __future__ import annotations

import numba
import numpy as np

from benchtool.kernels._cpu import torch_threads_kept


def _sum_plogp(p: np.ndarray) -> np.ndarray:
    """sum over the last axis of p * log(p), with 0 * log 0 = 0."""
    return (p * np.log(np.where(p > 0, p, 1))).sum(-1)


def predictive_stats_reference(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Mean over T, entropy of the mean, mean of per-pass entropies, variance over T, MI."""
    mean = probs.mean(0)
    entropy = -_sum_plogp(mean)
    expected_entropy = -_sum_plogp(probs).mean(0)
    return {
        "mean": mean,
        "variance": probs.var(0),
        "entropy": entropy,
        "expected_entropy": expected_entropy,
        "mutual_information": np.maximum(entropy - expected_entropy, 0),
    }


@numba.njit(parallel=True, cache=True, fastmath=True)
def _chunked_sum(flat: np.ndarray, chunk: int) -> float:
    n_chunks = (flat.size + chunk - 1) // chunk
    partial = np.zeros(n_chunks)
    for k in numba.prange(n_chunks):
        part = flat[k * chunk : (k + 1) * chunk]  # a view indexed from 0: offset indexing stops vectorising
        s = part.dtype.type(0)  # accumulate in the input's dtype, as the kernels' hot loops do
        for i in range(part.size):
            s += part[i]
        partial[k] = s
    return partial.sum()


def read_bandwidth_sum(probs: np.ndarray) -> float:
    """The bandwidth yardstick: a SIMD numba sum over the same bytes on the same threads."""
    with torch_threads_kept():
        return float(_chunked_sum(np.ascontiguousarray(probs).reshape(-1), 1 << 16))


@numba.njit(parallel=True, cache=True)
def _chunked_copy(src: np.ndarray, dst: np.ndarray, chunk: int) -> None:
    for k in numba.prange((src.size + chunk - 1) // chunk):
        dst[k * chunk : (k + 1) * chunk] = src[k * chunk : (k + 1) * chunk]


def copy_bandwidth(src: np.ndarray, dst: np.ndarray) -> None:
    """The read+write yardstick: a parallel numba copy of ``src`` into ``dst`` (same size)."""
    with torch_threads_kept():
        _chunked_copy(src.reshape(-1), dst.reshape(-1), 1 << 16)
