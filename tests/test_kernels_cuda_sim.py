"""The numba.cuda kernels, run by numba's CUDA simulator, agree with the CPU kernels.

The simulator must be switched on before numba is imported, so the checks run in a fresh
interpreter with ``NUMBA_ENABLE_CUDASIM=1``. It interprets every thread in Python, so the
shapes stay small; they still cover T=1, C=1, the 4-pass unrolled loop and its remainder, and a
row whose elements fall in two thread blocks (the per-row sums are reduced per block; the
simulator runs 32-thread blocks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from numba import config
    assert config.ENABLE_CUDASIM, "the CUDA simulator is not active"
    from benchtool.kernels import _cuda, predictive_stats

    FIELDS = ("mean", "variance", "entropy", "expected_entropy", "mutual_information")
    rng = np.random.default_rng(0)
    cases = [((1, 2, 3), "dirichlet"), ((6, 3, 1), "dirichlet"), ((9, 2, 4), "zeros"), ((5, 2, 2), "onehot"),
             ((3, 15, 3), "dirichlet")]
    assert _cuda.THREADS_PER_BLOCK == 32  # so the last case's row 10 is split between two blocks
    for (t, n, c), kind in cases:
        probs = rng.dirichlet(np.full(c, 0.4), size=(t, n))
        if kind == "zeros":
            probs[..., 1] = 0
            probs /= probs.sum(-1, keepdims=True)
        if kind == "onehot":
            probs = np.eye(c)[rng.integers(0, c, size=(t, n))]
        for dtype in (np.float32, np.float64):
            p = probs.astype(dtype)
            cpu = predictive_stats(p)
            outs = tuple(np.empty_like(getattr(cpu, f)) for f in FIELDS)
            _cuda.fused(p, outs, np.zeros(n), np.zeros(n))
            # streaming: one pass, then the rest as a chunk
            mean, m2, neg = np.zeros((n, c)), np.zeros((n, c)), np.zeros(n)
            _cuda.update(p[:1], 0, mean, m2, neg)
            _cuda.update(p[1:], 1, mean, m2, neg)
            streamed = tuple(np.empty_like(o) for o in outs)
            _cuda.finalize(t, mean, m2, neg, streamed, np.zeros(n))
            for field, fused_out, stream_out in zip(FIELDS, outs, streamed):
                ref = getattr(cpu, field)
                assert fused_out.dtype == ref.dtype, (field, fused_out.dtype)
                for got in (fused_out, stream_out):
                    err = float(np.abs(got.astype(np.float64) - ref).max())
                    assert err <= 2e-6, (t, n, c, kind, dtype.__name__, field, err)
    print("cuda-sim ok", len(cases) * 2)
    """
)


def test_simulated_cuda_kernels_match_cpu() -> None:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cuda-sim ok 10" in done.stdout
