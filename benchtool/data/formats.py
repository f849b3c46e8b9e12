"""Small readers for the file formats the publishers distribute; nothing is unpickled.

- IDX (MNIST, Fashion-MNIST; LeCun et al. 1998): raw or gzip, big-endian header.
- CIFAR-10 binary batches (Krizhevsky 2009): records of 1 label byte + 3072 pixel bytes.
- SVHN cropped digits (Netzer et al. 2011): MATLAB v5 ``.mat``, read with ``scipy.io.loadmat``.

A file that is short, long, or malformed raises :class:`UsageError` naming the file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from benchtool.errors import UsageError

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CIFAR_IMAGE_SHAPE = (3, 32, 32)
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise UsageError(f"{path}: truncated or corrupt gzip file ({exc})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file as a native-endian array of the shape its header declares."""
    data = read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise UsageError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UsageError(f"{path}: truncated IDX header ({len(data)} of {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        state = "truncated" if found < expected else "has trailing bytes"
        raise UsageError(
            f"{path}: IDX file {state}: header declares shape {shape} ({expected} data bytes), found {found}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip when ``path`` ends in ``.gz``); the inverse of :func:`read_idx`."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; expected one of {sorted(map(str, codes))}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def read_cifar_batch(path: Path, records: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch: uint8 images ``(N, 3, 32, 32)`` and int64 labels.

    ``records`` is the number the publisher ships (10000); a file of another size is
    reported as truncated, since the format has no header to tell."""
    data = read_bytes(path)
    count, remainder = divmod(len(data), CIFAR_RECORD_BYTES)
    if remainder or count == 0 or (records is not None and count != records):
        wanted = f"{records} records ({records * CIFAR_RECORD_BYTES} bytes)" if records else "whole records"
        raise UsageError(
            f"{path}: truncated CIFAR-10 binary batch: {len(data)} bytes, expected {wanted} "
            f"of {CIFAR_RECORD_BYTES} bytes each"
        )
    table = np.frombuffer(data, dtype=np.uint8).reshape(count, CIFAR_RECORD_BYTES)
    labels = table[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise UsageError(f"{path}: CIFAR-10 label byte {labels.max()} is out of range 0..9")
    return table[:, 1:].reshape(count, *CIFAR_IMAGE_SHAPE).copy(), labels


def write_cifar_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write a CIFAR-10 binary batch; the inverse of :func:`read_cifar_batch`."""
    images = np.asarray(images, dtype=np.uint8).reshape(len(images), -1)
    table = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], images], axis=1)
    path.write_bytes(table.tobytes())


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """SVHN cropped digits: uint8 images ``(N, 3, 32, 32)`` and labels 0..9 (the file's 10 is 0)."""
    from scipy.io import loadmat

    try:
        content = loadmat(path, variable_names=["X", "y"])
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for a damaged file
        raise UsageError(f"{path}: cannot read as a MATLAB v5 file, truncated or corrupt? ({exc})") from None
    x, y = content.get("X"), content.get("y")
    if x is None or y is None or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        shape = None if x is None else x.shape
        raise UsageError(f"{path}: expected variables X of shape (32, 32, 3, N) and y, found X with shape {shape}")
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    if len(labels) != x.shape[3] or labels.size == 0 or labels.min() < 1 or labels.max() > 10:
        raise UsageError(f"{path}: y must hold {x.shape[3]} labels in 1..10")
    labels[labels == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8), labels
