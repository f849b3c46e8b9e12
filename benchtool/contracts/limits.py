"""Contracts of the limits suites: multi-task loss weightings and target functions.

As with attacks (foolbox 3), the base class owns the public call and checks what the
plugin returns; the plugin implements one narrow method.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, final

import torch

from benchtool.contracts._guard import guard
from benchtool.contracts._params import BudgetedHyperParams, merge_hyperparams
from benchtool.contracts._renamed import Renamed
from benchtool.contracts._state import verify_untouched
from benchtool.errors import ContractViolation

TaskKind = Literal["classification", "regression"]
TASK_KINDS: tuple[str, ...] = ("classification", "regression")


@dataclass(frozen=True)
class TaskSpec:
    """One task of a multi-task problem: its name and whether its loss is a regression
    (Gaussian likelihood) or a classification (softmax likelihood) loss."""

    name: str
    kind: TaskKind

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task {self.name!r}: kind {self.kind!r} is not one of {TASK_KINDS}")


class LossWeighting(BudgetedHyperParams, ABC):
    """A multi-task loss-weighting scheme: turns the vector of per-task losses into the one
    scalar the optimizer minimizes.

    The harness calls :meth:`start` once with the tasks, adds :meth:`parameters` (learned
    weights, log-variances, ...) to the optimizer, calls :meth:`total_loss` every step and
    :meth:`finish_step` (the plugin's :meth:`after_step`) after every optimizer step; each
    call into the plugin runs under the harness's guard (a time limit, exceptions that name
    the plugin). Hyper-parameter ``lr``, where a scheme declares it, is the learning rate of
    the scheme's own parameters (see :meth:`parameter_groups`); otherwise they share the
    network's.
    """

    kind_label: ClassVar[str] = "loss weighting"
    # Whether ``combine`` differentiates against ``shared`` (GradNorm). The harness trains several
    # networks as one batched pass; such a scheme's networks train one at a time instead, since
    # each gradient it takes would run through every network batched beside its own. A scheme
    # that does and says not is only slower, not wrong.
    differentiates_shared: ClassVar[bool] = False

    def __init__(self, **hyperparams: Any) -> None:
        super().__init__(**hyperparams)
        self.tasks: tuple[TaskSpec, ...] = ()

    # --- what a plugin implements ---------------------------------------------------

    def build(self, tasks: Sequence[TaskSpec], device: torch.device) -> None:
        """Create the scheme's state for these tasks (learned parameters on ``device``)."""

    def parameters(self) -> list[torch.Tensor]:
        """Learned tensors the optimizer updates (none for a fixed scheme)."""
        return []

    @abstractmethod
    def combine(self, losses: torch.Tensor, shared: Sequence[torch.Tensor]) -> torch.Tensor:
        """The scalar objective from the per-task losses ``losses[K]`` (in ``self.tasks``
        order). ``shared`` are the last shared layer's parameters, for schemes that look at
        per-task gradients (GradNorm)."""

    @abstractmethod
    def task_weights(self) -> torch.Tensor:
        """The current multiplier of each task's loss in the objective, shape ``(K,)``."""

    def after_step(self) -> None:
        """Called after each optimizer step (GradNorm renormalizes its weights here)."""

    def extras(self) -> dict[str, float]:
        """Further named figures to record (``sigma/<task>`` for uncertainty weighting)."""
        return {}

    @classmethod
    def variants(cls, tasks: Sequence[TaskSpec]) -> list[dict[str, Any]]:
        """Hyper-parameter settings a suite should try and select from on validation data
        (a hand-tuning grid); a scheme without one is run once with its defaults."""
        return [{}]

    # --- what the harness calls -----------------------------------------------------

    @final
    def start(self, tasks: Sequence[TaskSpec], device: torch.device | str = "cpu") -> None:
        """Bind the scheme to its tasks; a second call starts it afresh."""
        tasks = tuple(tasks)
        if not tasks:
            raise ValueError(f"loss weighting {self.name!r}: needs at least one task")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"loss weighting {self.name!r}: task names must be unique, got {names}")
        self.tasks = tasks
        with guard(self.name, "loss_weightings", "build"):
            self.build(tasks, torch.device(device))

    @final
    def parameter_groups(self, network_lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups for the scheme's own parameters (empty if it has none)."""
        with guard(self.name, "loss_weightings", "parameters"):
            params = self.parameters()
        if not params:
            return []
        return [{"params": params, "lr": float(self.params.get("lr", network_lr))}]

    @final
    def total_loss(self, losses: torch.Tensor, shared: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """The checked objective: a finite scalar that carries gradient to the losses."""
        self._require_started()
        if losses.ndim != 1 or len(losses) != len(self.tasks):
            raise ValueError(
                f"loss weighting {self.name!r}: expected {len(self.tasks)} task losses, got shape {tuple(losses.shape)}"
            )
        original = losses.detach().clone()
        with guard(self.name, "loss_weightings", "combine"):
            total = self.combine(losses, tuple(shared))
        verify_untouched(self.name, original, losses.detach(), "losses")
        if not isinstance(total, torch.Tensor):
            raise ContractViolation(self.name, "output-type",
                                    f"combine returned {type(total).__name__}, expected a Tensor")
        if total.numel() != 1:
            raise ContractViolation(self.name, "output-scalar", f"combine returned shape {tuple(total.shape)}")
        if not torch.isfinite(total).all():
            raise ContractViolation(self.name, "output-finite", f"combine returned {float(total)}")
        if losses.requires_grad and not total.requires_grad:
            raise ContractViolation(self.name, "output-differentiable", "the objective carries no gradient")
        return total.reshape(())

    @final
    def weights(self) -> dict[str, float]:
        """The checked current weight of each task, by task name."""
        self._require_started()
        with guard(self.name, "loss_weightings", "task_weights"):
            values = self.task_weights()
        if not isinstance(values, torch.Tensor) or values.shape != (len(self.tasks),):
            shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise ContractViolation(self.name, "weights-shape",
                                    f"task_weights gave {shape}, expected ({len(self.tasks)},)")
        out = [float(v) for v in values.detach().cpu()]
        if any(not math.isfinite(v) or v < 0 for v in out):
            raise ContractViolation(self.name, "weights-valid", f"task weights must be finite and >= 0, got {out}")
        return {task.name: value for task, value in zip(self.tasks, out)}

    @final
    def state(self) -> dict[str, float]:
        """Everything worth recording now: ``weight/<task>`` plus the scheme's extras."""
        weights = {f"weight/{name}": value for name, value in self.weights().items()}
        with guard(self.name, "loss_weightings", "extras"):
            return {**weights, **self.extras()}

    @final
    def finish_step(self) -> None:
        """After each optimizer step: the plugin's :meth:`after_step`, under the guard."""
        with guard(self.name, "loss_weightings", "after_step"):
            self.after_step()

    setup = Renamed("start")  # the harness verb's old name; a strategy's setup is a plugin verb

    def _require_started(self) -> None:
        if not self.tasks:
            raise ContractViolation(self.name, "start-before-use", "used before start(tasks)")


class TargetFunction(ABC):
    """A continuous function on a box, for the universal-approximation suite.

    ``domain`` is the box the networks are trained on, one ``(low, high)`` per input
    dimension; the suite also measures the fit outside it. The plugin implements
    :meth:`evaluate` on a batch ``x[N, dim]``; calling the object checks the result.
    """

    name: ClassVar[str]
    domain: ClassVar[tuple[tuple[float, float], ...]]
    smooth: ClassVar[bool] = True  # infinitely differentiable on the domain (documentation)
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **hyperparams: Any) -> None:
        self.params: dict[str, Any] = merge_hyperparams("target function", self.name, self.defaults, hyperparams)

    @property
    def dim(self) -> int:
        return len(self.domain)

    @abstractmethod
    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) for each row of ``x[N, dim]``, shape ``(N,)``; must not modify ``x``."""

    @final
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"target function {self.name!r}: expected inputs of shape (N, {self.dim}), "
                             f"got {tuple(x.shape)}")
        original = x.detach().clone()
        with guard(self.name, "target_functions", "evaluate"):
            y = self.evaluate(x)
        verify_untouched(self.name, original, x)
        if not isinstance(y, torch.Tensor):
            raise ContractViolation(self.name, "output-type",
                                    f"evaluate returned {type(y).__name__}, expected a Tensor")
        if y.shape != (len(x),):
            raise ContractViolation(self.name, "output-shape", f"got shape {tuple(y.shape)}, expected ({len(x)},)")
        if not torch.isfinite(y).all():
            raise ContractViolation(self.name, "output-finite", "f(x) contains NaN or inf")
        return y
