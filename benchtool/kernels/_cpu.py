"""Numba CPU kernels over flat, C-contiguous arrays (callers pass shapes explicitly).

Layout: ``probs[T, N, C]`` flattened; work is split over blocks of whole rows (samples) so
each thread owns its rows and a block's scratch stays in L2 while the passes stream through
it once. Passes are taken in groups of ``FOLD_EVERY``: per element, sums of the deviations
from the group's first pass and of their squares (shifted data, in the input's precision)
and of ``p*log(p)`` (float32, :func:`fast_log`), four passes per sweep; after each group
they are merged into the float64 running mean and M2 (Chan, Golub & LeVeque 1979, the
pairwise form of Welford 1962) and the float64 per-row entropy sums. Errors stay at a few
float32 ulps of each quantity while the hot loop runs 8-wide in float32.

One routine merges a group into a block's state, :func:`_merge_passes`, for every entry
point: :func:`fused_predictive` (all T passes at once, state in cache) and the streaming
:func:`streaming_update` (any number of passes: fed chunks, each call merges its own; fed a
pass at a time, the passes of an unfinished group wait in a ring buffer) with
:func:`streaming_finalize`. Also :func:`first_invalid_row` (input validation) and
:func:`calibration_bin_sums`. All are compiled once per dtype and cached on disk
(``cache=True``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from numba import prange

from benchtool.kernels._fastlog import fast_log

BLOCK_ELEMENTS = 4096  # elements a work item owns: ~112 KiB of state, resident in L2
FOLD_EVERY = 8  # passes per group: partial sums span at most this many passes (error <= 8 ulp)

_FAST = {"contract"}  # fuse multiply-adds only: keeps IEEE NaN/inf semantics

WORK_PER_THREAD = 1 << 16  # elements (~50 us of work): less than that runs faster on the calling thread


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Keep torch's intra-op thread count across a parallel kernel call.

    numba's OpenMP threading layer calls ``omp_set_num_threads(NUMBA_NUM_THREADS)`` when it
    starts its pool (the first parallel kernel of a process), and torch built with OpenMP
    reads its thread count from that same setting: without this, the first kernel silently
    changed torch's thread count (e.g. 1 -> the number of CPUs), and with it every later
    float sum of a training run. Torch is only consulted when it is already imported.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


@contextmanager
def threads_for(elements: int) -> Iterator[None]:
    """Give a kernel one thread per ``WORK_PER_THREAD`` elements (at least one), leaving
    torch's thread count as it was (:func:`torch_threads_kept`).

    Every parallel call wakes the worker threads and waits for the slowest: a few
    microseconds on an idle machine (measured here: 3.4 us for an empty parallel loop),
    far more on a busy one, so a kernel with less work than that runs on the calling
    thread alone.
    """
    available = numba.get_num_threads()
    wanted = max(1, min(available, elements // WORK_PER_THREAD))
    with torch_threads_kept():
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
    ``count`` passes (Chan, Golub & LeVeque 1979, pairwise update). The first group
    (``count == 0``) only writes mean/M2, so they may start uninitialised."""
    inv_group = 1.0 / group
    if count == 0:
        for i in range(mean.size):
            a = np.float64(s1[i])
            mean[i] = np.float64(shift[i]) + a * inv_group
            m2[i] = np.float64(s2[i]) - a * a * inv_group
        return
    total = count + group
    weight_mean = group / total
    weight_m2 = count * group / total
    for i in range(mean.size):
        a = np.float64(s1[i])
        group_mean = np.float64(shift[i]) + a * inv_group
        group_m2 = np.float64(s2[i]) - a * a * inv_group
        delta = group_mean - mean[i]
        mean[i] += delta * weight_mean
        m2[i] += group_m2 + delta * delta * weight_m2


@numba.njit(inline="always", cache=True, fastmath=_FAST)
def _set_plogp(x, acc32):  # type: ignore[no-untyped-def]
    for i in range(x.size):
        p = np.float32(x[i])
        acc32[i] = p * fast_log(p)


