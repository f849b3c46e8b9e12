"""A vectorisable float32 natural log for numba kernels.

The exact ``log`` compiles to a scalar libm call that runs at a few percent of memory
bandwidth; this one is branch-free float32 arithmetic that LLVM turns into SIMD code.
Range reduction by bit manipulation, then the Cephes ``logf`` polynomial (S. L. Moshier,
*Methods and Programs for Mathematical Functions*, 1989): absolute error below 4e-6 for
every normal float32 (below 1e-7 relative), so ``sum p*log(p)`` over a probability row is
off by less than 1e-6. ``fast_log(0)`` is a finite -88.03, so ``0 * fast_log(0) == 0``.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_I32 = ir.IntType(32)

_SQRT_HALF = np.float32(0.707106781186547524)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_P0 = np.float32(7.0376836292e-2)
_P1 = np.float32(-1.1514610310e-1)
_P2 = np.float32(1.1676998740e-1)
_P3 = np.float32(-1.2420140846e-1)
_P4 = np.float32(1.4249322787e-1)
_P5 = np.float32(-1.6668057665e-1)
_P6 = np.float32(2.0000714765e-1)
_P7 = np.float32(-2.4999993993e-1)
_P8 = np.float32(3.3333331174e-1)


@intrinsic
def _significand(typingctx, x):  # type: ignore[no-untyped-def]
    """The significand of float32 ``x`` rescaled into [0.5, 1), by masking its bits (exact)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        bits = builder.bitcast(args[0], _I32)
        bits = builder.or_(builder.and_(bits, _I32(0x007FFFFF)), _I32(0x3F000000))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(types.float32), codegen


@intrinsic
def _exponent(typingctx, x):  # type: ignore[no-untyped-def]
    """The exponent e of ``x = m * 2**e`` with m in [0.5, 1), as float32 (int32 arithmetic)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        bits = builder.bitcast(args[0], _I32)
        biased = builder.and_(builder.lshr(bits, _I32(23)), _I32(0xFF))
        return builder.sitofp(builder.sub(biased, _I32(126)), ir.FloatType())

    return types.float32(types.float32), codegen


@numba.njit(inline="always", cache=True, fastmath={"contract"})
def fast_log(x: np.float32) -> np.float32:
    """ln(x) for float32 x >= 0 (Cephes logf); exact enough for entropies, SIMD-friendly."""
    m = _significand(x)
    e = _exponent(x)
    small = m < _SQRT_HALF
    e = e - _ONE if small else e
    m = (m + m - _ONE) if small else (m - _ONE)
    z = m * m
    y = ((((((((_P0 * m + _P1) * m + _P2) * m + _P3) * m + _P4) * m + _P5) * m + _P6) * m + _P7) * m + _P8) * m * z
    y = y + _LN2_LO * e - _HALF * z
    return m + y + _LN2_HI * e
