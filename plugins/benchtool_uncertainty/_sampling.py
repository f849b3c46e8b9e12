"""Monte Carlo passes in chunks sized by device: batched where it pays, a loop where it doesn't.

Repeating a batch ``t`` times in one forward call amortises the per-call overhead, which
wins on a GPU and for small batches anywhere; on a CPU a large repeated batch spills its
activations out of cache and runs 2-3x slower than a plain loop over the T passes. So the
number of passes per call is chosen from the bytes one pass writes: as many as fit the
device's budget (one core's L2 cache on a CPU; on a GPU an eighth of its memory, or half
of what is free if less is), at least one. The choice depends only on sizes, never on
timings, so a seed gives the same samples on every run (on a GPU: unless so little memory
is free that the free half is the smaller).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.split_module import split_module

CPU_CACHE_FALLBACK_BYTES = 2 << 20  # when sysfs does not say: a typical per-core L2
GPU_MEMORY_SHARE = 8  # one forward call may write up to this fraction (1/8) of a GPU's memory
OTHER_ACCELERATOR_CHUNK_BYTES = 512 << 20  # where torch cannot say how much memory there is
SYSFS_CPU_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")
FORWARD_BATCH = 1024  # examples per forward call when fitting on a whole split (LeNet on 54k: 3.8 GB at once)

Chunk = TypeVar("Chunk")


def _parse_cache_size(text: str) -> int:
    """``"2048K"`` -> 2097152 (sysfs writes sizes with a K or M suffix)."""
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


@cache
def cpu_cache_bytes() -> int:
    """One core's L2 cache in bytes, read from sysfs; a typical 2 MiB where it is absent."""
    try:
        for index in sorted(SYSFS_CPU_CACHE.glob("index*")):
            if (index / "level").read_text().strip() == "2":
                return _parse_cache_size((index / "size").read_text())
    except (OSError, ValueError):
        pass
    return CPU_CACHE_FALLBACK_BYTES


