"""numba.cuda kernels for the predictive statistics, on device arrays (no host copy).

One thread per (sample, class) element walks the T passes: Welford mean/M2 in float64
(Welford 1962) and ``p*log(p)`` in float32, four passes' loads issued together so enough
bytes are in flight to approach the memory bandwidth. Per-row sums (entropies) are summed
over each block's threads of a row in shared memory, then added with one float64 atomic per
row and block rather than one per element. The launchers take anything numba.cuda accepts as
a device array: torch CUDA tensors wrapped by ``cuda.as_cuda_array`` on a GPU, plain NumPy
arrays under the simulator (``NUMBA_ENABLE_CUDASIM=1``), which is how the tests run these
kernels on a CPU.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np
from numba import config, cuda, float32, float64, int64

# Names NumPy 2.5 removed that numba-cuda 0.30 still registers overloads for while loading its
# target's NumPy support; without them no kernel compiles (seen: numba-cuda 0.30.4, NumPy 2.5.2).
REMOVED_NUMPY_ALIASES = {"row_stack": "vstack"}
NUMBA_CUDA_NUMPY_SUPPORT = "numba.cuda.np.arrayobj"


def load_numpy_support(module: str = NUMBA_CUDA_NUMPY_SUPPORT) -> None:
    """Import numba-cuda's NumPy support with any removed alias briefly restored, then drop the
    aliases again, so NumPy is left as it was. Numba's built-in CUDA target has no such module."""
    missing = [alias for alias in REMOVED_NUMPY_ALIASES if not hasattr(np, alias)]
    if not missing:
        return
    for alias in missing:
        setattr(np, alias, getattr(np, REMOVED_NUMPY_ALIASES[alias]))
    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        pass
    finally:
        for alias in missing:
            delattr(np, alias)


if not config.ENABLE_CUDASIM:
    load_numpy_support()

# The simulator runs every thread as a Python thread, and each barrier of the per-row sums
# waits for all of a block's threads: small blocks keep its tests fast, same code.
THREADS_PER_BLOCK = 32 if config.ENABLE_CUDASIM else 256
NO_ROW = -1  # the row of a thread past the last element: it adds nothing


@cuda.jit(device=True, inline=True)
def _plogp(p):  # type: ignore[no-untyped-def]
    q = float32(p)
    return float64(q * math.log(q)) if q > 0 else 0.0


@cuda.jit(device=True, inline=True)
def _welford(mean, m2, count, p):  # type: ignore[no-untyped-def]
    delta = p - mean
    mean += delta / count
    return mean, m2 + delta * (p - mean)


@cuda.jit(device=True, inline=True)
def _walk_passes(probs, n, k, count0, mean, m2):  # type: ignore[no-untyped-def]
    """Fold every pass of element (n, k) into (mean, m2); returns them and sum of p*log(p)."""
    n_pass = probs.shape[0]
    plogp = 0.0
    t = 0
    while t + 4 <= n_pass:
        p0 = float64(probs[t, n, k])
        p1 = float64(probs[t + 1, n, k])
        p2 = float64(probs[t + 2, n, k])
        p3 = float64(probs[t + 3, n, k])
        mean, m2 = _welford(mean, m2, count0 + t + 1, p0)
        mean, m2 = _welford(mean, m2, count0 + t + 2, p1)
        mean, m2 = _welford(mean, m2, count0 + t + 3, p2)
        mean, m2 = _welford(mean, m2, count0 + t + 4, p3)
        plogp += (_plogp(p0) + _plogp(p1)) + (_plogp(p2) + _plogp(p3))
        t += 4
    while t < n_pass:
        p = float64(probs[t, n, k])
        mean, m2 = _welford(mean, m2, count0 + t + 1, p)
        plogp += _plogp(p)
        t += 1
    return mean, m2, plogp


@cuda.jit(device=True, inline=True)
def _add_by_row(acc, row, value, rows, sums):  # type: ignore[no-untyped-def]
    """``acc[row] += value`` for every thread of the block, one atomic per row and block.

    A row's elements have consecutive thread indices, so a segmented tree sum in shared memory
    (``rows``: one slot per thread; ``sums``: two, read from one half and written to the other)
    leaves each row's block total at its first thread. Every thread of the block must call
    this; a thread past the data passes ``NO_ROW``.
    """
    tid = cuda.threadIdx.x
    rows[tid] = row
    sums[0, tid] = value
    cuda.syncthreads()
    src = 0
    stride = 1
    while stride < THREADS_PER_BLOCK:
        total = sums[src, tid]
        if tid + stride < THREADS_PER_BLOCK and rows[tid + stride] == row:
            total += sums[src, tid + stride]
        sums[1 - src, tid] = total
        cuda.syncthreads()
        src = 1 - src
        stride *= 2
    if row != NO_ROW and (tid == 0 or rows[tid - 1] != row):
        cuda.atomic.add(acc, row, sums[src, tid])
    cuda.syncthreads()


