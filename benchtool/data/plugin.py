"""The built-in datasets, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchtool import hookimpl
from benchtool.config import default_data_root
from benchtool.data.digits import Digits, DigitsHoldout
from benchtool.data.loading import locate_root
from benchtool.data.local import Cifar10, FashionMnist, FashionMnistHoldout, Mnist, Svhn
from benchtool.data.provenance import dataset_provenance
from benchtool.data.toy import ToyRegression

BUILTIN_DATASETS = (Digits, DigitsHoldout, ToyRegression, Mnist, FashionMnist, FashionMnistHoldout, Cifar10, Svhn)


@hookimpl
def benchtool_register_datasets(registry) -> None:  # noqa: ANN001 - a benchtool.registry.Registrar
    """Add every built-in dataset under its ``name``."""
    for dataset in BUILTIN_DATASETS:
        registry.add(dataset)


@hookimpl
def benchtool_run_metadata(config: Any, metadata: dict[str, Any]) -> None:
    """``metadata["datasets"]``: each built-in dataset's source files and sha256 (cached by
    path, size and mtime): those named with ``--bt-datasets``, else every one available here
    (a run's suites choose among them). A third-party dataset adds its own the same way."""
    selected = (getattr(config, "filters", None) or {}).get("datasets")
    root = Path(getattr(config, "data_root", None) or default_data_root())
    entries = {}
    for dataset in BUILTIN_DATASETS:
        if selected and dataset.name not in selected:
            continue
        entry = dataset_provenance(dataset(), locate_root(dataset(), root) or root)  # the root it is read from
        if entry["source"] != "missing" or selected:
            entries[dataset.name] = entry
    if entries:
        metadata.setdefault("datasets", {}).update(entries)
