"""A tiny suite (copied as test_tiny.py): 2 models x 4 noise levels = 8 cells, two groups
that share a trained model. Environment variables make a cell log its worker or kill it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.bt(models=["tiny-linear", "tiny-mlp"], datasets=["blobs"])


def _maybe_die(case: str) -> None:
    if os.environ.get("BENCHTOOL_TEST_KILL_ALWAYS") == case:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("BENCHTOOL_TEST_KILL_ONCE") == case:
        marker = Path(os.environ["BENCHTOOL_TEST_MARKERS"]) / case
        if not marker.exists():
            marker.write_text("killed once")
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("noise", [0.0, 0.5, 1.0, 2.0])
def test_noisy_accuracy(model, dataset, noise, bt_record, bt_config, bt_case):
    log = os.environ.get("BENCHTOOL_TEST_CELL_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(f"{bt_case.model} {os.environ.get('PYTEST_XDIST_WORKER', 'main')} {os.getpid()}\n")
    _maybe_die(bt_case.case)
    gen = torch.Generator().manual_seed(bt_config.seed + int(noise * 10))
    x = dataset.test.x + noise * torch.randn(dataset.test.x.shape, generator=gen)
    with torch.no_grad():
        for _ in range(int(os.environ.get("BENCHTOOL_TEST_WORK", "0"))):  # extra per-cell work for the benchmark
            model(x.repeat(64, 1).to(bt_config.device))
        accuracy = (model(x.to(bt_config.device)).argmax(1).cpu() == dataset.test.y).float().mean().item()
    assert next(model.parameters()).device.type == bt_config.device.type
    bt_record("accuracy", accuracy, params={"noise": noise})
