"""Plugins that raise, run out of memory, or leave something on the shared model (loaded
with -p). The hook attack is the poisoner of issue 15: it passed its own cell and broke the
cells after it, whose errors blamed other plugins."""

from __future__ import annotations

import torch
from hang_plugins import SignedStep

from benchtool import hookimpl
from benchtool.contracts.uncertainty import UncertaintyEstimator


class LeavesAForwardHook(SignedStep):
    """Registers a forward hook that detaches every linear layer's output, and keeps it."""

    name = "poison-hook"

    def misbehave(self) -> None:
        pass

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        x_adv = super().perturb(model, x, y, eps, bounds=bounds, generator=generator, targeted=targeted)
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(lambda _module, _inputs, output: output.detach())
        return x_adv


class RaisesInPerturb(SignedStep):
    name = "raises-perturb"

    def misbehave(self) -> None:
        raise RuntimeError("this attack always crashes")


class OutOfMemoryInPerturb(SignedStep):
    """Asks the CPU allocator for 256 TiB."""

    name = "oom-perturb"

    def misbehave(self) -> None:
        torch.empty(2**48, dtype=torch.uint8)


class RaisesInFit(UncertaintyEstimator):
    name = "raises-fit"

    def fit(self, task):
        raise RuntimeError("this estimator always crashes")

    def sample(self, x):
        raise AssertionError("never sampled")


@hookimpl
def benchtool_register_attacks(registry):
    for cls in (LeavesAForwardHook, RaisesInPerturb, OutOfMemoryInPerturb):
        registry.add(cls)


@hookimpl
def benchtool_register_estimators(registry):
    registry.add(RaisesInFit)
