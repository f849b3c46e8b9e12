"""The three places the predictive statistics run, behind one small interface.

- ``cpu``: numba CPU kernels on NumPy arrays (torch CPU tensors are viewed, not copied);
- ``cuda-numba``: numba.cuda kernels on CUDA tensors through ``__cuda_array_interface__``;
- ``cuda-torch``: fused torch ops on the tensor's device, used when numba.cuda cannot run
  (no driver it supports, no NVVM), when ``BENCHTOOL_CUDA_KERNELS=torch`` asks for it, and
  under ``auto`` for calls smaller than ``NUMBA_CUDA_MIN_ELEMENTS``: there numba's per-call
  host overhead (argument typing, array views) costs more than the few extra reads of torch's
  ops, so torch is faster in wall time (measured with ``scripts/bench_kernels.py --device cuda``).

Each backend computes ``fused(probs)`` and the streaming ``new_state``/``update``/``finalize``
with the same float64 state (count, mean and M2 per element, -sum p log p per row).
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

import benchtool.kernels._cpu as _cpu
from benchtool.kernels._arrays import ROW_SUM_ATOL, ArrayKind, check_probabilities, raise_invalid_row

Outputs = tuple[Any, Any, Any, Any, Any]  # mean, variance, entropy, expected entropy, MI
CUDA_KERNELS_ENV = "BENCHTOOL_CUDA_KERNELS"  # auto | numba | torch
# Under auto, calls reading fewer elements than this take the torch path: the wall-time
# crossover of the two paths on an H200 (see the note of issue 19 for the sweep).
NUMBA_CUDA_MIN_ELEMENTS = 1 << 26


@dataclass
class PredictiveState:
    """Float64 streaming state: memory O(N*C) whatever the number of passes."""

    count: int  # passes added
    mean: Any  # (N, C)
    m2: Any  # (N, C): sum of squared deviations from the running mean
    neg_plogp: Any  # (N,): -sum over passes and classes of p*log(p)
    ring: Any = None  # CPU: ((FOLD_EVERY-1)*N*C,) copies of each block's not yet merged passes
    spread: bool = True  # CPU: blocks' groups offset (fed a pass at a time) or aligned (fed chunks)


class Backend(Protocol):
    name: str

    def fused(self, probs: Any, kind: ArrayKind, *, validate: bool = False) -> Outputs:
        """The statistics; with ``validate`` a probs that is not T*N distributions raises
        ValueError naming the first bad row (before or after computing, per backend)."""

    def new_state(self, n: int, c: int, kind: ArrayKind) -> PredictiveState: ...

    def update(self, state: PredictiveState, chunk: Any) -> None: ...

    def reset(self, state: PredictiveState) -> None: ...

    def finalize(self, state: PredictiveState, kind: ArrayKind) -> Outputs: ...


def _outputs(kind: ArrayKind, n: int, c: int) -> Outputs:
    return kind.empty((n, c)), kind.empty((n, c)), kind.empty((n,)), kind.empty((n,)), kind.empty((n,))


class CpuBackend:
    """numba ``parallel=True`` kernels; each pass is read once, whether fused or streamed."""

    name = "cpu"

    def fused(self, probs: np.ndarray, kind: ArrayKind, *, validate: bool = False) -> Outputs:
        """Validation rides along the kernel's one read of the input (see
        :func:`benchtool.kernels._cpu.fused_predictive`); the error is raised after it."""
        t, n, c = probs.shape
        outs = _outputs(kind, n, c)
        atol = ROW_SUM_ATOL if validate else -1.0
        with _cpu.threads_for(probs.size):
            found = _cpu.fused_predictive(probs.reshape(-1), t, n, c, atol, *(o.reshape(-1) for o in outs))
        bad = found[found[:, 0] != _cpu.VALID]
        if len(bad):
            code, row, value = bad[np.argmin(bad[:, 1])]
            raise_invalid_row(int(code), int(row), float(value), probs.shape, "probs")
        return outs

    def new_state(self, n: int, c: int, kind: ArrayKind) -> PredictiveState:
        """Everything but the row sums starts uninitialised: the kernels write each array
        before reading it, so its pages are touched once (a zeroed array that is then
        read-modify-written faults twice)."""
        return PredictiveState(
            0, np.empty((n, c)), np.empty((n, c)), np.zeros(n),
            ring=np.empty((_cpu.FOLD_EVERY - 1) * n * c, kind.dtype),
        )

    def update(self, state: PredictiveState, chunk: np.ndarray) -> None:
        """Add passes; each block of elements merges its groups of FOLD_EVERY passes into the
        float64 state. A stream whose first chunk had FOLD_EVERY passes or more merges every
        chunk's passes at once; one fed fewer keeps a group's earlier passes in the ring (see
        :func:`benchtool.kernels._cpu.streaming_update`)."""
        t, n, c = chunk.shape
        chunk = chunk.astype(state.ring.dtype, copy=False)
        if state.count == 0:  # the first chunk sets how passes are grouped: per chunk, or spread over calls
            state.spread = t < _cpu.FOLD_EVERY
        with _cpu.threads_for(chunk.size):
            _cpu.streaming_update(
                chunk.reshape(-1), t, n, c, state.count, state.ring,
                state.mean.reshape(-1), state.m2.reshape(-1), state.neg_plogp, state.spread,
            )
        state.count += t

    def reset(self, state: PredictiveState) -> None:
        """Forget every pass but keep the arrays (already faulted in): only the row sums are
        read before they are written."""
        state.count = 0
        state.neg_plogp.fill(0.0)

    def finalize(self, state: PredictiveState, kind: ArrayKind) -> Outputs:
        n, c = state.mean.shape
        outs = _outputs(kind, n, c)
        with _cpu.threads_for(state.mean.size):
            _cpu.streaming_finalize(
                state.count, n, c, state.ring, state.mean.reshape(-1), state.m2.reshape(-1),
                state.neg_plogp, state.spread, *(o.reshape(-1) for o in outs),
            )
        return outs


class _TensorState:
    """Streaming state as zeroed float64 tensors on the input's torch device."""

    def new_state(self, n: int, c: int, kind: ArrayKind) -> PredictiveState:
        import torch

        def zeros(*shape: int) -> Any:
            return torch.zeros(shape, dtype=torch.float64, device=kind.torch_device)

        return PredictiveState(0, zeros(n, c), zeros(n, c), zeros(n))

    def reset(self, state: PredictiveState) -> None:
        state.count = 0
        for tensor in (state.mean, state.m2, state.neg_plogp):
            tensor.zero_()


