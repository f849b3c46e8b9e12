"""The data search path: --bt-data-root, $BENCHTOOL_DATA, ~/.cache/benchtool/data, then the
distributions' folder (/usr/share/datasets); and suites' optional datasets, taken where found.

Every file here is a tiny synthetic IDX set: nothing trains and nothing reads real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchtool.config import data_search_path, default_data_root
from benchtool.data.loading import check_files, clear_cache, load_dataset, locate_root
from benchtool.data.local import FashionMnist, IdxDataset, Mnist
from benchtool.errors import UsageError


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A private home, no $BENCHTOOL_DATA and a private system folder in place of /usr/share/datasets."""
    home, system = tmp_path / "home", tmp_path / "system"
    home.mkdir()
    system.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("BENCHTOOL_DATA", raising=False)
    monkeypatch.setenv("BENCHTOOL_SYSTEM_DATA", str(system))
    clear_cache()
    yield {"home": home, "system": system, "user": home / ".cache" / "benchtool" / "data", "flag": tmp_path / "flag"}
    clear_cache()


def test_the_search_path_is_flag_env_user_then_system(roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert data_search_path(roots["flag"]) == [roots["flag"], roots["user"], roots["system"]]
    assert data_search_path() == [roots["user"], roots["system"]]
    monkeypatch.setenv("BENCHTOOL_DATA", str(roots["home"] / "env"))
    assert data_search_path(roots["flag"]) == [roots["flag"], roots["home"] / "env", roots["user"], roots["system"]]
    assert data_search_path(roots["home"] / "env") == [roots["home"] / "env", roots["user"], roots["system"]]  # once
    assert default_data_root() == roots["home"] / "env"  # downloads go to the first root


def test_the_system_roots_default_to_usr_share_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCHTOOL_SYSTEM_DATA", raising=False)
    assert data_search_path()[-1] == Path("/usr/share/datasets")
    monkeypatch.setenv("BENCHTOOL_SYSTEM_DATA", "")
    assert Path("/usr/share/datasets") not in data_search_path()


def test_an_installed_package_is_found_without_a_flag(roots: dict[str, Path], write_idx_set) -> None:
    write_idx_set(roots["system"] / "fashion-mnist")  # where apt-get install dataset-fashion-mnist puts them
    bundle = load_dataset(FashionMnist(), root=default_data_root(), seed=0)
    assert (len(bundle.train) + len(bundle.val), len(bundle.test)) == (30, 10)
    assert bundle.info.reference_eps == 0.1 and bundle.info.recipe_family == "mnist"
    assert locate_root(FashionMnist(), default_data_root()) == roots["system"]
    check_files(FashionMnist(), root=default_data_root())  # the bridge's early check agrees


def test_an_earlier_root_wins(roots: dict[str, Path], write_idx_set) -> None:
    write_idx_set(roots["system"] / "fashion-mnist", train=30)
    write_idx_set(roots["flag"] / "FashionMNIST" / "raw", train=40, gz=False)
    bundle = load_dataset(FashionMnist(), root=roots["flag"], seed=0)
    assert len(bundle.train) + len(bundle.val) == 40
    assert locate_root(FashionMnist(), [roots["system"], roots["flag"]]) == roots["system"]  # an explicit order


def test_a_missing_dataset_names_every_root_searched(roots: dict[str, Path]) -> None:
    with pytest.raises(UsageError) as error:
        load_dataset(FashionMnist(), root=roots["flag"], seed=0)
    message = str(error.value)
    assert message.startswith(f"dataset 'fashion-mnist': missing files in {roots['flag'] / 'fashion-mnist'}: ")
    for root in (roots["user"], roots["system"]):
        assert str(root / "fashion-mnist") in message
    assert "apt-get install dataset-fashion-mnist" in message and "--bt-download" in message
    with pytest.raises(UsageError, match="also searched"):
        check_files(Mnist(), root=roots["flag"])
    assert "apt-get" not in str(pytest.raises(UsageError, Mnist().load, root=roots["flag"], seed=0).value)


def test_download_fetches_into_the_first_root_only_when_no_root_has_the_files(
        roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch, write_idx_set) -> None:
    write_idx_set(roots["system"] / "fashion-mnist")
    fetched: list[Path] = []
    monkeypatch.setattr("benchtool.data.local.fetch_all", lambda remotes, folder: fetched.append(folder))
    load_dataset(FashionMnist(), root=roots["flag"], seed=0, download=True)
    assert fetched == []  # found in the system root: nothing to fetch

    class Elsewhere(IdxDataset):
        name = "elsewhere"
        folders = ("elsewhere",)
        homepage = "nowhere"
        remotes = ()

    def fetch(remotes: tuple, folder: Path) -> None:
        fetched.append(folder)
        write_idx_set(folder, gz=False)

    monkeypatch.setattr("benchtool.data.local.fetch_all", fetch)
    load_dataset(Elsewhere(), root=roots["flag"], seed=0, download=True)
    assert fetched == [roots["flag"] / "elsewhere"]


# --- suites: optional datasets ------------------------------------------------------------------

SUITE = '''
import pytest

pytestmark = pytest.mark.bt(datasets=["digits"], optional_datasets=["fashion-mnist", "no-such-dataset"])


def test_size(dataset, bt_record):
    bt_record("size", len(dataset.test))
'''


def collect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            *options: str) -> tuple[list[str], str]:
    suite = tmp_path / "test_optional.py"
    suite.write_text(SUITE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCHTOOL_STORE", os.fspath(tmp_path / "s.db"))
    code = pytest.main([str(suite), "--collect-only", "-p", "no:cacheprovider", "--bt-device", "cpu", *options])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    return sorted(line.strip()[len("<Function "):-1] for line in out.splitlines() if "<Function" in line), out


def test_an_optional_dataset_runs_where_its_files_are_found(
        roots: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], write_idx_set) -> None:
    ids, out = collect(tmp_path, monkeypatch, capsys)
    assert ids == ["test_size[digits]"]
    assert "benchtool datasets not found: " in out and "fashion-mnist" in out.split("not found: ", 1)[1]
    write_idx_set(roots["system"] / "fashion-mnist")
    ids, out = collect(tmp_path, monkeypatch, capsys)
    assert ids == ["test_size[digits]", "test_size[fashion-mnist]"]
    assert f"benchtool datasets found: fashion-mnist ({roots['system'] / 'fashion-mnist'})" in out
    assert f"benchtool data roots: {roots['user']}, {roots['system']}" in out
    ids, _ = collect(tmp_path, monkeypatch, capsys, "--bt-datasets", "digits")  # the user's choice wins
    assert ids == ["test_size[digits]"]


def test_an_empty_sequence_of_roots_is_a_usage_error_not_an_index_error() -> None:
    from benchtool.data.digits import Digits

    with pytest.raises(UsageError, match="data roots: got an empty sequence"):
        load_dataset(Digits(), root=[], seed=0)
