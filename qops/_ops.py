"""quantize / dequantize / requantize / fake-quantize and QTensor factories.

Each public function follows the same steps: validate, canonicalise (a flat
contiguous array viewed as rows of one channel each), allocate, run the kernel
through the dispatch table, wrap.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import _dispatch
from ._device import device_of, is_cuda_array, params_to_device
from ._qparams import choose_qparams
from ._recipes import (
    channel_params,
    dequantize_recipe,
    mantissa_exponent,
    quantize_recipe,
    tflite_multipliers,
    tensor_params,
)
from ._validate import (
    as_float_input,
    check_axis,
    check_int,
    check_quant_range,
    check_scale,
    check_scales,
    check_zero_point,
    check_zero_points,
)
from .dtypes import (
    as_qdtype,
    per_channel_affine_float_qparams,
    qint8,
    qint32,
    quint8,
)
from .kernels import modes as M
from .kernels._options import BYTE_TABLE_MIN
from .numerics import resolve_numerics
from .qtensor import QTensor

__all__ = [
    "quantize_per_tensor",
    "quantize_per_channel",
    "quantize_per_tensor_dynamic",
    "dequantize",
    "requantize",
    "make_per_tensor_qtensor",
    "make_per_channel_qtensor",
    "fake_quantize_per_tensor_affine",
    "fake_quantize_per_channel_affine",
]


# ------------------------------------------------------------------ helpers
def _empty(shape, dtype, device):
    if device == "cuda":
        from numba import cuda

        return cuda.device_array(shape, dtype=dtype)
    return np.empty(shape, dtype=dtype)


def _flat(a):
    """A flat C-contiguous view (or copy) of ``a``."""
    if is_cuda_array(a):
        if not a.is_c_contiguous():
            raise NotImplementedError("strided CUDA arrays are not supported; make the array contiguous")
        return a.reshape(a.size)
    return np.ascontiguousarray(a).reshape(-1)


def _layout(shape, axis):
    """``inner`` (elements per row) for the kernels' row layout."""
    if axis is None:
        return max(math.prod(shape), 1)
    return max(math.prod(shape[axis + 1:]), 1)


def _size(shape):
    return math.prod(shape)  # Python ints: np.prod costs microseconds a call


def _params_to_device(device, *arrays):
    if device == "cuda":
        return params_to_device(*arrays)
    return arrays


def _quantize_into(x, dtype, axis, scales, zps, float_zp, profile, device):
    """Quantize ``x`` into a new array.  Per tensor (``axis`` None), ``scales``
    and ``zps`` are one float and one int; per channel, arrays."""
    mode, nanq = quantize_recipe(profile, dtype, axis is not None, float_zp)
    if axis is None:
        s32, inv32, _s64, zpf32, zpi = tensor_params(float(scales), int(zps))
    else:
        s32, inv32, _s64, zpf32, zpi = channel_params(scales, zps)
    if type(x) is np.ndarray and x.flags.c_contiguous:  # the common case, briefly
        out = np.empty(x.shape, dtype.storage)
        n = x.size
        if n:
            _dispatch.run("quantize", "cpu", x.ravel(), out.ravel(), _layout(x.shape, axis), mode,
                          s32, inv32, zpf32, zpi, dtype.qmin, dtype.qmax, nanq)
        return out
    out = _empty(x.shape, dtype.storage, device)
    n = _size(x.shape)
    if n:
        params = _params_to_device(device, s32, inv32, zpf32, zpi)
        _dispatch.run(
            "quantize", device, _flat(x), _flat(out), _layout(x.shape, axis), mode,
            *params, dtype.qmin, dtype.qmax, nanq,
        )
    return out


def _per_channel_args(x, scales, zero_points, axis, dtype, op):
    """Check a per-channel call: ``(axis, scales float64, zero points, float_zp)``."""
    if x.ndim == 0:
        raise ValueError(f"{op} needs at least a 1-D input (it has a channel axis)")
    ax = check_axis(axis, x.ndim)
    s = check_scales(scales)
    n = x.shape[ax]
    if s.size != n:
        raise ValueError(f"scales has {s.size} entries but axis {ax} of the input has length {n}")
    z, float_zp = check_zero_points(zero_points, dtype, n)
    return ax, s, z, float_zp


