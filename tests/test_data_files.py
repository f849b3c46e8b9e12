"""The file-format readers and local datasets, on tiny files written in each format."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchtool.data import formats
from benchtool.data.download import RemoteFile
from benchtool.data.local import Cifar10, FashionMnist, FashionMnistHoldout, Mnist, Svhn
from benchtool.errors import UsageError

RNG = np.random.default_rng(0)


def _images(n: int, shape: tuple[int, ...]) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _labels(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.uint8) % 10


# --- IDX -----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    array=st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]).flatmap(
        lambda dtype: arrays(dtype, st.lists(st.integers(0, 5), min_size=1, max_size=3).map(tuple))
    ),
    compressed=st.booleans(),
)
def test_idx_round_trip(tmp_path_factory: pytest.TempPathFactory, array: np.ndarray, compressed: bool) -> None:
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if compressed else "a.idx")
    formats.write_idx(path, array)
    back = formats.read_idx(path)
    assert back.shape == array.shape and back.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, array)


def test_idx_truncated_or_long_or_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "x-idx3-ubyte"
    formats.write_idx(path, _images(4, (3, 3)))
    good = path.read_bytes()
    path.write_bytes(good[:-5])
    with pytest.raises(UsageError, match=r"x-idx3-ubyte: IDX file truncated: header declares shape \(4, 3, 3\)"):
        formats.read_idx(path)
    path.write_bytes(good + b"\0")
    with pytest.raises(UsageError, match="trailing bytes"):
        formats.read_idx(path)
    path.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(UsageError, match="not an IDX file"):
        formats.read_idx(path)
    gz = tmp_path / "y-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(good)[:-12])
    with pytest.raises(UsageError, match="y-idx1-ubyte.gz: truncated or corrupt gzip"):
        formats.read_idx(gz)


# --- CIFAR-10 and SVHN -------------------------------------------------------------


def test_cifar_batch_round_trip_and_truncation(tmp_path: Path) -> None:
    images, labels = _images(3, (3, 32, 32)), _labels(3)
    path = tmp_path / "data_batch_1.bin"
    formats.write_cifar_batch(path, images, labels)
    x, y = formats.read_cifar_batch(path, records=3)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(UsageError, match="data_batch_1.bin: truncated CIFAR-10 binary batch"):
        formats.read_cifar_batch(path)
    formats.write_cifar_batch(path, images[:2], labels[:2])  # whole records, but fewer than published
    with pytest.raises(UsageError, match="expected 3 records"):
        formats.read_cifar_batch(path, records=3)


def _write_svhn(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    from scipy.io import savemat

    file_labels = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]
    savemat(path, {"X": images.transpose(2, 3, 1, 0), "y": file_labels})  # (32, 32, 3, N)


def test_svhn_mat_round_trip_maps_label_10_to_0_and_rejects_truncation(tmp_path: Path) -> None:
    images, labels = _images(4, (3, 32, 32)), np.array([0, 1, 9, 0])
    path = tmp_path / "train_32x32.mat"
    _write_svhn(path, images, labels)
    x, y = formats.read_svhn_mat(path)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UsageError, match="train_32x32.mat: cannot read as a MATLAB v5 file"):
        formats.read_svhn_mat(path)


# --- local datasets ----------------------------------------------------------------


def _write_idx_set(folder: Path, n_train: int = 40, n_test: int = 10, gz: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        formats.write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", _images(n, (28, 28)))
        formats.write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", _labels(n))


@pytest.mark.parametrize(
    ("dataset_cls", "folder", "gz"),
    [(Mnist, "mnist", False), (Mnist, "MNIST/raw", True), (FashionMnist, "fashion-mnist", True),
     (FashionMnist, "FashionMNIST/raw", False)],
)
def test_idx_datasets_load_from_their_folder(tmp_path: Path, dataset_cls: type, folder: str, gz: bool) -> None:
    _write_idx_set(tmp_path / folder, gz=gz)
    bundle = dataset_cls().load(root=tmp_path, seed=0)
    assert bundle.info.input_shape == (1, 28, 28) and bundle.info.num_classes == 10
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (36, 4, 10)
    assert bundle.train.x.shape[1:] == (1, 28, 28) and bundle.train.x.dtype == torch.float32
    assert 0.0 <= float(bundle.train.x.min()) and float(bundle.train.x.max()) <= 1.0
    far = {"digits"} if dataset_cls is FashionMnist else set()
    assert set(bundle.ood) == {"noise", "rotated", "corrupted", "uniform-noise"} | far


def test_fashion_mnist_holdout_trains_on_0_to_4_and_holds_out_the_test_splits_5_to_9(tmp_path: Path) -> None:
    _write_idx_set(tmp_path / "fashion-mnist", n_train=60, n_test=30)
    full = FashionMnist().load(root=tmp_path, seed=0)
    bundle = FashionMnistHoldout().load(root=tmp_path, seed=0)
    assert bundle.info.name == "fashion-mnist-holdout" and bundle.info.num_classes == 5
    assert bundle.in_distribution_classes == (0, 1, 2, 3, 4)
    for split, whole in ((bundle.train, full.train), (bundle.test, full.test)):
        assert len(split) == int((whole.y <= 4).sum()) and int(split.y.max()) <= 4
    assert len(bundle.ood["heldout-classes"]) == int((full.test.y >= 5).sum())
    assert set(bundle.ood) == {"noise", "rotated", "corrupted", "uniform-noise", "digits", "heldout-classes"}
    assert torch.equal(bundle.ood["digits"].x, full.ood["digits"].x)


class TinyCifar10(Cifar10):
    """CIFAR-10 with 4 records per batch, so the test files stay tiny."""

    records_per_batch = 4


def _write_cifar_set(folder: Path) -> None:
    folder.mkdir(parents=True)
    for name in Cifar10.files:
        formats.write_cifar_batch(folder / name, _images(4, (3, 32, 32)), _labels(4))


def test_cifar10_loads_batches_and_rejects_a_truncated_one(tmp_path: Path) -> None:
    _write_cifar_set(tmp_path / "cifar-10-batches-bin")
    bundle = TinyCifar10().load(root=tmp_path, seed=0)
    assert (len(bundle.train) + len(bundle.val), len(bundle.test)) == (20, 4)
    assert bundle.info.input_shape == (3, 32, 32) and bundle.train.x.shape[1:] == (3, 32, 32)
    batch = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:5000])
    with pytest.raises(UsageError) as error:
        TinyCifar10().load(root=tmp_path, seed=0)
    assert "data_batch_3.bin: truncated" in str(error.value) and "--bt-download" in str(error.value)


def test_svhn_loads_from_its_folder(tmp_path: Path) -> None:
    (tmp_path / "svhn").mkdir()
    for name, n in (("train_32x32.mat", 20), ("test_32x32.mat", 10)):
        _write_svhn(tmp_path / "svhn" / name, _images(n, (3, 32, 32)), _labels(n).astype(np.int64))
    bundle = Svhn().load(root=tmp_path, seed=0)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (18, 2, 10)
    assert set(bundle.test.y.tolist()) <= set(range(10))


@pytest.mark.parametrize("dataset_cls", [Mnist, FashionMnist, Cifar10, Svhn])
def test_missing_files_name_the_path_the_files_and_the_remedy(tmp_path: Path, dataset_cls: type) -> None:
    with pytest.raises(UsageError) as error:
        dataset_cls().load(root=tmp_path, seed=0)
    message = str(error.value)
    assert str(tmp_path / dataset_cls.folders[0]) in message
    assert all(name in message for name in dataset_cls.files)
    assert "--bt-data-root" in message and "--bt-download" in message


def test_labels_outside_the_classes_are_a_usage_error(tmp_path: Path) -> None:
    _write_idx_set(tmp_path / "mnist")
    formats.write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", np.full(10, 12, dtype=np.uint8))
    with pytest.raises(UsageError, match=r"dataset 'mnist': labels must lie in \[0, 10\), found 12..12"):
        Mnist().load(root=tmp_path, seed=0)


def test_a_partly_missing_folder_names_only_what_is_missing(tmp_path: Path) -> None:
    _write_idx_set(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UsageError, match=r"missing files in .*mnist: t10k-labels-idx1-ubyte;"):
        Mnist().load(root=tmp_path, seed=0)


# --- download ------------------------------------------------------------------------


def _forbid_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def refuse(url: str, *args: object, **kwargs: object) -> None:
        calls.append(str(url))
        raise AssertionError(f"network touched: {url}")

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    return calls


@pytest.mark.parametrize("dataset_cls", [Mnist, FashionMnist, Cifar10, Svhn])
def test_download_false_never_touches_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dataset_cls: type
) -> None:
    calls = _forbid_network(monkeypatch)
    with pytest.raises(UsageError):
        dataset_cls().load(root=tmp_path, seed=0)
    assert calls == []


def _serve(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> list[str]:
    """Answer urlopen from ``files`` (by URL) instead of the network."""
    requested: list[str] = []

    def urlopen(url: str, timeout: float = 0) -> io.BytesIO:
        requested.append(url)
        if url not in files:
            raise OSError(f"404 {url}")
        return io.BytesIO(files[url])

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    return requested


def test_download_true_fetches_verifies_and_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source"
    _write_idx_set(source, gz=True)
    served = {f"https://mirror.test/{p.name}": p.read_bytes() for p in source.iterdir()}
    remotes = tuple(
        RemoteFile(name, ("https://dead.test/" + name, f"https://mirror.test/{name}"),
                   hashlib.md5(served[f"https://mirror.test/{name}"]).hexdigest())
        for name in (f"{n}.gz" for n in Mnist.files)
    )
    monkeypatch.setattr(Mnist, "remotes", remotes)
    requested = _serve(monkeypatch, served)
    bundle = Mnist().load(root=tmp_path / "root", seed=0, download=True)
    assert len(bundle.test) == 10 and len(requested) == 8  # each file: dead mirror, then the good one
    assert sorted(p.name for p in (tmp_path / "root" / "mnist").iterdir()) == sorted(r.name for r in remotes)
    requested.clear()
    Mnist().load(root=tmp_path / "root", seed=0, download=True)
    assert requested == []  # files present: nothing fetched
    (tmp_path / "root" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    Mnist().load(root=tmp_path / "root", seed=0, download=True)
    assert requested == ["https://dead.test/t10k-labels-idx1-ubyte.gz", "https://mirror.test/t10k-labels-idx1-ubyte.gz"]


def test_download_rejects_a_wrong_checksum_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = RemoteFile("train_32x32.mat", ("https://mirror.test/train_32x32.mat",), "0" * 32)
    monkeypatch.setattr(Svhn, "remotes", (remote,))
    _serve(monkeypatch, {"https://mirror.test/train_32x32.mat": b"tampered"})
    with pytest.raises(UsageError, match="could not download train_32x32.mat: .*MD5"):
        Svhn().load(root=tmp_path, seed=0, download=True)
    assert list((tmp_path / "svhn").iterdir()) == []


def test_download_unpacks_only_the_named_archive_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name in Cifar10.files:
            formats.write_cifar_batch(tmp_path / "batch", _images(4, (3, 32, 32)), _labels(4))
            data = (tmp_path / "batch").read_bytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        evil = tarfile.TarInfo("../../evil.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    data = archive.getvalue()
    url = "https://mirror.test/cifar-10-binary.tar.gz"
    remote = RemoteFile(
        "cifar-10-binary.tar.gz", (url,), hashlib.md5(data).hexdigest(),
        members=tuple(f"cifar-10-batches-bin/{n}" for n in Cifar10.files),
    )
    monkeypatch.setattr(TinyCifar10, "remotes", (remote,))
    _serve(monkeypatch, {url: data})
    bundle = TinyCifar10().load(root=tmp_path / "root", seed=0, download=True)
    assert len(bundle.test) == 4
    folder = tmp_path / "root" / "cifar-10-batches-bin"
    assert sorted(p.name for p in folder.iterdir()) == sorted(Cifar10.files)
    assert not (tmp_path / "evil.txt").exists()
