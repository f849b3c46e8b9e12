"""Adversarial robustness: every attack x model x dataset x eps, measured by the harness.

Per eps it records clean and robust accuracy, the attack success rate on originally
correct points, mean and max perturbation norm, forward and gradient queries and wall time
per example, plus a robust-accuracy-vs-eps curve per case. The figures are records; the
asserts are only the sanity rules no plugin can talk its way past: eps=0 leaves every
prediction as it was, robust accuracy never exceeds clean accuracy, and PGD is at least as
strong as FGSM at the same eps (Madry et al. 2018) up to sampling noise.
"""

from __future__ import annotations

import math

import pytest

from benchtool.contracts.attack import RobustnessReport, eps_sweep, evaluate
from benchtool_suites._attack_inputs import attack_batch_size, attack_subset

pytestmark = pytest.mark.bt(models=["lenet", "mlp"], datasets=["digits"])

# PGD may trail FGSM by at most this many standard errors of a paired comparison (McNemar).
PAIRED_Z = 3.0


def record_report(bt_record, report: RobustnessReport, **context: str) -> None:
    """Every figure of one eps, as records with ``params={"eps": eps}``."""
    params = {"eps": report.eps}
    n = report.n
    bt_record("clean_accuracy", report.clean_accuracy, params=params, **context)
    bt_record("robust_accuracy", report.robust_accuracy, params=params, **context)
    if not math.isnan(report.success_rate):
        bt_record("attack_success_rate", report.success_rate, params=params, **context)
    bt_record("mean_perturbation", report.mean_norm, unit=report.norm, params=params, **context)
    bt_record("max_perturbation", report.max_norm, unit=report.norm, params=params, **context)
    bt_record("forward_queries", report.forward_queries / n, unit="per example", params=params, **context)
    bt_record("gradient_queries", report.gradient_queries / n, unit="per example", params=params, **context)
    bt_record("seconds", report.seconds / n, unit="s per example", params=params, **context)


def test_robust_accuracy(attack, model, dataset, bt_config, bt_record):
    attack = attack.at_budget(bt_config.budget)
    x, y = attack_subset(dataset.test, bt_config)
    eps_list = eps_sweep(bt_config.eps, dataset.info, attack.norm)
    reports = evaluate(attack, model, x, y, eps_list, bounds=dataset.info.bounds, seed=bt_config.seed,
                       batch_size=attack_batch_size(bt_config))
    for report in reports:
        record_report(bt_record, report)
    bt_record.series("robust_accuracy_vs_eps", [r.eps for r in reports], [r.robust_accuracy for r in reports],
                     x_label=f"eps ({attack.norm})", y_label="robust accuracy")
    for report in reports:
        assert report.robust_accuracy <= report.clean_accuracy, f"eps={report.eps}: robust exceeds clean accuracy"
        if report.eps == 0:
            changed = int((report.adversarial_correct != report.clean_correct).sum())
            assert changed == 0, f"eps=0 changed the correctness of {changed} of {report.n} examples"


def test_pgd_not_weaker_than_fgsm(model, dataset, bt_config, bt_host, bt_record):
    registry = bt_host.registry
    missing = {"pgd", "fgsm"} - set(registry.names("attacks"))
    if missing:
        pytest.skip(f"attack(s) {sorted(missing)} not loaded")
    x, y = attack_subset(dataset.test, bt_config)
    eps_list = [e for e in eps_sweep(bt_config.eps, dataset.info, "linf") if e > 0]
    runs = {
        name: evaluate(registry.create("attacks", name).at_budget(bt_config.budget), model, x, y, eps_list,
                       bounds=dataset.info.bounds, seed=bt_config.seed, batch_size=attack_batch_size(bt_config),
                       determinism_examples=0)
        for name in ("fgsm", "pgd")
    }
    for fgsm, pgd in zip(runs["fgsm"], runs["pgd"]):
        only_pgd_robust = int((pgd.robust_correct & ~fgsm.robust_correct).sum())
        only_fgsm_robust = int((fgsm.robust_correct & ~pgd.robust_correct).sum())
        bt_record("robust_accuracy_gap", pgd.robust_accuracy - fgsm.robust_accuracy, unit="pgd - fgsm",
                  params={"eps": pgd.eps}, kind="attacks", plugin="pgd")
        slack = PAIRED_Z * math.sqrt(only_pgd_robust + only_fgsm_robust)
        assert only_pgd_robust - only_fgsm_robust <= slack, (
            f"eps={pgd.eps}: PGD robust accuracy {pgd.robust_accuracy:.3f} > FGSM's {fgsm.robust_accuracy:.3f} "
            f"beyond sampling noise ({only_pgd_robust} points only PGD failed on, {only_fgsm_robust} only FGSM)")
