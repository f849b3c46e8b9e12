"""The test examples and eps the attack suites attack: a seeded subset, sized by the run
budget, and the eps sweep, thinned at ``small``."""

from __future__ import annotations

import torch

from benchtool.config import RunConfig
from benchtool.harness.robustness import eps_sweep
from benchtool.contracts.data import DatasetInfo, Split

# Goodfellow et al.'s MNIST eps (Linf, pixels in [0, 1]): the robustness claims read the largest eps <= it
HEADLINE_EPS = 0.25


def attack_indices(split: Split, config: RunConfig) -> torch.Tensor:
    """The indices in ``split`` of the ``pick(small=128, default=1000, full=all)`` test
    examples the attack suites attack, drawn at the run's seed: every cell of a run attacks
    the same ones, so per-example outcomes of different attacks line up."""
    size = config.pick(small=128, default=1000, full=len(split))
    return torch.randperm(len(split), generator=torch.Generator().manual_seed(config.seed))[:size]


def attack_subset(split: Split, config: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples of :func:`attack_indices`, on the run's device."""
    order = attack_indices(split, config)
    return split.x[order].to(config.device), split.y[order].to(config.device)


def attack_batch_size(config: RunConfig) -> int:
    """Examples per attack call: one call at ``small``, memory-safe batches otherwise."""
    return config.pick(small=256, default=500, full=500)


def attack_eps(config: RunConfig, info: DatasetInfo, norm: str) -> list[float]:
    """The eps an attack cell sweeps: ``--bt-eps`` when given, else the dataset's sweep for
    ``norm`` (:func:`~benchtool.harness.robustness.eps_sweep`). The small budget, a smoke
    test, keeps the sweep's first value (0) and the one its claims read: in Linf the largest
    eps <= HEADLINE_EPS of the input range (digits: 0.2), in another norm the sweep's middle
    value (digits L2: 0.5)."""
    sweep = eps_sweep(config.eps, info, norm)  # type: ignore[arg-type]
    if config.eps or config.budget != "small" or len(sweep) <= 2:
        return sweep
    low, high = info.bounds
    headline = [e for e in sweep[1:] if e <= HEADLINE_EPS * (high - low)] if norm == "linf" else []
    return [sweep[0], max(headline) if headline else sweep[len(sweep) // 2]]