@numba.njit(cache=True, fastmath=_FAST)
def _add_passes(flat, t0, t1, stride, e0, shift, s1, s2, acc32):  # type: ignore[no-untyped-def]
    """Shifted sums and p*log(p) of passes [t0, t1) of ``flat``, four per sweep."""
    length = shift.size
    t = t0
    while t < t1:
        o = t * stride + e0
        if t + 4 <= t1:
            x0, x1, x2, x3 = _four_slices(flat, o, stride, length)
            _four_passes(x0, x1, x2, x3, shift, s1, s2, acc32)
            t += 4
        else:
            x = flat[o : o + length]
            _shifted_sums(x, shift, s1, s2)
            for i in range(length):
                p = np.float32(x[i])
                acc32[i] += p * fast_log(p)
            t += 1


@numba.njit(cache=True, fastmath=_FAST)
def _merge_passes(  # type: ignore[no-untyped-def]
    ring, slot0, slot1, flat, t0, t1, stride, e0, count, c, mean, m2, neg_plogp
):
    """Merge one group into a block's state: ring slots [slot0, slot1) then passes [t0, t1)
    of ``flat`` (each ``stride`` apart, the block's elements from ``e0``), after ``count``
    earlier passes. The group is read once: deviations from its first pass and p*log(p)
    summed in block-sized scratch that stays in cache, then merged into the float64
    ``mean``/``m2`` and the rows' ``neg_plogp``. Called, not inlined, like the helpers
    around it: inlining them into the three kernels tripled compile time (153 s against
    53 s here) for no measurable speed."""
    length = mean.size
    s1, s2 = np.zeros(length, flat.dtype), np.zeros(length, flat.dtype)
    acc32 = np.empty(length, np.float32)
    if slot1 > slot0:
        shift = ring[slot0 * stride + e0 : slot0 * stride + e0 + length]
        _set_plogp(shift, acc32)
        _add_passes(ring, slot0 + 1, slot1, stride, e0, shift, s1, s2, acc32)
        _add_passes(flat, t0, t1, stride, e0, shift, s1, s2, acc32)
    else:
        shift = flat[t0 * stride + e0 : t0 * stride + e0 + length]
        _set_plogp(shift, acc32)
        _add_passes(flat, t0 + 1, t1, stride, e0, shift, s1, s2, acc32)
    _merge_group(count, slot1 - slot0 + t1 - t0, shift, s1, s2, mean, m2)
    _rows_minus_sum(acc32, c, neg_plogp)


@numba.njit(inline="always", cache=True)
def _block_phase(block):  # type: ignore[no-untyped-def]
    """How many passes block ``block``'s groups are offset by in a stream fed a pass at a time:
    neighbouring blocks complete their groups on different calls."""
    return block % FOLD_EVERY


@numba.njit(inline="always", cache=True)
def _group_slots(t, phase):  # type: ignore[no-untyped-def]
    """(slot of pass ``t``, slot its group started at) for a block whose groups are offset by
    ``phase``: its first group holds passes 0 .. FOLD_EVERY-1-phase, then FOLD_EVERY each."""
    slot = (t + phase) % FOLD_EVERY
    return slot, (phase if t < FOLD_EVERY - phase else 0)


@numba.njit(inline="always", cache=True, fastmath=_FAST)
def _advance_block(  # type: ignore[no-untyped-def]
    flat, n_pass, stride, e0, t0, phase, ring, c, mean, m2, neg_plogp
):
    """Add passes ``t0 .. t0+n_pass-1`` (``flat``'s passes 0..n_pass-1) to one block of elements
    whose groups are offset by ``phase`` passes (a stream fed a pass at a time).

    Passes are merged into the block's float64 ``mean``/``m2`` in groups of FOLD_EVERY
    (:func:`_merge_passes`): a group's earlier passes are copied into ``ring``
    (FOLD_EVERY-1 slots, ``stride`` apart) and the pass that completes it is read from
    ``flat``, so a group that ends inside ``flat`` is never copied.
    """
    length = mean.size
    t = 0
    while t < n_pass:
        slot, start = _group_slots(t0 + t, phase)
        last = t + FOLD_EVERY - 1 - slot  # flat's index of the group's last pass
        if last < n_pass:
            before = t0 + t - (slot - start)  # passes merged before this group
            _merge_passes(ring, start, slot, flat, t, last + 1, stride, e0, before, c, mean, m2, neg_plogp)
            t = last + 1
        else:
            for k in range(t, n_pass):
                o, d = k * stride + e0, (slot + k - t) * stride + e0
                ring[d : d + length] = flat[o : o + length]
            t = n_pass


