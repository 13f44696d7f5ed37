"""From (numerics profile, dtype, scheme) to a kernel recipe and its parameters.

This is the one place that reads ``docs/numerics.md`` into kernel arguments;
kernels only see mode codes and arrays.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .dtypes import QDType, qint32
from .kernels import modes as M
from .numerics import TORCH_PROFILES

INT32_MIN = -(2**31)


def _f32(a):
    return np.asarray(a, dtype=np.float64).astype(np.float32)


def quantize_recipe(profile: str, dtype: QDType, per_channel: bool, float_zp: bool):
    """Return ``(mode, nan_q)`` for quantizing float32 to ``dtype``."""
    if profile in TORCH_PROFILES:
        if float_zp:
            return M.Q_FLOATQP, 0
        if per_channel:
            return M.Q_TWO, (INT32_MIN if dtype is qint32 else 0)
        if dtype is qint32:
            return M.Q_TWO, INT32_MIN
        if dtype.is_subbyte:
            return M.Q_SUBBYTE, dtype.qmin
        return M.Q_FMA, dtype.qmax
    if float_zp:
        raise NotImplementedError(
            f"float zero points (per_channel_affine_float_qparams) exist only in torch; "
            f"numerics={profile!r} needs integer zero points"
        )
    if profile == "onnxruntime":
        return M.Q_ONNX, dtype.qmin
    if profile in ("tflite", "tflite_single"):
        return M.Q_TFLITE, dtype.qmin
    return M.Q_REF, 0


def dequantize_recipe(profile: str, per_channel: bool, float_zp: bool) -> int:
    if profile in TORCH_PROFILES:
        return M.DQ_TORCH_CHANNEL if (per_channel or float_zp) else M.DQ_TORCH_TENSOR
    if float_zp:
        raise NotImplementedError(
            f"float zero points exist only in torch; numerics={profile!r} cannot dequantize them"
        )
    if profile == "onnxruntime":
        return M.DQ_ONNX
    if profile in ("tflite", "tflite_single"):
        return M.DQ_TFLITE
    return M.DQ_REF


@functools.lru_cache(maxsize=1024)
def tensor_params(scale: float, zero_point: int):
    """:func:`channel_params` of one scale and integer zero point, memoised
    (read-only arrays): per-tensor calls repeat the same few qparams."""
    out = channel_params([scale], [zero_point])
    for a in out:
        a.flags.writeable = False
    return out


def channel_params(scales, zero_points):
    """Kernel parameter arrays for per-channel (or length-1 per-tensor) qparams.

    Returns ``s32, inv32, s64, zpf32, zpi64``.  ``s32 = fl(scale)``,
    ``inv32 = fl(1 / s32)``, ``s64`` the scale as given (torch keeps per-channel
    scales as float64; float zero points make it ``fl(scale)``, as torch stores
    those scales as float32), ``zpf32 = fl(zp)`` and ``zpi64`` the integer zero point
    (rounded for float zero points, only used by integer recipes).
    """
    s64 = np.ascontiguousarray(scales, dtype=np.float64)
    s32 = s64.astype(np.float32)
    inv32 = (np.float32(1.0) / s32).astype(np.float32)
    zp = np.asarray(zero_points)
    if zp.dtype.kind == "f":
        # torch keeps float-qparams scales (and zero points) as float32
        # (measured against torch 2.13.0): dequantize multiplies by fl(scale)
        s64 = s32.astype(np.float64)
    zpf32 = _f32(zp)
    zpi = np.rint(zp).astype(np.int64) if zp.dtype.kind == "f" else zp.astype(np.int64)
    return s32, inv32, s64, zpf32, np.ascontiguousarray(zpi)


# ---------------------------------------------------------------- TFLite
def quantize_multiplier(d: float, single_rounding: bool):
    """TFLite ``QuantizeMultiplier``: ``d ~= M * 2**(shift - 31)``.

    ``M`` is rounded half away from zero from the frexp mantissa; shifts below
    -31 give ``(0, 0)``; with single rounding shifts above 30 saturate to
    ``(2**31 - 1, 30)``.
    """
    if d == 0.0:
        return 0, 0
    q, shift = math.frexp(d)
    m = q * (1 << 31)
    m = int(math.floor(m + 0.5)) if m >= 0 else -int(math.floor(-m + 0.5))
    if m == (1 << 31):
        m //= 2
        shift += 1
    if shift < -31:
        m, shift = 0, 0
    if single_rounding and shift > 30:
        m, shift = (1 << 31) - 1, 30
    return m, shift


def tflite_multipliers(ratios, single_rounding: bool):
    pairs = [quantize_multiplier(float(r), single_rounding) for r in ratios]
    m = np.array([p[0] for p in pairs], dtype=np.int64)
    sh = np.array([p[1] for p in pairs], dtype=np.int64)
    return m, sh


# ---------------------------------------------------------------- exact
def mantissa_exponent(s32):
    """Split positive normal float32 values into ``m * 2**e`` with ``m`` a
    24-bit integer in ``[2**23, 2**24)``."""
    fr, ex = np.frexp(np.asarray(s32, dtype=np.float64))
    m = (fr * (1 << 24)).astype(np.int64)
    return m, ex.astype(np.int64) - 24
