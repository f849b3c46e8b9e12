"""Uncertainty-estimator contract: ``fit(task)`` and ``sample(x)``; the harness owns
``predict`` (seeding, validation, and the statistics through :mod:`benchtool.kernels`)."""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, final

import torch
from torch import nn

from benchtool.contracts._guard import guard
from benchtool.contracts._params import merge_hyperparams
from benchtool.contracts._state import ModelSnapshot, verify_untouched
from benchtool.contracts.data import DatasetInfo, Split, Task
from benchtool.contracts.model import TrainRecipe
from benchtool.errors import ContractViolation

PROB_SUM_TOLERANCE = 1e-4
# examples per ``sample`` call of ``predict`` and per ``score`` call of ``own_score``: a
# pass's activations (and a chunk of passes) take memory in proportion to this, not to N
# (Fashion-MNIST's 88k shifted images at once held 4.7 GB)
PREDICT_BATCH = 1024
_NO_MORE_PASSES = object()


@dataclass
class EstimationTask:
    """Everything an estimator may use to fit. The test split is deliberately absent."""

    info: DatasetInfo
    train: Split
    val: Split
    model: nn.Module  # a trained base network, in eval mode; leave it as given
    model_name: str
    train_member: Callable[[int], nn.Module]  # a fresh network of the same spec trained with that seed
    device: torch.device
    seed: int
    num_samples: int  # T, the number of stochastic passes the budget allows
    budget: str
    # a fresh, untrained network of the model's spec with that many outputs (logits or
    # regression outputs), for estimators that train their own head (heteroscedastic)
    build_network: Callable[[int], nn.Module] | None = None
    recipe: TrainRecipe | None = None  # the model's training recipe at this budget
    # a network cache for estimators that train their own: ``own_network(trains, build, train)``
    # returns ``train(build())``, trained once per machine for the task's model, dataset, seed
    # and recipe and what ``trains`` (a JSON-able dict: the estimator's name and
    # hyper-parameters) says; None: no cache (train every time)
    own_network: Callable[[dict[str, Any], Callable[[], nn.Module], Callable[[nn.Module], nn.Module]],
                          nn.Module] | None = None


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators for a block and restore them afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class UncertaintyEstimator(ABC):
    """An uncertainty estimator. ``sample`` returns T stochastic predictions.

    Classification: probabilities of shape ``(T, N, C)``, or an iterable of ``(t, N, C)``
    chunks so T passes never have to be stored. Regression: a pair ``(mean, variance)`` of
    shape ``(T, N, D)`` each (variance zero for models without aleatoric output), or an
    iterable of such pairs.

    Randomness: ``fit`` runs with torch's global generators seeded from ``task.seed`` and
    ``sample`` from ``predict``'s ``seed`` (the harness forks and restores them); draw from
    those, or from a ``torch.Generator`` / NumPy ``Generator`` seeded from ``task.seed``,
    never from an unseeded source, the clock or NumPy's legacy global RNG. Work fanned out
    through :func:`benchtool.executors.cell_executor` (ensemble members) runs in other
    processes: each call must seed itself from its arguments (e.g. ``task.seed + i``). Leave
    torch's thread count, deterministic flags and default dtype as found (rule
    ``global-state-unchanged``).
    """

    name: ClassVar[str]
    tasks: ClassVar[frozenset[Task]] = frozenset({"classification"})
    defaults: ClassVar[dict[str, Any]] = {}
    # Optional: the name of the estimator's own OOD score (a feature density, a Dirichlet's
    # K / S), spelt like a metric suffix ("feature-density"); an estimator that sets it
    # implements :meth:`score`, which the harness calls through :meth:`own_score`.
    score_name: ClassVar[str | None] = None

    def __init__(self, **hyperparams: Any) -> None:
        self.params: dict[str, Any] = merge_hyperparams("estimator", self.name, self.defaults, hyperparams)
        self.task: EstimationTask | None = None

    @abstractmethod
    def fit(self, task: EstimationTask) -> None:
        """Prepare to predict (train members, calibrate on ``task.val``, ...)."""

    @abstractmethod
    def sample(self, x: torch.Tensor) -> Any:
        """Stochastic predictions for ``x`` (see the class docstring for shapes)."""

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Optional: the estimator's own OOD score for ``x``, shape ``(N,)``, higher = more
        likely out of distribution (e.g. DDU's negative log feature density). Implement it
        together with ``score_name``; the suite then records its OOD AUROC beside those of
        the scores every estimator has (max-prob, entropy, mutual information)."""
        raise NotImplementedError(f"estimator {self.name!r} declares no score of its own (score_name is None)")

    @final
    def fit_checked(self, task: EstimationTask) -> None:
        """Fit under the task's seed and the harness's guard (a time limit; an exception names
        the plugin), then prove the base model was left as given (else it is restored)."""
        if task.info.task not in self.tasks:
            raise ContractViolation(self.name, "task-support", f"does not support {task.info.task!r} tasks")
        snapshot = ModelSnapshot.take(task.model)
        try:
            with seeded(task.seed, task.device), guard(self.name, "estimators", "fit"):
                self.fit(task)
        finally:
            changed = _restore_if_changed(snapshot, task.model, self.name)
        if changed is not None:
            raise changed
        self.task = task

    @final
    def predict(self, x: torch.Tensor, *, seed: int = 0) -> Any:
        """Seeded sampling, validated, reduced by the streaming kernels, over batches of
        :data:`PREDICT_BATCH` examples (one ``sample`` call each, in order, drawing from one
        seeded stream; the whole call within one time limit).

        Returns :class:`benchtool.kernels.PredictiveStats` (classification) or
        :class:`benchtool.kernels.RegressionMoments` (regression), on ``x``'s device.
        """
        from benchtool import kernels

        with self._plugin_call("predict", x, seed) as task:
            started = time.monotonic()
            if task.info.task == "classification":
                reduce, width = self._reduce_classification, task.info.num_classes or 0
            else:
                reduce, width = self._reduce_regression, task.info.output_dim
            parts = [reduce(self._guarded_passes(part, started), len(part), width, kernels)
                     for part in (x.split(PREDICT_BATCH) or (x,))]
            return parts[0] if len(parts) == 1 else joined(parts)

    @final
    def own_score(self, x: torch.Tensor, *, seed: int = 0) -> torch.Tensor | None:
        """The estimator's own OOD score for ``x`` (``(N,)``, finite, higher = more OOD,
        on ``x``'s device), seeded, guarded and validated like :meth:`predict`, over the same
        batches; ``None`` when the estimator declares no ``score_name``."""
        if type(self).score_name is None:
            return None
        with self._plugin_call("own_score", x, seed) as task:
            started = time.monotonic()
            parts = []
            for part in x.split(PREDICT_BATCH) or (x,):
                with guard(self.name, "estimators", "score", spent=time.monotonic() - started):
                    out = self.score(part)
                parts.append(self._check_score(out, len(part), task))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _check_score(self, out: Any, n: int, task: EstimationTask) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise ContractViolation(self.name, "output-type", f"score is {type(out).__name__}, expected a Tensor")
        if tuple(out.shape) != (n,):
            raise ContractViolation(self.name, "output-shape", f"score has shape {tuple(out.shape)}, expected ({n},)")
        if out.device.type != task.device.type:
            raise ContractViolation(self.name, "output-device", f"score on {out.device}, expected {task.device}")
        if not torch.isfinite(out).all():
            raise ContractViolation(self.name, "output-finite", "score contains NaN or inf")
        return out

    @contextmanager
    def _plugin_call(self, what: str, x: torch.Tensor, seed: int) -> Iterator[EstimationTask]:
        """The frame of a call that reads the fitted model: seeded, without gradients; the
        model is restored if the plugin changed it (then ``model-unchanged`` is raised) and
        ``x`` must come back untouched."""
        if self.task is None:
            raise ContractViolation(self.name, "fit-before-predict", f"{what} called before fit_checked")
        task = self.task
        snapshot = ModelSnapshot.take(task.model)
        x_original = x.detach().clone()
        try:
            with seeded(seed, task.device), torch.no_grad():
                yield task
        finally:
            changed = _restore_if_changed(snapshot, task.model, self.name)
        verify_untouched(self.name, x_original, x)
        if changed is not None:
            raise changed

    def _guarded_passes(self, x: torch.Tensor, started: float) -> Iterator[Any]:
        """The plugin's chunks: ``sample`` and each ``next`` of a lazy iterator run under the
        guard, all within one time limit from ``started`` (so an endless stream of chunks
        ends too); an exception of the harness's reduction in between is not the plugin's."""
        with guard(self.name, "estimators", "sample", spent=time.monotonic() - started):
            out = self.sample(x)
            if not isinstance(out, (torch.Tensor, tuple)):
                out = iter(out)
        if isinstance(out, (torch.Tensor, tuple)):
            yield out
            return
        while True:
            with guard(self.name, "estimators", "sample", spent=time.monotonic() - started):
                chunk = next(out, _NO_MORE_PASSES)
            if chunk is _NO_MORE_PASSES:
                return
            yield chunk

    def _reduce_classification(self, chunks: Iterable[Any], n: int, c: int, kernels: Any) -> Any:
        acc = None
        for chunk in chunks:
            chunk = self._check_chunk(chunk, n, c, "probabilities")
            if float(chunk.min()) < 0 or float((chunk.sum(-1) - 1).abs().max()) > PROB_SUM_TOLERANCE:
                raise ContractViolation(
                    self.name, "probabilities-valid", "sampled rows must be >= 0 and sum to 1 (within 1e-4)"
                )
            if acc is None:
                acc = kernels.StreamingPredictive(n, c, like=chunk)
            acc.update(chunk, validate=False)
        if acc is None:
            raise ContractViolation(self.name, "output-nonempty", "sample returned no passes")
        return acc.compute()

    def _reduce_regression(self, chunks: Iterable[Any], n: int, d: int, kernels: Any) -> Any:
        means, variances = [], []
        for chunk in chunks:
            if not (isinstance(chunk, tuple) and len(chunk) == 2):
                raise ContractViolation(self.name, "output-type", "regression sample must yield (mean, variance) pairs")
            means.append(self._check_chunk(chunk[0], n, d, "mean"))
            var = self._check_chunk(chunk[1], n, d, "variance")
            if float(var.min()) < 0:
                raise ContractViolation(self.name, "variance-valid", "predicted variances must be >= 0")
            variances.append(var)
        if not means:
            raise ContractViolation(self.name, "output-nonempty", "sample returned no passes")
        return kernels.regression_moments(torch.cat(means), torch.cat(variances))

    def _check_chunk(self, chunk: Any, n: int, width: int, what: str) -> torch.Tensor:
        if not isinstance(chunk, torch.Tensor):
            raise ContractViolation(self.name, "output-type", f"{what} is {type(chunk).__name__}, expected a Tensor")
        if chunk.ndim != 3 or chunk.shape[1] != n or chunk.shape[2] != width:
            raise ContractViolation(
                self.name, "output-shape", f"{what} has shape {tuple(chunk.shape)}, expected (T, {n}, {width})"
            )
        if self.task is not None and chunk.device != self.task.device and chunk.device.type != self.task.device.type:
            raise ContractViolation(self.name, "output-device", f"{what} on {chunk.device}, expected {self.task.device}")
        if not torch.isfinite(chunk).all():
            raise ContractViolation(self.name, "output-finite", f"{what} contains NaN or inf")
        return chunk


def joined(parts: list[Any]) -> Any:
    """Per-example statistics of consecutive batches (``PredictiveStats`` or
    ``RegressionMoments`` of torch tensors) joined along the example axis."""
    first = parts[0]
    return type(first)(*(torch.cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(first)))


def _restore_if_changed(snapshot: ModelSnapshot, model: nn.Module, plugin: str) -> ContractViolation | None:
    """The plugin's ``model-unchanged`` failure if it changed the model, which is put back."""
    changed = snapshot.violation(model, plugin)
    if changed is not None:
        snapshot.restore(model)
    return changed
