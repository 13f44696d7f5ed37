"""Scalar rounding recipes shared by every CPU kernel that rounds.

Each function is one line of ``docs/numerics.md`` and is inlined into the
loops that call it.  The CUDA device versions live in ``kernels/cuda/scalar.py``
with the same names.
"""

import numpy as np
from numba import njit

from .._options import CPU_INLINE
from ..modes import (
    FQ_CHANNEL,
    FQ_CHANNEL_FLOAT_ZP,
    DQ_ONNX,
    DQ_REF,
    DQ_TFLITE,
    DQ_TORCH_CHANNEL,
    DQ_TORCH_TENSOR,
    Q_FLOATQP,
    Q_FMA,
    Q_ONNX,
    Q_REF,
    Q_SUBBYTE,
    Q_TFLITE,
    Q_TWO,
)
from ._llvm import fma32, fma64

_TWO63 = 9223372036854775808.0
_INT32_MIN = -2147483648
_INT32_MAX = 2147483647
_F32_MAX = 3.4028234663852886e38
_F32_OVERFLOW_MID = 3.4028235677973366e38  # 2**128 - 2**103: FLT_MAX + half an ulp


@njit(**CPU_INLINE)
def clamp_rint(v, qmin, qmax):
    """``clamp(rne(v), qmin, qmax)`` for a non-NaN float64 ``v``, as int64."""
    if v <= qmin:
        return np.int64(qmin)
    if v >= qmax:
        return np.int64(qmax)
    return np.int64(np.rint(v))


@njit(**CPU_INLINE)
def clamp_int(v, qmin, qmax):
    if v < qmin:
        return np.int64(qmin)
    if v > qmax:
        return np.int64(qmax)
    return np.int64(v)


@njit(**CPU_INLINE)
def wrap32(v):
    """Two's-complement wrap of an int64 to int32 (as int64)."""
    return np.int64(np.int32(v))


@njit(**CPU_INLINE)
def lrint64(v):
    """x86 ``cvtsd2si`` to int64: rne, with NaN or overflow giving INT64_MIN."""
    r = np.rint(v)
    if r != r or r >= _TWO63 or r < -_TWO63:
        return np.int64(-9223372036854775807 - 1)
    return np.int64(r)


@njit(**CPU_INLINE)
def div_rne(n, d):
    """``rne(n / d)`` for int64 ``n`` and ``d > 0``, exact."""
    q = n // d
    r = n - q * d
    if 2 * r > d or (2 * r == d and (q & 1) != 0):
        q += 1
    return q


@njit(**CPU_INLINE)
def round_dd_to_f32(hi, lo):
    """Round the exact value ``hi + lo`` (``hi = fl64(hi + lo)``) to float32 once."""
    f = np.float32(hi)
    fd = np.float64(f)
    if lo == 0.0 or fd == hi or hi != hi:
        return f
    if fd == np.inf or fd == -np.inf:
        # |hi| >= the overflow midpoint; exactly on it, a tail toward zero
        # puts the exact value below it: FLT_MAX
        if abs(hi) == _F32_OVERFLOW_MID and (lo < 0.0) == (hi > 0.0):
            return np.float32(np.copysign(_F32_MAX, hi))
        return f
    if hi > fd:
        g = np.nextafter(f, np.float32(np.inf))
    else:
        g = np.nextafter(f, np.float32(-np.inf))
    gd = np.float64(g)
    if (fd + gd) * 0.5 != hi:
        return f
    # hi sits exactly on a float32 midpoint: lo decides the side.
    if lo > 0.0:
        return f if fd > gd else g
    return f if fd < gd else g


@njit(**CPU_INLINE)
def rne_div_exact(x, s):
    """``rne(x / s)`` of the exact quotient, for float64 ``x`` and ``s > 0``."""
    qd = x / s
    r = np.rint(qd)
    fl = np.floor(qd)
    if qd - fl == 0.5:
        res = fma64(-qd, s, x)  # exact remainder x - qd*s
        if res > 0.0:
            r = fl + 1.0
        elif res < 0.0:
            r = fl
    return r


@njit(**CPU_INLINE)
def quantize_one(mode, x, s, inv, zpf, zpi, qmin, qmax, nanq):
    """Quantize one float32 ``x`` under recipe ``mode``; returns int64."""
    if mode == Q_FMA:
        v = fma32(x, inv, zpf)
        if v != v:
            return np.int64(qmax)
        return clamp_rint(np.float64(v), qmin, qmax)
    if mode == Q_TWO:
        v = x * inv + zpf
        if v != v:
            return np.int64(nanq)
        return clamp_rint(np.float64(v), qmin, qmax)
    if mode == Q_FLOATQP:
        v = x * inv + zpf
        return clamp_int(wrap32(lrint64(np.float64(v))), qmin, qmax)
    if mode == Q_SUBBYTE:
        v = np.rint(x * inv) + zpf
        return clamp_int(lrint64(np.float64(v)), qmin, qmax)
    if mode == Q_ONNX:
        v = x / s
        if v != v:
            return np.int64(qmin)
        return clamp_rint(np.rint(np.float64(v)) + zpi, qmin, qmax)
    if mode == Q_TFLITE:
        v = x / s
        if v != v:
            return np.int64(qmin)
        a = np.floor(np.abs(np.float64(v)) + 0.5)
        if v < 0:
            a = -a
        return clamp_rint(a + zpi, qmin, qmax)
    # Q_REF
    if x != x:
        return np.int64(zpi)
    return clamp_rint(rne_div_exact(np.float64(x), np.float64(s)) + zpi, qmin, qmax)


