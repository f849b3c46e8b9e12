"""Measure the zoo: train time, test accuracy (with its 95% Wilson interval), cached-load time
and, with ``--robust N``, PGD (and for ``lenet-randomized`` also ``eot-pgd``, EOT over its
draws) robust accuracy at the dataset's reference eps on N test examples.

Usage: python scripts/measure_zoo.py [--device cpu|cuda] [--budgets small,default] [--models lenet,resnet20]
                                    [--datasets digits,fashion-mnist] [--threads 1] [--cache DIR]
                                    [--robust 1000] [--cifar-epochs 2]
Datasets are found on the data search path (``--data-root``, $BENCHTOOL_DATA,
~/.cache/benchtool/data, /usr/share/datasets). Trains into a fresh temporary cache unless
``--cache`` names one (``~/.cache/benchtool`` reuses the suites' models), then loads each model
again from that cache. ``--cifar-epochs N`` also times N epochs of resnet20 on random data
written in the CIFAR-10 binary format (50000 + 10000 images): throughput only.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchtool.claims.stats import wilson_interval
from benchtool.config import data_search_path
from benchtool.contracts.model import TrainRecipe
from benchtool.data import formats, load_dataset
from benchtool.data.digits import Digits
from benchtool.data.local import Cifar10, FashionMnist, Mnist
from benchtool.data.toy import ToyRegression
from benchtool.models import evaluate, train, trained_model
from benchtool.models.plugin import BUILTIN_MODELS

SPECS = {spec.name: spec for spec in BUILTIN_MODELS}
DATASETS = {d.name: d for d in (Digits, ToyRegression, Mnist, FashionMnist, Cifar10)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budgets", default="small,default")
    parser.add_argument("--models", default="mlp,lenet,resnet20")
    parser.add_argument("--datasets", default="digits,toy-regression")
    parser.add_argument("--data-root", default=None, help="searched first (default: the search path only)")
    parser.add_argument("--cache", default=None, help="checkpoint cache folder (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as is)")
    parser.add_argument("--robust", type=int, default=0, metavar="N",
                        help="PGD (EOT for lenet-randomized too) at the reference eps on N test examples")
    parser.add_argument("--cifar-epochs", type=int, default=0, help="time resnet20 on CIFAR-sized random data")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    roots = data_search_path(args.data_root)
    with contextlib.ExitStack() as stack:
        temporary = None if args.cache else stack.enter_context(tempfile.TemporaryDirectory())
        cache = Path(args.cache).expanduser() if args.cache else Path(temporary)
        for name in args.models.split(","):
            spec = SPECS[name]()
            for dataset_name in args.datasets.split(","):
                dataset = DATASETS[dataset_name]()
                if not spec.supports(dataset.info()):
                    continue
                bundle = load_dataset(dataset, root=roots, seed=0)
                for budget in args.budgets.split(","):
                    measure(spec, bundle, budget, device, cache, args.robust)
    if args.cifar_epochs:
        time_cifar_epochs(args.cifar_epochs, device)


def measure(spec, bundle, budget: str, device: torch.device, cache: Path, robust: int) -> None:  # noqa: ANN001
    started, cpu_started = time.perf_counter(), time.process_time()
    model = trained_model(spec, bundle, seed=0, budget=budget, device=device, cache_dir=cache, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    trained_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    started = time.perf_counter()
    trained_model(spec, bundle, seed=0, budget=budget, device=device, cache_dir=cache, progress=False)
    cached_s = time.perf_counter() - started
    loss, acc = evaluate(model, bundle.test, bundle.info.task, device)
    if bundle.info.task == "classification":
        low, high = wilson_interval(round(acc * len(bundle.test)), len(bundle.test))
        figure = f"test acc {acc:.4f} [{low:.4f}, {high:.4f}] (n={len(bundle.test)})"
    else:
        figure = f"test mse {loss:.4f}"
    print(f"{spec.name:16} {bundle.info.name:15} {budget:8} train {trained_s:7.2f}s (cpu {cpu_s:6.2f}s)  "
          f"cached load {cached_s:6.3f}s  {figure}", flush=True)
    if robust and bundle.info.task == "classification":
        attacks = ["pgd", "eot-pgd"] if spec.name == "lenet-randomized" else ["pgd"]
        for attack in attacks:
            print(f"{'':16} {'':15} {budget:8} {robust_line(attack, model, bundle, budget, robust, device)}",
                  flush=True)


def robust_line(attack_name: str, model, bundle, budget: str, n: int, device: torch.device) -> str:  # noqa: ANN001
    """Robust accuracy of ``attack_name`` (at the run budget) at the dataset's reference eps on
    the suites' seeded subset of ``n`` test examples, with its 95% interval."""
    from benchtool.harness.robustness import evaluate as attack_evaluate
    from benchtool_attacks.eot import EOTPGD
    from benchtool_attacks.pgd import PGD

    attack = {"pgd": PGD, "eot-pgd": EOTPGD}[attack_name]().at_budget(budget)
    order = torch.randperm(len(bundle.test), generator=torch.Generator().manual_seed(0))[:n]
    x, y = bundle.test.x[order].to(device), bundle.test.y[order].to(device)
    eps = bundle.info.attack_eps
    started = time.perf_counter()
    (report,) = attack_evaluate(attack, model, x, y, [eps], bounds=bundle.info.bounds, seed=0, batch_size=500,
                                determinism_examples=0)
    k = int(report.robust_correct.sum())
    low, high = wilson_interval(k, report.n)
    return (f"{attack_name} eps {eps:g}: robust acc {report.robust_accuracy:.4f} [{low:.4f}, {high:.4f}] "
            f"(clean {report.clean_accuracy:.4f}, n={report.n}) {time.perf_counter() - started:.1f}s")


def time_cifar_epochs(epochs: int, device: torch.device) -> None:
    """Seconds per resnet20 epoch (small-budget recipe) on random CIFAR-10-format files."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / Cifar10.folders[0]
        folder.mkdir()
        for name in Cifar10.files:
            images = rng.integers(0, 256, size=(Cifar10.records_per_batch, 3, 32, 32), dtype=np.uint8)
            formats.write_cifar_batch(folder / name, images, rng.integers(0, 10, Cifar10.records_per_batch))
        started = time.perf_counter()
        bundle = load_dataset(Cifar10(), root=Path(root), seed=0)
        print(f"cifar10 (random, binary format) read in {time.perf_counter() - started:.2f}s")
    spec = ResNet20Spec()
    recipe = TrainRecipe(**{**spec.recipe(bundle.info, "small").as_dict(), "epochs": epochs})
    history = train(spec.build(bundle.info), bundle, recipe, seed=0, device=device, progress=False)
    print(f"resnet20  cifar10-random  {epochs} epochs of {len(bundle.train)} images: "
          f"{history.seconds / epochs:.2f}s per epoch (augment {recipe.augment}, batch {recipe.batch_size})")


if __name__ == "__main__":
    main()
