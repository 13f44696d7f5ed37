"""TFLite / gemmlowp fixed-point arithmetic on Python integers.

An independent reading of TFLite's ``QuantizeMultiplier`` and
``MultiplyByQuantizedMultiplier`` (tensorflow/lite/kernels/internal/
quantization_util.cc and common.h) and of gemmlowp's
``SaturatingRoundingDoublingHighMul`` / ``RoundingDivideByPOT``
(gemmlowp/fixedpoint/fixedpoint.h).  Every function works on NumPy object
arrays of Python integers, so no intermediate can overflow by accident; where
the C++ code computes in int32 the wraparound is written out with
:func:`wrap32`.  Arguments broadcast (NumPy rules); results are int64 arrays,
or Python ints for scalar arguments.

Where C++ leaves a result undefined (signed overflow, ``static_cast<int32_t>``
of an out-of-range int64), this module takes the two's-complement wraparound
that compiled code gives; ``1 << n`` for ``n > 31`` has no such reading and is
refused.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = [
    "INT32_MIN",
    "INT32_MAX",
    "wrap32",
    "quantize_multiplier",
    "srdhm",
    "rdbpot",
    "multiply_by_quantized_multiplier",
    "multiply_by_quantized_multiplier_single",
    "requantize",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def _obj(a):
    """``a`` as an object array of Python ints (exact arithmetic)."""
    return np.asarray(a).astype(object)


def _out(a, scalar):
    a = np.asarray(a).astype(np.int64)
    return int(a) if scalar else a


def _is_scalar(*args):
    return all(np.ndim(a) == 0 for a in args)


def wrap32(v):
    """Two's-complement reduction of integers to int32 (``static_cast<int32_t>``)."""
    scalar = _is_scalar(v)
    v = _obj(v)
    return _out((v + 2**31) % 2**32 - 2**31, scalar)


# ------------------------------------------------------------------ multiplier
def quantize_multiplier(d: float, *, single_rounding: bool = False):
    """TFLite ``QuantizeMultiplier``: ``d ~= M * 2**(shift - 31)``.

    Parameters
    ----------
    d : float
        A finite double ``>= 0``.
    single_rounding : bool
        Build with ``TFLITE_SINGLE_ROUNDING``: shifts above 30 saturate to
        ``(2**31 - 1, 30)``.

    Returns
    -------
    (M, shift) : tuple of int
        ``M = round_half_away(q * 2**31)`` for the frexp mantissa ``q`` in
        ``[0.5, 1)`` and ``d = q * 2**shift``; ``M == 2**31`` becomes
        ``(2**30, shift + 1)``; ``shift < -31`` gives ``(0, 0)``; ``d == 0``
        gives ``(0, 0)``.

    Notes
    -----
    Computed on the exact rational value of ``d`` (``fractions.Fraction``),
    not with ``math.frexp``.
    """
    d = float(d)
    if not (math.isfinite(d) and d >= 0.0):
        raise ValueError(f"quantize_multiplier needs a finite d >= 0, got {d!r}")
    if d == 0.0:
        return 0, 0
    r = Fraction(d)  # exact
    # frexp: d = q * 2**shift with 0.5 <= q < 1
    shift = r.numerator.bit_length() - r.denominator.bit_length() + 1
    while r < Fraction(2) ** (shift - 1):
        shift -= 1
    while r >= Fraction(2) ** shift:
        shift += 1
    # M = round_half_away(q * 2**31), q * 2**31 = d * 2**(31 - shift) exactly
    a = r * Fraction(2) ** (31 - shift)
    m, rem = divmod(a.numerator, a.denominator)
    if 2 * rem >= a.denominator:
        m += 1
    if m == 2**31:
        m //= 2
        shift += 1
    if shift < -31:
        m, shift = 0, 0
    if single_rounding and shift > 30:
        m, shift = 2**31 - 1, 30
    return m, shift