# ------------------------------------------------------------------ quantize
def quantize_per_tensor(x, scale, zero_point, dtype, *, numerics=None) -> QTensor:
    """Quantize a float array with one scale and zero point.

    Parameters
    ----------
    x : array_like or CUDA device array
        Float input of any shape and strides.  float64 and float16 are converted
        to float32 first (every profile's arithmetic is float32); integer input
        is refused.
    scale : float
        Positive; its float32 rounding must be a normal number.
    zero_point : int
        Inside the range of ``dtype``.
    dtype : QDType
        ``qops.quint8``, ``qint8``, ``qint32``, ``quint4x2`` or ``quint2x4``.
    numerics : str, optional
        Numerics profile (default: the active one, ``"fbgemm"``).

    Returns
    -------
    QTensor
        Per-tensor affine, on the device of ``x``.

    Raises
    ------
    TypeError
        Non-float input, non-integer zero point, unknown dtype.
    ValueError
        Unusable scale, zero point out of range, unknown profile.

    Notes
    -----
    fbgemm/qnnpack/onednn reproduce torch 2.13 ``quantize_per_tensor``:
    ``fl(x*fl(1/s) + zp)`` in one rounding (the zero point is added before
    rounding), then round half to even and saturate; NaN gives qmax.
    onnxruntime rounds ``fl(x/s)`` then adds the zero point; tflite rounds
    half away from zero; reference rounds the exact quotient.

    Examples
    --------
    >>> import numpy as np, qops
    >>> q = qops.quantize_per_tensor(np.float32([0.5, 1.5, 2.5, -0.5]), 1.0, 3, qops.quint8)
    >>> q.int_repr()
    array([4, 4, 6, 2], dtype=uint8)
    """
    profile = resolve_numerics(numerics)
    dtype = as_qdtype(dtype)
    x = as_float_input(x, "quantize_per_tensor")
    s = check_scale(scale)
    z = check_zero_point(zero_point, dtype)
    device = device_of(x)
    out = _quantize_into(x, dtype, None, s, z, False, profile, device)
    return QTensor._per_tensor(out, dtype, s, z)


def quantize_per_channel(x, scales, zero_points, axis, dtype, *, numerics=None) -> QTensor:
    """Quantize with one scale and zero point per slice along ``axis``.

    Parameters
    ----------
    x : array_like or CUDA device array
        Float input (see :func:`quantize_per_tensor` for dtypes).
    scales : array_like
        One positive scale per channel (kept as float64, as torch does).
    zero_points : array_like
        One zero point per channel.  Integers give ``per_channel_affine``;
        floats give ``per_channel_affine_float_qparams`` (torch profiles only,
        quint8 / qint8 / quint4x2 / quint2x4).
    axis : int
        The channel axis; negative values count from the end (torch refuses them).
    dtype : QDType
    numerics : str, optional

    Returns
    -------
    QTensor
        Per-channel, on the device of ``x``.

    Notes
    -----
    Torch profiles: ``fl(fl(x*fl(1/s)) + fl(zp))`` (two roundings), round half to
    even, saturate; NaN gives 0 for 8-bit types and INT32_MIN for qint32.  With
    float zero points torch's ``lrintf`` conversion is reproduced: NaN,
    infinities and values beyond int32 land on 0 or qmin.
    """
    profile = resolve_numerics(numerics)
    dtype = as_qdtype(dtype)
    x = as_float_input(x, "quantize_per_channel")
    ax, s, z, float_zp = _per_channel_args(x, scales, zero_points, axis, dtype, "quantize_per_channel")
    if float_zp and dtype is qint32:
        raise NotImplementedError("float zero points are supported for quint8, qint8 and the sub-byte types, not qint32")
    device = device_of(x)
    out = _quantize_into(x, dtype, ax, s, z, float_zp, profile, device)
    return QTensor._per_channel(out, dtype, s, z, ax)


