"""End to end: the uncertainty suite at the small budget, for two estimators, records every
metric per OOD set, per corruption and intensity, the reliability diagrams, the rotation and
translation curves, and the regression band."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict

import pytest


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    folder = tmp_path_factory.mktemp("uncertainty_suite")
    # one small process on a shared CI machine (numba too: its OpenMP layer would reset torch's threads)
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", BENCHTOOL_CACHE=str(folder / "cache"))
    out = folder / "records.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchtool.cli", "run", "uncertainty", "--budget", "small", "--device", "cpu",
         "--json", str(out), "-p", "no:store", "-k", "laplace-last-layer or softmax", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, env=env, cwd=folder, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


def by_case(records: list[dict]) -> dict[tuple[str, str, str], dict[str, dict]]:
    table: dict[tuple[str, str, str], dict[str, dict]] = defaultdict(dict)
    for record in records:
        if "shift" not in record["params"]:  # the shift intensities: see test_shift_intensities
            table[(record["plugin"], record["dataset"], record["params"].get("ood", ""))][record["metric"]] = record
    return table


def test_classification_metrics_in_and_out_of_distribution(records: list[dict]) -> None:
    table = by_case(records)
    for plugin in ("softmax", "laplace-last-layer"):
        inside = table[(plugin, "digits-holdout", "")]
        assert {"accuracy", "nll", "brier", "ece", "aurc", "e_aurc", "mean_mi", "reliability"} <= set(inside)
        assert inside["accuracy"]["value"] > 0.8
        assert inside["reliability"]["series"]["x_label"] == "confidence"
        for ood in ("heldout-classes", "noise", "rotated", "corrupted"):
            scores = table[(plugin, "digits-holdout", ood)]
            assert 0.5 < scores["auroc_entropy"]["value"] <= 1.0, (plugin, ood)
            assert 0.0 <= scores["fpr95_max_prob"]["value"] <= 1.0
        assert "accuracy" in table[(plugin, "digits-holdout", "rotated")]  # labelled shift
        assert "accuracy" not in table[(plugin, "digits-holdout", "heldout-classes")]
    assert "auroc_mi" not in table[("softmax", "digits-holdout", "heldout-classes")]  # MI is 0 at T = 1
    assert "auroc_mi" in table[("laplace-last-layer", "digits-holdout", "heldout-classes")]


def test_shift_intensities(records: list[dict]) -> None:
    """Ovadia et al. 2019: accuracy, NLL, Brier and ECE per corruption and intensity, and the
    rotation and translation curves; on average accuracy falls from the clean split to level 5."""
    from benchtool.data.shift import CORRUPTIONS, INTENSITIES, ROTATION_SERIES

    for plugin in ("softmax", "laplace-last-layer"):
        mine = [r for r in records if r["plugin"] == plugin and "shift" in r["params"]]
        cells = {(r["metric"], r["params"]["shift"], r["params"]["intensity"]): r["value"]
                 for r in mine if "intensity" in r["params"]}
        assert set(cells) == {(m, c, i) for m in ("accuracy", "nll", "brier", "ece") for c in CORRUPTIONS
                              for i in INTENSITIES}
        clean = by_case(records)[(plugin, "digits-holdout", "")]["accuracy"]["value"]
        worst = sum(cells[("accuracy", c, 5)] for c in CORRUPTIONS) / len(CORRUPTIONS)
        assert worst < clean - 0.1, (plugin, worst, clean)
        curves = {r["metric"]: r["series"] for r in mine if r["series"]}
        assert set(curves) == {f"{m}_vs_{axis}" for m in ("accuracy", "nll", "brier", "ece")
                               for axis in ("rotation", "translation")}
        rotation = curves["accuracy_vs_rotation"]
        assert rotation["x"] == list(ROTATION_SERIES) and rotation["y"][0] > rotation["y"][6]  # 0 vs 90 degrees
        assert curves["accuracy_vs_translation"]["x"] == list(range(8))  # 8x8 digits: every pixel


def test_regression_metrics_and_band(records: list[dict]) -> None:
    table = by_case(records)
    assert not any(dataset == "toy-regression" for plugin, dataset, _ in table if plugin == "softmax")
    inside = table[("laplace-last-layer", "toy-regression", "")]
    assert {"gaussian_nll", "rmse", "coverage_90", "epistemic_variance", "aleatoric_variance"} <= set(inside)
    expected = {"predictive_mean", "predictive_mean_lower", "predictive_mean_upper", "epistemic_std", "aleatoric_std"}
    assert expected <= set(inside)
    band = inside["predictive_mean_upper"]["series"]
    lower = inside["predictive_mean_lower"]["series"]
    assert len(band["x"]) == 200 and all(u >= v for u, v in zip(band["y"], lower["y"]))
    for ood in ("gap", "extrapolation"):
        assert table[("laplace-last-layer", "toy-regression", ood)]["epistemic_ratio"]["value"] > 0
    assert table[("laplace-last-layer", "toy-regression", "extrapolation")]["epistemic_ratio"]["value"] > 1