@njit(**CPU_INLINE)
def dequantize_one(mode, q, s, s64, zpf, zpi):
    """Dequantize one integer ``q`` under recipe ``mode``; returns float32."""
    if mode == DQ_TORCH_TENSOR:
        return np.float32(wrap32(np.int64(q) - zpi)) * s
    if mode == DQ_TORCH_CHANNEL:
        return np.float32(np.float64(np.float32(q) - zpf) * s64)
    if mode == DQ_ONNX:
        # int32 subtraction, wrapping (onnxruntime 1.32 on int32 input)
        return np.float32(wrap32(np.int64(q) - zpi)) * s
    if mode == DQ_TFLITE:
        # TFLite Dequantize: int32 q - zp (wrapping), times double(scale)
        return np.float32(np.float64(s) * np.float64(wrap32(np.int64(q) - zpi)))
    # DQ_REF: the float32 scale, as every reference formula
    d = np.float64(np.int64(q) - zpi)
    sd = np.float64(s)
    p = d * sd
    return round_dd_to_f32(p, fma64(d, sd, -p))


@njit(**CPU_INLINE)
def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values (int64 in/out)."""
    if a == b and a == _INT32_MIN:
        return np.int64(_INT32_MAX)
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else (1 - (1 << 30))
    t = ab + nudge
    # C++ integer division truncates toward zero
    q = t // (1 << 31)
    if t < 0 and q * (1 << 31) != t:
        q += 1
    return wrap32(q)


@njit(**CPU_INLINE)
def rdbpot(x, exponent):
    """gemmlowp RoundingDivideByPOT (half away from zero)."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@njit(**CPU_INLINE)
def tflite_requant(acc, m, shift):
    """TFLite MultiplyByQuantizedMultiplier, double rounding (int32 wrap)."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return rdbpot(srdhm(wrap32(acc << left), m), right)


@njit(**CPU_INLINE)
def tflite_requant_single(acc, m, shift):
    """TFLite MultiplyByQuantizedMultiplier, single rounding (ruy / TOSA)."""
    total = 31 - shift
    r = (acc * m + (np.int64(1) << (total - 1))) >> total
    return wrap32(r)


@njit(**CPU_INLINE)
def rescale_exact(d, m1, m2, k):
    """``rne(d * m1 * 2**k / m2)`` exactly, saturated to +-2**36 (int64)."""
    n = d * m1
    lim = np.int64(1) << 36
    if n == 0:
        return np.int64(0)
    if k >= 0:
        if k >= 62 or abs(n) > ((lim * m2) >> k):
            return lim if n > 0 else -lim
        return div_rne(n << k, m2)
    if -k >= 35:
        return np.int64(0)
    return div_rne(n, m2 << (-k))


@njit(**CPU_INLINE)
def fake_quantize_one(variant, x, s, inv, zp, qmin, qmax):
    """torch 2.13's fake quantization of one float32 ``x``: ``(y, mask)``.

    ``zp`` is a float64 holding the integer (or float32) zero point.  Per
    tensor: ``qf = fl(zp + rint(fl(x*inv)))``, mask in float32, clamp against
    the exact bounds (``fmax(NaN, qmin) == qmin``), ``y = fl(fl(qc - zp) * s)``.
    Per channel: the same ``qf`` cast to int64 first (NaN or out of range give
    INT64_MIN), mask and clamp on that, ``y = fl(double(qc - zp) * double(s))``.
    Float zero points: ``qv = lrint(fl(x*inv + zp))`` in ONE rounding (torch's
    CPU build contracts it into a fused multiply-add; measured against torch
    2.13.0), ``y = fl((double(qc) - double(zp)) * double(s))``.
    """
    if variant == FQ_CHANNEL_FLOAT_ZP:
        zf = np.float32(zp)
        qv = lrint64(np.float64(fma32(x, inv, zf)))
        qc = clamp_int(qv, qmin, qmax)
        y = np.float32((np.float64(qc) - np.float64(zf)) * np.float64(s))
        return y, (qv >= qmin and qv <= qmax)
    zi = np.int64(zp)
    qf = np.float32(zi) + np.rint(x * inv)
    if variant == FQ_CHANNEL:
        if qf != qf or qf >= _TWO63 or qf < -_TWO63:
            qv = np.int64(-9223372036854775807 - 1)
        else:
            qv = np.int64(qf)
        qc = clamp_int(qv, qmin, qmax)
        return np.float32(np.float64(qc - zi) * np.float64(s)), (qv >= qmin and qv <= qmax)
    mask = qf >= np.float32(qmin) and qf <= np.float32(qmax)
    qd = np.float64(qf)
    if qd != qd or qd < qmin:
        qc = np.int64(qmin)
    elif qd > qmax:
        qc = np.int64(qmax)
    else:
        qc = np.int64(qd)
    return np.float32(qc - zi) * s, mask
