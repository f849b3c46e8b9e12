"""The model zoo (mlp, lenet, resnet20), the trainer and the checkpoint cache.

``trained_model`` is what the suites call: it returns a network trained once per machine
(cached by model, dataset, seed, recipe and version) or loaded from ``--bt-checkpoint``.
"""

from __future__ import annotations

from benchtool.models.checkpoints import CheckpointWarning, default_cache_dir
from benchtool.models.trained import trained_model
from benchtool.models.training import TrainHistory, TrainingError, evaluate, train

__all__ = [
    "CheckpointWarning",
    "TrainHistory",
    "TrainingError",
    "default_cache_dir",
    "evaluate",
    "train",
    "trained_model",
]
