"""Scalar rounding recipes shared by every CUDA kernel that rounds.

Device functions with the names, arguments and results of
``kernels/cpu/scalar.py``, written operation for operation like their CPU
twins so that they give the same bits.

Every floating-point operation whose rounding matters goes through one of the
primitives below (``add32``, ``sub32``, ``mul32``, ``div32``, ``fma32``,
``mul64``, ``fma64``, ``rint``, ``floor``, ``nextafter32``), each an IEEE
operation with exactly one rounding to nearest even.  This matters on the GPU:
NVVM compiles with ``-fma=1``, so a plain ``a*b + c`` may or may not become a
fused multiply-add, and LLVM narrows ``fl32(double(a) op double(b))`` back to
a float32 operation that is then eligible for fusing too.  On the GPU the
primitives are libdevice's ``__nv_*_rn`` functions, which are never
contracted; in the CUDA simulator (plain Python on NumPy scalars, one
rounding per operation, nothing fused) they are NumPy arithmetic, except
``fma32`` and ``fma64``, which the simulator's ``cuda.fma`` would round twice:
there they are computed exactly (an error-free ``two_sum`` and
:func:`round_dd_to_f32`, and rational arithmetic).

Everything else (integer arithmetic, float64 sums of exact values, conversions,
which round to nearest) is the same code in both.  Python float literals are
avoided next to float32 values: the simulator would keep such an expression in
float32 where the GPU promotes it to float64.
"""

import math
from fractions import Fraction

import numpy as np
from numba import cuda

from ..modes import (
    DQ_ONNX,
    DQ_TFLITE,
    DQ_TORCH_CHANNEL,
    DQ_TORCH_TENSOR,
    FQ_CHANNEL,
    FQ_CHANNEL_FLOAT_ZP,
    Q_FLOATQP,
    Q_FMA,
    Q_ONNX,
    Q_SUBBYTE,
    Q_TFLITE,
    Q_TWO,
)
from ..cpu.scalar import (
    EXP2F_TAB,
    EXPF_C0,
    EXPF_C1,
    EXPF_C2,
    EXPF_INVLN2N,
    EXPF_OFLOW,
    EXPF_SHIFT,
    EXPF_UFLOW,
    SLEEF_L2L,
    SLEEF_L2U,
    SLEEF_P0,
    SLEEF_P1,
    SLEEF_P2,
    SLEEF_P3,
    SLEEF_P4,
    SLEEF_R_LN2,
)
from . import DEVICE

_TWO63 = 9223372036854775808.0
_F32_MAX = 3.4028234663852886e38
_F32_OVERFLOW_MID = 3.4028235677973366e38  # 2**128 - 2**103: FLT_MAX + half an ulp
_INT32_MIN = -2147483648
_INT32_MAX = 2147483647
_INT64_MIN = -9223372036854775807 - 1


def _in_simulator():
    try:
        from numba.cuda.core import config
    except ImportError:  # pragma: no cover - numba-cuda before 0.20
        from numba import config
    return bool(config.ENABLE_CUDASIM)


#: True when ``numba.cuda`` is the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``).
SIMULATOR = _in_simulator()


# --------------------------------------------------------------------------
# error-free building blocks (the same code on the GPU and in the simulator)
# --------------------------------------------------------------------------