class NumbaCudaBackend(_TensorState):
    """numba.cuda kernels on CUDA tensors, launched on torch's current stream."""

    name = "cuda-numba"

    @staticmethod
    def _launch_env(x: Any) -> tuple[Any, Any, Any]:
        import torch
        from numba import cuda

        import benchtool.kernels._cuda as _cuda

        stream = _numba_stream(torch.cuda.current_stream(x.device).cuda_stream)
        return _cuda, functools.partial(cuda.as_cuda_array, sync=False), stream

    def fused(self, probs: Any, kind: ArrayKind, *, validate: bool = False) -> Outputs:
        from numba import cuda

        if validate:
            check_probabilities(probs, "probs")
        kernels, view, stream = self._launch_env(probs)
        _, n, c = probs.shape
        outs = _outputs(kind, n, c)
        with cuda.gpus[probs.device.index or 0]:
            kernels.fused(
                view(probs), tuple(view(o) for o in outs), view(kind.zeros((n,))), view(kind.zeros((n,))), stream
            )
        return outs

    def update(self, state: PredictiveState, chunk: Any) -> None:
        from numba import cuda

        kernels, view, stream = self._launch_env(chunk)
        with cuda.gpus[chunk.device.index or 0]:
            kernels.update(view(chunk), state.count, view(state.mean), view(state.m2), view(state.neg_plogp), stream)
        state.count += chunk.shape[0]

    def finalize(self, state: PredictiveState, kind: ArrayKind) -> Outputs:
        from numba import cuda

        kernels, view, stream = self._launch_env(state.mean)
        n, c = state.mean.shape
        outs = _outputs(kind, n, c)
        with cuda.gpus[state.mean.device.index or 0]:
            kernels.finalize(
                state.count, view(state.mean), view(state.m2), view(state.neg_plogp),
                tuple(view(o) for o in outs), view(kind.zeros((n,))), stream,
            )
        return outs


