"""Numba CPU kernels over flat, C-contiguous arrays (callers pass shapes explicitly).

Layout: ``probs[T, N, C]`` flattened; work is split over blocks of whole rows (samples) so
each thread owns its rows and a block's state stays in L2 while the T passes stream
through it once. Passes are taken in groups of ``FOLD_EVERY``: per element, sums of the
deviations from the group's first pass and of their squares (shifted data, in the input's
precision) and of ``p*log(p)`` (float32, :func:`fast_log`), four passes per sweep; after
each group they are merged into the float64 running mean and M2 (Chan, Golub & LeVeque
1979, the pairwise form of Welford 1962) and the float64 entropy sums. Errors stay at a
few float32 ulps of each quantity while the hot loop runs 8-wide in float32.

Kernels: :func:`fused_predictive` (all T passes at once); for streaming,
:func:`streaming_update` (a chunk of passes), :func:`stage_passes` + :func:`fold_staged`
(single passes, buffered and folded in groups) and :func:`streaming_finalize`;
:func:`first_invalid_row` (input validation) and :func:`calibration_bin_sums`.
All are compiled once per dtype and cached on disk (``cache=True``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from numba import prange

from benchtool.kernels._fastlog import fast_log

BLOCK_ELEMENTS = 4096  # elements a work item owns: ~112 KiB of state, resident in L2
FOLD_EVERY = 8  # passes per group: partial sums span at most this many passes (error <= 8 ulp)

_FAST = {"contract"}  # fuse multiply-adds only: keeps IEEE NaN/inf semantics

WORK_PER_THREAD = 1 << 21  # elements (~2 ms of work): waking an idle thread (vCPU) can cost a millisecond


@contextmanager
def threads_for(elements: int) -> Iterator[None]:
    """Give a kernel one thread per ``WORK_PER_THREAD`` elements (at least one).

    Every parallel call wakes the idle worker threads and waits for the slowest; on a
    virtual machine or a busy one that wake-up alone can take milliseconds, so a kernel
    with less work than that runs faster on the calling thread alone (measured here:
    streaming single passes with two threads was 2-3x slower than with one).
    """
    available = numba.get_num_threads()
    wanted = max(1, min(available, elements // WORK_PER_THREAD))
    if wanted == available:
        yield
        return
    numba.set_num_threads(wanted)
    try:
        yield
    finally:
        numba.set_num_threads(available)


@numba.njit(inline="always", cache=True)
def _row_block(block: int, rows_per_block: int, n_rows: int) -> tuple[int, int]:
    r0 = block * rows_per_block
    return r0, min(n_rows, r0 + rows_per_block)


# The helpers below take equal-length 1-D views indexed from 0: an index like ``offset + i``
# makes numba emit a negative-index wraparound select that stops LLVM vectorising the loop.


@numba.njit(inline="always", cache=True, fastmath=_FAST)
def _shifted_sums(x, shift, s1, s2):  # type: ignore[no-untyped-def]
    """Sums of deviations (and their squares) from ``shift``, in the input's precision."""
    for i in range(x.size):
        d = x[i] - shift[i]
        s1[i] += d
        s2[i] += d * d


@numba.njit(inline="always", cache=True)
def _four_slices(flat, offset, stride, length):  # type: ignore[no-untyped-def]
    """The same ``length`` elements of four consecutive passes ``stride`` apart."""
    return (
        flat[offset : offset + length],
        flat[offset + stride : offset + stride + length],
        flat[offset + 2 * stride : offset + 2 * stride + length],
        flat[offset + 3 * stride : offset + 3 * stride + length],
    )


@numba.njit(inline="always", cache=True, fastmath=_FAST)
def _four_shifted_sums(x0, x1, x2, x3, shift, s1, s2):  # type: ignore[no-untyped-def]
    """:func:`_shifted_sums` of four passes in one sweep."""
    for i in range(x0.size):
        d0, d1, d2, d3 = x0[i] - shift[i], x1[i] - shift[i], x2[i] - shift[i], x3[i] - shift[i]
        s1[i] += (d0 + d1) + (d2 + d3)
        s2[i] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)


