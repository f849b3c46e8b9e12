"""MC dropout sampling, side by side in one run: T passes as a plain loop (one forward call
per pass), as one batched call (the batch repeated T times), and in the adaptive chunks
``mc-dropout`` uses (sized by the device, see ``benchtool_uncertainty._sampling``).
Prints median times and the ratios the issue targets: adaptive never slower than the loop
on a CPU (<= 1.0x, within noise), and >= 3x faster than the loop on a GPU for small models.
Each timed run is what ``sample`` does: the forward passes and their softmax.

    python scripts/bench_mc_sampling.py [--device cpu|cuda] [--passes 50] [--batches 1,32,360,2000]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from benchtool.benchmarking import time_call
from benchtool.config import resolve_device
from benchtool.contracts.data import DatasetInfo
from benchtool.models.nets import MLP, LeNet
from benchtool_uncertainty._sampling import forward_measuring_bytes, passes_per_chunk, stochastic_passes
from benchtool_uncertainty.mc_dropout import sampling_copy

DIGITS = DatasetInfo("digits", "classification", (1, 8, 8), 10, (0.0, 1.0))
CIFAR = DatasetInfo("cifar10-shaped", "classification", (3, 32, 32), 10, (0.0, 1.0))
MODES = ("loop", "batched", "adaptive")  # one pass per call, all T in one call, adaptive chunks


def models(device: torch.device) -> dict[str, tuple[nn.Module, DatasetInfo]]:
    """Small zoo networks with their dropout on; CIFAR-shaped LeNet only on a GPU."""
    torch.manual_seed(0)
    chosen = {"lenet/digits": (LeNet(DIGITS), DIGITS), "mlp/digits": (MLP(DIGITS), DIGITS)}
    if device.type == "cuda":
        chosen["lenet/cifar10-shaped"] = (LeNet(CIFAR), CIFAR)
    return {name: (sampling_copy(net.to(device)), info) for name, (net, info) in chosen.items()}


def run_sampling(network: nn.Module, x: torch.Tensor, passes: int, per_call: int | None) -> None:
    for chunk in stochastic_passes(network, x, passes, passes_per_call=per_call):
        torch.softmax(chunk, dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--passes", type=int, default=50, help="T, stochastic passes per prediction")
    parser.add_argument("--batches", default="1,32,360,2000", help="comma list of batch sizes N")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per mode, interleaved")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    print(f"device {device}, T = {args.passes}, torch threads {torch.get_num_threads()}, median of {args.repeats}")
    header = (f"{'model':22} {'N':>5} {'chunk':>5} {'loop ms':>9} {'batched ms':>11} {'adaptive ms':>12} "
              f"{'batched/loop':>13} {'adaptive/loop':>14} {'loop/adaptive':>14}")
    print(header)
    print("-" * len(header))
    worst_cpu, best_gpu, best_batched_gpu = 0.0, float("inf"), float("inf")
    per_call: dict[str, int | None] = {"loop": 1, "batched": args.passes, "adaptive": None}
    with torch.no_grad():
        for name, (network, info) in models(device).items():
            for n in batches:
                x = torch.rand(n, *info.input_shape, device=device)
                _, bytes_per_pass = forward_measuring_bytes(network, x)
                chunk = passes_per_chunk(bytes_per_pass, args.passes - 1, device)
                for mode in MODES:  # warm-up: allocator, kernels, caches
                    run_sampling(network, x, args.passes, per_call[mode])
                times: dict[str, list[float]] = {mode: [] for mode in MODES}
                for _ in range(args.repeats):
                    for mode in MODES:
                        times[mode].append(time_call(lambda: run_sampling(network, x, args.passes, per_call[mode])))
                loop, batched, adaptive = (statistics.median(times[m]) for m in MODES)
                print(f"{name:22} {n:5d} {chunk:5d} {loop * 1e3:9.2f} {batched * 1e3:11.2f} {adaptive * 1e3:12.2f} "
                      f"{batched / loop:13.2f} {adaptive / loop:14.2f} {loop / adaptive:14.2f}")
                worst_cpu = max(worst_cpu, adaptive / loop)
                if n >= 32:
                    best_gpu = min(best_gpu, loop / adaptive)
                    best_batched_gpu = min(best_batched_gpu, loop / batched)
    if device.type == "cpu":
        print(f"CPU target: adaptive <= 1.0x the loop; worst adaptive/loop here {worst_cpu:.2f}")
    else:
        print(f"GPU target: adaptive >= 3x faster than the loop (N >= 32); smallest speed-up here {best_gpu:.2f}x")
        print(f"  the most any chunking can give there: all passes in one call, {best_batched_gpu:.2f}x the loop "
              "(near 1x the loop already keeps the GPU busy: compute-bound, nothing left to batch)")


if __name__ == "__main__":
    main()
