"""The zoo's convolutional networks in the default (NCHW) and the channels-last memory layout,
side by side in one run: forward (inference, Square's queries) and forward plus input
gradient (every gradient attack's step), per network and input shape, on a CPU. Prints the
median of interleaved rounds and the ratio; the zoo keeps a network's weights channels-last
on a CPU (:attr:`ModelSpec.channels_last_on_cpu`) where this is faster.

    python scripts/bench_layout.py [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchtool.benchmarking import time_call
from benchtool.contracts.data import DatasetInfo
from benchtool.models.zoo import LeNetSpec, ResNet20Spec

CASES = (  # (spec, channels, side, batch): Fashion-MNIST, CIFAR-shaped, digits
    (LeNetSpec, 1, 28, 500), (LeNetSpec, 3, 32, 500), (LeNetSpec, 1, 8, 1000),
    (ResNet20Spec, 1, 28, 100), (ResNet20Spec, 3, 32, 100),
)


def forward(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return model(x)
    return run


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        x_req = x.detach().requires_grad_(True)
        return torch.autograd.grad(F.cross_entropy(model(x_req), y), x_req)
    return run


def median_ms(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median milliseconds per call of each run, the runs interleaved within every round."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up: oneDNN builds its kernels on the first call of a shape
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(time_call(run) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved timed rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the suites' cells use one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats} rounds, ms per call")
    print(f"{'network':10} {'input':>9} {'batch':>5}  {'forward NCHW':>12} {'CL':>7} {'ratio':>6}"
          f"  {'fwd+grad NCHW':>13} {'CL':>7} {'ratio':>6}")
    for spec, channels, side, batch in CASES:
        info = DatasetInfo(name="bench", task="classification", input_shape=(channels, side, side), num_classes=10,
                           bounds=(0.0, 1.0))
        torch.manual_seed(0)
        nchw = spec().build(info).eval().requires_grad_(False)
        channels_last = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
        x, y = torch.rand(batch, channels, side, side), torch.randint(0, 10, (batch,))
        ms = median_ms({
            "fwd": forward(nchw, x), "fwd_cl": forward(channels_last, x),
            "grad": input_gradient(nchw, x, y), "grad_cl": input_gradient(channels_last, x, y),
        }, args.repeats)
        print(f"{spec.name:10} {f'{channels}x{side}x{side}':>9} {batch:>5}  {ms['fwd']:12.1f} {ms['fwd_cl']:7.1f}"
              f" {ms['fwd'] / ms['fwd_cl']:5.2f}x  {ms['grad']:13.1f} {ms['grad_cl']:7.1f} {ms['grad'] / ms['grad_cl']:5.2f}x")


if __name__ == "__main__":
    main()
