"""Model contract: a model plugin builds a network for any dataset it supports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from torch import nn

from benchtool.contracts.data import DatasetInfo, Task


@dataclass(frozen=True)
class TrainRecipe:
    """A fixed, documented training recipe. Part of the checkpoint cache key."""

    epochs: int
    batch_size: int = 64
    optimizer: str = "adam"  # "adam" | "sgd"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "none"  # "none" | "cosine"
    augment: str = "none"  # "none" | "crop" | "crop-flip" (random 1/8-size shifts, horizontal flips)
    # adversarial training: "none", "fgsm-rs" (one signed-gradient step of 1.25 eps from a uniform
    # random start: Wong, Rice & Kolter, ICLR 2020) or "pgd" (``adversary_steps`` steps of
    # 2.5 eps / steps from a random start: Madry et al., ICLR 2018), Linf eps ``adversary_eps``
    adversary: str = "none"
    adversary_eps: float = 0.0
    adversary_steps: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The recipe's fields; the adversarial ones only when it trains adversarially, so the
        cache keys of the standard recipes stay what they were."""
        fields = asdict(self)
        if self.adversary == "none":
            for name in ("adversary", "adversary_eps", "adversary_steps"):
                fields.pop(name)
        return fields


@runtime_checkable
class RandomizedModel(Protocol):
    """A network whose output depends on randomness it draws itself (an input-randomization
    defense such as ``lenet-randomized``), drawn reproducibly. Under ``independent_draws(key)``
    its draws come from stream ``key``, independent of the default stream 0 that attacks see;
    the robustness harness judges adversarial examples under a key of its own, as a deployed
    defense draws afresh for every query (:func:`benchtool.harness.robustness.judging_draws`)."""

    def independent_draws(self, key: int) -> AbstractContextManager[None]: ...


class ModelSpec(ABC):
    """A model plugin: a named architecture that builds for a dataset's shape and classes."""

    name: ClassVar[str]
    tasks: ClassVar[frozenset[Task]] = frozenset({"classification"})
    # Whether the network may run with its 4-D weights in channels-last memory layout on a CPU
    # (values unchanged; oneDNN's channels-last convolutions are faster there). Off for plugins
    # unless they opt in: code that ``.view``s a weight would break on the new strides.
    channels_last_on_cpu: ClassVar[bool] = False

    def supports(self, info: DatasetInfo) -> bool:
        """Whether this architecture can be built for ``info`` (task, input rank)."""
        return info.task in self.tasks

    @abstractmethod
    def build(self, info: DatasetInfo) -> nn.Module:
        """A fresh, untrained network mapping inputs of ``info.input_shape`` to logits
        (classification) or predictions (regression)."""

    @abstractmethod
    def recipe(self, info: DatasetInfo, budget: str) -> TrainRecipe:
        """The training recipe for ``info`` at budget ``small | default | full``."""
