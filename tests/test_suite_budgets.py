"""What each budget runs: the bridge's per-budget suite defaults (``@pytest.mark.bt(small=dict(...),
cells=...)``), the small budget as a smoke test that still reaches every discovered plugin, and
the default budget's cells left as they were."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from benchtool.config import BUDGET_TORCH_THREADS, RunConfig
from benchtool.host import load_host
from benchtool_limits.weightings import FixedWeighting
from benchtool_suites._attack_inputs import attack_eps

ROOT = Path(__file__).resolve().parents[1]

SUITE = '''
import pytest
import torch


def keep(cell):
    return cell.get("models") == "lenet" or cell.get("attacks") == "fgsm"


pytestmark = pytest.mark.bt(models=["lenet", "mlp"], datasets=["digits"],
                            small=dict(models=["lenet", "lenet-at"], cells=keep))


def test_cell(attack, model, dataset, bt_record):
    bt_record("threads", torch.get_num_threads())


@pytest.mark.bt(small=dict(models=["mlp"], cells=None))  # None: no predicate for this test
def test_near_marker_wins(model, dataset):
    pass
'''


def suite_file(tmp_path: Path) -> Path:
    """The suite above under a name of its own (in-process pytest runs share sys.modules)."""
    path = tmp_path / f"test_budgets_{re.sub(r'[^a-z0-9]', '_', tmp_path.name.lower())}.py"
    path.write_text(SUITE)
    return path


def collect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            *options: str, suite: str | None = None) -> list[str]:
    path = suite_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCHTOOL_STORE", os.fspath(tmp_path / "s.db"))
    target = str(path) if suite is None else suite
    code = pytest.main([target, "--collect-only", "-q", "-p", "no:cacheprovider", "--bt-device", "cpu", *options])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    return sorted(line.split("::", 1)[1] for line in out.splitlines() if "::" in line and "[" in line)


def test_a_budget_entry_of_the_marker_overrides_the_plain_defaults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    default = collect(tmp_path, monkeypatch, capsys, "--bt-attacks", "fgsm,pgd", "--bt-budget", "default")
    assert default == sorted([f"test_cell[{a}-{m}-digits]" for a in ("fgsm", "pgd") for m in ("lenet", "mlp")]
                             + ["test_near_marker_wins[lenet-digits]", "test_near_marker_wins[mlp-digits]"])
    small = collect(tmp_path, monkeypatch, capsys, "--bt-budget", "small", "-k", "near_marker")
    assert small == ["test_near_marker_wins[mlp-digits]"]  # the function's marker over the module's


def test_the_cells_predicate_narrows_the_suite_defaults_not_the_users_choice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    host = load_host()
    attacks = host.registry.names("attacks")
    small = collect(tmp_path, monkeypatch, capsys, "--bt-budget", "small", "-k", "test_cell")
    assert small == sorted([f"test_cell[{a}-lenet-digits]" for a in attacks] + ["test_cell[fgsm-lenet-at-digits]"])
    chosen = collect(tmp_path, monkeypatch, capsys, "--bt-budget", "small", "-k", "test_cell",
                     "--bt-attacks", "pgd")  # a kind named by the user: the product it asked for
    assert chosen == ["test_cell[pgd-lenet-at-digits]", "test_cell[pgd-lenet-digits]"]


def test_small_computes_on_one_torch_thread_unless_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert BUDGET_TORCH_THREADS == {"small": 1, "default": None, "full": None}
    path = suite_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCHTOOL_STORE", os.fspath(tmp_path / "s.db"))
    monkeypatch.setenv("BENCHTOOL_CACHE", os.fspath(tmp_path / "cache"))

    def threads(*options: str) -> set[float]:
        out = tmp_path / "records.json"
        code = pytest.main([str(path), "-q", "-p", "no:cacheprovider", "--bt-device", "cpu", "-k", "fgsm-mlp",
                            "--bt-models", "mlp", "--bt-attacks", "fgsm", "--bt-json", str(out), *options])
        assert code == 0
        return {r["value"] for r in json.loads(out.read_text()) if r["metric"] == "threads"}

    import torch

    before = torch.get_num_threads()
    try:
        assert threads("--bt-budget", "small") == {1}
        assert threads("--bt-budget", "small", "--bt-torch-threads", "2") == {2}
    finally:  # the runs were in this process: leave its thread count as it was
        torch.set_num_threads(before)


# --- the bundled suites ----------------------------------------------------------------------

def bundled(budget: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> list[str]:
    return collect(tmp_path, monkeypatch, capsys, "--bt-budget", budget, "-p", "no:store",
                   suite=os.fspath(ROOT / "suites"))


def test_small_is_a_smoke_test_that_reaches_every_plugin(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cells = bundled("small", tmp_path, monkeypatch, capsys)
    host = load_host()
    ids = " ".join(cells)
    for kind, test in (("attacks", "test_robust_accuracy"), ("estimators", "test_classification_uncertainty"),
                       ("strategies", "test_search_on_table"), ("loss_weightings", "test_multitask"),
                       ("target_functions", "test_error_vs_width")):
        for name in host.registry.names(kind):
            assert f"{test}[{name}-" in ids or f"{test}[{name}]" in ids, f"{kind} {name!r} has no small cell"
    for name in ("mc-dropout", "deep-ensemble", "heteroscedastic", "evidential", "laplace-last-layer"):
        assert f"test_regression_uncertainty[{name}-mlp-toy-regression]" in cells
    robustness = sorted(c for c in cells if c.startswith("test_robust_accuracy["))
    attacks = host.registry.names("attacks")
    assert robustness == sorted([f"test_robust_accuracy[{a}-lenet-digits]" for a in attacks] + [
        "test_robust_accuracy[fgsm-lenet-at-digits]", "test_robust_accuracy[eot-pgd-lenet-randomized-digits]",
        "test_robust_accuracy[pgd-lenet-randomized-digits]"])
    assert [c for c in cells if c.startswith("test_pgd_not_weaker")] == ["test_pgd_not_weaker_than_fgsm[lenet-digits]"]
    assert [c for c in cells if c.startswith("test_memorization")] == ["test_memorization[mlp-digits]"]
    assert not [c for c in cells if "fashion-mnist" in c]  # optional datasets stay out of a smoke test


def test_default_runs_every_plugin_on_every_suite_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cells = bundled("default", tmp_path, monkeypatch, capsys)
    tests = Counter(re.sub(r"\[.*", "", c) for c in cells)
    attacks = len(load_host().registry.names("attacks"))
    assert tests["test_robust_accuracy"] == 4 * attacks  # lenet, mlp, lenet-at, lenet-randomized
    assert tests["test_pgd_not_weaker_than_fgsm"] == 4
    assert tests["test_memorization"] == 2


def test_small_thins_the_eps_sweep_to_zero_and_the_eps_the_claims_read() -> None:
    from benchtool.data.digits import Digits
    from benchtool.data.local import Cifar10

    digits = Digits().info()
    assert attack_eps(RunConfig(budget="small"), digits, "linf") == [0.0, 0.2]  # the largest <= 0.25
    assert attack_eps(RunConfig(budget="small"), digits, "l2") == [0.0, 0.5]  # the sweep's middle
    cifar = Cifar10().info()
    assert attack_eps(RunConfig(budget="small"), cifar, "linf") == [0.0, 8 / 255]
    assert attack_eps(RunConfig(budget="default"), digits, "linf") == [0.0, 0.05, 0.1, 0.2, 0.3]
    assert attack_eps(RunConfig(budget="small", eps=[0.0, 0.05, 0.3]), digits, "linf") == [0.0, 0.05, 0.3]


def test_a_loss_weighting_takes_its_budget_overrides_under_explicit_values() -> None:
    assert len(FixedWeighting().at_budget("default").variants(range(3))) == 16
    assert len(FixedWeighting().at_budget("small").variants(range(3))) == 4
    assert len(FixedWeighting(levels=(1.0, 2.0, 3.0)).at_budget("small").variants(range(3))) == 9
