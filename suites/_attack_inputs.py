"""The test examples the attack suites attack: a seeded subset, sized by the run budget."""

from __future__ import annotations

import torch

from benchtool.config import RunConfig
from benchtool.contracts.data import Split


def attack_subset(split: Split, config: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``pick(small=128, default=1000, full=all)`` test examples, drawn at the run's seed,
    on the run's device."""
    size = config.pick(small=128, default=1000, full=len(split))
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(config.seed))[:size]
    return split.x[order].to(config.device), split.y[order].to(config.device)


def attack_batch_size(config: RunConfig) -> int:
    """Examples per attack call: one call at ``small``, memory-safe batches otherwise."""
    return config.pick(small=256, default=500, full=500)