@cuda.jit(device=True, inline=True)
def _element(n_elements, c):  # type: ignore[no-untyped-def]
    """This thread's (row, class), or (NO_ROW, 0) past the last element."""
    i = cuda.grid(1)
    if i >= n_elements:
        return int64(NO_ROW), int64(0)
    n = i // c
    return int64(n), int64(i - n * c)


@cuda.jit
def _fused_elements(probs, mean_out, var_out, entropy_acc, neg_plogp_acc):  # type: ignore[no-untyped-def]
    rows = cuda.shared.array(THREADS_PER_BLOCK, int64)
    sums = cuda.shared.array((2, THREADS_PER_BLOCK), float64)
    n_rows, c = mean_out.shape
    n, k = _element(n_rows * c, c)
    entropy_term = 0.0
    plogp = 0.0
    if n != NO_ROW:
        mean, m2, plogp = _walk_passes(probs, n, k, 0, 0.0, 0.0)
        mean_out[n, k] = mean
        var_out[n, k] = m2 / probs.shape[0]
        entropy_term = -_plogp(mean)
    _add_by_row(entropy_acc, n, entropy_term, rows, sums)
    _add_by_row(neg_plogp_acc, n, -plogp, rows, sums)


@cuda.jit
def _update_elements(probs, count0, mean_state, m2_state, neg_plogp_state):  # type: ignore[no-untyped-def]
    rows = cuda.shared.array(THREADS_PER_BLOCK, int64)
    sums = cuda.shared.array((2, THREADS_PER_BLOCK), float64)
    n_rows, c = mean_state.shape
    n, k = _element(n_rows * c, c)
    plogp = 0.0
    if n != NO_ROW:
        mean, m2, plogp = _walk_passes(probs, n, k, count0, mean_state[n, k], m2_state[n, k])
        mean_state[n, k] = mean
        m2_state[n, k] = m2
    _add_by_row(neg_plogp_state, n, -plogp, rows, sums)


@cuda.jit
def _state_elements(count, mean_state, m2_state, mean_out, var_out, entropy_acc):  # type: ignore[no-untyped-def]
    rows = cuda.shared.array(THREADS_PER_BLOCK, int64)
    sums = cuda.shared.array((2, THREADS_PER_BLOCK), float64)
    n_rows, c = mean_state.shape
    n, k = _element(n_rows * c, c)
    entropy_term = 0.0
    if n != NO_ROW:
        mean = mean_state[n, k]
        mean_out[n, k] = mean
        var_out[n, k] = m2_state[n, k] / count
        entropy_term = -_plogp(mean)
    _add_by_row(entropy_acc, n, entropy_term, rows, sums)


@cuda.jit
def _finalize_rows(count, entropy_acc, neg_plogp_acc, ent_out, exp_out, mi_out):  # type: ignore[no-untyped-def]
    n = cuda.grid(1)
    if n >= entropy_acc.shape[0]:
        return
    entropy = entropy_acc[n]
    expected = neg_plogp_acc[n] / count
    ent_out[n] = entropy
    exp_out[n] = expected
    mi_out[n] = max(entropy - expected, 0.0)


def _grid(size: int) -> int:
    return max(1, (size + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK)


def fused(probs: Any, outs: tuple[Any, ...], entropy_acc: Any, neg_plogp_acc: Any, stream: Any = 0) -> None:
    """All statistics of ``probs[T, N, C]``; ``entropy_acc``/``neg_plogp_acc`` (N,) float64 zeros."""
    mean_out, var_out, ent_out, exp_out, mi_out = outs
    n_rows, c = mean_out.shape
    _fused_elements[_grid(n_rows * c), THREADS_PER_BLOCK, stream](probs, mean_out, var_out, entropy_acc, neg_plogp_acc)
    _finalize_rows[_grid(n_rows), THREADS_PER_BLOCK, stream](
        probs.shape[0], entropy_acc, neg_plogp_acc, ent_out, exp_out, mi_out
    )


def update(probs: Any, count0: int, mean: Any, m2: Any, neg_plogp: Any, stream: Any = 0) -> None:
    """Fold the passes of ``probs[t, N, C]`` into the float64 state (mean, m2, neg_plogp)."""
    n_rows, c = mean.shape
    _update_elements[_grid(n_rows * c), THREADS_PER_BLOCK, stream](probs, count0, mean, m2, neg_plogp)


def finalize(
    count: int, mean: Any, m2: Any, neg_plogp: Any, outs: tuple[Any, ...], entropy_acc: Any, stream: Any = 0
) -> None:
    """The statistics from the state; ``entropy_acc`` is an (N,) float64 zero scratch array."""
    mean_out, var_out, ent_out, exp_out, mi_out = outs
    n_rows, c = mean.shape
    _state_elements[_grid(n_rows * c), THREADS_PER_BLOCK, stream](count, mean, m2, mean_out, var_out, entropy_acc)
    _finalize_rows[_grid(n_rows), THREADS_PER_BLOCK, stream](count, entropy_acc, neg_plogp, ent_out, exp_out, mi_out)