@numba.njit(inline="always", cache=True, fastmath=_FAST)
def _four_passes(x0, x1, x2, x3, shift, s1, s2, acc32):  # type: ignore[no-untyped-def]
    """:func:`_shifted_sums` and :func:`_add_plogp` of four passes in one sweep: the block's
    sums are loaded and stored once per four passes and four input streams are in flight
    (measured: 30% faster than one pass per sweep)."""
    for i in range(x0.size):
        p0, p1, p2, p3 = x0[i], x1[i], x2[i], x3[i]
        d0, d1, d2, d3 = p0 - shift[i], p1 - shift[i], p2 - shift[i], p3 - shift[i]
        s1[i] += (d0 + d1) + (d2 + d3)
        s2[i] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        q0, q1, q2, q3 = np.float32(p0), np.float32(p1), np.float32(p2), np.float32(p3)
        acc32[i] += (q0 * fast_log(q0) + q1 * fast_log(q1)) + (q2 * fast_log(q2) + q3 * fast_log(q3))


@numba.njit(inline="always", cache=True, fastmath=_FAST)
def _merge_group(count, group, shift, s1, s2, mean, m2):  # type: ignore[no-untyped-def]
    """Fold ``group`` passes, summarised by shifted sums, into the float64 running mean/M2 of
    ``count`` passes (Chan, Golub & LeVeque 1979, pairwise update), and clear the sums."""
    total = count + group
    inv_group = 1.0 / group
    weight_mean = group / total
    weight_m2 = count * group / total
    for i in range(mean.size):
        a = np.float64(s1[i])
        group_mean = np.float64(shift[i]) + a * inv_group
        group_m2 = np.float64(s2[i]) - a * a * inv_group
        delta = group_mean - mean[i]
        mean[i] += delta * weight_mean
        m2[i] += group_m2 + delta * delta * weight_m2
        s1[i] = 0.0
        s2[i] = 0.0


@numba.njit(inline="always", cache=True, fastmath=_FAST)
def _add_plogp(x, acc32):  # type: ignore[no-untyped-def]
    for i in range(x.size):
        p = np.float32(x[i])
        acc32[i] += p * fast_log(p)


@numba.njit(inline="always", cache=True, fastmath=_FAST)
def _copy_add_plogp(x, copy, acc32):  # type: ignore[no-untyped-def]
    for i in range(x.size):
        p = x[i]
        copy[i] = p
        p32 = np.float32(p)
        acc32[i] += p32 * fast_log(p32)


@numba.njit(inline="always", cache=True, fastmath=_FAST)
def _fold(acc32, acc64):  # type: ignore[no-untyped-def]
    for i in range(acc32.size):
        acc64[i] += acc32[i]
        acc32[i] = 0.0


@numba.njit(inline="always", cache=True, fastmath=_FAST)
def _accumulate_block(flat, n_pass, stride, e0, count0, mean, m2, plogp):  # type: ignore[no-untyped-def]
    """Stream ``n_pass`` passes of elements [e0, e0 + mean.size) into mean/M2 and plogp, in
    groups of FOLD_EVERY passes: sums of deviations from the group's first pass (shifted
    data, input precision) merged into the float64 state after each group."""
    length = mean.size
    plogp32 = np.zeros(length, np.float32)
    shift = np.empty(length, flat.dtype)
    s1 = np.zeros(length, flat.dtype)
    s2 = np.zeros(length, flat.dtype)
    for start in range(0, n_pass, FOLD_EVERY):
        stop = min(n_pass, start + FOLD_EVERY)
        shift[:] = flat[start * stride + e0 : start * stride + e0 + length]
        t = start
        while t < stop:
            o = t * stride + e0
            if t + 4 <= stop:
                x0, x1, x2, x3 = _four_slices(flat, o, stride, length)
                _four_passes(x0, x1, x2, x3, shift, s1, s2, plogp32)
                t += 4
            else:
                _shifted_sums(flat[o : o + length], shift, s1, s2)
                _add_plogp(flat[o : o + length], plogp32)
                t += 1
        _merge_group(count0 + start, stop - start, shift, s1, s2, mean, m2)
        _fold(plogp32, plogp)