@cuda.jit(**DEVICE)
def two_sum(a, b):
    """Knuth's error-free sum of float64 ``a`` and ``b``: ``(s, e)`` with
    ``s = fl64(a + b)`` and ``s + e == a + b`` exactly (finite inputs)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


@cuda.jit(**DEVICE)
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
            return np.float32(math.copysign(_F32_MAX, hi))
        return f
    if hi > fd:
        g = nextafter32(f, np.float32(np.inf))
    else:
        g = nextafter32(f, np.float32(-np.inf))
    gd = np.float64(g)
    if (fd + gd) * 0.5 != hi:
        return f
    # hi sits exactly on a float32 midpoint: lo decides the side.
    if lo > 0.0:
        return f if fd > gd else g
    return f if fd < gd else g


# --------------------------------------------------------------------------
# primitives: one IEEE operation, one rounding to nearest even
# --------------------------------------------------------------------------

if SIMULATOR:

    @cuda.jit(**DEVICE)
    def add32(a, b):
        """``fl(a + b)`` in float32."""
        return np.float32(a) + np.float32(b)

    @cuda.jit(**DEVICE)
    def sub32(a, b):
        """``fl(a - b)`` in float32."""
        return np.float32(a) - np.float32(b)

    @cuda.jit(**DEVICE)
    def mul32(a, b):
        """``fl(a * b)`` in float32."""
        return np.float32(a) * np.float32(b)

    @cuda.jit(**DEVICE)
    def div32(a, b):
        """``fl(a / b)`` in float32."""
        return np.float32(a) / np.float32(b)

    @cuda.jit(**DEVICE)
    def fma32(a, b, c):
        """``fl(a*b + c)`` in float32 with ONE rounding.

        ``a*b`` is exact in float64 and ``two_sum`` keeps the error of the
        float64 sum, so the double-double is rounded to float32 only once.
        """
        hi, lo = two_sum(np.float64(a) * np.float64(b), np.float64(c))
        return round_dd_to_f32(hi, lo)

    @cuda.jit(**DEVICE)
    def mul64(a, b):
        """``fl64(a * b)``."""
        return np.float64(a) * np.float64(b)

    @cuda.jit(**DEVICE)
    def fma64(a, b, c):
        """``fl64(a*b + c)`` with ONE rounding (exact rational arithmetic)."""
        a, b, c = float(a), float(b), float(c)
        if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
            return np.float64(a * b + c)
        r = Fraction(a) * Fraction(b) + Fraction(c)
        try:
            return np.float64(float(r))  # int / int division: correctly rounded
        except OverflowError:
            return np.float64(math.inf if r > 0 else -math.inf)

    @cuda.jit(**DEVICE)
    def rint(v):
        """Round a float64 to an integral float64, ties to even."""
        return np.rint(np.float64(v))

    @cuda.jit(**DEVICE)
    def floor(v):
        """Largest integral float64 not above ``v``."""
        return np.floor(np.float64(v))

    @cuda.jit(**DEVICE)
    def nextafter32(a, b):
        """The float32 next to ``a`` in the direction of ``b``."""
        return np.nextafter(np.float32(a), np.float32(b))

    @cuda.jit(**DEVICE)
    def f32_from_bits(i):
        """The float32 whose bits are the int32 ``i``."""
        return np.array([i], np.int32).view(np.float32)[0]

    @cuda.jit(**DEVICE)
    def f64_from_bits(i):
        """The float64 whose bits are the int64 ``i``."""
        return np.array([i], np.int64).view(np.float64)[0]

else:
    from numba.cuda import libdevice

    @cuda.jit(**DEVICE)
    def add32(a, b):
        """``fl(a + b)`` in float32 (``__fadd_rn``: never fused)."""
        return libdevice.fadd_rn(np.float32(a), np.float32(b))

    @cuda.jit(**DEVICE)
    def sub32(a, b):
        """``fl(a - b)`` in float32 (``__fsub_rn``: never fused)."""
        return libdevice.fsub_rn(np.float32(a), np.float32(b))

    @cuda.jit(**DEVICE)
    def mul32(a, b):
        """``fl(a * b)`` in float32 (``__fmul_rn``: never fused)."""
        return libdevice.fmul_rn(np.float32(a), np.float32(b))

    @cuda.jit(**DEVICE)
    def div32(a, b):
        """``fl(a / b)`` in float32, IEEE division."""
        return libdevice.fdiv_rn(np.float32(a), np.float32(b))

    @cuda.jit(**DEVICE)
    def fma32(a, b, c):
        """``fl(a*b + c)`` in float32 with ONE rounding."""
        return libdevice.fmaf_rn(np.float32(a), np.float32(b), np.float32(c))

    @cuda.jit(**DEVICE)
    def mul64(a, b):
        """``fl64(a * b)`` (``__dmul_rn``: never fused)."""
        return libdevice.dmul_rn(np.float64(a), np.float64(b))

    @cuda.jit(**DEVICE)
    def fma64(a, b, c):
        """``fl64(a*b + c)`` with ONE rounding."""
        return libdevice.fma_rn(np.float64(a), np.float64(b), np.float64(c))

    @cuda.jit(**DEVICE)
    def rint(v):
        """Round a float64 to an integral float64, ties to even."""
        return libdevice.rint(np.float64(v))

    @cuda.jit(**DEVICE)
    def floor(v):
        """Largest integral float64 not above ``v``."""
        return libdevice.floor(np.float64(v))

    @cuda.jit(**DEVICE)
    def nextafter32(a, b):
        """The float32 next to ``a`` in the direction of ``b``."""
        return libdevice.nextafterf(np.float32(a), np.float32(b))

    @cuda.jit(**DEVICE)
    def f32_from_bits(i):
        """The float32 whose bits are the int32 ``i``."""
        return libdevice.int_as_float(np.int32(i))

    @cuda.jit(**DEVICE)
    def f64_from_bits(i):
        """The float64 whose bits are the int64 ``i``."""
        return libdevice.longlong_as_double(np.int64(i))


@cuda.jit(**DEVICE)
def rint32(v):
    """``np.rint`` of a float32, as float32 (exact: the result is a float32)."""
    return np.float32(rint(np.float64(v)))


# --------------------------------------------------------------------------
# the CPU scalar recipes, one by one
# --------------------------------------------------------------------------


@cuda.jit(**DEVICE)
def clamp_rint(v, qmin, qmax):
    """``clamp(rne(v), qmin, qmax)`` for a non-NaN float64 ``v``, as int64."""
    if v <= qmin:
        return np.int64(qmin)
    if v >= qmax:
        return np.int64(qmax)
    return np.int64(rint(v))


@cuda.jit(**DEVICE)
def clamp_int(v, qmin, qmax):
    """``clamp(v, qmin, qmax)`` for an integer ``v``, as int64."""
    if v < qmin:
        return np.int64(qmin)
    if v > qmax:
        return np.int64(qmax)
    return np.int64(v)


@cuda.jit(**DEVICE)
def wrap32(v):
    """Two's-complement wrap of an int64 to int32 (as int64)."""
    w = np.int64(v) & 0xFFFFFFFF
    if w >= 0x80000000:
        w -= 0x100000000
    return w


