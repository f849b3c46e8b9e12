"""Fixtures of the project's own tests only (suites/ does not load this file)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from benchtool.data import formats

# Hermetic data: the tests never find datasets a distribution installed (Debian's
# dataset-fashion-mnist in /usr/share/datasets), so a suite's optional datasets stay out and
# no test trains on real data. Set in os.environ so the benchtool subprocesses inherit it.
os.environ["BENCHTOOL_SYSTEM_DATA"] = ""

# Hermetic results: the runs tests start (in this process, or benchtool subprocesses started from
# the project's folder) go to a throwaway store, not the developer's .benchtool/results.db, whose
# durations the next real run's estimate reads. Tests of the store's own lookup unset it.
_TEST_STORE = Path(tempfile.mkdtemp(prefix="benchtool-tests-"))
os.environ["BENCHTOOL_STORE"] = str(_TEST_STORE / "results.db")
atexit.register(shutil.rmtree, _TEST_STORE, ignore_errors=True)

# One process per run: the runs tests start are tiny (workers would only add their start-up), and
# most pin what a serial run does. tests/test_workers.py unsets it to test the default.
os.environ["BENCHTOOL_WORKERS"] = "0"


@pytest.fixture(autouse=True)
def _no_xdist_role_for_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``-n N`` this process is an xdist worker, and its environment says so
    (``PYTEST_XDIST_WORKER``...). A benchtool or pytest process a test starts must not inherit
    that: it would think itself a worker too (pytest-benchmark then disables benchmarks)."""
    for name in [k for k in os.environ if k.startswith("PYTEST_XDIST_")]:
        monkeypatch.delenv(name)


def _write_idx_set(folder: Path, train: int = 30, test: int = 10, gz: bool = True) -> None:
    """A tiny IDX set as the publisher (and Debian's package) ship it: 28x28 uint8 images,
    labels cycling through 0-9."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        formats.write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        formats.write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", (np.arange(n) % 10).astype(np.uint8))


@pytest.fixture
def write_idx_set() -> Callable[..., None]:
    """``write_idx_set(folder, train=30, test=10, gz=True)``: a synthetic Fashion-MNIST-shaped set."""
    return _write_idx_set
