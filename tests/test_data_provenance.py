"""Run metadata records where each dataset came from: its files' paths and sha256, cached."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchtool.data import plugin, provenance
from benchtool.data.local import Mnist
from benchtool.report.html import _facts_table
from benchtool.store.load import ResultSet


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENCHTOOL_CHECKSUM_CACHE", str(tmp_path / "checksums.json"))
    provenance._memory.clear()
    return tmp_path / "checksums.json"


def test_sha256_is_cached_by_path_size_and_mtime(tmp_path: Path, _cache: Path, monkeypatch) -> None:
    data = tmp_path / "f.bin"
    data.write_bytes(b"abc")
    assert provenance.sha256_file(data) == hashlib.sha256(b"abc").hexdigest()
    assert _cache.is_file()
    provenance._memory.clear()
    monkeypatch.setattr(hashlib, "sha256", lambda: pytest.fail("read again"))
    assert provenance.sha256_file(data) == hashlib.new("sha256", b"abc").hexdigest()  # from the cache file


def test_metadata_names_digits_file_and_local_files(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in Mnist.files:
        (folder / f"{name}.gz").write_bytes(name.encode())
    meta: dict = {}
    plugin.benchtool_run_metadata(SimpleNamespace(filters={}, data_root=tmp_path), meta)
    digits = meta["datasets"]["digits"]
    assert digits["source"].endswith("sklearn/datasets/data")
    assert digits["files"]["digits.csv.gz"].startswith("sha256:")
    assert meta["datasets"]["toy-regression"] == {"source": "generated"}
    mnist = meta["datasets"]["mnist"]
    assert mnist["source"] == str(folder.resolve()) and len(mnist["files"]) == 4
    assert "cifar10" not in meta["datasets"]  # not selected and not here: left out
    selected: dict = {}
    plugin.benchtool_run_metadata(SimpleNamespace(filters={"datasets": ["cifar10"]}, data_root=tmp_path), selected)
    assert selected["datasets"] == {"cifar10": {"source": "missing", "root": str(tmp_path)}}


def test_report_header_shows_dataset_provenance(tmp_path: Path) -> None:
    from benchtool.store.db import RunInfo

    meta = {"datasets": {"digits": {"source": "/d", "files": {"digits.csv.gz": "sha256:ab12"}}}}
    run = RunInfo("r1", 0.0, None, "finished", 0, 1, None, "h", "benchtool run", ".", [], "small", 0, "cpu", "",
                  "", None, {}, meta)
    html = _facts_table(ResultSet("r1", [], run, []))
    assert "data: digits" in html and "/d/digits.csv.gz sha256:ab12" in html
