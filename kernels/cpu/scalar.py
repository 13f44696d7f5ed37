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
from ._llvm import f32_from_bits, f64_from_bits, fma32, fma64

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


# --------------------------------------------------------------------------
# float32 exponentials of torch's softmax
# --------------------------------------------------------------------------
# Sleef 3's expf16_u10 (the AVX-512 lanes of torch's Vectorized<float>::exp):
# Cody-Waite reduction by ln 2 in two parts, a degree-6 polynomial, all
# fused multiply-adds, and a scaling by 2^q split in two factors.
SLEEF_R_LN2 = np.float32(1.442695040888963407359924681001892137426645954152985934135449406931)
SLEEF_L2U = np.float32(-0.693145751953125)
SLEEF_L2L = np.float32(-1.428606765330187045e-06)
SLEEF_P0 = np.float32(0.000198527617612853646278381)
SLEEF_P1 = np.float32(0.00139304355252534151077271)
SLEEF_P2 = np.float32(0.00833336077630519866943359)
SLEEF_P3 = np.float32(0.0416664853692054748535156)
SLEEF_P4 = np.float32(0.166666671633720397949219)
_F32_HALF = np.float32(0.5)
_F32_ONE = np.float32(1.0)
_F32_ZERO = np.float32(0.0)
_F32_INF = np.float32(np.inf)
_F32_SLEEF_LO = np.float32(-104.0)
_F32_SLEEF_HI = np.float32(100.0)


@njit(**CPU_INLINE)
def pow2_f32(k):
    """``2.0**k`` as float32 for an integer ``-126 <= k <= 127`` (exponent bits)."""
    return f32_from_bits(np.int32((k + 127) << 23))


@njit(**CPU_INLINE)
def expf_sleef(d):
    """``exp(d)`` of a float32 as Sleef's ``expf16_u10`` computes it (torch's
    vectorised ``exp`` on AVX-512); NaN gives NaN."""
    if d != d:
        return d
    if d < _F32_SLEEF_LO:
        return _F32_ZERO
    if d > _F32_SLEEF_HI:
        return _F32_INF
    q = np.int32(np.rint(d * SLEEF_R_LN2))
    qf = np.float32(q)
    s = fma32(qf, SLEEF_L2U, d)
    s = fma32(qf, SLEEF_L2L, s)
    u = fma32(SLEEF_P0, s, SLEEF_P1)
    u = fma32(u, s, SLEEF_P2)
    u = fma32(u, s, SLEEF_P3)
    u = fma32(u, s, SLEEF_P4)
    u = fma32(u, s, _F32_HALF)
    u = _F32_ONE + fma32(s * s, u, s)
    h = q >> 1
    return u * pow2_f32(h) * pow2_f32(q - h)


# glibc's expf (2.27 and later, x86-64 FMA build; the scalar exp of torch's
# non-vectorised softmax columns): k = round(x * 32/ln2), 2^(k/32) from a
# 32-entry table, a cubic in the remainder, all in float64, one rounding to
# float32.  ``EXP2F_TAB[i]`` holds the bits of 2^(i/32) (correctly rounded)
# minus ``i << 47``, so that entry ``k & 31`` plus ``k << 47`` is the bits of
# 2^(k/32) (|k| <= 150 * 32: no int64 overflow).
EXP2F_TAB = np.array([
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
], dtype=np.int64)
EXPF_INVLN2N = float.fromhex("0x1.71547652b82fep+0") * 32
EXPF_SHIFT = float.fromhex("0x1.8p+52")
EXPF_C0 = float.fromhex("0x1.c6af84b912394p-5") / 32 / 32 / 32
EXPF_C1 = float.fromhex("0x1.ebfce50fac4f3p-3") / 32 / 32
EXPF_C2 = float.fromhex("0x1.62e42ff0c52d6p-1") / 32
EXPF_OFLOW = np.float32(float.fromhex("0x1.62e42ep6"))  # above: +inf
EXPF_UFLOW = np.float32(float.fromhex("-0x1.9fe368p6"))  # below: +0
_F32_88 = np.float32(88.0)


@njit(**CPU_INLINE)
def expf_libm(x):
    """``exp(x)`` of a float32 as glibc's ``expf`` computes it on x86-64 with
    FMA (torch's ``std::exp`` on float): the remainder ``x*32/ln2 - k`` is one
    fused multiply-add, the cubic two."""
    if x != x:
        return x
    if abs(x) >= _F32_88:
        if x == -_F32_INF:
            return _F32_ZERO
        if x == _F32_INF or x > EXPF_OFLOW:
            return _F32_INF
        if x < EXPF_UFLOW:
            return _F32_ZERO
    xd = np.float64(x)
    kd = EXPF_INVLN2N * xd + EXPF_SHIFT  # no fusing: fastmath is off
    kd = kd - EXPF_SHIFT  # round(x * 32/ln2), ties to even
    k = np.int64(kd)
    r = fma64(EXPF_INVLN2N, xd, -kd)
    s = f64_from_bits(EXP2F_TAB[k & 31] + (k << 47))
    p = fma64(EXPF_C0, r, EXPF_C1)
    y = fma64(EXPF_C2, r, 1.0)
    y = fma64(p, r * r, y)
    return np.float32(y * s)
