"""The uncertainty suite on Fashion-MNIST as a user runs it: found on the data search path,
whole and with held-out classes, with its far-OOD digits, and its published figures decided
as claims. The files are a tiny synthetic IDX set, so this checks the plumbing, not the figures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchtool.cli import suites_dir
from benchtool.data.loading import clear_cache

FASHION = ("fashion-mnist", "fashion-mnist-holdout")
REFERENCE_CLAIMS = ("nado2021-lenet-fashion-mnist", "lakshminarayanan2017-ensemble-fashion-mnist",
                    "guo2017-temperature-scaling")


@pytest.fixture
def system_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_idx_set) -> Path:
    """A private /usr/share/datasets holding a synthetic fashion-mnist, a private cache and store."""
    root = tmp_path / "system"
    write_idx_set(root / "fashion-mnist", train=200, test=60)
    monkeypatch.setenv("BENCHTOOL_SYSTEM_DATA", str(root))
    monkeypatch.setenv("BENCHTOOL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BENCHTOOL_STORE", os.fspath(tmp_path / "store.db"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    clear_cache()
    yield root
    clear_cache()


def collected(capsys: pytest.CaptureFixture[str], *options: str) -> list[str]:
    suite = str(suites_dir() / "test_uncertainty.py")
    assert pytest.main([suite, "--collect-only", "-q", "-p", "no:cacheprovider", "--bt-device", "cpu", *options]) == 0
    return [line for line in capsys.readouterr().out.splitlines() if "test_classification_uncertainty[" in line]


def test_found_fashion_mnist_joins_the_default_run_not_the_smoke_run(
        system_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    default = collected(capsys)
    for name in ("digits-holdout", *FASHION):
        assert sum(cell.endswith(f"-lenet-{name}]") for cell in default) == 8, default
    small = collected(capsys, "--bt-budget", "small")
    assert small and all(cell.endswith("-lenet-digits-holdout]") for cell in small)


@pytest.mark.usefixtures("one_torch_thread")
def test_the_suite_runs_on_fashion_mnist_and_decides_its_published_figures(
        system_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.json"
    suite = str(suites_dir() / "test_uncertainty.py")
    code = pytest.main([suite, "-q", "-p", "no:cacheprovider", "--bt-device", "cpu", "--bt-budget", "small",
                        "--bt-datasets", ",".join(FASHION), "--bt-estimators", "softmax,temperature-scaling,ddu",
                        "--bt-json", str(out)])
    assert code == 0
    records = json.loads(out.read_text())
    ood = {(r["dataset"], r["params"]["ood"]) for r in records if r["metric"] == "auroc_max_prob"}
    for name in ("noise", "uniform-noise", "rotated", "corrupted", "digits"):
        assert ("fashion-mnist", name) in ood and ("fashion-mnist-holdout", name) in ood
    assert ("fashion-mnist-holdout", "heldout-classes") in ood and ("fashion-mnist", "heldout-classes") not in ood
    own = {r["params"]["ood"] for r in records if r["metric"] == "auroc_own" and r["dataset"] == "fashion-mnist"}
    assert "digits" in own  # ddu's feature density on the far-OOD digits
    verdicts = {r["plugin"]: r for r in records if r["metric"] == "claim"}
    for claim in ("nado2021-lenet-fashion-mnist", "guo2017-temperature-scaling"):
        assert verdicts[claim]["dataset"] == "fashion-mnist"
        assert verdicts[claim]["params"]["verdict"] in ("reproduced", "not reproduced")
    ensemble = verdicts["lakshminarayanan2017-ensemble-fashion-mnist"]  # deep-ensemble was not selected
    assert ensemble["params"]["verdict"] == "inconclusive" and "deep-ensemble did not run" in ensemble["params"]["evidence"]
    assert "target >= 0.9, published 0.91" in verdicts["nado2021-lenet-fashion-mnist"]["params"]["evidence"]
