"""Find a dataset on the data search path and load it once per process: bundles are memoized
per (dataset, root, seed)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch

from benchtool.config import data_search_path
from benchtool.contracts.data import DataBundle, Dataset, Split
from benchtool.errors import ContractViolation, UsageError

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


def _search_path(root: Path | Sequence[Path]) -> list[Path]:
    """A sequence of roots as given; a single root followed by the rest of the search path
    (:func:`~benchtool.config.data_search_path`: ``$BENCHTOOL_DATA``, ``~/.cache/benchtool/data``,
    ``/usr/share/datasets``)."""
    if isinstance(root, (str, Path)):
        return data_search_path(Path(root))
    roots = [Path(r).expanduser() for r in root]
    if not roots:
        raise UsageError("data roots: got an empty sequence; expected a data root or a sequence of at least one")
    return roots


def locate_root(dataset: Dataset, root: Path | Sequence[Path]) -> Path | None:
    """The first root of the search path that holds ``dataset``'s files: for a dataset that
    reads local files and says how to check for them (``check_files(root)``, as every
    :class:`~benchtool.data.local.LocalImageDataset` has); a dataset that needs no files
    (built-in, generated) is at the first root. None when no root holds the files."""
    roots = _search_path(root)
    check = getattr(dataset, "check_files", None)
    if not callable(check):
        return roots[0]
    for candidate in roots:
        try:
            check(candidate)
        except UsageError:
            continue
        return candidate
    return None


def missing_files_error(dataset: Dataset, roots: Sequence[Path]) -> UsageError:
    """The dataset's one-line missing-files error for the first root, naming every root searched."""
    check = getattr(dataset, "missing_error", None)
    if callable(check):
        try:
            return check(roots[0], tuple(roots))
        except TypeError:  # a third-party dataset's missing_error(root)
            return check(roots[0])
    try:
        dataset.check_files(roots[0])  # type: ignore[attr-defined]
    except UsageError as exc:
        searched = ", ".join(str(r) for r in roots)
        return UsageError(f"{exc} (data roots searched: {searched})")
    return UsageError(f"dataset {dataset.name!r}: files not found under {', '.join(str(r) for r in roots)}")


def check_files(dataset: Dataset, *, root: Path | Sequence[Path], download: bool = False) -> None:
    """Raise the dataset's one-line missing-files error now, before any cell, without reading
    anything, when no root of the search path holds its files (see :func:`locate_root`).
    Nothing to check when ``download`` may fetch them."""
    if download:
        return
    roots = _search_path(root)
    if locate_root(dataset, roots) is None:
        raise missing_files_error(dataset, roots)


def available(dataset: Dataset, root: Path | Sequence[Path]) -> Path | None:
    """Where ``dataset``'s files are (the root that holds them), or None: existence only."""
    return locate_root(dataset, root)


def load_dataset(dataset: Dataset, *, root: Path | Sequence[Path], seed: int, download: bool = False) -> DataBundle:
    """The dataset's bundle for ``seed``, loaded once per (dataset, root, seed) and process.

    ``root`` is a data root, searched first and followed by the rest of the search path
    (:func:`~benchtool.config.data_search_path`), or the exact sequence of roots to search.
    The dataset loads from the first root that holds its files; when none does, from the first
    root (where ``download`` fetches them, or the missing-files error naming every root).
    The bundle is shared by every caller: treat its tensors as read-only."""
    roots = _search_path(root)
    found = locate_root(dataset, roots)
    if found is None and not download:
        raise missing_files_error(dataset, roots)
    root = found if found is not None else roots[0]
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