def quantize_per_tensor_dynamic(x, dtype, reduce_range=False) -> QTensor:
    """Quantize with a scale and zero point chosen from the data's range.

    Reproduces torch's ``quantize_per_tensor_dynamic``: min/max of ``x``
    (extended to include 0), ATen's ``ChooseQuantizationParams`` (scale in
    float64, 6.1e-5 floor, nudged zero point), then :func:`quantize_per_tensor`
    under the torch profile.  ``reduce_range`` halves the integer range.

    Raises
    ------
    ValueError
        Empty input, or input with NaN or infinity (torch returns garbage).
    NotImplementedError
        A dtype other than quint8 / qint8 (as torch).
    """
    dtype = as_qdtype(dtype)
    if dtype not in (quint8, qint8):
        raise NotImplementedError(f"quantize_per_tensor_dynamic supports quint8 and qint8, got {dtype!r}")
    if not isinstance(reduce_range, (bool, np.bool_)):
        raise TypeError(f"reduce_range must be a bool, got {reduce_range!r}")
    x = as_float_input(x, "quantize_per_tensor_dynamic")
    host = x.copy_to_host() if is_cuda_array(x) else x
    if host.size == 0:
        raise ValueError("quantize_per_tensor_dynamic needs a non-empty input to choose qparams")
    mn, mx = np.min(host), np.max(host)
    if not (np.isfinite(mn) and np.isfinite(mx)):
        raise ValueError("quantize_per_tensor_dynamic: the input contains NaN or infinity")
    scale, zp = choose_qparams(mn, mx, dtype.qmin, dtype.qmax, reduce_range=bool(reduce_range))
    return quantize_per_tensor(x, scale, zp, dtype, numerics="fbgemm")


# ---------------------------------------------------------------- dequantize
def dequantize(q, *, numerics=None):
    """Float32 values of a QTensor, on its device.

    Parameters
    ----------
    q : QTensor
    numerics : str, optional
        fbgemm/qnnpack/onednn reproduce torch: per-tensor ``fl(fl(q - zp) * s)``
        (int32 subtraction, float32 product), per-channel
        ``fl(double(fl(fl(q) - fl(zp))) * s64)``; onnxruntime
        ``fl(fl(q - zp) * s)``; tflite ``fl(double(s) * (q - zp))``; reference
        the exact product rounded once.

    Returns
    -------
    ndarray or CUDA device array of float32, shaped like ``q``.
    """
    if not isinstance(q, QTensor):
        raise TypeError(f"dequantize expects a QTensor, got {type(q).__name__}")
    profile = resolve_numerics(numerics)
    per_channel = q._axis is not None
    float_zp = q._qscheme is per_channel_affine_float_qparams
    mode = dequantize_recipe(profile, per_channel, float_zp)
    if per_channel:
        s32, _inv, s64, zpf32, zpi = channel_params(q._scales, q._zero_points)
    else:
        s32, _inv, s64, zpf32, zpi = tensor_params(float(q._scale), int(q._zero_point))
    data = q._data
    if type(data) is np.ndarray and data.flags.c_contiguous:  # the common case, briefly
        out = np.empty(data.shape, np.float32)
        n = data.size
        if n:
            _dispatch.run("dequantize", "cpu", data.ravel(), out.ravel(), _layout(data.shape, q._axis),
                          mode, s32, s64, zpf32, zpi)
        return out
    device = q.device
    out = _empty(data.shape, np.float32, device)
    if q.size:
        params = _params_to_device(device, s32, s64, zpf32, zpi)
        _dispatch.run("dequantize", device, _flat(data), _flat(out),
                      _layout(data.shape, q._axis), mode, *params)
    return out


# ---------------------------------------------------------------- requantize
#: profiles whose requantization is not dequantize-then-quantize
_FIXED_POINT = ("tflite", "tflite_single", "reference")


@functools.lru_cache(maxsize=256)
def _requantize_table(profile, src, dst, s1, z1, s2, z2):
    """The byte table (``lut_apply``'s two rows) of a per-tensor ``src`` to
    ``dst`` requantization, both 8-bit, under a dequantize-then-quantize
    profile: built by the kernel's recipe, once per set of arguments (a model
    requantizes with the same parameters call after call; building it took
    2.3 us of a 4096-value call)."""
    p1, _inv1, p1_64, zpf1, zpi1 = tensor_params(float(s1), int(z1))
    p2, inv2, _p2_64, zpf2, zpi2 = tensor_params(float(s2), int(z2))
    q_mode, nanq = quantize_recipe(profile, dst, False, False)
    none = np.zeros(1, np.int64)
    lut = _dispatch.run("quantize.requantize_table8", "cpu", np.empty(0, src.storage), np.empty(0, dst.storage),
                        M.RQ_TWO_STEP, dequantize_recipe(profile, False, False), q_mode, p1, p1_64, zpf1, zpi1,
                        none, none, p2[0], inv2[0], zpf2[0], int(zpi2[0]), 0, dst.qmin, dst.qmax, nanq)
    lut.flags.writeable = False
    return lut


