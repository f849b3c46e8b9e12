"""PGD-20 on lenet/digits, side by side in one run: through the benchtool harness
(``Attack.__call__`` with every contract check), a hand-written torch loop, and
torchattacks. Prints median times and the ratios the issue targets (harness <= 1.05x the
hand loop, <= 1.0x torchattacks). All three run without a random start, so they compute
the same examples; the script checks that they agree.

    python scripts/bench_pgd.py [--device cpu|cuda] [--batch 360] [--repeats 30] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from benchtool.benchmarking import time_call
from benchtool.config import resolve_device
from benchtool.data import load_dataset
from benchtool.data.digits import Digits
from benchtool.models.zoo import LeNetSpec
from benchtool_attacks.pgd import PGD
from benchtool_attacks.reference import textbook_pgd

EPS = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--batch", type=int, default=360, help="examples per call (digits test has ~360)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per method, interleaved")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    bundle = load_dataset(Digits(), root=Path("/nonexistent"), seed=0)
    reps = -(-args.batch // len(bundle.test))
    x = bundle.test.x.repeat(reps, 1, 1, 1)[: args.batch].to(device)
    y = bundle.test.y.repeat(reps)[: args.batch].to(device)
    torch.manual_seed(0)
    model = LeNetSpec().build(bundle.info).to(device).eval()
    attack = PGD(steps=args.steps, random_start=False)
    alpha = attack.stepsize(EPS)

    methods: dict[str, Callable[[], torch.Tensor]] = {
        "harness": lambda: attack(model, x, y, EPS, bounds=(0.0, 1.0)).x_adv,
        "hand loop": lambda: textbook_pgd(model, x, y, EPS, alpha, args.steps, (0.0, 1.0)),
    }
    try:
        import torchattacks

        peer = torchattacks.PGD(model, eps=EPS, alpha=alpha, steps=args.steps, random_start=False)
        methods["torchattacks"] = lambda: peer(x, y)
    except ImportError:
        print("torchattacks is not installed (pip install --no-deps torchattacks): skipped")

    results = {name: run() for name, run in methods.items()}  # warm-up, and the agreement check
    for name, x_adv in results.items():
        gap = (x_adv - results["hand loop"]).abs().max().item()
        print(f"max |x_adv({name}) - x_adv(hand loop)| = {gap:.2e}")
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, run in methods.items():
            times[name].append(time_call(run))
    name_of_device = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"PGD-{args.steps} on lenet/digits, batch {args.batch}, {name_of_device}, torch {torch.__version__}, "
          f"median of {args.repeats} interleaved runs:")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"  {name:<13} {median * 1e3:9.3f} ms  (min {min(times[name]) * 1e3:.3f} ms)")
    best = {name: min(t) for name, t in times.items()}
    print(f"ratio harness / hand loop    = {medians['harness'] / medians['hand loop']:.3f} median, "
          f"{best['harness'] / best['hand loop']:.3f} min  (target <= 1.05)")
    if "torchattacks" in medians:
        print(f"ratio harness / torchattacks = {medians['harness'] / medians['torchattacks']:.3f} median, "
              f"{best['harness'] / best['torchattacks']:.3f} min  (target <= 1.0)")


if __name__ == "__main__":
    main()
