"""A tiny robustness suite for the store tests (copied to a temp dir as test_tiny.py).

A fixed linear classifier on 2-D points, attacked at several eps. ``TINY_INTERRUPT_AT=K``
with ``TINY_INTERRUPT=wait|sigterm`` stops the run inside case K: ``wait`` writes the file
``TINY_MARKER`` and sleeps (the test sends SIGINT), ``sigterm`` kills the process.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.bt(attacks=["tiny-attack"])
EPS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25)


def _interrupt(index: int) -> None:
    if os.environ.get("TINY_INTERRUPT_AT") != str(index):
        return
    if os.environ.get("TINY_INTERRUPT") == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    Path(os.environ["TINY_MARKER"]).write_text("inside the case")
    time.sleep(120)


def _problem() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(400, 2, generator=generator)
    y = (x[:, 1] > x[:, 0]).long()
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[5.0, -5.0], [-5.0, 5.0]]))
        model.bias.zero_()
    return model.eval(), x, y


@pytest.mark.parametrize("eps", EPS)
def test_robust_accuracy(attack, bt_record, eps: float) -> None:
    _interrupt(EPS.index(eps))
    model, x, y = _problem()
    outcome = attack(model, x, y, eps, bounds=(0.0, 1.0), seed=0)
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
        robust = float((model(outcome.x_adv).argmax(1) == y).float().mean())
    assert robust <= clean
    bt_record("clean_accuracy", clean)
    bt_record("robust_accuracy", robust, params={"eps": eps})
    bt_record.series("margin_histogram", [0.1, 0.3, 0.5], [0.5, 0.3, 0.2], x_label="margin", y_label="fraction")