def requantize(q, scale, zero_point, dtype=None, *, numerics=None) -> QTensor:
    """Re-express a QTensor with a new per-tensor scale and zero point.

    Parameters
    ----------
    q : QTensor
        Per-tensor or per-channel input.
    scale, zero_point :
        The output's quantization parameters.
    dtype : QDType, optional
        Output dtype (default: ``q``'s dtype).
    numerics : str, optional
        torch profiles: ``quantize_per_tensor(dequantize(q))``, torch's only
        route, bit for bit; onnxruntime: DequantizeLinear then QuantizeLinear;
        tflite / tflite_single: TFLite's int8 requantization with a fixed-point
        multiplier from ``double(s1) / double(s2)``; reference: the exact
        rational ``rne((q - z1) * s1 / s2) + z2``, saturated.

    Returns
    -------
    QTensor
        Per-tensor affine with the given parameters, on ``q``'s device.
    """
    if not isinstance(q, QTensor):
        raise TypeError(f"requantize expects a QTensor, got {type(q).__name__}")
    profile = resolve_numerics(numerics)
    dtype = q.dtype if dtype is None else as_qdtype(dtype)
    s2 = check_scale(scale)
    z2 = check_zero_point(zero_point, dtype)
    data = q._data
    if (q._axis is None and dtype.bits == 8 and q._dtype.bits == 8 and profile not in _FIXED_POINT
            and type(data) is np.ndarray and data.flags.c_contiguous and data.size >= BYTE_TABLE_MIN):
        # every result is one of 256 bytes: look them up in the table of this
        # profile and these parameters, kept from the last call that used them
        out = np.empty(data.shape, dtype.storage)
        lut = _requantize_table(profile, q._dtype, dtype, q._scale, q._zero_point, s2, z2)
        _dispatch.run("activation.lut_apply", "cpu", data.ravel().view(np.uint8), out.ravel().view(np.uint8),
                      lut, 0)
        return QTensor._per_tensor(out, dtype, s2, z2)
    per_channel = q._axis is not None
    float_zp = q._qscheme is per_channel_affine_float_qparams
    if per_channel:
        s1, _inv1, s1_64, zpf1, zpi1 = channel_params(q._scales, q._zero_points)
    else:
        s1, _inv1, s1_64, zpf1, zpi1 = tensor_params(float(q._scale), int(q._zero_point))
    o_s, o_inv, _o64, o_zpf, o_zpi = tensor_params(float(s2), int(z2))
    nch = s1.size
    mult = np.zeros(nch, np.int64)
    shift = np.zeros(nch, np.int64)
    m2 = 0
    dq_mode = q_mode = nanq = 0
    if profile in ("tflite", "tflite_single", "reference") and float_zp:
        raise NotImplementedError(f"numerics={profile!r} cannot requantize float zero points")
    if profile in ("tflite", "tflite_single"):
        mode = M.RQ_TFLITE if profile == "tflite" else M.RQ_TFLITE_SINGLE
        ratios = s1.astype(np.float64) / float(np.float32(s2))
        mult, shift = tflite_multipliers(ratios, profile == "tflite_single")
        if profile == "tflite" and shift.max() > 31:
            # TFLite computes x * (1 << shift) in int32 first: from shift 32 on
            # that is no longer even a wrapping product (tflite_single
            # saturates the multiplier instead)
            raise ValueError(
                f"numerics='tflite' cannot requantize with a scale ratio s1/s2 = "
                f"{ratios.max():.6g} >= 2**31: TFLite's double-rounding fixed point is "
                "undefined there; use numerics='tflite_single' or a larger output scale"
            )
    elif profile == "reference":
        mode = M.RQ_REF
        m1, e1 = mantissa_exponent(s1)
        (m2,), (e2,) = mantissa_exponent(o_s)
        mult, shift = m1, e1 - e2
        m2 = int(m2)
    else:
        mode = M.RQ_TWO_STEP
        dq_mode = dequantize_recipe(profile, per_channel, float_zp)
        q_mode, nanq = quantize_recipe(profile, dtype, False, False)
    device = q.device
    out = _empty(data.shape, dtype.storage, device)
    if q.size:
        arrays = _params_to_device(device, s1, s1_64, zpf1, zpi1, mult, shift)
        _dispatch.run(
            "requantize", device, _flat(data), _flat(out), _layout(data.shape, q._axis),
            mode, dq_mode, q_mode, *arrays,
            o_s[0], o_inv[0], o_zpf[0], int(o_zpi[0]), m2, dtype.qmin, dtype.qmax, nanq,
        )
    return QTensor._per_tensor(out, dtype, s2, z2)


