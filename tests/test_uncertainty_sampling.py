"""Chunked Monte Carlo sampling: chunk plans, pass counts and order, and independence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from benchtool_uncertainty import _sampling
from benchtool_uncertainty._sampling import (
    SharedPrefix,
    chunk_sizes,
    forward_measuring_bytes,
    passes_per_chunk,
    sampled_in_chunks,
    shared_prefix,
    stochastic_passes,
)
from benchtool_uncertainty.mc_dropout import sampling_copy

CPU = torch.device("cpu")


@given(total=st.integers(0, 500), per_chunk=st.integers(1, 64))
def test_chunk_sizes_cover_the_total_in_bounded_chunks(total: int, per_chunk: int) -> None:
    sizes = chunk_sizes(total, per_chunk)
    assert sum(sizes) == total
    assert all(1 <= size <= per_chunk for size in sizes)
    assert sizes[:-1] == [per_chunk] * (len(sizes) - 1)


H200_MEMORY = (140 << 30, 141 << 30)  # (free, total) bytes as torch.cuda.mem_get_info reports


@pytest.fixture
def gpu_memory(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """A CUDA device's memory, as the sampler reads it, without a GPU: set "free"/"total"."""
    memory = dict(zip(("free", "total"), H200_MEMORY))
    monkeypatch.setattr(_sampling, "cuda_memory_bytes", lambda device: (memory["free"], memory["total"]))
    return memory


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bytes_per_pass=st.integers(0, 1 << 30), passes=st.integers(1, 200))
def test_passes_per_chunk_fits_the_budget(gpu_memory: dict[str, int], bytes_per_pass: int, passes: int) -> None:
    for device in (CPU, torch.device("cuda", 0)):
        chosen = passes_per_chunk(bytes_per_pass, passes, device)
        assert 1 <= chosen <= passes
        if chosen > 1:
            assert chosen * bytes_per_pass <= _sampling.chunk_budget_bytes(device)


def test_gpu_budget_is_an_eighth_of_the_device_or_half_of_what_is_free(gpu_memory: dict[str, int]) -> None:
    cuda = torch.device("cuda", 0)
    assert _sampling.chunk_budget_bytes(cuda) == gpu_memory["total"] // 8
    # 50 passes of a CIFAR-shaped LeNet at N=2000 (~90 MB each) now fit one call, not 5 of 512 MiB
    assert passes_per_chunk(90 << 20, 49, cuda) == 49
    gpu_memory["free"] = 1 << 30
    assert _sampling.chunk_budget_bytes(cuda) == 1 << 29


def test_cpu_budget_is_smaller_than_the_gpu_budget_and_read_from_sysfs(tmp_path, monkeypatch, gpu_memory) -> None:
    level = tmp_path / "index2"
    level.mkdir()
    (level / "level").write_text("2\n")
    (level / "size").write_text("1024K\n")
    monkeypatch.setattr(_sampling, "SYSFS_CPU_CACHE", tmp_path)
    _sampling.cpu_cache_bytes.cache_clear()
    try:
        assert _sampling.cpu_cache_bytes() == 1 << 20
        monkeypatch.setattr(_sampling, "SYSFS_CPU_CACHE", tmp_path / "missing")
        _sampling.cpu_cache_bytes.cache_clear()
        assert _sampling.cpu_cache_bytes() == _sampling.CPU_CACHE_FALLBACK_BYTES
    finally:
        _sampling.cpu_cache_bytes.cache_clear()
    assert _sampling.chunk_budget_bytes(CPU) < _sampling.chunk_budget_bytes(torch.device("cuda", 0))


def test_forward_measuring_bytes_counts_every_leaf_output() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(5, 4)
    out, written = forward_measuring_bytes(model, x)
    assert torch.equal(out, model(x))
    assert written == (5 * 8 + 5 * 8 + 5 * 2) * 4
    assert not model[0]._forward_hooks  # hooks removed


