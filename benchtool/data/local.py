"""Datasets read from local files under the data root (``--bt-data-root``), in the formats
their publishers distribute. Nothing is fetched unless ``download=True`` (``--bt-download``)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from benchtool.contracts.data import DataBundle, Dataset, DatasetInfo, Split
from benchtool.data import formats
from benchtool.data.bundle import check_labels, classification_bundle, image_split
from benchtool.data.digits import digits_in_mnist_layout
from benchtool.data.download import RemoteFile, fetch_all
from benchtool.data.holdout import HOLDOUT_CLASSES, holdout_bundle
from benchtool.data.shift import FAR_DIGITS, NO_LABEL
from benchtool.data.splits import stratified_split
from benchtool.errors import UsageError

VAL_FRACTION = 0.1  # of the publisher's training set, stratified per seed
Arrays = tuple[np.ndarray, np.ndarray]


class LocalImageDataset(Dataset):
    """An image classification dataset stored as the publisher's files in a folder of the root.

    The publisher's train set is split (stratified, per seed) into train and val; its
    test set is the test split."""

    folders: ClassVar[tuple[str, ...]]  # candidate folders under the root; downloads go to the first
    files: ClassVar[tuple[str, ...]]  # the files that must be present
    remotes: ClassVar[tuple[RemoteFile, ...]]
    homepage: ClassVar[str]
    input_shape: ClassVar[tuple[int, int, int]]
    num_classes: ClassVar[int] = 10
    gzip_twins: ClassVar[bool] = True  # whether ``name.gz`` may stand in for ``name``
    reference_eps: ClassVar[float | None] = None  # DatasetInfo.reference_eps (Linf, pixels in [0, 1])
    recipe_family: ClassVar[str | None] = None  # DatasetInfo.recipe_family
    eps_sweeps: ClassVar[dict[str, tuple[float, ...]]] = {}  # DatasetInfo.eps_sweeps
    install_hint: ClassVar[str] = ""  # another way to get the files (a distribution's package)

    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name, task="classification", input_shape=self.input_shape, num_classes=self.num_classes,
            bounds=(0.0, 1.0), description=self.__doc__ or "", reference_eps=self.reference_eps,
            recipe_family=self.recipe_family, eps_sweeps=dict(self.eps_sweeps),
        )

    @abstractmethod
    def read(self, folder: Path) -> tuple[Arrays, Arrays]:
        """The publisher's (train, test) arrays: uint8 images (N, C, H, W) and int64 labels."""

    def far_ood(self) -> dict[str, Split]:
        """OOD sets from another domain, added to every bundle (none unless a dataset names some)."""
        return {}

    def find(self, folder: Path, name: str) -> Path | None:
        """``folder/name`` or (where the reader decompresses) its gzip twin ``folder/name.gz``."""
        twins = (folder / name, folder / f"{name}.gz") if self.gzip_twins else (folder / name,)
        for candidate in twins:
            if candidate.is_file():
                return candidate
        return None

    def require(self, folder: Path, name: str) -> Path:
        """The path of an expected file, or the error that names it."""
        path = self.find(folder, name)
        if path is None:
            raise UsageError(f"{folder / name}: no such file")
        return path

    def locate(self, root: Path) -> Path | None:
        """The first candidate folder that holds every expected file."""
        for folder in (root / f for f in self.folders):
            if all(self.find(folder, name) for name in self.files):
                return folder
        return None

    def where_to_put(self, root: Path) -> str:
        folders = " or ".join(str(root / f) for f in self.folders)
        hint = f", {self.install_hint}" if self.install_hint else ""
        return (
            f"put the publisher's files ({', '.join(self.files)}; from {self.homepage}) in {folders}, "
            f"point --bt-data-root (or BENCHTOOL_DATA) at the folder that holds them{hint}, "
            "or pass --bt-download to fetch them"
        )

    def missing_error(self, root: Path, searched: tuple[Path, ...] = ()) -> UsageError:
        """The files missing in ``root`` (the first root: where to put them), naming every
        other root ``searched`` too."""
        primary = root / self.folders[0]
        missing = [name for name in self.files if self.find(primary, name) is None]
        others = [r for r in searched if r != root]
        also = f" (also searched {', '.join(str(r / self.folders[0]) for r in others)})" if others else ""
        return UsageError(
            f"dataset {self.name!r}: missing files in {primary}: {', '.join(missing)}{also}; "
            f"{self.where_to_put(root)}"
        )

    def check_files(self, root: Path) -> None:
        """Raise :meth:`missing_error` unless a candidate folder holds every expected file
        (a cheap check before any work: existence only, nothing is read)."""
        root = Path(root).expanduser()
        if self.locate(root) is None:
            raise self.missing_error(root)

    def available(self, roots: Sequence[Path]) -> Path | None:
        """The first of ``roots`` with every expected file (existence only), or None."""
        for root in roots:
            if self.locate(Path(root).expanduser()) is not None:
                return Path(root).expanduser()
        return None

    def load(self, *, root: Path, seed: int, download: bool = False) -> DataBundle:
        root = Path(root).expanduser()
        folder = self.locate(root)
        if folder is None:
            if not download:
                raise self.missing_error(root)
            target = root / self.folders[0]
            try:
                fetch_all(self.remotes, target)
            except OSError as exc:
                raise UsageError(f"dataset {self.name!r}: cannot download into {target}: {exc}") from None
            folder = self.locate(root)
            if folder is None:
                raise self.missing_error(root)
        try:
            (train_x, train_y), (test_x, test_y) = self.read(folder)
        except UsageError as exc:
            raise UsageError(f"dataset {self.name!r}: {exc}; {self.where_to_put(root)}") from None
        for labels in (train_y, test_y):
            check_labels(self.name, labels, self.num_classes)
        train_idx, val_idx = stratified_split(train_y, (1.0 - VAL_FRACTION, VAL_FRACTION), seed)
        bundle = classification_bundle(
            self.info(),
            image_split(train_x[train_idx], train_y[train_idx]),
            image_split(train_x[val_idx], train_y[val_idx]),
            image_split(test_x, test_y),
            seed,
        )
        bundle.ood.update(self.far_ood())
        return bundle