@numba.njit(cache=True, fastmath=_FAST)
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


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _rows_minus_sum(plogp, c, neg_plogp):  # type: ignore[no-untyped-def]
    """Subtract each row's sum of ``plogp`` (a block's elements) from ``neg_plogp`` (its rows).
    A separate function, not inlined, so that its reassociation flag survives and the row
    sums vectorise instead of chaining one add per element."""
    for r in range(neg_plogp.size):
        row = plogp[r * c : (r + 1) * c]
        total = 0.0
        for k in range(row.size):
            total += row[k]
        neg_plogp[r] -= total


# Codes of the validation: first_invalid_row, and fused_predictive's ``found``.
VALID, NOT_FINITE, NEGATIVE, BAD_SUM = 0, 1, 2, 3


@numba.njit(cache=True, fastmath={"reassoc"})
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


@numba.njit(inline="always", cache=True)
def _row_problem(row, atol):  # type: ignore[no-untyped-def]
    """(code, value) of one row: NOT_FINITE (its sum), NEGATIVE (its minimum), BAD_SUM (its
    sum) or VALID."""
    total, negatives = _row_sum_and_negatives(row)
    if not math.isfinite(total):
        return NOT_FINITE, total
    if negatives:
        return NEGATIVE, np.float64(row.min())
    if abs(total - 1.0) > atol:
        return BAD_SUM, total
    return VALID, 0.0