# ------------------------------------------------------------------ gemmlowp
def srdhm(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` of int32 values.

    ``(a*b + nudge) / 2**31`` with C++ truncating division, ``nudge = 2**30``
    for ``a*b >= 0`` and ``1 - 2**30`` otherwise; ``INT32_MIN * INT32_MIN``
    saturates to ``INT32_MAX``.
    """
    scalar = _is_scalar(a, b)
    a, b = np.broadcast_arrays(_obj(a), _obj(b))
    ab = a * b
    t = ab + np.where(ab >= 0, 2**30, 1 - 2**30)
    q = np.where(t >= 0, t // 2**31, -((-t) // 2**31))  # truncation toward zero
    q = np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, q)
    return _out(q, scalar)


def rdbpot(x, exponent):
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero.

    ``exponent`` must lie in ``[0, 31]`` (gemmlowp asserts it).
    """
    scalar = _is_scalar(x, exponent)
    x, e = np.broadcast_arrays(_obj(x), _obj(exponent))
    if e.size and not ((e >= 0) & (e <= 31)).all():
        raise ValueError("rdbpot: exponent must lie in [0, 31]")
    half = np.where(e > 0, _pow2(np.maximum(e - 1, 0)), 0)
    mag = (abs(x) + half) // _pow2(e)
    return _out(np.where(x < 0, -mag, mag), scalar)


def _pow2(e):
    """``2**e`` elementwise for an object array of non-negative ints."""
    e = _obj(e)
    return np.frompyfunc(lambda k: 1 << int(k), 1, 1)(e) if e.ndim else 1 << int(e)


def multiply_by_quantized_multiplier(x, m, shift):
    """TFLite ``MultiplyByQuantizedMultiplier``, default (double) rounding.

    ``RDBPOT(SRDHM(x * (1 << left), M), right)`` with ``left = max(shift, 0)``
    and ``right = max(-shift, 0)``; ``x * (1 << left)`` wraps in int32.
    Arguments broadcast (per-channel ``m``/``shift`` against accumulators).

    Raises
    ------
    ValueError
        ``shift > 31`` (``1 << shift`` is undefined in C++) or ``shift < -31``.
    """
    scalar = _is_scalar(x, m, shift)
    x, m, sh = np.broadcast_arrays(_obj(x), _obj(m), _obj(shift))
    if sh.size and not ((sh >= -31) & (sh <= 31)).all():
        raise ValueError("multiply_by_quantized_multiplier: shift must lie in [-31, 31]")
    left = np.where(sh > 0, sh, 0)
    right = np.where(sh > 0, 0, -sh)
    shifted = wrap32(x * _pow2(left))
    return _out(rdbpot(srdhm(shifted, m), right), scalar)


def multiply_by_quantized_multiplier_single(x, m, shift):
    """TFLite ``MultiplyByQuantizedMultiplier`` with ``TFLITE_SINGLE_ROUNDING``.

    ``(int64(x) * M + 2**(t-1)) >> t`` with ``t = 31 - shift`` (an arithmetic
    shift: floor), then ``static_cast<int32_t>``.  ``shift`` must lie in
    ``[-31, 30]`` as ``QuantizeMultiplier(single_rounding=True)`` guarantees.
    """
    scalar = _is_scalar(x, m, shift)
    x, m, sh = np.broadcast_arrays(_obj(x), _obj(m), _obj(shift))
    if sh.size and not ((sh >= -31) & (sh <= 30)).all():
        raise ValueError("multiply_by_quantized_multiplier_single: shift must lie in [-31, 30]")
    t = 31 - sh
    r = (x * m + _pow2(t - 1)) // _pow2(t)  # floor division == arithmetic shift
    return _out(wrap32(r), scalar)


def requantize(q, z_in, m, shift, z_out, qmin, qmax, *, single_rounding=False):
    """TFLite's integer requantization ``Requantize`` (QUANTIZE int8 -> int8).

    ``clamp(MultiplyByQuantizedMultiplier(q - z_in, M, shift) + z_out)`` with the
    subtraction and the addition in int32 (wrapping).  Per-channel parameters
    broadcast against ``q``.
    """
    x = wrap32(_obj(q) - _obj(z_in))
    if single_rounding:
        r = multiply_by_quantized_multiplier_single(x, m, shift)
    else:
        r = multiply_by_quantized_multiplier(x, m, shift)
    y = wrap32(_obj(r) + _obj(z_out))
    return np.clip(np.asarray(y, np.int64), qmin, qmax)


def fully_connected(acc, bias, multiplier, shift, z_out, qmin, qmax, *, single_rounding=False):
    """TFLite's integer fully-connected / convolution output stage.

    ``clamp(MultiplyByQuantizedMultiplier(wrap32(acc + bias), M, shift) + z_out)``
    (reference_integer_ops ``FullyConnected`` / ``ConvPerChannel``: the int32
    bias is added to the int32 accumulator, the output offset after the
    multiplier).  ``bias``, ``multiplier`` and ``shift`` broadcast along the
    last axis of ``acc`` (one per output channel).
    """
    x = wrap32(_obj(acc) + _obj(bias))
    if single_rounding:
        r = multiply_by_quantized_multiplier_single(x, multiplier, shift)
    else:
        r = multiply_by_quantized_multiplier(x, multiplier, shift)
    y = wrap32(_obj(r) + _obj(z_out))
    return np.clip(np.asarray(y, np.int64), qmin, qmax)
