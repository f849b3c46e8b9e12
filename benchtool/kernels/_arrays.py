"""What kind of array came in (NumPy, torch CPU, torch CUDA) and input validation.

Kernels compute on NumPy arrays (CPU) or CUDA tensors (GPU) and hand results back in the
caller's kind: a torch CPU tensor is viewed as NumPy without a copy and results are
wrapped back with ``torch.from_numpy``; a CUDA tensor never leaves its device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ROW_SUM_ATOL = 1e-4  # probability rows must sum to 1 within this (sums taken in float64)


def _torch() -> Any:
    import torch

    return torch


def is_torch(x: Any) -> bool:
    """True for a torch tensor (without importing torch for NumPy-only callers)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


def host(x: Any, dtype: Any = None) -> np.ndarray:
    """``x`` as a NumPy array (a torch tensor is detached and copied to the host), converted
    to ``dtype`` when one is given."""
    values = x.detach().cpu().numpy() if is_torch(x) else np.asarray(x)
    return values if dtype is None else values.astype(dtype, copy=False)


@dataclass(frozen=True)
class ArrayKind:
    """Where results go: NumPy, or torch on ``device``; results take ``dtype`` (float32/64)."""

    torch_device: str | None
    dtype: np.dtype

    @property
    def on_cuda(self) -> bool:
        return self.torch_device is not None and self.torch_device.startswith("cuda")

    @property
    def compute_device(self) -> str:
        """Where the arithmetic runs: ``cpu`` (NumPy or torch CPU) or the CUDA device."""
        return self.torch_device if self.on_cuda else "cpu"  # type: ignore[return-value]

    @classmethod
    def of(cls, x: Any, name: str) -> ArrayKind:
        if is_torch(x):
            if not x.is_floating_point():
                raise ValueError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
            dtype = np.dtype(np.float64) if x.dtype == _torch().float64 else np.dtype(np.float32)
            return cls(str(x.device), dtype)
        if isinstance(x, np.ndarray):
            if x.dtype.kind != "f":
                raise ValueError(f"{name} must be a floating-point array; got dtype {x.dtype}")
            return cls(None, np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32))
        raise TypeError(f"{name} must be a NumPy array or a torch tensor; got {type(x).__name__}")

    def compute_array(self, x: Any, name: str) -> Any:
        """``x`` as a C-contiguous float32/float64 array to compute on: NumPy unless on CUDA."""
        device = ArrayKind.of(x, name).compute_device
        if device != self.compute_device:
            raise ValueError(f"{name} is on {device}, expected {self.compute_device}")
        if is_torch(x):
            torch = _torch()
            x = x.detach()
            if x.dtype not in (torch.float32, torch.float64):
                x = x.to(torch.float32)
            x = x.contiguous()
            return x if self.on_cuda else x.numpy()
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float32)
        return np.ascontiguousarray(x)

    def wrap(self, x: Any) -> Any:
        """A computed result (NumPy, or a tensor already) in the caller's kind."""
        if self.torch_device is None or is_torch(x):
            return x
        return _torch().from_numpy(x)

    def empty(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """Uninitialised compute array (NumPy, or a tensor on this CUDA device)."""
        dtype = np.dtype(dtype or self.dtype)
        if self.on_cuda:
            torch = _torch()
            return torch.empty(shape, dtype=getattr(torch, dtype.name), device=self.torch_device)
        return np.empty(shape, dtype)

    def zeros(self, shape: tuple[int, ...], dtype: Any = np.float64) -> Any:
        dtype = np.dtype(dtype)
        if self.on_cuda:
            torch = _torch()
            return torch.zeros(shape, dtype=getattr(torch, dtype.name), device=self.torch_device)
        return np.zeros(shape, dtype)


def numel(x: Any) -> int:
    """Number of elements of a NumPy array or a tensor."""
    return int(x.size) if isinstance(x, np.ndarray) else int(x.numel())


def check_rank(x: Any, name: str, ranks: tuple[int, ...], layout: str) -> None:
    if x.ndim not in ranks:
        raise ValueError(f"{name} must have shape {layout}; got shape {tuple(x.shape)} ({x.ndim} dims)")


def check_probabilities(x: Any, name: str) -> None:
    """Raise ValueError naming the first row (of the last axis) that is not a distribution."""
    import benchtool.kernels._cpu as _cpu

    c = x.shape[-1]
    if c < 1:
        raise ValueError(f"{name} needs at least one class; got shape {tuple(x.shape)}")
    if numel(x) == 0:
        return
    if isinstance(x, np.ndarray):
        with _cpu.threads_for(x.size):
            code, row, value = _cpu.first_invalid_row(x.reshape(-1), x.size // c, c, ROW_SUM_ATOL)
    else:
        code, row, value = _first_invalid_row_torch(x.reshape(-1, c))
    raise_invalid_row(code, row, value, tuple(x.shape), name)


def raise_invalid_row(code: int, row: int, value: float, shape: tuple[int, ...], name: str) -> None:
    """Raise the ValueError for a validation result (``row`` indexes the rows of ``shape``,
    all axes but the last); return when the code is VALID."""
    import benchtool.kernels._cpu as _cpu

    if code == _cpu.VALID:
        return
    index = [int(i) for i in np.unravel_index(row, shape[:-1])]
    names = ["pass", "sample"][-len(index) :] if len(index) <= 2 else ["index"] * len(index)
    where = "at " + ", ".join(f"{name} {i}" for name, i in zip(names, index))
    if code == _cpu.NOT_FINITE:
        raise ValueError(f"{name} contains NaN or inf {where}")
    if code == _cpu.NEGATIVE:
        raise ValueError(f"{name} contains a negative probability {value:.6g} {where}")
    raise ValueError(f"{name} rows must sum to 1 (within {ROW_SUM_ATOL}); the row {where} sums to {value:.6g}")


def _first_invalid_row_torch(rows: Any) -> tuple[int, int, float]:
    """The same checks as the CPU kernel, done on the tensor's device (one sync)."""
    import benchtool.kernels._cpu as _cpu

    torch = _torch()
    totals = rows.sum(-1, dtype=torch.float64)
    smallest = rows.amin(-1).to(torch.float64)
    codes = torch.where(
        ~torch.isfinite(totals),
        _cpu.NOT_FINITE,
        torch.where(smallest < 0, _cpu.NEGATIVE, torch.where((totals - 1).abs() > ROW_SUM_ATOL, _cpu.BAD_SUM, 0)),
    )
    bad = torch.nonzero(codes)
    if len(bad) == 0:
        return _cpu.VALID, -1, 0.0
    row = int(bad[0, 0])
    code = int(codes[row])
    return code, row, float(smallest[row] if code == _cpu.NEGATIVE else totals[row])


def check_finite(x: Any, name: str) -> None:
    finite = np.isfinite(x).all() if isinstance(x, np.ndarray) else bool(_torch().isfinite(x).all())
    if not finite:
        raise ValueError(f"{name} contains NaN or inf")


def check_nonnegative(x: Any, name: str) -> None:
    smallest = float(x.min()) if numel(x) else 0.0
    if smallest < 0:
        raise ValueError(f"{name} must be >= 0; found {smallest:.6g}")