@numba.njit(cache=True, fastmath={"reassoc"})
def _first_bad_row(flat, t0, t1, n, r0, r1, c, atol, found):  # type: ignore[no-untyped-def]
    """Check rows [r0, r1) of passes [t0, t1); the first bad one goes to ``found``. One loop
    over a pass's rows, no call per row (a bad row is then described by :func:`_row_problem`):
    a NaN or inf sum fails the ``<= atol`` test like a wrong one."""
    for t in range(t0, t1):
        x = flat[(t * n + r0) * c : (t * n + r1) * c]
        for r in range(r1 - r0):
            total = 0.0
            negative = False
            for k in range(c):
                p = np.float64(x[r * c + k])
                total += p
                negative |= p < 0.0
            if negative or not abs(total - 1.0) <= atol:
                code, value = _row_problem(x[r * c : (r + 1) * c], atol)
                found[0], found[1], found[2] = code, t * n + r0 + r, value
                return


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def fused_predictive(  # type: ignore[no-untyped-def]
    flat, n_pass, n, c, atol, mean_out, var_out, ent_out, exp_out, mi_out
):
    """All five statistics of ``probs[T, N, C]`` in one read of the input.

    With ``atol >= 0`` it also validates what it reads: each block checks a group's passes
    (:func:`_first_bad_row`) just before merging them, while they are in cache. Returns each
    block's first bad (pass, row) as a row of (code, T*N-index, value), code VALID when none.
    The statistics are computed whatever the checks find; the caller raises."""
    rows_per_block = max(1, BLOCK_ELEMENTS // c)
    stride = n * c
    n_blocks = (n + rows_per_block - 1) // rows_per_block
    found = np.zeros((n_blocks, 3))
    for b in prange(n_blocks):
        r0, r1 = _row_block(b, rows_per_block, n)
        e0, e1 = r0 * c, r1 * c
        length = e1 - e0
        mean, m2, neg_plogp = np.empty(length), np.empty(length), np.zeros(r1 - r0)
        for g in range(0, n_pass, FOLD_EVERY):  # one group at a time: the same merges as all at once
            k = min(FOLD_EVERY, n_pass - g)
            if atol >= 0 and found[b, 0] == VALID:
                _first_bad_row(flat, g, g + k, n, r0, r1, c, atol, found[b])
            _merge_passes(flat, 0, 0, flat, g, g + k, stride, e0, g, c, mean, m2, neg_plogp)
        _finalize_block(
            n_pass, c, mean, m2, neg_plogp,
            mean_out[e0:e1], var_out[e0:e1], ent_out[r0:r1], exp_out[r0:r1], mi_out[r0:r1],
        )
    return found


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def streaming_update(flat, n_pass, n, c, count0, ring, mean, m2, neg_plogp, spread):  # type: ignore[no-untyped-def]
    """Add ``n_pass`` passes to the streaming state after ``count0`` earlier ones.

    With ``spread`` (a stream fed a pass at a time), block b's groups are offset by
    :func:`_block_phase` passes, so a call with one pass merges about one block in FOLD_EVERY
    (the log work, reading the block's ring) while it copies the others into the ring (memory
    traffic only): work and traffic are spread evenly over the calls instead of every
    FOLD_EVERY-th call doing all the merging. Without it (a stream fed chunks) every call
    merges all its passes, in groups of FOLD_EVERY from its first pass, the last one partial,
    as the fused kernel does: nothing waits in the ring, whose first write would fault its
    pages in (a chunk of 6 passes copied there made a fresh accumulator fed 30 passes of
    (2000, 1000) in chunks of 8 take 1.74x the fused kernel's time on 2 threads, 1.20x at 32).
    """
    rows_per_block = max(1, BLOCK_ELEMENTS // c)
    stride = n * c
    for b in prange((n + rows_per_block - 1) // rows_per_block):
        r0, r1 = _row_block(b, rows_per_block, n)
        e0, e1 = r0 * c, r1 * c
        if spread:
            _advance_block(
                flat, n_pass, stride, e0, count0, _block_phase(b), ring, c, mean[e0:e1], m2[e0:e1], neg_plogp[r0:r1],
            )
        else:
            for g in range(0, n_pass, FOLD_EVERY):
                _merge_passes(ring, 0, 0, flat, g, min(g + FOLD_EVERY, n_pass), stride, e0, count0 + g, c,
                              mean[e0:e1], m2[e0:e1], neg_plogp[r0:r1])


@numba.njit(parallel=True, cache=True, fastmath=_FAST)
def streaming_finalize(  # type: ignore[no-untyped-def]
    count, n, c, ring, mean, m2, neg_plogp, spread, mean_out, var_out, ent_out, exp_out, mi_out
):
    """The five statistics of the ``count`` passes in the streaming state (left unchanged: in a
    stream fed a pass at a time, each block's pending group is merged into copies of its
    mean/M2; a stream fed chunks has none pending)."""
    rows_per_block = max(1, BLOCK_ELEMENTS // c)
    stride = n * c
    for b in prange((n + rows_per_block - 1) // rows_per_block):
        r0, r1 = _row_block(b, rows_per_block, n)
        e0, e1 = r0 * c, r1 * c
        block_mean, block_m2 = mean[e0:e1].copy(), m2[e0:e1].copy()
        block_neg = neg_plogp[r0:r1].copy()
        if spread:
            slot, start = _group_slots(count - 1, _block_phase(b))
            if slot < FOLD_EVERY - 1:  # the last group is still in the ring
                before = count - (slot + 1 - start)
                _merge_passes(ring, start, slot + 1, ring, 0, 0, stride, e0, before, c, block_mean, block_m2, block_neg)
        _finalize_block(
            count, c, block_mean, block_m2, block_neg,
            mean_out[e0:e1], var_out[e0:e1], ent_out[r0:r1], exp_out[r0:r1], mi_out[r0:r1],
        )


@numba.njit(parallel=True, cache=True)
def first_invalid_row(flat, n_rows, c, atol):  # type: ignore[no-untyped-def]
    """(code, row, value) of the first row that is non-finite, has a negative entry, or
    does not sum to 1 within ``atol`` (row sums in float64); code VALID when none."""
    rows_per_block = max(1, BLOCK_ELEMENTS // c)
    n_blocks = (n_rows + rows_per_block - 1) // rows_per_block
    found = np.zeros((n_blocks, 3))
    for b in prange(n_blocks):
        r0, r1 = _row_block(b, rows_per_block, n_rows)
        _first_bad_row(flat, 0, 1, n_rows, r0, r1, c, atol, found[b])
    for b in range(n_blocks):
        if found[b, 0] != VALID:
            return int(found[b, 0]), int(found[b, 1]), found[b, 2]
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
