"""predictive_stats and StreamingPredictive against the float64 NumPy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchtool.kernels import StreamingPredictive, predictive_stats
from benchtool.kernels import _backends
from benchtool.kernels._arrays import ArrayKind, check_probabilities
from benchtool.kernels._backends import TORCH
from benchtool.kernels._cpu import FOLD_EVERY
from benchtool.kernels.reference import predictive_stats_reference

FIELDS = ("mean", "variance", "entropy", "expected_entropy", "mutual_information")
ENTROPY_ATOL = 1e-5  # the accuracy budget for entropies and MI
MOMENT_ATOL = {np.float32: 1e-6, np.float64: 1e-12}


def make_probs(rng: np.random.Generator, shape: tuple[int, int, int], kind: str, dtype: type) -> np.ndarray:
    """Probability rows of one flavour: peaked Dirichlet, one-hot, uniform, or with exact zeros."""
    t, n, c = shape
    if kind == "onehot":
        p = np.eye(c)[rng.integers(0, c, size=(t, n))]
    elif kind == "uniform":
        p = np.full(shape, 1.0 / c)
    elif kind == "zeros":
        p = rng.random(shape) * (rng.random(shape) < 0.5)
        p[..., 0] += p.sum(-1) == 0
        p /= p.sum(-1, keepdims=True)
    else:
        p = rng.dirichlet(np.full(c, 0.3), size=(t, n))
    return p.astype(dtype)


def assert_matches_reference(stats: object, probs: np.ndarray) -> None:
    expected = predictive_stats_reference(probs.astype(np.float64))
    for field in FIELDS:
        got = np.asarray(getattr(stats, field), dtype=np.float64)
        atol = MOMENT_ATOL[probs.dtype.type] if field in ("mean", "variance") else ENTROPY_ATOL
        np.testing.assert_allclose(got, expected[field], rtol=0, atol=atol, err_msg=field)


shapes = st.tuples(st.integers(1, 12), st.integers(1, 40), st.sampled_from([1, 2, 3, 10, 37]))


@given(
    shape=shapes,
    kind=st.sampled_from(["dirichlet", "onehot", "uniform", "zeros"]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_fused_matches_reference(shape, kind, dtype, seed) -> None:
    probs = make_probs(np.random.default_rng(seed), shape, kind, dtype)
    stats = predictive_stats(probs)
    assert_matches_reference(stats, probs)
    assert all(getattr(stats, f).dtype == dtype for f in FIELDS)
    mi = stats.mutual_information
    assert (mi >= 0).all() and (mi <= math.log(shape[2]) + ENTROPY_ATOL).all()


@given(
    shape=st.tuples(st.integers(1, 30), st.integers(1, 40), st.sampled_from([1, 2, 10])),
    seed=st.integers(0, 2**32 - 1),
    chunks=st.lists(st.integers(0, 12), max_size=4),
)
def test_streaming_equals_fused(shape, seed, chunks) -> None:
    probs = make_probs(np.random.default_rng(seed), shape, "zeros", np.float32)
    acc = StreamingPredictive(shape[1], shape[2])
    start = 0
    for size in chunks:  # chunks of passes (possibly empty), then single passes
        acc.update(probs[start : start + size])
        start = min(start + size, shape[0])
    for t in range(start, shape[0]):
        acc.update(probs[t])
    assert acc.count == shape[0]
    assert_streamed_equals_fused(acc.compute(), probs)


@settings(max_examples=25)
@given(
    shape=st.sampled_from([(20, 3800, 10), (19, 21, 3000), (9, 1, 5000)]),
    seed=st.integers(0, 2**32 - 1),
    chunks=st.lists(st.integers(0, 11), max_size=5),
)
def test_streaming_across_many_blocks(shape, seed, chunks) -> None:
    """Enough element blocks (up to 21) that every group offset occurs; compute() between
    updates sees exactly the passes so far and leaves the state intact; reset() reuses it."""
    probs = make_probs(np.random.default_rng(seed), shape, "zeros", np.float32)
    acc = StreamingPredictive(shape[1], shape[2])
    for replay in range(2):
        start = 0
        for size in chunks:
            acc.update(probs[start : start + size], validate=False)
            start = min(start + size, shape[0])
            if start:
                assert_streamed_equals_fused(acc.compute(), probs[:start])
        for t in range(start, shape[0]):
            acc.update(probs[t], validate=False)
        assert acc.count == shape[0]
        assert_streamed_equals_fused(acc.compute(), probs)
        acc.reset()
        assert acc.count == 0


@pytest.mark.parametrize("first", [1, 7, 8, 16])
def test_the_first_chunk_sets_how_blocks_group_their_passes(first: int) -> None:
    """Fed chunks of >= FOLD_EVERY passes from the start, every block's groups align with the
    chunks (nothing waits in the ring); fed fewer, they are offset per block. Either way, over
    many blocks and a last partial group, the statistics are the fused kernel's."""
    probs = make_probs(np.random.default_rng(first), (30, 3800, 10), "zeros", np.float32)
    acc = StreamingPredictive(3800, 10, like=probs)
    acc._state.ring.fill(np.nan)
    acc.update(probs[:first], validate=False)
    assert acc._state.spread == (first < FOLD_EVERY)
    for start in range(first, 30, 8):
        acc.update(probs[start : start + 8], validate=False)
    assert np.isnan(acc._state.ring).all() == (first >= FOLD_EVERY)  # chunks are merged as they come
    assert_streamed_equals_fused(acc.compute(), probs)