@cuda.jit(**DEVICE)
def lrint64(v):
    """x86 ``cvtsd2si`` to int64: rne, with NaN or overflow giving INT64_MIN."""
    r = rint(v)
    if r != r or r >= _TWO63 or r < -_TWO63:
        return np.int64(_INT64_MIN)
    return np.int64(r)


@cuda.jit(**DEVICE)
def div_rne(n, d):
    """``rne(n / d)`` for int64 ``n`` and ``d > 0``, exact."""
    q = n // d
    r = n - q * d
    if 2 * r > d or (2 * r == d and (q & 1) != 0):
        q += 1
    return q


@cuda.jit(**DEVICE)
def rne_div_exact(x, s):
    """``rne(x / s)`` of the exact quotient, for float64 ``x`` and ``s > 0``."""
    qd = x / s
    r = rint(qd)
    fl = floor(qd)
    if qd - fl == 0.5:
        res = fma64(-qd, s, x)  # exact remainder x - qd*s
        if res > 0.0:
            r = fl + 1.0
        elif res < 0.0:
            r = fl
    return r


@cuda.jit(**DEVICE)
def quantize_one(mode, x, s, inv, zpf, zpi, qmin, qmax, nanq):
    """Quantize one float32 ``x`` under recipe ``mode``; returns int64."""
    if mode == Q_FMA:
        v = fma32(x, inv, zpf)
        if v != v:
            return np.int64(qmax)
        return clamp_rint(np.float64(v), qmin, qmax)
    if mode == Q_TWO:
        v = add32(mul32(x, inv), zpf)
        if v != v:
            return np.int64(nanq)
        return clamp_rint(np.float64(v), qmin, qmax)
    if mode == Q_FLOATQP:
        v = add32(mul32(x, inv), zpf)
        return clamp_int(wrap32(lrint64(np.float64(v))), qmin, qmax)
    if mode == Q_SUBBYTE:
        v = add32(rint32(mul32(x, inv)), zpf)
        return clamp_int(lrint64(np.float64(v)), qmin, qmax)
    if mode == Q_ONNX:
        v = div32(x, s)
        if v != v:
            return np.int64(qmin)
        return clamp_rint(rint(np.float64(v)) + zpi, qmin, qmax)
    if mode == Q_TFLITE:
        v = div32(x, s)
        if v != v:
            return np.int64(qmin)
        a = floor(abs(np.float64(v)) + 0.5)
        if v < 0:
            a = -a
        return clamp_rint(a + zpi, qmin, qmax)
    # Q_REF
    if x != x:
        return np.int64(zpi)
    return clamp_rint(rne_div_exact(np.float64(x), np.float64(s)) + zpi, qmin, qmax)


