"""Plugins that hang, one way each (loaded with -p): the harness must stop every one of them.

``ZOO_AT_EPS`` picks when an attack misbehaves: unset, always; ``never``, never (it is then
a plain one-step signed-gradient attack, for baselines); a number, at that eps only.
"""

from __future__ import annotations

import os
import signal
import time

import torch
import torch.nn.functional as F

from benchtool import hookimpl
from benchtool.contracts.attack import Attack
from benchtool.contracts.nas import SearchStrategy
from benchtool.contracts.uncertainty import UncertaintyEstimator


def misbehaves(eps: float) -> bool:
    at = os.environ.get("ZOO_AT_EPS")
    return at is None or (at != "never" and abs(float(at) - eps) < 1e-12)


class SignedStep(Attack):
    """One signed-gradient step (FGSM, Goodfellow et al. 2015) where it behaves."""

    norm = "linf"

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        if misbehaves(eps):
            self.misbehave()
        x_req = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_req), y), x_req)
        return (x + eps * grad.sign()).clamp(*bounds).detach()

    def misbehave(self) -> None:
        raise NotImplementedError


class SleepsInPerturb(SignedStep):
    """``time.sleep`` inside perturb: a call the old harness waited on forever."""

    name = "hang-sleep"

    def misbehave(self) -> None:
        time.sleep(600)


class BlockedInNativeCode(SignedStep):
    """Stands for a native call that never returns and ignores signals: SIGALRM is masked
    in this thread, then it sleeps; only the hard stage (ending the process) stops it."""

    name = "hang-native"

    def misbehave(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(600)


class SpinsInSample(UncertaintyEstimator):
    """``while True`` inside sample."""

    name = "hang-spin"

    def fit(self, task):
        pass

    def sample(self, x):
        while True:
            pass


class SleepsInPropose(SearchStrategy):
    """Proposes three random architectures, then sleeps in propose (the search of seed 0 only)."""

    name = "hang-propose"

    def setup(self):
        self.count = 0

    def propose(self):
        self.count += 1
        if self.seed == 0 and self.count > 3:
            time.sleep(600)
        return self.space.draw(self.rng)

    def observe(self, trial, reward):
        pass


@hookimpl
def benchtool_register_attacks(registry):
    registry.add(SleepsInPerturb)
    registry.add(BlockedInNativeCode)


@hookimpl
def benchtool_register_estimators(registry):
    registry.add(SpinsInSample)


@hookimpl
def benchtool_register_strategies(registry):
    registry.add(SleepsInPropose)
