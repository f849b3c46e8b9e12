"""The built-in datasets, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool.data.digits import Digits, DigitsHoldout
from benchtool.data.local import Cifar10, FashionMnist, Mnist, Svhn
from benchtool.data.toy import ToyRegression

BUILTIN_DATASETS = (Digits, DigitsHoldout, ToyRegression, Mnist, FashionMnist, Cifar10, Svhn)


@hookimpl
def benchtool_register_datasets(registry) -> None:  # noqa: ANN001 - a benchtool.registry.Registrar
    """Add every built-in dataset under its ``name``."""
    for dataset in BUILTIN_DATASETS:
        registry.add(dataset.name, dataset)