@cuda.jit(**DEVICE)
def dequantize_one(mode, q, s, s64, zpf, zpi):
    """Dequantize one integer ``q`` under recipe ``mode``; returns float32."""
    if mode == DQ_TORCH_TENSOR:
        return mul32(np.float32(wrap32(np.int64(q) - zpi)), s)
    if mode == DQ_TORCH_CHANNEL:
        return np.float32(mul64(np.float64(sub32(np.float32(q), zpf)), s64))
    if mode == DQ_ONNX:
        # int32 subtraction, wrapping (onnxruntime 1.32 on int32 input)
        return mul32(np.float32(wrap32(np.int64(q) - zpi)), s)
    if mode == DQ_TFLITE:
        # TFLite Dequantize: int32 q - zp (wrapping), times double(scale)
        return np.float32(mul64(np.float64(s), np.float64(wrap32(np.int64(q) - zpi))))
    # DQ_REF: the float32 scale, as every reference formula
    d = np.float64(np.int64(q) - zpi)
    sd = np.float64(s)
    p = mul64(d, sd)
    return round_dd_to_f32(p, fma64(d, sd, -p))


@cuda.jit(**DEVICE)
def fake_quantize_one(variant, x, s, inv, zp, qmin, qmax):
    """torch's fake quantization of one float32 ``x``: ``(y, mask)``.

    The same recipe as ``fake_quantize_one`` in ``kernels/cpu/scalar.py``:
    ``zp`` is a float64 holding the integer (or float32) zero point.
    """
    if variant == FQ_CHANNEL_FLOAT_ZP:
        zf = np.float32(zp)
        qv = lrint64(np.float64(fma32(x, inv, zf)))  # one rounding, as torch's CPU build
        qc = clamp_int(qv, qmin, qmax)
        y = np.float32(mul64(np.float64(qc) - np.float64(zf), np.float64(s)))
        return y, (qv >= qmin and qv <= qmax)
    zi = np.int64(zp)
    qf = add32(np.float32(zi), rint32(mul32(x, inv)))
    qd = np.float64(qf)
    if variant == FQ_CHANNEL:
        if qd != qd or qd >= _TWO63 or qd < -_TWO63:
            qv = np.int64(_INT64_MIN)
        else:
            qv = np.int64(qd)
        mask = qv >= qmin and qv <= qmax
        qc = clamp_int(qv, qmin, qmax)
        return np.float32(mul64(np.float64(qc - zi), np.float64(s))), mask
    mask = qf >= np.float32(qmin) and qf <= np.float32(qmax)
    if qd != qd or qd < qmin:
        qc = np.int64(qmin)
    elif qd > qmax:
        qc = np.int64(qmax)
    else:
        qc = np.int64(qd)
    return mul32(np.float32(qc - zi), s), mask