@numba.njit(inline="always", cache=True, fastmath=_FAST)
def _finalize_block(  # type: ignore[no-untyped-def]
    count, c, mean, m2, neg_plogp, mean_out, var_out, ent_out, exp_out, mi_out
):
    """Mean, variance, entropy of the mean, expected entropy and MI of one block of rows.

    ``mean``, ``m2``, ``mean_out``, ``var_out`` are views of the block's elements;
    ``neg_plogp``, ``ent_out``, ``exp_out``, ``mi_out`` views of its rows.
    """
    inv_count = 1.0 / count
    mlogm = np.empty(mean.size)
    for i in range(mean.size):
        mu = mean[i]
        mean_out[i] = mu
        var_out[i] = max(m2[i], 0.0) * inv_count
        mu32 = np.float32(mu)
        mlogm[i] = np.float64(mu32 * fast_log(mu32))
    entropy_of_mean = np.zeros(neg_plogp.size)
    _rows_minus_sum(mlogm, c, entropy_of_mean)
    for r in range(neg_plogp.size):
        entropy = entropy_of_mean[r]
        expected = neg_plogp[r] * inv_count
        ent_out[r] = entropy
        exp_out[r] = expected
        mi_out[r] = max(entropy - expected, 0.0)


@numba.njit(inline="always", cache=True, fastmath={"reassoc", "contract"})
def _rows_minus_sum(plogp, c, neg_plogp):  # type: ignore[no-untyped-def]
    """Subtract each row's sum of ``plogp`` (a block's elements) from ``neg_plogp`` (its rows);
    reassociation lets the row sums vectorise instead of chaining one add per element."""
    for r in range(neg_plogp.size):
        row = plogp[r * c : (r + 1) * c]
        total = 0.0
        for k in range(row.size):
            total += row[k]
        neg_plogp[r] -= total


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def fused_predictive(flat, n_pass, n, c, mean_out, var_out, ent_out, exp_out, mi_out):  # type: ignore[no-untyped-def]
    """All five statistics of ``probs[T, N, C]`` in one read of the input."""
    rows_per_block = max(1, BLOCK_ELEMENTS // c)
    for b in prange((n + rows_per_block - 1) // rows_per_block):
        r0, r1 = _row_block(b, rows_per_block, n)
        length = (r1 - r0) * c
        mean = np.zeros(length)
        m2 = np.zeros(length)
        plogp = np.zeros(length)
        neg_plogp = np.zeros(r1 - r0)
        e0, e1 = r0 * c, r1 * c
        _accumulate_block(flat, n_pass, n * c, e0, 0, mean, m2, plogp)
        _rows_minus_sum(plogp, c, neg_plogp)
        _finalize_block(
            n_pass, c, mean, m2, neg_plogp,
            mean_out[e0:e1], var_out[e0:e1], ent_out[r0:r1], exp_out[r0:r1], mi_out[r0:r1],
        )


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def streaming_update(flat, n_pass, n, c, count0, mean, m2, neg_plogp):  # type: ignore[no-untyped-def]
    """Fold ``n_pass`` more passes into the float64 state (mean, M2 per element; -sum p log p per row)."""
    rows_per_block = max(1, BLOCK_ELEMENTS // c)
    for b in prange((n + rows_per_block - 1) // rows_per_block):
        r0, r1 = _row_block(b, rows_per_block, n)
        length = (r1 - r0) * c
        e0, e1 = r0 * c, r1 * c
        plogp = np.zeros(length)
        _accumulate_block(flat, n_pass, n * c, e0, count0, mean[e0:e1], m2[e0:e1], plogp)
        _rows_minus_sum(plogp, c, neg_plogp[r0:r1])


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def stage_passes(flat, n_pass, n, c, staged, plogp32):  # type: ignore[no-untyped-def]
    """Copy a few passes into the pass buffer ``staged`` (same layout) and add their
    p*log(p) to ``plogp32`` (per element): one read of the input, the copy hidden behind
    the log work, the float64 state untouched until :func:`fold_staged`."""
    rows_per_block = max(1, BLOCK_ELEMENTS // c)
    for b in prange((n + rows_per_block - 1) // rows_per_block):
        r0, r1 = _row_block(b, rows_per_block, n)
        e0, e1 = r0 * c, r1 * c
        for t in range(n_pass):
            s0 = t * n * c + e0
            _copy_add_plogp(flat[s0 : s0 + e1 - e0], staged[s0 : s0 + e1 - e0], plogp32[e0:e1])


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def fold_staged(staged, n_pass, n, c, count0, mean, m2, plogp32, neg_plogp):  # type: ignore[no-untyped-def]
    """Merge the staged passes (one group) into mean/M2 and their p*log(p) sums into the rows."""
    rows_per_block = max(1, BLOCK_ELEMENTS // c)
    for b in prange((n + rows_per_block - 1) // rows_per_block):
        r0, r1 = _row_block(b, rows_per_block, n)
        e0, e1 = r0 * c, r1 * c
        shift = staged[e0:e1]
        s1 = np.zeros(e1 - e0, staged.dtype)
        s2 = np.zeros(e1 - e0, staged.dtype)
        t, stride, length = 1, n * c, e1 - e0
        while t < n_pass:
            o = t * stride + e0
            if t + 4 <= n_pass:
                x0, x1, x2, x3 = _four_slices(staged, o, stride, length)
                _four_shifted_sums(x0, x1, x2, x3, shift, s1, s2)
                t += 4
            else:
                _shifted_sums(staged[o : o + length], shift, s1, s2)
                t += 1
        _merge_group(count0, n_pass, shift, s1, s2, mean[e0:e1], m2[e0:e1])
        _rows_minus_sum(plogp32[e0:e1], c, neg_plogp[r0:r1])
        plogp32[e0:e1] = 0.0


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def streaming_finalize(  # type: ignore[no-untyped-def]
    count, n, c, mean, m2, neg_plogp, mean_out, var_out, ent_out, exp_out, mi_out
):
    """The five statistics from the streaming state."""
    rows_per_block = max(1, BLOCK_ELEMENTS // c)
    for b in prange((n + rows_per_block - 1) // rows_per_block):
        r0, r1 = _row_block(b, rows_per_block, n)
        e0, e1 = r0 * c, r1 * c
        _finalize_block(
            count, c, mean[e0:e1], m2[e0:e1], neg_plogp[r0:r1],
            mean_out[e0:e1], var_out[e0:e1], ent_out[r0:r1], exp_out[r0:r1], mi_out[r0:r1],
        )


# Codes returned by first_invalid_row.
VALID, NOT_FINITE, NEGATIVE, BAD_SUM = 0, 1, 2, 3


@numba.njit(inline="always", cache=True, fastmath={"reassoc"})
def _row_sum_and_negatives(row):  # type: ignore[no-untyped-def]
    """Float64 sum and count of negative entries; reassociation lets LLVM vectorise both
    reductions while NaN and inf still propagate into the sum."""
    total = 0.0
    negatives = 0
    for k in range(row.size):
        p = np.float64(row[k])
        total += p
        negatives += p < 0.0
    return total, negatives


@numba.njit(parallel=True, cache=True)
def first_invalid_row(flat, n_rows, c, atol):  # type: ignore[no-untyped-def]
    """(code, row, value) of the first row that is non-finite, has a negative entry, or
    does not sum to 1 within ``atol`` (row sums in float64); code VALID when none."""
    rows_per_block = max(1, BLOCK_ELEMENTS // c)
    n_blocks = (n_rows + rows_per_block - 1) // rows_per_block
    codes = np.zeros(n_blocks, np.int64)
    where = np.zeros(n_blocks, np.int64)
    values = np.zeros(n_blocks)
    for b in prange(n_blocks):
        r0, r1 = _row_block(b, rows_per_block, n_rows)
        for r in range(r0, r1):
            row = flat[r * c : (r + 1) * c]
            total, negatives = _row_sum_and_negatives(row)
            if not math.isfinite(total):
                codes[b], where[b], values[b] = NOT_FINITE, r, total
            elif negatives:
                codes[b], where[b], values[b] = NEGATIVE, r, row.min()
            elif abs(total - 1.0) > atol:
                codes[b], where[b], values[b] = BAD_SUM, r, total
            if codes[b] != VALID:
                break
    for b in range(n_blocks):
        if codes[b] != VALID:
            return codes[b], where[b], values[b]
    return VALID, -1, 0.0


@numba.njit(cache=True)
def calibration_bin_sums(confidence, correct, counts, confidence_sums, correct_sums):  # type: ignore[no-untyped-def]
    """Add samples to equal-width bins on [0, 1]: bin k holds k/B <= conf < (k+1)/B; 1.0 -> last."""
    n_bins = counts.size
    for i in range(confidence.size):
        conf = confidence[i]
        k = min(int(conf * n_bins), n_bins - 1)
        counts[k] += 1
        confidence_sums[k] += conf
        correct_sums[k] += correct[i]
