"""pytest-benchmark cases for the predictive-statistics kernels (issue 5).

Run: ``pytest benchmarks/test_bench_kernels.py --benchmark-only`` (add ``--benchmark-save=NAME``
and later ``--benchmark-compare`` to catch slowdowns). Each group holds one shape: the fused
kernel, streaming one pass at a time, the NumPy baseline and the read-bandwidth sum, so
``--benchmark-group-by=group`` shows the ratios of ``scripts/bench_kernels.py`` side by side.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchtool.kernels import StreamingPredictive, predictive_stats
from benchtool.kernels.reference import predictive_stats_reference, read_bandwidth_sum

SHAPES = [(50, 20000, 10), (30, 2000, 1000)]


@pytest.fixture(scope="module", params=SHAPES, ids=lambda s: "x".join(map(str, s)))
def probs(request: pytest.FixtureRequest) -> np.ndarray:
    p = np.random.default_rng(0).random(request.param, dtype=np.float32)
    p /= p.sum(-1, keepdims=True)
    return p


def _run(benchmark, probs: np.ndarray, fn, rounds: int = 5):  # type: ignore[no-untyped-def]
    benchmark.group = "predictive " + "x".join(map(str, probs.shape))
    benchmark.extra_info["bytes_read"] = int(probs.nbytes)
    return benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1, iterations=1)


def test_fused_predictive_stats(benchmark, probs: np.ndarray) -> None:
    stats = _run(benchmark, probs, lambda: predictive_stats(probs, validate=False))
    assert np.isfinite(stats.mutual_information).all()


def test_fused_predictive_stats_validated(benchmark, probs: np.ndarray) -> None:
    stats = _run(benchmark, probs, lambda: predictive_stats(probs))
    assert stats.mean.shape == probs.shape[1:]


def test_streaming_one_pass_at_a_time(benchmark, probs: np.ndarray) -> None:
    t, n, c = probs.shape

    def streamed():  # type: ignore[no-untyped-def]
        acc = StreamingPredictive(n, c)
        for k in range(t):
            acc.update(probs[k], validate=False)
        return acc.compute()

    stats = _run(benchmark, probs, streamed)
    assert np.isfinite(stats.entropy).all()


def test_streaming_one_pass_at_a_time_reset(benchmark, probs: np.ndarray) -> None:
    t, n, c = probs.shape
    acc = StreamingPredictive(n, c)

    def streamed():  # type: ignore[no-untyped-def]
        acc.reset()
        for k in range(t):
            acc.update(probs[k], validate=False)
        return acc.compute()

    stats = _run(benchmark, probs, streamed)
    assert acc.count == t and np.isfinite(stats.entropy).all()


def test_numpy_baseline(benchmark, probs: np.ndarray) -> None:
    result = _run(benchmark, probs, lambda: predictive_stats_reference(probs), rounds=2)
    assert result["mean"].shape == probs.shape[1:]


def test_read_bandwidth_sum(benchmark, probs: np.ndarray) -> None:
    total = _run(benchmark, probs, lambda: read_bandwidth_sum(probs))
    assert total == pytest.approx(probs.shape[0] * probs.shape[1], rel=1e-3)