@given(n=st.integers(1, 6), passes=st.integers(1, 12), per_call=st.one_of(st.none(), st.integers(1, 12)))
def test_stochastic_passes_yield_every_pass_in_order(n: int, passes: int, per_call: int | None) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).eval()
    x = torch.randn(n, 1, 4, 4)
    chunks = list(stochastic_passes(model, x, passes, passes_per_call=per_call))
    stacked = torch.cat(chunks)
    assert stacked.shape == (passes, n, 3)
    assert torch.allclose(stacked, model(x).expand(passes, n, 3), atol=1e-6)  # no dropout: every pass alike


def test_repeated_batch_draws_independent_dropout_masks() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 64), nn.Dropout(0.5), nn.Linear(64, 2))
    model.eval()
    model[1].train()
    x = torch.randn(4, 3)
    for per_call in (1, 8):
        stacked = torch.cat(list(stochastic_passes(model, x, 8, passes_per_call=per_call)))
        distinct = {tuple(row.flatten().tolist()) for row in stacked}
        assert len(distinct) == 8, f"passes repeat with {per_call} passes per call"


def test_sampled_in_chunks_sums_to_the_requested_count() -> None:
    drawn = list(sampled_in_chunks(lambda t: torch.zeros(t, 2, 3), 37, bytes_per_sample=1 << 20, device=CPU))
    assert sum(len(chunk) for chunk in drawn) == 37
    assert max(len(chunk) for chunk in drawn) <= max(1, _sampling.chunk_budget_bytes(CPU) >> 20)


# --- the deterministic prefix, run once per input ------------------------------------------


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.drop = nn.Linear(4, 4), nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.body(x)) if float(x.sum()) > 0 else self.body(x)


class SkipFromInput(nn.Module):
    """The random part reads the input too: the rest needs more than the prefix's output."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.body(x), 0.5, training=True) + x


class NoisyMiddle(nn.Module):
    """Functional noise in the middle: everything after it is per-pass."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.first(x).relu()
        return self.second(hidden + 0.1 * torch.randn_like(hidden))


def passes(network: nn.Module, x: torch.Tensor, split: SharedPrefix | None, t: int = 6, per_call: int = 4):
    torch.manual_seed(7)
    with torch.no_grad():
        if split is None:
            return torch.cat(list(stochastic_passes(network, x, t, passes_per_call=per_call)))
        return torch.cat(list(stochastic_passes(split.rest, split.prefix(x), t, passes_per_call=per_call)))


@pytest.mark.parametrize("build", [
    lambda: nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Dropout(0.3), nn.Linear(12, 5)),
    lambda: NoisyMiddle(),
])
def test_a_shared_prefix_gives_the_same_passes_as_the_whole_network(build) -> None:
    network = build().eval()
    for layer in network.modules():
        if isinstance(layer, nn.Dropout):
            layer.train()  # as mc-dropout samples: only dropout on
    split = shared_prefix(network)
    assert split is not None
    x = torch.rand(5, 1, 4, 4) if isinstance(network, nn.Sequential) else torch.rand(5, 4)
    whole = passes(network, x, None)
    shared = passes(network, x, split)
    assert shared.shape[0] == 6 and torch.allclose(whole, shared, atol=1e-6)
    assert not torch.allclose(shared[0], shared[1])  # the passes still differ


@pytest.mark.parametrize("build", [
    lambda: Branchy(),  # not traceable
    lambda: SkipFromInput(),  # the rest reads the input
    lambda: nn.Sequential(nn.Dropout(0.5).train(), nn.Linear(4, 2)),  # random from the start
    lambda: nn.Sequential(nn.Linear(4, 2)).eval(),  # never random
])
def test_no_split_where_it_would_not_be_the_same_network(build) -> None:
    assert shared_prefix(build()) is None


def test_mc_dropout_runs_lenet_convolutions_once_per_input() -> None:
    from benchtool.data.digits import Digits
    from benchtool.models.zoo import LeNetSpec

    network = sampling_copy(LeNetSpec().build(Digits().info()).eval())
    split = shared_prefix(network)
    assert split is not None
    assert not any(isinstance(m, nn.Conv2d) for m in split.rest.modules())
    assert any(isinstance(m, nn.Dropout) for m in split.rest.modules())
    x = torch.rand(9, 1, 8, 8)
    assert torch.equal(passes(network, x, None, t=5, per_call=2), passes(network, x, split, t=5, per_call=2))
