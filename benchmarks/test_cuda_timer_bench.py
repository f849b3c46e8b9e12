"""A GPU benchmark that is only right with the synchronizing timer (benchmarks/conftest.py):
a matrix product returns as soon as it is queued, so an unsynchronized timer measures the
launch. Skipped without CUDA."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_matmul_4096_fp32_cuda(benchmark) -> None:
    generator = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(4096, 4096, device="cuda", generator=generator)
    b = torch.randn(4096, 4096, device="cuda", generator=generator)
    out = benchmark(torch.mm, a, b)
    assert out.shape == (4096, 4096)