@cuda.jit(**DEVICE)
def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values (int64 in/out)."""
    if a == b and a == _INT32_MIN:
        return np.int64(_INT32_MAX)
    ab = np.int64(a) * np.int64(b)
    nudge = np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30))
    t = ab + nudge
    # C++ integer division truncates toward zero; >> floors
    q = t >> 31
    if t < 0 and (q << 31) != t:
        q += 1
    return wrap32(q)


@cuda.jit(**DEVICE)
def rdbpot(x, exponent):
    """gemmlowp RoundingDivideByPOT (half away from zero)."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@cuda.jit(**DEVICE)
def tflite_requant(acc, m, shift):
    """TFLite MultiplyByQuantizedMultiplier, double rounding (int32 wrap)."""
    left = shift if shift > 0 else np.int64(0)
    right = -shift if shift < 0 else np.int64(0)
    return rdbpot(srdhm(wrap32(acc << left), m), right)


@cuda.jit(**DEVICE)
def tflite_requant_single(acc, m, shift):
    """TFLite MultiplyByQuantizedMultiplier, single rounding (ruy / TOSA)."""
    total = 31 - shift
    r = (acc * m + (np.int64(1) << (total - 1))) >> total
    return wrap32(r)


@cuda.jit(**DEVICE)
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


# --------------------------------------------------------------------------
# float32 exponentials of torch's softmax (``kernels/cpu/scalar.py``)
# --------------------------------------------------------------------------
_F32_ONE = np.float32(1.0)
_F32_ZERO = np.float32(0.0)
_F32_HALF = np.float32(0.5)
_F32_INF = np.float32(np.inf)
_F32_88 = np.float32(88.0)
_F32_SLEEF_LO = np.float32(-104.0)
_F32_SLEEF_HI = np.float32(100.0)


@cuda.jit(**DEVICE)
def expf_sleef(d):
    """Sleef's ``expf16_u10``, as :func:`qops.kernels.cpu.scalar.expf_sleef`."""
    d = np.float32(d)
    if d != d:
        return d
    if d < _F32_SLEEF_LO:
        return _F32_ZERO
    if d > _F32_SLEEF_HI:
        return _F32_INF
    q = np.int32(rint(np.float64(mul32(d, SLEEF_R_LN2))))
    qf = np.float32(q)
    s = fma32(qf, SLEEF_L2U, d)
    s = fma32(qf, SLEEF_L2L, s)
    u = fma32(SLEEF_P0, s, SLEEF_P1)
    u = fma32(u, s, SLEEF_P2)
    u = fma32(u, s, SLEEF_P3)
    u = fma32(u, s, SLEEF_P4)
    u = fma32(u, s, _F32_HALF)
    u = add32(_F32_ONE, fma32(mul32(s, s), u, s))
    h = q >> 1
    u = mul32(u, f32_from_bits(np.int32((h + 127) << 23)))
    return mul32(u, f32_from_bits(np.int32((q - h + 127) << 23)))


@cuda.jit(**DEVICE)
def expf_libm(x):
    """glibc's ``expf``, as :func:`qops.kernels.cpu.scalar.expf_libm`."""
    x = np.float32(x)
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
    kd = mul64(EXPF_INVLN2N, xd) + EXPF_SHIFT
    kd = kd - EXPF_SHIFT
    k = np.int64(kd)
    r = fma64(EXPF_INVLN2N, xd, -kd)
    s = f64_from_bits(EXP2F_TAB[k & 31] + (k << 47))
    p = fma64(EXPF_C0, r, EXPF_C1)
    y = fma64(EXPF_C2, r, 1.0)
    y = fma64(p, mul64(r, r), y)
    return np.float32(mul64(y, s))