class IdxDataset(LocalImageDataset):
    """Grey 28x28 images in IDX files, raw or gzip (the MNIST family)."""

    files = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    input_shape = (1, 28, 28)

    def read(self, folder: Path) -> tuple[Arrays, Arrays]:
        return self.read_pair(folder, "train"), self.read_pair(folder, "t10k")

    def read_pair(self, folder: Path, prefix: str) -> Arrays:
        images = formats.read_idx(self.require(folder, f"{prefix}-images-idx3-ubyte"))
        labels = formats.read_idx(self.require(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.shape[1:] != self.input_shape[1:] or labels.ndim != 1 or len(images) != len(labels):
            raise UsageError(
                f"{folder}: {prefix} images of shape {images.shape} and labels of shape {labels.shape}; "
                f"expected (N, {self.input_shape[1]}, {self.input_shape[2]}) and (N,)"
            )
        return images[:, None].astype(np.uint8), labels.astype(np.int64)


def _idx_remotes(mirrors: tuple[str, ...], md5s: tuple[str, ...]) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(f"{name}.gz", tuple(m + f"{name}.gz" for m in mirrors), md5)
        for name, md5 in zip(IdxDataset.files, md5s)
    )


class Mnist(IdxDataset):
    """MNIST handwritten digits (LeCun et al. 1998): 60000 train + 10000 test, 28x28 grey."""

    name = "mnist"
    folders = ("mnist", "MNIST/raw")
    homepage = "http://yann.lecun.com/exdb/mnist/"
    reference_eps = 0.3  # Madry et al., ICLR 2018
    eps_sweeps = {"linf": (0.0, 0.1, 0.2, 0.3), "l2": (0.0, 0.5, 1.0, 2.0)}  # Madry et al. 2018's Linf range
    recipe_family = "mnist"
    remotes = _idx_remotes(
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    )


class FashionMnist(IdxDataset):
    """Fashion-MNIST (Xiao et al. 2017): 60000 train + 10000 test, 28x28 grey, 10 garment classes."""

    name = "fashion-mnist"
    folders = ("fashion-mnist", "FashionMNIST/raw")
    homepage = "https://github.com/zalandoresearch/fashion-mnist"
    reference_eps = 0.1  # Wong & Kolter, ICML 2018, Table 1
    eps_sweeps = {"linf": (0.0, 0.05, 0.1, 0.2), "l2": (0.0, 0.5, 1.0, 1.5)}
    recipe_family = "mnist"
    install_hint = "install them on Debian/Ubuntu with apt-get install dataset-fashion-mnist (/usr/share/datasets)"
    remotes = _idx_remotes(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    )

    def far_ood(self) -> dict[str, Split]:
        """``digits``: handwritten digits in MNIST's layout, far from every garment class."""
        digits = digits_in_mnist_layout(self.input_shape[-1])
        return {FAR_DIGITS: Split(digits, torch.full((len(digits),), NO_LABEL, dtype=torch.int64))}


class FashionMnistHoldout(FashionMnist):
    """Fashion-MNIST's classes 0-4 (T-shirt/top, trouser, pullover, dress, coat) for training and
    testing; the test split's 5-9 (sandal, shirt, sneaker, bag, ankle boot) are the
    ``heldout-classes`` OOD set."""

    name = "fashion-mnist-holdout"
    num_classes = len(HOLDOUT_CLASSES)

    def load(self, *, root: Path, seed: int, download: bool = False) -> DataBundle:
        full = FashionMnist().load(root=root, seed=seed, download=download)
        return holdout_bundle(full, self.info(), HOLDOUT_CLASSES, seed, heldout_from=("test",))


class Cifar10(LocalImageDataset):
    """CIFAR-10 (Krizhevsky 2009), binary version: 50000 train + 10000 test, 32x32 colour."""

    name = "cifar10"
    folders = ("cifar-10-batches-bin",)
    files = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
    homepage = "https://www.cs.toronto.edu/~kriz/cifar.html (the 'binary version')"
    remotes = (
        RemoteFile(
            "cifar-10-binary.tar.gz",
            ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
            "c32a1d4ab5d03f1284b67883e8d87530",
            members=tuple(f"cifar-10-batches-bin/{name}" for name in files),
        ),
    )
    input_shape = (3, 32, 32)
    reference_eps = 8 / 255  # Madry et al., ICLR 2018; RobustBench
    eps_sweeps = {"linf": (0.0, 2 / 255, 4 / 255, 8 / 255), "l2": (0.0, 0.25, 0.5, 1.0)}  # RobustBench's 8/255, 0.5
    recipe_family = "cifar10"
    records_per_batch: ClassVar[int] = 10000  # as published; a file of another size is truncated

    def read(self, folder: Path) -> tuple[Arrays, Arrays]:
        batches = [formats.read_cifar_batch(self.require(folder, f), self.records_per_batch) for f in self.files]
        train = tuple(np.concatenate(parts) for parts in zip(*batches[:-1]))
        return (train[0], train[1]), batches[-1]


class Svhn(LocalImageDataset):
    """SVHN cropped house-number digits (Netzer et al. 2011): 73257 train + 26032 test, 32x32 colour."""

    name = "svhn"
    folders = ("svhn", ".")
    files = ("train_32x32.mat", "test_32x32.mat")
    homepage = "http://ufldl.stanford.edu/housenumbers/ (format 2, cropped digits)"
    remotes = (
        RemoteFile(
            "train_32x32.mat", ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",),
            "e26dedcc434d2e4c54c9b2d4a06d8373",
        ),
        RemoteFile(
            "test_32x32.mat", ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",),
            "eb5a983be6a315427106f1b164d9cef3",
        ),
    )
    input_shape = (3, 32, 32)
    reference_eps = 8 / 255  # as CIFAR-10 (RobustBench-style evaluations of SVHN)
    eps_sweeps = Cifar10.eps_sweeps
    recipe_family = "svhn"
    gzip_twins = False

    def read(self, folder: Path) -> tuple[Arrays, Arrays]:
        train, test = (formats.read_svhn_mat(self.require(folder, name)) for name in self.files)
        return train, test