def test_a_stream_fed_chunks_of_a_group_is_the_fused_kernel_bit_for_bit() -> None:
    """Chunks of FOLD_EVERY passes (the last one shorter) make the fused kernel's groups, merged
    in its order: the same numbers, not merely close ones."""
    probs = make_probs(np.random.default_rng(9), (30, 900, 10), "dirichlet", np.float32)
    acc = StreamingPredictive(900, 10)
    for start in range(0, 30, FOLD_EVERY):
        acc.update(probs[start : start + FOLD_EVERY], validate=False)
    streamed, fused = acc.compute(), predictive_stats(probs, validate=False)
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(streamed, field), getattr(fused, field), err_msg=field)


def assert_streamed_equals_fused(streamed: object, probs: np.ndarray) -> None:
    fused = predictive_stats(probs, validate=False)
    for field in FIELDS:
        np.testing.assert_allclose(getattr(streamed, field), getattr(fused, field), rtol=0, atol=2e-6, err_msg=field)


def test_streaming_accepts_mixed_dtypes() -> None:
    probs = make_probs(np.random.default_rng(6), (12, 7, 3), "dirichlet", np.float64)
    acc = StreamingPredictive(7, 3)
    acc.update(probs[:3])
    acc.update(probs[3:5].astype(np.float32))
    for t in range(5, 12):
        acc.update(probs[t])
    expected = predictive_stats_reference(probs)
    np.testing.assert_allclose(acc.compute().entropy, expected["entropy"], atol=ENTROPY_ATOL)
    np.testing.assert_allclose(acc.compute().variance, expected["variance"], atol=1e-7)


