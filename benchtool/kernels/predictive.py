"""Statistics of T stochastic forward passes (MC dropout, ensembles, ...).

With ``probs[t, n, c]`` the class probabilities of pass t (Gal & Ghahramani 2016):
mean ``E_t[p]``, variance ``Var_t[p]`` (population, over T), entropy of the mean ``H[E_t p]``
(total uncertainty, nats), expected entropy ``E_t[H[p_t]]`` (aleatoric) and their difference,
the mutual information / BALD score (epistemic; Houlsby et al. 2011), clamped at 0.
Convention: 0 * log 0 = 0. Accuracy: within 1e-5 (absolute) of a float64 NumPy reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import benchtool.kernels._backends as _backends
from benchtool.kernels._arrays import ArrayKind, check_probabilities, check_rank, numel


@dataclass(frozen=True)
class PredictiveStats:
    """Per-sample predictive statistics, in the input's array kind, device and dtype."""

    mean: Any  # (N, C)
    variance: Any  # (N, C), over passes
    entropy: Any  # (N,), entropy of the mean: total uncertainty
    expected_entropy: Any  # (N,), mean per-pass entropy: aleatoric
    mutual_information: Any  # (N,), entropy - expected entropy, >= 0: epistemic (BALD)


def _stats(kind: ArrayKind, outputs: _backends.Outputs) -> PredictiveStats:
    return PredictiveStats(*(kind.wrap(o) for o in outputs))


def predictive_stats(probs: Any, *, validate: bool = True) -> PredictiveStats:
    """All five statistics of ``probs[T, N, C]`` (NumPy or torch, CPU or CUDA) in one read.

    ``validate`` checks rank, finiteness, non-negativity and row sums (raising ValueError
    naming the first bad (pass, sample)); on a CPU the checks ride along the kernel's one
    read of the input. Turn it off only where inputs are known good (the harness's hot loop).
    """
    kind = ArrayKind.of(probs, "probs")
    check_rank(probs, "probs", (3,), "(T, N, C)")
    if probs.shape[0] == 0:
        raise ValueError("probs has no passes: shape (0, N, C); expected T >= 1")
    if probs.shape[2] == 0:
        raise ValueError(f"probs needs at least one class; got shape {tuple(probs.shape)}")
    probs = kind.compute_array(probs, "probs")
    return _stats(kind, _backends.backend_for(kind, numel(probs)).fused(probs, kind, validate=validate))


def _nbytes(array: Any) -> int:
    return int(array.nbytes) if hasattr(array, "nbytes") else int(array.numel() * array.element_size())


class StreamingPredictive:
    """The statistics of :func:`predictive_stats`, fed one pass or a chunk of passes at a time.

    Float64 state (running mean and M2 per element, Welford 1962, updated with groups of
    passes as in Chan, Golub & LeVeque 1979): memory O(N*C) however many passes (on CPU, fed
    a pass at a time, up to 7 passes of a group wait in a ring buffer and are merged with the
    8th; fed chunks of 8 passes or more from the start, each chunk is merged as it comes). ``like``
    (an array or tensor) fixes the result kind, device and dtype; without it the first
    update does (later updates of another float dtype are converted to it).
    """

    def __init__(self, n: int, c: int, *, like: Any = None) -> None:
        if n < 0 or c < 1:
            raise ValueError(f"StreamingPredictive needs n >= 0 samples and c >= 1 classes; got n={n}, c={c}")
        self.n, self.c = n, c
        self._kind: ArrayKind | None = None
        self._state: _backends.PredictiveState | None = None
        if like is not None:
            self._start(ArrayKind.of(like, "like"))

    def _start(self, kind: ArrayKind) -> None:
        self._kind = kind
        self._state = _backends.backend_for(kind).new_state(self.n, self.c, kind)

    @property
    def count(self) -> int:
        """Passes accumulated so far."""
        return 0 if self._state is None else self._state.count

    @property
    def nbytes(self) -> int:
        """Bytes the accumulator holds: the float64 state plus, on CPU, a ring of 7 passes;
        the same for 10 passes or 10,000."""
        if self._state is None:
            return 0
        state = self._state
        arrays = (state.mean, state.m2, state.neg_plogp, state.ring)
        return sum(_nbytes(a) for a in arrays if a is not None)

    def update(self, probs: Any, *, validate: bool = True) -> None:
        """Add one pass ``(N, C)`` or a chunk of passes ``(t, N, C)``."""
        if self._kind is None:
            self._start(ArrayKind.of(probs, "probs"))
        assert self._kind is not None and self._state is not None
        check_rank(probs, "probs", (2, 3), "(N, C) or (t, N, C)")
        if tuple(probs.shape[-2:]) != (self.n, self.c):
            raise ValueError(f"probs has shape {tuple(probs.shape)}; expected (N, C) = ({self.n}, {self.c}) last")
        chunk = self._kind.compute_array(probs, "probs")
        if validate:
            check_probabilities(chunk, "probs")
        if chunk.ndim == 2:
            chunk = chunk[None]
        if chunk.shape[0]:
            _backends.backend_for(self._kind, numel(chunk)).update(self._state, chunk)

    def compute(self) -> PredictiveStats:
        """The statistics of every pass so far (the state is kept: more updates may follow)."""
        if self._state is None or self._state.count == 0 or self._kind is None:
            raise ValueError("StreamingPredictive.compute() before any pass was added; call update() first")
        backend = _backends.backend_for(self._kind, 2 * self.n * self.c)  # reads mean and M2
        return _stats(self._kind, backend.finalize(self._state, self._kind))

    def reset(self) -> None:
        """Forget every pass, keeping the result kind and the memory: reusing one accumulator
        for batch after batch saves allocating (and page-faulting) its state each time."""
        if self._kind is not None and self._state is not None:
            _backends.backend_for(self._kind).reset(self._state)
