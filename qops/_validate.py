"""Validation of user input: every public op checks through these helpers."""

from __future__ import annotations

import numbers

import numpy as np

from ._device import is_cuda_array
from .dtypes import QDType

_F32_TINY = float(np.finfo(np.float32).tiny)
_F32_MAX = float(np.finfo(np.float32).max)


def check_scale(scale, what="scale") -> float:
    """Return ``scale`` as a Python float after checking it is usable.

    torch accepts any scale; qops refuses values whose float32 rounding is not
    a positive normal number, because torch then silently returns garbage.
    """
    if type(scale) is float and 1e-30 < scale < 1e30:  # the common case: float32-normal
        return scale
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise TypeError(f"{what} must be a real number, got {type(scale).__name__}")
    s = float(scale)
    s32 = float(np.float32(s)) if abs(s) <= _F32_MAX * 2 else float("inf")
    if not (s > 0) or not np.isfinite(s):
        raise ValueError(f"{what} must be a finite number > 0, got {s!r}")
    if not (_F32_TINY <= s32 <= _F32_MAX):
        raise ValueError(
            f"{what}={s!r} is not a normal float32 number (it must lie in "
            f"[{_F32_TINY:.6g}, {_F32_MAX:.6g}]); subnormal, zero and overflowing "
            "scales give meaningless results in every backend"
        )
    return s


def check_scales(scales, what="scales") -> np.ndarray:
    """Per-channel scales as a 1-D float64 array, each checked like ``check_scale``."""
    a = to_host_1d(scales, what)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{what} must be real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    with np.errstate(over="ignore"):
        a32 = a.astype(np.float32)
    bad = ~(np.isfinite(a) & (a > 0) & (np.abs(a32) >= _F32_TINY) & np.isfinite(a32))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{what}[{i}]={a[i]!r} is not usable: every scale must be a finite "
            f"number > 0 whose float32 rounding is normal (>= {_F32_TINY:.6g})"
        )
    return a


def check_int(value, what) -> int:
    if type(value) is int:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            raise TypeError(
                f"{what} must be an integer, got the float {value!r}; pass int({value!r})"
            )
        raise TypeError(f"{what} must be an integer, got {value!r}")
    return int(value)


def check_zero_point(zp, dtype: QDType, what="zero_point") -> int:
    z = check_int(zp, what)
    if not dtype.qmin <= z <= dtype.qmax:
        raise ValueError(f"{what}={z} is outside the range [{dtype.qmin}, {dtype.qmax}] of {dtype!r}")
    return z


def check_zero_points(zps, dtype: QDType, n: int, what="zero_points"):
    """Per-channel zero points: int64 array, or float64 for float qparams.

    Returns ``(array, is_float)``.
    """
    a = to_host_1d(zps, what)
    if a.size != n:
        raise ValueError(f"{what} has {a.size} entries but the channel axis has {n}")
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"{what} must be finite")
        return a, True
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{what} must be integers (or floats for float qparams), got {a.dtype}")
    a = a.astype(np.int64)
    bad = (a < dtype.qmin) | (a > dtype.qmax)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{what}[{i}]={a[i]} is outside the range [{dtype.qmin}, {dtype.qmax}] of {dtype!r}"
        )
    return a, False


def check_axis(axis, ndim) -> int:
    a = check_int(axis, "axis")
    if not -ndim <= a < ndim:
        raise ValueError(f"axis={a} is out of range for a {ndim}-D tensor (valid: {-ndim}..{ndim - 1})")
    return a % ndim


def to_host_1d(values, what) -> np.ndarray:
    if is_cuda_array(values):
        values = values.copy_to_host()
    elif hasattr(values, "detach") and hasattr(values, "numpy"):  # a torch tensor
        values = values.detach().cpu().numpy()
    a = np.asarray(values)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {a.shape}")
    return a


def as_float_input(x, op):
    """Return ``x`` as a float32 array (host or CUDA) for quantization.

    float64 and float16 are converted to float32 (the arithmetic every profile
    describes); integer, boolean, complex and object input is refused.
    """
    if type(x) is np.ndarray and x.dtype == np.float32:
        return x
    if is_cuda_array(x):
        dt = np.dtype(x.dtype)
        if dt != np.float32:
            raise TypeError(f"{op} expects a float32 CUDA array, got {dt}; convert it on the device first")
        return x
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # a torch tensor
        x = x.detach().cpu().numpy()
    if isinstance(x, (list, tuple)) or isinstance(x, numbers.Number):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{op} expects a float array, got {type(x).__name__}")
    dt = x.dtype
    if dt.kind in "iub":
        raise TypeError(
            f"{op} expects float input, got {dt}; if these are already quantized "
            "integers (e.g. from int_repr()), wrap them with qops.make_per_tensor_qtensor "
            "or qops.make_per_channel_qtensor instead"
        )
    if dt.kind != "f":
        raise TypeError(f"{op} expects float input, got {dt}")
    return x.astype(np.float32, copy=False)


def check_quant_range(quant_min, quant_max):
    lo = check_int(quant_min, "quant_min")
    hi = check_int(quant_max, "quant_max")
    if lo > hi:
        raise ValueError(f"quant_min ({lo}) must be <= quant_max ({hi})")
    if lo < -(2**31) or hi > 2**31 - 1:
        raise ValueError(f"[quant_min, quant_max] = [{lo}, {hi}] must fit in int32")
    return lo, hi
