"""Measure the zoo on the embedded datasets: train time, test accuracy, cached-load time.

Usage: python scripts/measure_zoo.py [--device cpu|cuda] [--budgets small,default] [--models lenet,resnet20]
                                    [--threads 1] [--cifar-epochs 2]
Trains into a fresh temporary cache, then loads each model again from that cache.
``--cifar-epochs N`` also times N epochs of resnet20 on random data written in the CIFAR-10
binary format (50000 + 10000 images): throughput only, its accuracy means nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchtool.config import default_data_root
from benchtool.contracts.model import TrainRecipe
from benchtool.data import formats, load_dataset
from benchtool.data.digits import Digits
from benchtool.data.local import Cifar10
from benchtool.data.toy import ToyRegression
from benchtool.models import evaluate, train, trained_model
from benchtool.models.zoo import LeNetSpec, MlpSpec, ResNet20Spec

SPECS = {spec.name: spec for spec in (MlpSpec, LeNetSpec, ResNet20Spec)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budgets", default="small,default")
    parser.add_argument("--models", default="mlp,lenet,resnet20")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as is)")
    parser.add_argument("--cifar-epochs", type=int, default=0, help="time resnet20 on CIFAR-sized random data")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as cache:
        for name in args.models.split(","):
            spec = SPECS[name]()
            for dataset in (Digits(), ToyRegression()):
                if not spec.supports(dataset.info()):
                    continue
                bundle = load_dataset(dataset, root=default_data_root(), seed=0)
                for budget in args.budgets.split(","):
                    started, cpu_started = time.perf_counter(), time.process_time()
                    model = trained_model(spec, bundle, seed=0, budget=budget, device=device,
                                          cache_dir=Path(cache), progress=False)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    trained_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
                    started = time.perf_counter()
                    trained_model(spec, bundle, seed=0, budget=budget, device=device,
                                  cache_dir=Path(cache), progress=False)
                    cached_s = time.perf_counter() - started
                    loss, acc = evaluate(model, bundle.test, bundle.info.task, device)
                    figure = f"test acc {acc:.4f}" if bundle.info.task == "classification" else f"test mse {loss:.4f}"
                    print(f"{name:9} {dataset.name:15} {budget:8} train {trained_s:7.2f}s (cpu {cpu_s:6.2f}s)  "
                          f"cached load {cached_s:6.3f}s  {figure}", flush=True)
    if args.cifar_epochs:
        time_cifar_epochs(args.cifar_epochs, device)


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