# ------------------------------------------------------------------ factories
def _storage_check(int_repr, dtype, op):
    if is_cuda_array(int_repr):
        a = int_repr
        dt = np.dtype(a.dtype)
    else:
        if hasattr(int_repr, "detach") and hasattr(int_repr, "numpy"):
            int_repr = int_repr.detach().cpu().numpy()
        if not isinstance(int_repr, np.ndarray):
            raise TypeError(f"{op} expects an integer array, got {type(int_repr).__name__}")
        a = int_repr
        dt = a.dtype
    if dt != dtype.storage:
        what = "packed uint8 bytes" if dtype.is_subbyte else np.dtype(dtype.storage).name
        raise TypeError(f"{op}: {dtype!r} needs {what}, got an array of {dt}")
    return a


def _unpack(packed, dtype, shape, op):
    if is_cuda_array(packed):
        raise NotImplementedError(f"{op}: pass packed sub-byte integers as a host array")
    packed = np.ascontiguousarray(packed).reshape(-1)
    capacity = packed.size * dtype.per_byte
    if shape is None:
        shape = (capacity,)
    shape = tuple(int(s) for s in shape)
    n = _size(shape)
    if not capacity - dtype.per_byte < n <= capacity and not (n == 0 and packed.size == 0):
        raise ValueError(
            f"{op}: {packed.size} packed bytes hold {capacity - dtype.per_byte + 1}..{capacity} "
            f"{dtype.name} values, but shape {shape} has {n}"
        )
    vals = np.empty(n, np.uint8)
    _dispatch.run("unpack_subbyte", "cpu", packed, dtype.bits, vals)
    return vals.reshape(shape)


