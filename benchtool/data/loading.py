"""Load a dataset once per process: bundles are memoized per (dataset, root, seed)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import torch

from benchtool.contracts.data import DataBundle, Dataset, Split
from benchtool.errors import ContractViolation

MAX_CACHED_BUNDLES = 8  # CIFAR-sized bundles take ~1 GB each; keep the most recent few

_bundles: OrderedDict[tuple[str, str, str, int], DataBundle] = OrderedDict()
_lock = threading.Lock()


def _check_split(dataset: Dataset, bundle: DataBundle, name: str, split: Split) -> None:
    info = bundle.info
    if not isinstance(split, Split):
        raise ContractViolation(dataset.name, "bundle-valid", f"split {name!r} is {type(split).__name__}, not Split")
    if tuple(split.x.shape[1:]) != info.input_shape:
        raise ContractViolation(
            dataset.name, "bundle-valid",
            f"split {name!r} has inputs of shape {tuple(split.x.shape[1:])}, info declares {info.input_shape}",
        )
    if info.task == "classification" and split.y.dtype != torch.int64:
        raise ContractViolation(dataset.name, "bundle-valid", f"split {name!r} labels are {split.y.dtype}, not int64")


def check_bundle(dataset: Dataset, bundle: DataBundle) -> DataBundle:
    """What the harness verifies of every loaded bundle: its info and its split shapes."""
    if not isinstance(bundle, DataBundle):
        raise ContractViolation(dataset.name, "bundle-valid", f"load() returned {type(bundle).__name__}")
    if bundle.info != dataset.info():
        raise ContractViolation(dataset.name, "bundle-valid", "the bundle's info differs from dataset.info()")
    for name in ("train", "val", "test"):
        split = getattr(bundle, name)
        _check_split(dataset, bundle, name, split)
        if len(split) == 0:
            raise ContractViolation(dataset.name, "bundle-valid", f"split {name!r} is empty")
    for name, split in bundle.ood.items():
        _check_split(dataset, bundle, f"ood[{name}]", split)
    return bundle


def load_dataset(dataset: Dataset, *, root: Path, seed: int, download: bool = False) -> DataBundle:
    """The dataset's bundle for ``seed``, loaded once per (dataset, root, seed) and process.

    The bundle is shared by every caller: treat its tensors as read-only."""
    kind = type(dataset)
    key = (f"{kind.__module__}.{kind.__qualname__}", dataset.name, str(Path(root).expanduser().resolve()), seed)
    with _lock:
        if key in _bundles:
            _bundles.move_to_end(key)
            return _bundles[key]
    bundle = check_bundle(dataset, dataset.load(root=Path(root).expanduser(), seed=seed, download=download))
    with _lock:
        _bundles[key] = bundle
        while len(_bundles) > MAX_CACHED_BUNDLES:
            _bundles.popitem(last=False)
    return bundle


def clear_cache() -> None:
    """Forget every memoized bundle (tests, or to free memory)."""
    with _lock:
        _bundles.clear()
