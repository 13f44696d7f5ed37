"""Exact oracles: real-number results of the quantization formulas.

Every value here is computed on exact rationals (``fractions.Fraction`` and
Python integers), so the only roundings are the ones a function names.  The
functions are slow (a Python loop per element) and obviously right; tests
size their inputs accordingly.

Conventions
-----------
* A float32 input ``x`` stands for its exact real value ``Fraction(float(x))``.
* ``rne`` rounds a rational to an integer, ties to even.
* ``to_f32`` rounds a rational to float32 exactly once (nearest, ties to even,
  gradual underflow, overflow to infinity).

Array arguments broadcast against each other (NumPy rules); results come back
as NumPy arrays (``int64`` for integers, ``float32`` for floats).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = [
    "exact",
    "rne",
    "round_half_away",
    "to_f32",
    "f32_quotient",
    "quantize",
    "dequantize",
    "requantize",
    "rne_array",
    "SPECIAL_FLOATS",
    "stress_floats",
]

_F32_MANT = 24  # significand bits, hidden bit included
_F32_EMIN = -126  # exponent of the smallest normal: 2**-126


def exact(v) -> Fraction:
    """The exact rational value of a finite float or integer ``v``."""
    if isinstance(v, Fraction):
        return v
    if isinstance(v, (int, np.integer)):
        return Fraction(int(v))
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"{v!r} has no exact rational value")
    return Fraction(f)


def rne(r) -> int:
    """Round a rational to the nearest integer, ties to even."""
    r = exact(r)
    q, rem = divmod(r.numerator, r.denominator)  # floor division, 0 <= rem < den
    twice = 2 * rem
    if twice > r.denominator or (twice == r.denominator and q % 2 == 1):
        q += 1
    return q


def round_half_away(r) -> int:
    """Round a rational to the nearest integer, ties away from zero."""
    r = exact(r)
    a = abs(r)
    q, rem = divmod(a.numerator, a.denominator)
    if 2 * rem >= a.denominator:
        q += 1
    return q if r >= 0 else -q


def _floor_log2(a: Fraction) -> int:
    """``e`` with ``2**e <= a < 2**(e+1)`` for a rational ``a > 0``."""
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    return e


def to_f32(r) -> np.float32:
    """Round the rational ``r`` to float32 once (nearest, ties to even)."""
    r = exact(r)
    if r == 0:
        return np.float32(0.0)
    sign = -1.0 if r < 0 else 1.0
    a = abs(r)
    e = max(_floor_log2(a), _F32_EMIN)
    quantum = Fraction(2) ** (e - (_F32_MANT - 1))  # ulp at a (2**-149 for subnormals)
    n = rne(a / quantum)
    v = Fraction(n) * quantum
    if v >= Fraction(2**128):
        return np.float32(sign * math.inf)
    # n <= 2**24 and v is a float32 value: both conversions below are exact
    return np.float32(sign * math.ldexp(n, e - (_F32_MANT - 1)))


def f32_quotient(x, s) -> np.float32:
    """``fl(x / s)``: the exact quotient of two finite floats rounded to float32 once."""
    return to_f32(exact(x) / exact(s))


def _clamp(v, qmin, qmax):
    return qmin if v < qmin else qmax if v > qmax else v


def _loop(fn, out_dtype, *arrays):
    arrays = np.broadcast_arrays(*[np.asarray(a) for a in arrays])
    out = np.empty(arrays[0].shape, dtype=out_dtype)
    flat_out = out.reshape(-1)
    flats = [a.reshape(-1) for a in arrays]
    for i in range(flat_out.size):
        flat_out[i] = fn(*(f[i].item() if hasattr(f[i], "item") else f[i] for f in flats))
    return out


def rne_array(r) -> np.ndarray:
    """:func:`rne` over an object array of rationals, as int64 (values must fit)."""
    return _loop(rne, np.int64, r)


def quantize(x, scale, zero_point, qmin, qmax, *, nan=None):
    """``clamp(rne(x / s) + zp, qmin, qmax)`` with the quotient taken exactly.

    Parameters
    ----------
    x : array_like of float32
        Values to quantize; infinities saturate.
    scale : array_like of float32
        Scales, broadcast against ``x`` (use shape ``(C, 1, ...)`` for channels).
    zero_point : array_like of int
        Zero points, broadcast like ``scale``.
    qmin, qmax : int
        The integer range.
    nan : int, optional
        The result for NaN input; ``None`` means the zero point.

    Returns
    -------
    ndarray of int64
    """

    def one(xv, sv, zv):
        if xv != xv:
            return zv if nan is None else nan
        if math.isinf(xv):
            return qmax if xv > 0 else qmin
        return _clamp(rne(exact(xv) / exact(sv)) + zv, qmin, qmax)

    return _loop(one, np.int64, np.asarray(x, np.float32), np.asarray(scale, np.float32), zero_point)


def dequantize(q, scale, zero_point):
    """``(q - zp) * s`` computed exactly, rounded once to float32."""

    def one(qv, sv, zv):
        return to_f32(Fraction(int(qv) - int(zv)) * exact(sv))

    return _loop(one, np.float32, q, np.asarray(scale, np.float32), zero_point)


def requantize(q, scale_in, zero_point_in, scale_out, zero_point_out, qmin, qmax):
    """``clamp(rne((q - z1) * s1 / s2) + z2, qmin, qmax)`` on exact values.

    ``scale_in``/``zero_point_in`` broadcast against ``q`` (per-channel input);
    the output parameters are scalars or broadcast the same way.  Scales are
    taken as float32 values.
    """

    def one(qv, s1, z1, s2, z2):
        r = Fraction(int(qv) - int(z1)) * exact(s1) / exact(s2)
        return _clamp(rne(r) + int(z2), qmin, qmax)

    return _loop(
        one, np.int64, q, np.asarray(scale_in, np.float32), zero_point_in,
        np.asarray(scale_out, np.float32), zero_point_out,
    )


# ------------------------------------------------------------------ inputs
#: Float32 values every quantize test should see: NaN, infinities, the largest
#: finite values, zeros, subnormals.
SPECIAL_FLOATS = np.array(
    [np.nan, -np.nan, np.inf, -np.inf, 3.4028235e38, -3.4028235e38, 1e30, -1e30, 0.0, -0.0,
     1e-45, -1e-45, 1e-40, -1e-40, 1.1754944e-38, -1.1754944e-38],
    dtype=np.float32,
)


def stress_floats(rng, n, scale, zero_point, qmin, qmax):
    """``n`` float32 values that stress ``quantize(x, scale, zero_point)``.

    A mix of near-exact ties ``fl((k + 0.5) * s)`` (exact ties when the
    scale's significand is short), their float32 neighbours, multiples
    ``k * s``, uniform values across ``[qmin, qmax]`` (in units of the scale,
    a few steps beyond either end) and :data:`SPECIAL_FLOATS`, shuffled.
    """
    s = float(np.float32(scale))
    lo = qmin - zero_point - 4
    hi = qmax - zero_point + 4
    k = rng.integers(lo, hi, size=n, endpoint=True).astype(np.float64)
    with np.errstate(over="ignore"):
        ties = ((k + 0.5) * s).astype(np.float32)
        mults = (k * s).astype(np.float32)
        unif = (rng.uniform(lo, hi, size=n) * s).astype(np.float32)
    up = np.nextafter(ties, np.float32(np.inf))
    down = np.nextafter(ties, np.float32(-np.inf))
    kind = rng.integers(0, 10, size=n)
    x = np.where(kind < 4, ties, np.where(kind < 5, up, np.where(kind < 6, down,
                 np.where(kind < 8, mults, unif))))
    x[: min(n, SPECIAL_FLOATS.size)] = SPECIAL_FLOATS[: min(n, SPECIAL_FLOATS.size)]
    return rng.permutation(x).astype(np.float32)


# ------------------------------------------------------------------ linear
def accumulate(x, zx, w, zw):
    """``A[..., n] = sum_k (x - zx)(w[n] - zw[n])`` wrapped to int32 (every profile).

    ``x`` is ``(..., K)``, ``w`` is ``(N, K)``, ``zw`` a scalar or ``N`` values.
    Exact integer products (int64 is wide enough for K < 2**30), then the
    two's-complement wrap.
    """
    xd = np.asarray(x, np.int64) - int(zx)
    wd = np.asarray(w, np.int64) - np.asarray(zw, np.int64).reshape(-1, 1)
    a = xd @ wd.T
    return ((a + 2**31) % 2**32 - 2**31).astype(np.int64)


def linear(acc, sx, sw, so, zo, qmin, qmax, *, bias=None, int_bias=None, relu=False):
    """The reference profile of a linear / convolution output, exactly.

    ``clamp(rne((A*sx*sw_j + b_j) / so) + zo)`` on the real values of the
    float32 scales and the float32 bias ``b``; an int32 ``int_bias`` (accumulator
    scale) enters as ``(A + ib_j) * sx * sw_j`` without wrapping.  A NaN bias
    gives ``zo``, an infinite one saturates.  Fused relu clamps at ``zo``.

    Parameters
    ----------
    acc : ndarray of int, ``(..., N)``
        Accumulators (see :func:`accumulate`).
    sx, so : float
        Input and output scales (taken as float32).
    sw : float or ndarray
        Weight scale(s), broadcast along the last axis.
    """
    acc = np.asarray(acc, np.int64)
    n = acc.shape[-1]
    sws = np.broadcast_to(np.asarray(sw, np.float32), (n,))
    b = None if bias is None else np.broadcast_to(np.asarray(bias, np.float32), (n,))
    ib = np.zeros(n, np.int64) if int_bias is None else np.asarray(int_bias, np.int64)
    fsx, fso = exact(np.float32(sx)), exact(np.float32(so))
    lo = int(zo) if relu else qmin
    mult = [fsx * exact(s) for s in sws]
    out = np.empty(acc.shape, np.int64)
    flat_a = acc.reshape(-1, n)
    flat_o = out.reshape(-1, n)
    for j in range(n):
        bj = None if b is None else float(b[j])
        for i in range(flat_a.shape[0]):
            if bj is not None and math.isnan(bj):
                q = 0
            elif bj is not None and math.isinf(bj):
                q = 2**40 if bj > 0 else -(2**40)
            else:
                v = (int(flat_a[i, j]) + int(ib[j])) * mult[j]
                if bj is not None:
                    v += exact(bj)
                q = rne(v / fso)
            flat_o[i, j] = _clamp(q + int(zo), lo, qmax)
    return out