def pack_values(values, dtype):
    """Pack unpacked sub-byte values (any shape, row-major) into torch's bytes."""
    device = device_of(values)
    host = values.copy_to_host() if device == "cuda" else values
    flat = np.ascontiguousarray(host).reshape(-1)
    out = np.empty(-(-flat.size // dtype.per_byte), np.uint8)
    _dispatch.run("pack_subbyte", "cpu", flat, dtype.bits, out)
    if device == "cuda":
        from numba import cuda

        return cuda.to_device(out)
    return out


def make_per_tensor_qtensor(int_repr, scale, zero_point, dtype, *, shape=None) -> QTensor:
    """Wrap existing integers as a per-tensor QTensor (no copy for byte types).

    Like torch's ``_make_per_tensor_quantized_tensor``.  ``int_repr`` must be
    uint8 for quint8, int8 for qint8, int32 for qint32, and packed uint8 bytes
    for quint4x2 / quint2x4, whose logical ``shape`` defaults to every value
    the bytes hold (flat).  Values outside the dtype's range are refused.
    """
    dtype = as_qdtype(dtype)
    a = _storage_check(int_repr, dtype, "make_per_tensor_qtensor")
    s = check_scale(scale)
    z = check_zero_point(zero_point, dtype)
    if dtype.is_subbyte:
        a = _unpack(a, dtype, shape, "make_per_tensor_qtensor")
    elif shape is not None:
        raise ValueError("shape= is only for packed sub-byte dtypes; reshape the array instead")
    return QTensor._per_tensor(a, dtype, s, z)


def make_per_channel_qtensor(int_repr, scales, zero_points, axis, dtype, *, shape=None) -> QTensor:
    """Wrap existing integers as a per-channel QTensor.

    Like torch's ``_make_per_channel_quantized_tensor``; see
    :func:`make_per_tensor_qtensor` for the integer dtypes.  Float zero points
    give ``per_channel_affine_float_qparams``.
    """
    dtype = as_qdtype(dtype)
    a = _storage_check(int_repr, dtype, "make_per_channel_qtensor")
    if dtype.is_subbyte:
        a = _unpack(a, dtype, shape, "make_per_channel_qtensor")
    elif shape is not None:
        raise ValueError("shape= is only for packed sub-byte dtypes; reshape the array instead")
    ax, s, z, _ = _per_channel_args(a, scales, zero_points, axis, dtype, "make_per_channel_qtensor")
    return QTensor._per_channel(a, dtype, s, z, ax)


# -------------------------------------------------------------- fake quantize
def _fake_quantize(x, scales, zps, axis, quant_min, quant_max, variant, return_mask, op):
    x = as_float_input(x, op)
    device = device_of(x)
    out = _empty(x.shape, np.float32, device)
    mask = _empty(x.shape, np.bool_, device)
    s32 = scales.astype(np.float32)
    inv = (np.float32(1.0) / s32).astype(np.float32)
    if _size(x.shape):
        params = _params_to_device(device, s32, inv, zps.astype(np.float64))
        _dispatch.run("fake_quantize", device, _flat(x), _flat(out), _flat(mask),
                      _layout(x.shape, axis), variant, *params, quant_min, quant_max)
    return (out, mask) if return_mask else out


def fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max, *, return_mask=False):
    """torch's ``fake_quantize_per_tensor_affine`` forward, exactly.

    ``q = zp + rne(fl(x * fl(1/s)))`` (round, THEN add the zero point, unlike
    quantize_per_tensor), ``y = fl((clamp(q, quant_min, quant_max) - zp) * s)``.

    Returns
    -------
    ndarray of float32, or ``(y, mask)`` with ``return_mask=True``: the
    straight-through gradient mask, True where the unclamped ``q`` lies in
    ``[quant_min, quant_max]`` (torch's backward multiplies by it).
    """
    lo, hi = check_quant_range(quant_min, quant_max)
    s = check_scale(scale)
    z = check_int(zero_point, "zero_point")
    if not lo <= z <= hi:
        raise ValueError(f"zero_point={z} must lie in [quant_min, quant_max] = [{lo}, {hi}]")
    return _fake_quantize(x, np.array([s]), np.array([z]), None, lo, hi, M.FQ_TENSOR, return_mask,
                          "fake_quantize_per_tensor_affine")


def fake_quantize_per_channel_affine(x, scales, zero_points, axis, quant_min, quant_max, *, return_mask=False):
    """torch's ``fake_quantize_per_channel_affine`` forward, exactly.

    Integer zero points: as :func:`fake_quantize_per_tensor_affine` per
    channel, with torch's per-channel conversion quirk (the rounded value is
    cast to int64 before clamping: NaN, infinities and values beyond int64
    go to ``quant_min``); they must lie in ``[quant_min, quant_max]``.
    Float zero points (torch's float-qparams form, e.g. for embeddings):
    ``q = lrint(fl(x * fl(1/s) + zp))`` (one rounding: torch's CPU kernel is
    compiled with a fused multiply-add there),
    ``y = fl((clamp(q) - zp) * s)`` in double; any finite value is allowed.
    Scales are used as float32, as torch requires.

    Returns
    -------
    ndarray of float32, or ``(y, mask)`` with ``return_mask=True`` (True where
    the unclamped ``q`` lies in ``[quant_min, quant_max]``).
    """
    lo, hi = check_quant_range(quant_min, quant_max)
    x_arr = as_float_input(x, "fake_quantize_per_channel_affine")
    ax, s, z, float_zp = _per_channel_args(x_arr, scales, zero_points, axis, qint32,
                                           "fake_quantize_per_channel_affine")
    if float_zp:
        z = z.astype(np.float32)  # torch holds float zero points as float32
        variant = M.FQ_CHANNEL_FLOAT_ZP
    else:
        if ((z < lo) | (z > hi)).any():
            raise ValueError(f"zero_points must lie in [quant_min, quant_max] = [{lo}, {hi}]")
        variant = M.FQ_CHANNEL
    return _fake_quantize(x_arr, s, z, ax, lo, hi, variant, return_mask, "fake_quantize_per_channel_affine")