def chunk_budget_bytes(device: torch.device) -> int:
    """How many bytes of activations one batched forward call may write on ``device``.

    A fixed 512 MiB on a GPU allowed 2 of 50 passes per call at N=2000 on CIFAR-shaped
    inputs, and the loop's launches dominated; the device's own size lets the passes batch."""
    if device.type == "cpu":
        return cpu_cache_bytes()
    if device.type == "cuda":
        free, total = cuda_memory_bytes(device)
        return max(1, min(total // GPU_MEMORY_SHARE, free // 2))
    return OTHER_ACCELERATOR_CHUNK_BYTES


def cuda_memory_bytes(device: torch.device) -> tuple[int, int]:
    """(free, total) bytes of a CUDA device; free counts what torch's allocator holds unused."""
    free, total = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device), total


def passes_per_chunk(bytes_per_pass: int, num_passes: int, device: torch.device) -> int:
    """As many passes as fit the device's budget, between 1 and ``num_passes``."""
    fitting = chunk_budget_bytes(device) // max(int(bytes_per_pass), 1)
    return max(1, min(num_passes, fitting))


def chunk_sizes(total: int, per_chunk: int) -> list[int]:
    """``total`` split into chunks of ``per_chunk`` and a remainder: 10, 4 -> [4, 4, 2]."""
    if total < 0 or per_chunk < 1:
        raise ValueError(f"need total >= 0 and per_chunk >= 1, got total={total}, per_chunk={per_chunk}")
    full, rest = divmod(total, per_chunk)
    return [per_chunk] * full + ([rest] if rest else [])


def forward_measuring_bytes(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """One forward pass, and the bytes its leaf modules wrote: the working set of a pass."""
    written = [0]

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            written[0] += output.numel() * output.element_size()

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [leaf.register_forward_hook(count) for leaf in leaves]
    try:
        out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return out, max(written[0], out.numel() * out.element_size())


def repeat_batch(x: torch.Tensor, times: int) -> torch.Tensor:
    """``times`` copies of the batch stacked along dimension 0."""
    return x.repeat(times, *([1] * (x.ndim - 1)))


def stochastic_passes(
    model: nn.Module, x: torch.Tensor, num_passes: int, *, passes_per_call: int | None = None
) -> Iterator[torch.Tensor]:
    """Outputs of ``num_passes`` stochastic forward passes of ``model`` on ``x``, yielded
    as ``(t, N, ...)`` chunks. ``passes_per_call=None`` measures the first pass and sizes
    the rest by :func:`passes_per_chunk`; 1 is a plain loop, ``num_passes`` one batch."""
    if num_passes < 1:
        raise ValueError(f"num_passes must be >= 1, got {num_passes}")
    remaining = num_passes
    if passes_per_call is None:
        first, bytes_per_pass = forward_measuring_bytes(model, x)
        yield first.unsqueeze(0)
        remaining -= 1
        passes_per_call = passes_per_chunk(bytes_per_pass, remaining or 1, x.device)
    for t in chunk_sizes(remaining, passes_per_call):
        out = model(repeat_batch(x, t) if t > 1 else x)
        yield out.reshape(t, len(x), *out.shape[1:])


# what makes a traced node random, besides a module in training mode (dropout switched on)
RANDOM_FUNCTIONS = frozenset({
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout, torch.dropout,
    torch.bernoulli, torch.rand, torch.rand_like, torch.randn, torch.randn_like, torch.randint, torch.randint_like,
    torch.normal, torch.poisson, torch.multinomial,
})
RANDOM_METHODS = frozenset({"bernoulli", "bernoulli_", "uniform_", "normal_", "exponential_", "random_", "cauchy_",
                            "geometric_", "log_normal_"})


@dataclass(frozen=True)
class SharedPrefix:
    """A network split where its randomness starts: ``rest(prefix(x))`` computes ``network(x)``;
    ``prefix`` draws nothing, so it runs once per input and only ``rest`` once per pass (MC
    dropout on LeNet: the convolutions once, the dropout classifier T times). The passes draw
    the same masks in the same order as whole-network passes would."""

    prefix: nn.Module
    rest: nn.Module


def _random(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return modules[str(node.target)].training  # dropout on, or any module in training mode
    if node.op == "call_function":
        return node.target in RANDOM_FUNCTIONS
    return node.op == "call_method" and node.target in RANDOM_METHODS


def shared_prefix(network: nn.Module) -> SharedPrefix | None:
    """``network`` split by torch.fx into a deterministic prefix and the rest, or None where
    it cannot be traced, draws from the start, or the rest needs more than the prefix's one
    output (then every pass runs the whole network)."""
    try:
        traced = fx.symbolic_trace(network)
    except Exception:  # noqa: BLE001 - data-dependent control flow and friends: no split, not an error
        return None
    modules = dict(traced.named_modules())
    compute = [n for n in traced.graph.nodes if n.op in ("call_module", "call_function", "call_method")]
    downstream: set[fx.Node] = set()
    for node in compute:
        if _random(node, modules) or any(arg in downstream for arg in node.all_input_nodes):
            downstream.add(node)
    if not downstream or len(downstream) == len(compute):
        return None
    split = split_module(traced, network, lambda node: 1 if node in downstream else 0)
    calls = {str(n.target): n for n in split.graph.nodes if n.op == "call_module"}
    inputs = [n for n in split.graph.nodes if n.op == "placeholder"]
    first, second = calls.get("submod_0"), calls.get("submod_1")
    if (set(calls) != {"submod_0", "submod_1"} or len(inputs) != 1 or first.args != (inputs[0],)
            or second.args != (first,) or first.kwargs or second.kwargs):
        return None
    return SharedPrefix(split.submod_0, split.submod_1)


def sampled_in_chunks(
    draw: Callable[[int], Chunk], num_samples: int, bytes_per_sample: int, device: torch.device
) -> Iterator[Chunk]:
    """``draw(t)`` for chunk sizes t summing to ``num_samples``, sized to the device's budget:
    for samplers that perturb one forward pass (noise on logits, posterior draws)."""
    per_chunk = passes_per_chunk(bytes_per_sample, num_samples, device)
    for t in chunk_sizes(num_samples, per_chunk):
        yield draw(t)


def forward_in_batches(
    forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = FORWARD_BATCH
) -> torch.Tensor:
    """``forward`` over ``x`` in batches, without gradients, concatenated: for fitting on a
    whole split (validation logits, last-layer features) without one huge batch."""
    with torch.no_grad():
        return torch.cat([forward(part) for part in x.split(batch_size)])