@pytest.mark.parametrize("kind", ["dirichlet", "onehot", "uniform", "zeros"])
def test_large_class_count(kind: str) -> None:
    probs = make_probs(np.random.default_rng(1), (9, 5, 3000), kind, np.float32)
    assert_matches_reference(predictive_stats(probs), probs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_variance_keeps_relative_accuracy(dtype: type) -> None:
    """Passes that barely differ: the shifted sums must not cancel catastrophically."""
    rng = np.random.default_rng(8)
    base = rng.dirichlet(np.ones(4), size=6)
    probs = base * (1 + 1e-4 * rng.standard_normal((21, 6, 4)))
    probs = (probs / probs.sum(-1, keepdims=True)).astype(dtype)
    expected = probs.astype(np.float64).var(0)
    for variance in (predictive_stats(probs).variance, _streamed(probs).variance):
        np.testing.assert_allclose(variance, expected, rtol=1e-5 if dtype == np.float32 else 1e-10)


def _streamed(probs: np.ndarray) -> object:
    acc = StreamingPredictive(*probs.shape[1:])
    for t in range(len(probs)):
        acc.update(probs[t])
    return acc.compute()


def test_known_values() -> None:
    # Two confident passes that disagree: H(mean) = log 2, each pass has entropy 0, MI = log 2.
    probs = np.array([[[1.0, 0.0]], [[0.0, 1.0]]], np.float32)
    stats = predictive_stats(probs)
    np.testing.assert_allclose(stats.entropy, [math.log(2)], atol=1e-6)
    np.testing.assert_allclose(stats.expected_entropy, [0.0], atol=1e-7)
    np.testing.assert_allclose(stats.mutual_information, [math.log(2)], atol=1e-6)
    np.testing.assert_allclose(stats.variance, [[0.25, 0.25]])


def test_torch_cpu_in_torch_out() -> None:
    probs = make_probs(np.random.default_rng(2), (6, 20, 4), "dirichlet", np.float32)
    tensor = torch.from_numpy(probs)
    stats = predictive_stats(tensor)
    assert all(isinstance(getattr(stats, f), torch.Tensor) for f in FIELDS)
    assert stats.mean.dtype == torch.float32 and stats.entropy.shape == (20,)
    assert_matches_reference(stats, probs)
    acc = StreamingPredictive(20, 4, like=tensor)
    acc.update(tensor[:2], validate=False)
    acc.update(tensor[2:], validate=False)
    assert isinstance(acc.compute().mutual_information, torch.Tensor)


def test_torch_fallback_path_matches_cpu_kernels() -> None:
    """The fused torch path (used on CUDA when numba.cuda cannot run), on CPU tensors."""
    probs = make_probs(np.random.default_rng(3), (11, 30, 7), "zeros", np.float32)
    tensor = torch.from_numpy(probs)
    kind = ArrayKind.of(tensor, "probs")
    TORCH.chunk_elements = 30 * 7 * 4  # force several merged chunks of 4 passes
    try:
        outputs = TORCH.fused(tensor, kind)
    finally:
        TORCH.chunk_elements = type(TORCH).chunk_elements
    expected = predictive_stats_reference(probs.astype(np.float64))
    for field, got in zip(FIELDS, outputs):
        np.testing.assert_allclose(got.numpy(), expected[field], rtol=0, atol=ENTROPY_ATOL, err_msg=field)


def test_auto_takes_the_torch_path_below_the_numba_size_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small CUDA calls go to torch (numba's host overhead would dominate), large ones to numba;
    an explicit choice is honoured whatever the size. No GPU needed: only the choice is made."""
    monkeypatch.setattr(_backends, "numba_cuda_problem", lambda: None)
    kind = ArrayKind("cuda:0", np.dtype(np.float32))
    threshold = _backends.NUMBA_CUDA_MIN_ELEMENTS
    monkeypatch.delenv(_backends.CUDA_KERNELS_ENV, raising=False)
    assert _backends.backend_for(kind, threshold - 1) is _backends.TORCH
    assert _backends.backend_for(kind, threshold) is _backends.NUMBA_CUDA
    assert _backends.backend_for(kind) is _backends.NUMBA_CUDA  # size unknown: new state, reset
    monkeypatch.setenv(_backends.CUDA_KERNELS_ENV, "numba")
    assert _backends.backend_for(kind, 1) is _backends.NUMBA_CUDA
    monkeypatch.setenv(_backends.CUDA_KERNELS_ENV, "torch")
    assert _backends.backend_for(kind, threshold * 4) is _backends.TORCH
    assert _backends.backend_for(ArrayKind(None, np.dtype(np.float32)), 1) is _backends.CPU


def test_torch_path_reset_zeroes_its_state() -> None:
    """reset() on the tensor state (CUDA backends) forgets the passes before it."""
    probs = make_probs(np.random.default_rng(8), (6, 9, 5), "dirichlet", np.float64)
    tensor = torch.from_numpy(probs)
    kind = ArrayKind.of(tensor, "probs")
    state = TORCH.new_state(9, 5, kind)
    TORCH.update(state, tensor[3:])
    TORCH.reset(state)
    TORCH.update(state, tensor[:2])
    TORCH.update(state, tensor[2:3])
    expected = predictive_stats_reference(probs[:3])
    for field, got in zip(FIELDS, TORCH.finalize(state, kind)):
        np.testing.assert_allclose(got.numpy(), expected[field], rtol=0, atol=1e-12, err_msg=field)


def test_streaming_state_size_does_not_grow_with_passes() -> None:
    n, c = 50, 8
    acc = StreamingPredictive(n, c)
    probs = make_probs(np.random.default_rng(4), (1, n, c), "dirichlet", np.float32)[0]
    acc.update(probs)
    after_one = acc.nbytes
    for _ in range(199):
        acc.update(probs, validate=False)
    assert acc.count == 200
    state, ring = 8 * (2 * n * c + n), (FOLD_EVERY - 1) * n * c * 4
    assert acc.nbytes == after_one == state + ring


def test_reset_forgets_passes() -> None:
    probs = make_probs(np.random.default_rng(5), (4, 3, 2), "dirichlet", np.float64)
    acc = StreamingPredictive(3, 2)
    acc.update(probs)
    acc.reset()
    with pytest.raises(ValueError, match="before any pass"):
        acc.compute()
    acc.update(probs[:2])
    np.testing.assert_allclose(acc.compute().mean, probs[:2].mean(0))


GOOD = np.full((2, 3, 4), 0.25, np.float32)


@pytest.mark.parametrize(
    ("probs", "message"),
    [
        (GOOD[0], r"shape \(T, N, C\).*2 dims"),
        (GOOD[None], r"shape \(T, N, C\).*4 dims"),
        (GOOD[:0], "no passes"),
        (GOOD[..., :0], "at least one class"),
        (np.where(np.arange(4) == 1, np.nan, GOOD), "NaN or inf at pass 0, sample 0"),
        (np.where(np.arange(4) == 1, np.inf, GOOD), "NaN or inf"),
        (GOOD * np.array([1, 1, -1, 3], np.float32), "negative probability -0.25 at pass 0, sample 0"),
        (GOOD * 1.01, "must sum to 1"),
        (GOOD.astype(np.int64), "floating-point"),
    ],
)
def test_invalid_input_names_the_problem(probs: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        predictive_stats(probs)


@pytest.mark.parametrize(
    ("probs", "message"),
    [
        (np.where(np.arange(4) == 1, np.nan, GOOD), "NaN or inf at pass 0, sample 0"),
        (GOOD * np.array([1, 1, -1, 3], np.float32), "negative probability -0.25 at pass 0, sample 0"),
        (GOOD * 1.01, "must sum to 1"),
    ],
)
def test_device_side_validation_names_the_same_problem(probs: np.ndarray, message: str) -> None:
    """The torch checks CUDA inputs get, run here on CPU tensors."""
    with pytest.raises(ValueError, match=message):
        check_probabilities(torch.from_numpy(probs), "probs")
    check_probabilities(torch.from_numpy(GOOD), "probs")


CORRUPTIONS = {  # what a bad entry becomes: not finite, negative, or off so its row does not sum to 1
    "nan": lambda p: np.nan, "inf": lambda p: np.inf, "negative": lambda p: -0.5, "off": lambda p: p + 0.1,
}


@settings(max_examples=25, deadline=None)
@given(
    n_pass=st.integers(1, 19),
    n=st.sampled_from([1, 7, 1500]),  # 1500 rows of 4 classes span two blocks
    bad=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(sorted(CORRUPTIONS))), min_size=1, max_size=4),
)
def test_in_kernel_validation_names_the_first_bad_row_as_the_separate_check_does(
    n_pass: int, n: int, bad: list[tuple[int, str]]
) -> None:
    """The default call checks inside the kernel's read, a group of passes at a time per
    block of rows; it must name the same first (pass, sample) as a check over the whole input."""
    probs = make_probs(np.random.default_rng(n_pass * n), (n_pass, n, 4), "dirichlet", np.float32)
    for position, corruption in bad:
        t, r = divmod(position % (n_pass * n), n)
        probs[t, r, position % 4] = CORRUPTIONS[corruption](probs[t, r, position % 4])
    with pytest.raises(ValueError) as separate:
        check_probabilities(probs, "probs")
    with pytest.raises(ValueError) as fused:
        predictive_stats(probs)
    assert str(fused.value) == str(separate.value)


def test_invalid_streaming_updates() -> None:
    acc = StreamingPredictive(3, 4)
    with pytest.raises(ValueError, match=r"expected \(N, C\) = \(3, 4\)"):
        acc.update(np.full((3, 5), 0.2, np.float32))
    with pytest.raises(ValueError, match="sample 2"):
        bad = GOOD[0].copy()
        bad[2] = [0.5, 0.5, 0.5, 0.5]
        acc.update(bad)
    with pytest.raises(ValueError, match="n >= 0 samples and c >= 1"):
        StreamingPredictive(3, 0)
    with pytest.raises(TypeError, match="NumPy array or a torch tensor"):
        predictive_stats([[[1.0]]])


def test_validation_can_be_skipped_for_known_good_input() -> None:
    stats = predictive_stats(GOOD * 1.01, validate=False)  # no check, still computes
    assert stats.mean.shape == (3, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run by scripts/gpu-check)")
@pytest.mark.parametrize("path", ["auto", "torch"])
def test_cuda_tensors_stay_on_device_and_match_cpu(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHTOOL_CUDA_KERNELS", path)
    probs = make_probs(np.random.default_rng(7), (13, 300, 11), "zeros", np.float32)
    on_gpu = torch.from_numpy(probs).cuda()
    stats = predictive_stats(on_gpu)
    acc = StreamingPredictive(300, 11, like=on_gpu)
    acc.update(on_gpu[:5])
    for t in range(5, 13):
        acc.update(on_gpu[t])
    for result in (stats, acc.compute()):
        assert all(getattr(result, f).device == on_gpu.device for f in FIELDS)
        assert_matches_reference(type(stats)(*(getattr(result, f).cpu().numpy() for f in FIELDS)), probs)
    with pytest.raises(ValueError, match="negative probability"):
        predictive_stats(on_gpu - 1)