class TorchBackend(_TensorState):
    """Torch ops on the tensor's device: per chunk of passes one Welford ``var_mean`` and one
    ``xlogy`` sum, merged into the float64 state (Chan, Golub & LeVeque 1979).

    Runs on any torch device, so the tests exercise it on CPU tensors too.
    """

    name = "cuda-torch"
    chunk_elements = 1 << 24  # bounds the xlogy temporary: 64 MiB of float32 per chunk

    def fused(self, probs: Any, kind: ArrayKind, *, validate: bool = False) -> Outputs:
        if validate:
            check_probabilities(probs, "probs")
        t, n, c = probs.shape
        state = self.new_state(n, c, kind)
        step = max(1, self.chunk_elements // max(1, n * c))
        for start in range(0, t, step):
            self.update(state, probs[start : start + step])
        return self.finalize(state, kind)

    def update(self, state: PredictiveState, chunk: Any) -> None:
        import torch

        t = chunk.shape[0]
        chunk_var, chunk_mean = torch.var_mean(chunk, dim=0, correction=0)
        total = state.count + t
        delta = chunk_mean.to(torch.float64) - state.mean
        state.mean += delta * (t / total)
        state.m2 += chunk_var.to(torch.float64) * t + delta.square_() * (state.count * t / total)
        state.neg_plogp -= torch.special.xlogy(chunk, chunk).sum((0, 2), dtype=torch.float64)
        state.count = total

    def finalize(self, state: PredictiveState, kind: ArrayKind) -> Outputs:
        import torch

        entropy = -torch.special.xlogy(state.mean, state.mean).sum(-1)
        expected = state.neg_plogp / state.count
        dtype = getattr(torch, kind.dtype.name)
        return (
            state.mean.to(dtype),
            (state.m2 / state.count).to(dtype),
            entropy.to(dtype),
            expected.to(dtype),
            (entropy - expected).clamp_(min=0).to(dtype),
        )


@functools.lru_cache(maxsize=16)
def _numba_stream(handle: int) -> Any:
    """numba's wrapper of a torch stream, made once per stream (it costs a driver query)."""
    from numba import cuda

    return cuda.external_stream(handle)


CPU = CpuBackend()
NUMBA_CUDA = NumbaCudaBackend()
TORCH = TorchBackend()


def backend_for(kind: ArrayKind, elements: int | None = None) -> Backend:
    """The backend for an array kind and a call that reads ``elements`` values (None: size not
    known); CUDA honours ``BENCHTOOL_CUDA_KERNELS``. Every CUDA backend keeps the same state,
    so the calls of one stream of passes may take different paths."""
    if not kind.on_cuda:
        return CPU
    choice = os.environ.get(CUDA_KERNELS_ENV, "auto")
    if choice not in ("auto", "numba", "torch"):
        raise ValueError(f"{CUDA_KERNELS_ENV}={choice!r}; expected one of: auto, numba, torch")
    if choice == "torch" or (choice == "auto" and elements is not None and elements < NUMBA_CUDA_MIN_ELEMENTS):
        return TORCH
    problem = numba_cuda_problem()
    if problem is None:
        return NUMBA_CUDA
    if choice == "numba":
        raise RuntimeError(f"{CUDA_KERNELS_ENV}=numba but numba.cuda cannot run here: {problem}")
    return TORCH


@functools.cache
def numba_cuda_problem() -> str | None:
    """Why numba.cuda cannot run the kernels here (None when it can): probed once per process."""
    reason = _probe_numba_cuda()
    if reason is not None:
        warnings.warn(f"benchtool.kernels: numba.cuda unusable ({reason}); using the torch CUDA path", stacklevel=3)
    return reason


def _probe_numba_cuda() -> str | None:
    try:
        import torch
        from numba import cuda

        if not cuda.is_available():
            return "numba.cuda found no usable CUDA driver or device"
        from numba.core.errors import NumbaPerformanceWarning

        probe = torch.full((2, 1, 2), 0.5, device="cuda")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumbaPerformanceWarning)  # a one-block launch, on purpose
            entropy = NUMBA_CUDA.fused(probe, ArrayKind.of(probe, "probe"))[2]
        if abs(float(entropy[0]) - float(np.log(2.0))) > 1e-5:
            return f"the probe kernel returned entropy {float(entropy[0])}, expected log 2"
    except Exception as error:  # noqa: BLE001 - any failure (driver, NVVM, linker) means: use torch
        return f"{type(error).__name__}: {error}"
    return None
