"""Quantized pooling: max_pool1d/2d, avg_pool2d/3d, adaptive_avg_pool2d/3d.

validate -> pick torch's memory-format path -> compute the windows per
dimension -> allocate -> kernel (:mod:`qops.kernels.cpu.pool`, CUDA twins in
:mod:`qops.kernels.cuda.pool`) -> wrap with the input's scale and zero point.

Layout.  A QTensor's integers are a strided array, as a torch tensor's.  torch
picks its quantized pooling kernel by the input's memory format: an input that
is ``channels_last`` contiguous (``is_contiguous(memory_format=channels_last)``
in torch: strides in NHWC order, size-1 dimensions ignored) runs the NHWC
kernel and gives a channels-last output; any other input is made contiguous
and runs the NCHW kernel.  The two kernels round differently, so qops takes
the same decision from the strides of the QTensor's array: ``x.permute(0, 3,
1, 2)`` of an NHWC array (which is what :func:`qops.functional.conv2d`
returns) is channels last, a C-contiguous array is not.  Outputs keep the
layout torch gives them (a channels-last output is a logical NCHW view of an
NHWC array), so a chain of ops takes torch's paths all along.
"""

from __future__ import annotations

import functools
import numbers

import numpy as np

from . import _dispatch
from ._device import is_cuda_array
from .dtypes import per_tensor_affine, per_tensor_symmetric, qint8, qint32, quint8
from .kernels.cpu.pool import (
    AVG_ADAPTIVE_NCHW,
    AVG_ADAPTIVE_NHWC,
    AVG_REF,
    AVG_TORCH_NCHW,
    AVG_TORCH_NHWC,
)
from .numerics import resolve_numerics
from .qtensor import QTensor

__all__ = [
    "max_pool1d",
    "max_pool2d",
    "avg_pool2d",
    "avg_pool3d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
]

_DTYPES = (quint8, qint8, qint32)
_DTYPE_BY_NAME = {d.name: d for d in _DTYPES}
_TORCH = ("fbgemm", "onednn", "qnnpack")
_SELECTION_ONLY = ("onnxruntime", "tflite", "tflite_single")
_INT32_MAX = 2**31 - 1


# ------------------------------------------------------------------ checks
def _check_input(x, op, layouts):
    if not isinstance(x, QTensor):
        raise TypeError(
            f"{op} expects a quantized input (a QTensor {layouts}), got {type(x).__name__}; "
            "quantize it first with qops.quantize_per_tensor"
        )
    if x._dtype not in _DTYPES:
        raise TypeError(
            f"{op} expects a quint8, qint8 or qint32 input, got {x.dtype.name}; "
            "requantize it with qops.requantize"
        )
    if x._axis is not None or x._qscheme not in (per_tensor_affine, per_tensor_symmetric):
        raise ValueError(
            f"{op} expects a per-tensor quantized input, got {x.qscheme().name}; requantize it "
            "to one scale with qops.requantize"
        )
    return x


def _ints(v, n, name, op, allow_empty=False):
    """``v`` (an int or a sequence of 1 or ``n`` ints) as a tuple of ``n`` ints."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be an int or a tuple of ints, got {v!r}")
    if isinstance(v, numbers.Integral):
        return (int(v),) * n
    try:
        t = tuple(v)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a tuple of ints, got {v!r}") from None
    if allow_empty and not t:
        return None
    if len(t) not in (1, n) or not all(
        isinstance(e, numbers.Integral) and not isinstance(e, (bool, np.bool_)) for e in t
    ):
        raise ValueError(f"{op}: {name} must be an int or a tuple of 1 or {n} ints, got {v!r}")
    return tuple(int(e) for e in t) * (n if len(t) == 1 else 1)


def _out_len(i, k, p, s, dil, ceil):
    """torch's ``pooling_output_shape`` (floor division, ceil mode's last
    window must start inside the input or its left padding)."""
    o = (i + 2 * p - dil * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (o - 1) * s >= i + p:
        o -= 1
    return o


def _check_geometry(op, sizes, k, s, p, dil):
    for name, v, low in (("kernel_size", k, 1), ("stride", s, 1), ("dilation", dil, 1)):
        if any(e < low for e in v):
            raise ValueError(f"{op}: {name} must be positive, got {v}")
    if any(e < 0 for e in p):
        raise ValueError(f"{op}: padding must be non-negative, got {p}")
    for kk, pp, dd in zip(k, p, dil):
        if pp > ((kk - 1) * dd + 1) // 2:
            raise ValueError(
                f"{op}: padding must be at most half of the effective kernel size, got "
                f"padding={p}, kernel_size={k}, dilation={dil}"
            )
    if any(n < 1 for n in sizes):
        raise ValueError(f"{op}: the spatial dimensions must be non-empty, got input size {sizes}")


def _frozen(fn):
    """Memoise a window-table builder (the same geometry recurs call after
    call; building the tables cost more than a small pool): its arrays are
    made read-only, so a cached table cannot be changed by a caller."""
    @functools.lru_cache(maxsize=512)
    def cached(*args):
        out = fn(*args)
        for a in out:
            a.flags.writeable = False
        return out

    return functools.wraps(fn)(cached)


def _typed(v):
    """A cache key for a geometry argument that tells ``1`` from ``True`` and
    ``1.0`` (also inside tuples), so that a cached plan never stands in for
    the validation of a different argument."""
    t = type(v)
    if t is int or t is str or v is None:  # the common case, as it is: a
        return v  # wrapped key below (a tuple holding a type) never equals it
    if t is tuple:
        if all(type(e) is int for e in v):
            return v
        return ("tuple",) + tuple((type(e), e) for e in v)
    return (t, v)


def _planned(build):
    """Memoise a pooling op's geometry plan (validation, output sizes,
    window tables: about 6 us of Python a call) per argument values; a call
    with an unhashable argument (a list) plans afresh, and a plan that raises
    is not kept."""
    cached = functools.lru_cache(maxsize=512)(lambda key, args: build(*args))

    @functools.wraps(build)
    def plan(*args):
        try:
            key = tuple(_typed(a) for a in args)
            hash(key)
        except TypeError:
            return build(*args)
        return cached(key, args)

    return plan


@_frozen
def _windows(i, o, k, s, p):
    """Average-pool windows of one dimension: clipped ``[lo, hi)`` and the
    extent over the zero-padded input."""
    start = np.arange(o, dtype=np.int64) * s - p
    end = np.minimum(start + k, i + p)
    ext = end - start
    return np.maximum(start, 0), np.minimum(end, i), ext


@_frozen
def _max_windows(i, o, k, s, p, dil):
    """Max-pool windows of one dimension: the first tap inside the input and
    the end of the window's taps, clipped."""
    start = np.arange(o, dtype=np.int64) * s - p
    end = np.minimum(start + (k - 1) * dil + 1, i)
    neg = start < 0
    start[neg] += (-start[neg] + dil - 1) // dil * dil
    return start, end


@_frozen
def _unit_window():
    """The single window of a missing depth dimension."""
    return np.zeros(1, np.int64), np.ones(1, np.int64), np.ones(1, np.int64)


@_frozen
def _adaptive_windows(i, o):
    """torch's start/end indices, computed in float32 as torch does."""
    idx = np.arange(o, dtype=np.int64)
    lo = np.floor(np.float32(idx * i) / np.float32(o)).astype(np.int64)
    hi = np.ceil(np.float32((idx + 1) * i) / np.float32(o)).astype(np.int64)
    return lo, hi, hi - lo


def _channels_last(a, order):
    """torch's ``is_contiguous(memory_format=channels_last[_3d])`` of array
    ``a``: strides in ``order`` (innermost first), size-1 dimensions ignored."""
    item = a.dtype.itemsize
    expected = 1
    for d in order:
        n = a.shape[d]
        if n != 1:
            if a.strides[d] != expected * item:
                return False
            expected *= n
    return True


def _profile(numerics, op, selection):
    profile = resolve_numerics(numerics)
    if profile in _SELECTION_ONLY and not selection:
        raise NotImplementedError(
            f"{op} under numerics '{profile}' is not implemented: its rounding is torch's; "
            "use numerics='fbgemm' or 'reference'"
        )
    return profile


def _qnnpack_refusals(op, x, k):
    """What torch 2.13 refuses before QNNPACK's pooling runs (it raises
    RuntimeError; qops raises ValueError saying why)."""
    if x.ndim != 4:
        raise ValueError(
            f"{op} under numerics 'qnnpack': torch's QNNPACK pooling takes 4-D (N, C, H, W) input "
            f"only, got shape {x.shape} (torch raises); add a batch dimension with unsqueeze(0) or "
            "use numerics='fbgemm'"
        )
    if k[0] * k[1] == 1:
        raise ValueError(
            f"{op} under numerics 'qnnpack': QNNPACK refuses a 1x1 window (torch fails to create "
            "the operator); use numerics='fbgemm'"
        )


def _qnnpack_avg(x, k, s, p, oh, ow):
    """torch's ``qnnpack_avg_pool2d``: QNNPACK's ``q8avgpool`` (see
    :func:`qops.kernels.cpu.pool.avg_pool_qnnpack`); ``count_include_pad`` and
    ``divisor_override`` do not apply (the divisor is the window area).  The
    output keeps the input's scale and zero point and its memory format."""
    sf = np.float32(x._scale)
    if not np.isfinite(sf) or sf < np.finfo(np.float32).tiny:
        raise ValueError(
            f"QNNPACK's average pooling needs a normal float32 scale, got {x._scale!r} (torch "
            "fails to create the operator); use numerics='fbgemm'"
        )
    scale = np.float32(sf / np.float32(sf * np.float32(k[0] * k[1])))
    device, put, alloc = _device_arrays(x)
    n, c, h, w = x.shape
    planes = _contig(x._data).reshape(n * c, h, w)
    out = alloc((n * c, oh, ow), np.uint8)
    lh, hh, _ = _windows(h, oh, k[0], s[0], p[0])
    lw, hw, _ = _windows(w, ow, k[1], s[1], p[1])
    if out.size:
        _dispatch.run("pool.avg_pool_qnnpack", device, planes, out, put(lh), put(hh), put(lw), put(hw),
                      x._zero_point, scale)
    out = out.reshape(n, c, oh, ow)
    if device == "cpu" and _channels_last(x._data, (1, 3, 2, 0)):
        out = np.ascontiguousarray(out.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return _wrap(x, out)


def _device_arrays(x):
    if is_cuda_array(x._data):
        from numba import cuda

        return "cuda", (lambda a: cuda.to_device(a)), (lambda shape, dt: cuda.device_array(shape, dt))
    return "cpu", (lambda a: a), (lambda shape, dt: np.empty(shape, dt))


def _wrap(x, out):
    return QTensor._per_tensor(out, x._dtype, x._scale, x._zero_point, x._qscheme)


# ------------------------------------------------------------------ drivers
def _run_max(x, data5, cl, out_sizes, wins, dil, op):
    """``data5`` is ``(P, D, H, W)`` (planes) or ``(N, D, H, W, C)`` (channels last)."""
    device, put, alloc = _device_arrays(x)
    (ld, hd), (lh, hh), (lw, hw) = wins
    od, oh, ow = out_sizes
    shape = (data5.shape[0], od, oh, ow, data5.shape[4]) if cl else (data5.shape[0], od, oh, ow)
    out = alloc(shape, x._dtype.storage)
    if 0 in shape:
        return out
    name = "pool.max_pool_cl" if cl else "pool.max_pool_nc"
    _dispatch.run(name, device, data5, out, put(ld), put(hd), put(lh), put(hh), put(lw), put(hw),
                  dil[0], dil[1], dil[2], x._dtype.qmin)
    return out


def _run_avg(x, data5, cl, out_sizes, wins, cip, divisor, mode, cvec, nch):
    device, put, alloc = _device_arrays(x)
    (ld, hd, ed), (lh, hh, eh), (lw, hw, ew) = wins
    od, oh, ow = out_sizes
    shape = (data5.shape[0], od, oh, ow, data5.shape[4]) if cl else (data5.shape[0], od, oh, ow)
    out = alloc(shape, x._dtype.storage)
    if 0 in shape:
        return out
    args = (put(ld), put(hd), put(ed), put(lh), put(hh), put(eh), put(lw), put(hw), put(ew),
            bool(cip), int(divisor), mode, int(cvec))
    q = (x._zero_point, x._dtype.qmin, x._dtype.qmax)
    if cl:
        _dispatch.run("pool.avg_pool_cl", device, data5, out, *args, *q)
    else:
        _dispatch.run("pool.avg_pool_nc", device, data5, out, *args, max(1, int(nch)), *q)
    return out


def _contig(a):
    if is_cuda_array(a):
        if not a.is_c_contiguous():
            raise NotImplementedError(
                "pooling a strided CUDA QTensor is not supported; make it contiguous on the CPU first"
            )
        return a
    return np.ascontiguousarray(a)


#: Bytes below which the NCDHW -> NDHWC copy runs on one thread.
_TRANSPOSE_SERIAL_BYTES = 1 << 18


def _channels_last_copy(a):
    """``a`` (N, C, D, H, W) as a C-contiguous (N, D, H, W, C) array: a view
    when it is laid out so already; for 8-bit data one pass of the blocked
    8x8 transpose kernel of the convolutions (``conv.pad_channels_last``,
    over ten times numpy's strided copy here)."""
    last = a.transpose(0, 2, 3, 4, 1)
    if last.flags.c_contiguous or a.dtype.itemsize != 1 or not a.flags.c_contiguous:
        return np.ascontiguousarray(last)
    n, c, d, h, w = a.shape
    out = np.empty((n, d, h, w, c), np.uint8)
    if out.size:
        serial = "_serial" if out.size < _TRANSPOSE_SERIAL_BYTES else ""
        _dispatch.run("conv.pad_channels_last" + serial, "cpu", a.view(np.uint8).reshape(-1), False,
                      0, 0, n, c, d, h, w, 0, 0, 0, out)
    return out.view(a.dtype)


def _layout_2d(x):
    """``(data, cl, torch_cl)`` for a 3-D or 4-D input: ``data`` as
    ``(P, 1, H, W)`` planes or, when ``cl``, ``(N, 1, H, W, C)`` channels last;
    ``torch_cl`` is torch's memory-format decision (CUDA inputs run the
    planes-first kernels with the recipe torch's decision selects)."""
    a = x._data
    torch_cl = a.ndim == 4 and _channels_last(a, (1, 3, 2, 0))
    if torch_cl and not is_cuda_array(a):
        n, c, h, w = a.shape
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).reshape(n, 1, h, w, c), True, True
    a = _contig(a)
    h, w = a.shape[-2:]
    return a.reshape(-1, 1, h, w), False, torch_cl


def _finish_2d(x, out, cl, lead, oh, ow):
    if cl:
        n, c = out.shape[0], out.shape[4]
        return _wrap(x, out.reshape(n, oh, ow, c).transpose(0, 3, 1, 2))
    return _wrap(x, out.reshape(lead + (oh, ow)))


# ------------------------------------------------------------------ max pool
def _overhang(h, w, oh, ow, k, s, dil):
    """Whether a window's last tap lies beyond the input (possible only with padding)."""
    return (oh - 1) * s[0] + (k[0] - 1) * dil[0] >= h or (ow - 1) * s[1] + (k[1] - 1) * dil[1] >= w


def _qnnpack_max_dilated(x, k, s, p, dil, oh, ow, op):
    """torch's ``qnnpack_maxpool2d`` with dilation: QNNPACK clamps every tap
    into the input (``min(doz(y*s + i*d, p), H - 1)``), so a padding tap reads
    the nearest edge pixel, which a dilated window may not otherwise hold.
    That is max pooling without padding over the input padded by edge
    replication: computed so, on the host for device arrays."""
    a = x._data
    device = "cuda" if is_cuda_array(a) else "cpu"
    host = a.copy_to_host() if device == "cuda" else a
    hp = (oh - 1) * s[0] + (k[0] - 1) * dil[0] + 1
    wp = (ow - 1) * s[1] + (k[1] - 1) * dil[1] + 1
    rows = np.clip(np.arange(hp) - p[0], 0, a.shape[2] - 1)
    cols = np.clip(np.arange(wp) - p[1], 0, a.shape[3] - 1)
    padded = host[:, :, rows][:, :, :, cols]
    if _channels_last(host, (1, 3, 2, 0)):
        padded = np.ascontiguousarray(padded.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    y = _max_pool2d(_wrap(x, padded), k, s, (0, 0), dil, False, False, "fbgemm", op)
    if device == "cuda":
        from numba import cuda

        return _wrap(x, cuda.to_device(np.ascontiguousarray(y._data)))
    return y


@_planned
def _max2d_plan(shape, kernel_size, stride, padding, dilation, ceil_mode, op):
    """max pooling's validated 2-D geometry: ``(k, s, p, dil, oh, ow, windows)``."""
    k = _ints(kernel_size, 2, "kernel_size", op)
    s = k if stride is None else (_ints(stride, 2, "stride", op, allow_empty=True) or k)
    p = _ints(padding, 2, "padding", op)
    dil = _ints(dilation, 2, "dilation", op)
    if shape[-3] < 1:
        raise ValueError(f"{op}: the channel dimension must be non-empty, got input size {shape}")
    _check_geometry(op, shape[-2:], k, s, p, dil)
    h, w = shape[-2:]
    oh = _out_len(h, k[0], p[0], s[0], dil[0], ceil_mode)
    ow = _out_len(w, k[1], p[1], s[1], dil[1], ceil_mode)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"{op}: the output size ({oh}, {ow}) is too small for input size {(h, w)}, "
            f"kernel_size={k}, stride={s}, padding={p}, dilation={dil}"
        )
    wins = (
        _unit_window()[:2],
        _max_windows(h, oh, k[0], s[0], p[0], dil[0]),
        _max_windows(w, ow, k[1], s[1], p[1], dil[1]),
    )
    return k, s, p, dil, oh, ow, wins


def _max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                numerics, op):
    profile = _profile(numerics, op, selection=True)
    x = _check_input(input, op, "(N, C, H, W) or (C, H, W)")
    if return_indices:
        raise NotImplementedError(
            f"{op}: return_indices=True is not supported for quantized inputs (torch's "
            "quantized max pooling refuses it too); pool the dequantized floats to get indices"
        )
    if x.ndim not in (3, 4):
        raise ValueError(f"{op} expects a (N, C, H, W) or (C, H, W) input, got shape {x.shape}")
    k, s, p, dil, oh, ow, wins = _max2d_plan(x.shape, kernel_size, stride, padding, dilation, ceil_mode, op)
    qnnpack = profile == "qnnpack" and x._dtype is quint8 and not ceil_mode
    if qnnpack:
        _qnnpack_refusals(op, x, k)
    h, w = x.shape[-2:]
    if qnnpack and (dil[0] > 1 or dil[1] > 1) and (p[0] or p[1] or _overhang(h, w, oh, ow, k, s, dil)):
        return _qnnpack_max_dilated(x, k, s, p, dil, oh, ow, op)
    data, cl, _ = _layout_2d(x)
    out = _run_max(x, data, cl, (1, oh, ow), wins, (1, dil[0], dil[1]), op)
    return _finish_2d(x, out, cl, x.shape[:-2], oh, ow)


_MAX_DOC = """
    Parameters
    ----------
    input : QTensor
        Per-tensor quint8, qint8 or qint32, shape {shape}.
    kernel_size, stride, padding, dilation : int or tuple of ints
        As torch; ``stride=None`` means ``kernel_size``.  ``padding`` must be
        at most half the effective kernel size.
    ceil_mode : bool
        Round the output size up (the last window must start inside the
        input or its left padding).
    return_indices : bool
        Must be False: torch's quantized max pooling refuses indices.
    numerics : str, optional
        Every profile gives the same integers (max pooling only selects),
        except ``qnnpack`` for quint8 inputs without ``ceil_mode``, which
        torch sends to QNNPACK: there a dilated window's padding taps read
        the nearest edge pixel, and 3-D input and 1x1 windows are refused
        (ValueError; torch raises RuntimeError).

    Returns
    -------
    QTensor
        The largest integer of each window; the input's scale and zero point
        carry over.  A channels-last input gives a channels-last output, as
        in torch.

    Raises
    ------
    TypeError
        Non-QTensor input or an unsupported dtype.
    ValueError
        Wrong rank, empty dimensions, non-positive kernel, stride or
        dilation, negative or too large padding, output size below 1; under
        ``qnnpack``, what QNNPACK refuses.
    NotImplementedError
        ``return_indices=True``.
"""


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, numerics=None):
    return _max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                       numerics, "max_pool2d")


max_pool2d.__doc__ = "2-D max pooling of a quantized ``(N, C, H, W)`` or ``(C, H, W)`` tensor.\n" + \
    _MAX_DOC.format(shape="``(N, C, H, W)`` or ``(C, H, W)``")


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, numerics=None):
    op = "max_pool1d"
    resolve_numerics(numerics)
    x = _check_input(input, op, "(N, C, L) or (C, L)")
    if x.ndim not in (2, 3):
        raise ValueError(f"{op} expects a (N, C, L) or (C, L) input, got shape {x.shape}")
    k = _ints(kernel_size, 1, "kernel_size", op)
    s = k if stride is None else (_ints(stride, 1, "stride", op, allow_empty=True) or k)
    p = _ints(padding, 1, "padding", op)
    dil = _ints(dilation, 1, "dilation", op)
    if is_cuda_array(x._data):
        x4 = x.reshape(x.shape[:-1] + (1, x.shape[-1]))
    else:
        x4 = x.unsqueeze(x.ndim - 1)
    y = _max_pool2d(x4, (1, k[0]), (1, s[0]), (0, p[0]), (1, dil[0]), ceil_mode, return_indices,
                    numerics, op)
    if is_cuda_array(y._data):
        return y.reshape(y.shape[:-2] + (y.shape[-1],))
    return y.squeeze(y.ndim - 2)


max_pool1d.__doc__ = "1-D max pooling of a quantized ``(N, C, L)`` or ``(C, L)`` tensor.\n" + \
    _MAX_DOC.format(shape="``(N, C, L)`` or ``(C, L)``")


# ------------------------------------------------------------------ average pool
def _avg_mode(profile, torch_cl, dtype, nch):
    """The recipe and vector-channel count of avg_pool2d/3d: torch's AVX512
    NHWC kernel handles ``C // 16 * 16`` channels of an 8-bit input."""
    if profile == "reference":
        return AVG_REF, 0
    if torch_cl:
        return AVG_TORCH_NHWC, (0 if dtype is qint32 else nch // 16 * 16)
    return AVG_TORCH_NCHW, 0


def _divisor(divisor_override, op):
    if divisor_override is None:
        return 0
    if isinstance(divisor_override, (bool, np.bool_)) or not isinstance(divisor_override, numbers.Integral):
        raise TypeError(f"{op}: divisor_override must be an int or None, got {divisor_override!r}")
    d = int(divisor_override)
    if d == 0:
        raise ValueError(f"{op}: divisor_override must not be zero")
    if abs(d) > _INT32_MAX:
        raise ValueError(
            f"{op}: divisor_override must lie in [-(2**31 - 1), 2**31 - 1], got {d} (torch "
            "truncates it to int32)"
        )
    return d


@_planned
def _avg2d_plan(shape, kernel_size, stride, padding, ceil_mode, divisor_override):
    """avg_pool2d's validated geometry: ``(k, s, p, divisor, oh, ow, windows)``."""
    op = "avg_pool2d"
    k = _ints(kernel_size, 2, "kernel_size", op)
    s = k if stride is None else (_ints(stride, 2, "stride", op, allow_empty=True) or k)
    p = _ints(padding, 2, "padding", op)
    divisor = _divisor(divisor_override, op)
    _check_geometry(op, shape[-2:], k, s, p, (1, 1))
    h, w = shape[-2:]
    oh = _out_len(h, k[0], p[0], s[0], 1, ceil_mode)
    ow = _out_len(w, k[1], p[1], s[1], 1, ceil_mode)
    if oh < 0 or ow < 0:
        raise ValueError(f"{op}: kernel_size={k} is larger than the padded input {(h, w)} (padding {p})")
    wins = (_unit_window(), _windows(h, oh, k[0], s[0], p[0]), _windows(w, ow, k[1], s[1], p[1]))
    return k, s, p, divisor, oh, ow, wins


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, numerics=None):
    """2-D average pooling of a quantized ``(N, C, H, W)`` or ``(C, H, W)`` tensor.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8, qint8 or qint32.
    kernel_size, stride, padding : int or tuple of 2 ints
        As torch; ``stride=None`` means ``kernel_size``; ``padding`` at most
        half the kernel.
    ceil_mode, count_include_pad : bool
        As torch.
    divisor_override : int, optional
        Divide by this instead of the window size (nonzero; negative allowed,
        as torch).
    numerics : str, optional
        ``fbgemm`` / ``onednn`` (torch's ATen kernels), ``qnnpack`` (the same,
        except quint8 without ceil_mode, which torch sends to QNNPACK: the
        window area divides, whatever ``count_include_pad`` and
        ``divisor_override`` say, with float32 requantization; 3-D input and
        1x1 windows are refused), ``reference`` (``zp + rne(sum(q - zp) /
        divisor)`` exactly).  Other profiles raise NotImplementedError.

    Returns
    -------
    QTensor
        The input's scale and zero point carry over.  A channels-last input
        runs torch's NHWC kernel and gives a channels-last output; any other
        input runs the NCHW kernel (the two round differently; see
        ``docs/ops_pool.md``).

    Raises
    ------
    TypeError, ValueError, NotImplementedError
        Bad input type or dtype; bad rank or geometry; unsupported profile.
    """
    op = "avg_pool2d"
    profile = _profile(numerics, op, selection=False)
    x = _check_input(input, op, "(N, C, H, W) or (C, H, W)")
    if x.ndim not in (3, 4):
        raise ValueError(f"{op} expects a (N, C, H, W) or (C, H, W) input, got shape {x.shape}")
    k, s, p, divisor, oh, ow, wins = _avg2d_plan(x.shape, kernel_size, stride, padding, ceil_mode,
                                                 divisor_override)
    if profile == "qnnpack" and x._dtype is quint8 and not ceil_mode:
        _qnnpack_refusals(op, x, k)
        if oh < 1 or ow < 1:
            raise ValueError(f"{op}: the output size ({oh}, {ow}) must be positive under numerics "
                             "'qnnpack' (torch raises)")
        return _qnnpack_avg(x, k, s, p, oh, ow)
    data, cl, torch_cl = _layout_2d(x)
    nch = x.shape[-3]
    mode, cvec = _avg_mode(profile, torch_cl, x._dtype, nch)
    out = _run_avg(x, data, cl, (1, oh, ow), wins, count_include_pad, divisor, mode, cvec, nch)
    return _finish_2d(x, out, cl, x.shape[:-2], oh, ow)


@_planned
def _avg3d_plan(shape, kernel_size, stride, padding, ceil_mode, divisor_override, profile, dtype):
    """avg_pool3d's validated geometry: ``(out sizes, windows, divisor, mode, cvec)``."""
    op = "avg_pool3d"
    k = _ints(kernel_size, 3, "kernel_size", op)
    s = k if stride is None else (_ints(stride, 3, "stride", op, allow_empty=True) or k)
    p = _ints(padding, 3, "padding", op)
    divisor = _divisor(divisor_override, op)
    _check_geometry(op, shape[-3:], k, s, p, (1, 1, 1))
    d_, h, w = shape[-3:]
    o = tuple(_out_len(i, kk, pp, ss, 1, ceil_mode) for i, kk, pp, ss in zip((d_, h, w), k, p, s))
    if min(o) < 0:
        raise ValueError(f"{op}: kernel_size={k} is larger than the padded input {(d_, h, w)} (padding {p})")
    mode, cvec = _avg_mode(profile, True, _DTYPE_BY_NAME[dtype], shape[1])
    wins = tuple(_windows(i, oo, kk, ss, pp) for i, oo, kk, ss, pp in zip((d_, h, w), o, k, s, p))
    return o, wins, divisor, mode, cvec


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, numerics=None):
    """3-D average pooling of a quantized ``(N, C, D, H, W)`` tensor.

    torch 2.13 always runs its NDHWC kernel here (it makes the input
    ``channels_last_3d`` contiguous) and returns a ``channels_last_3d``
    output; qops does the same.  torch refuses unbatched ``(C, D, H, W)``
    input ("required rank 5 tensor to use channels_last_3d format"); so does
    qops: add the batch dimension with ``unsqueeze(0)``.

    Parameters and profiles are those of :func:`avg_pool2d` with 3-tuples;
    ``qnnpack`` equals ``fbgemm`` (torch uses the ATen kernel for every engine).

    Returns
    -------
    QTensor
        The input's scale and zero point carry over.
    """
    op = "avg_pool3d"
    profile = _profile(numerics, op, selection=False)
    x = _check_input(input, op, "(N, C, D, H, W)")
    if x.ndim != 5:
        raise ValueError(
            f"{op} expects a (N, C, D, H, W) input, got shape {x.shape}"
            + ("; add the batch dimension with unsqueeze(0)" if x.ndim == 4 else "")
        )
    o, wins, divisor, mode, cvec = _avg3d_plan(x.shape, kernel_size, stride, padding, ceil_mode,
                                               divisor_override, profile, x._dtype.name)
    d_, h, w = x.shape[-3:]
    a = x._data
    nch = x.shape[1]
    if is_cuda_array(a):
        data = _contig(a).reshape((-1, d_, h, w))
        out = _run_avg(x, data, False, o, wins, count_include_pad, divisor, mode, cvec, nch)
        return _wrap(x, out.reshape(x.shape[:2] + o))
    data = _channels_last_copy(a)
    out = _run_avg(x, data, True, o, wins, count_include_pad, divisor, mode, cvec, nch)
    return _wrap(x, out.transpose(0, 4, 1, 2, 3))


# ------------------------------------------------------------------ adaptive
def _output_size(output_size, n, in_sizes, op):
    if isinstance(output_size, numbers.Integral) and not isinstance(output_size, (bool, np.bool_)):
        t = (int(output_size),) * n
    else:
        try:
            t = tuple(output_size)
        except TypeError:
            raise TypeError(f"{op}: output_size must be an int or a tuple of {n} ints or None") from None
        if len(t) == 1 and n > 1:
            t = t * n
        if len(t) != n:
            raise ValueError(f"{op}: output_size must have {n} entries, got {output_size!r}")
        t = tuple(i if e is None else e for e, i in zip(t, in_sizes))
        if not all(isinstance(e, numbers.Integral) and not isinstance(e, (bool, np.bool_)) for e in t):
            raise TypeError(f"{op}: output_size entries must be ints or None, got {output_size!r}")
        t = tuple(int(e) for e in t)
    if any(e < 0 for e in t):
        raise ValueError(f"{op}: output_size entries must be >= 0, got {t}")
    return t


def _adaptive(input, output_size, numerics, op, nsp):
    profile = _profile(numerics, op, selection=False)
    rank_msg = "(N, C, H, W) or (C, H, W)" if nsp == 2 else "(N, C, D, H, W) or (C, D, H, W)"
    x = _check_input(input, op, rank_msg)
    if x.ndim not in (nsp + 1, nsp + 2):
        raise ValueError(f"{op} expects a {rank_msg} input, got shape {x.shape}")
    if any(n < 1 for n in x.shape[1:]):
        raise ValueError(f"{op}: the channel and spatial dimensions must be non-empty, got {x.shape}")
    sp = x.shape[-nsp:]
    o = _output_size(output_size, nsp, sp, op)
    if profile == "qnnpack" and nsp == 2 and x._dtype is quint8 and o != tuple(sp) \
            and all(e > 0 for e in o) and sp[0] % o[0] == 0 and sp[1] % o[1] == 0:
        # torch's qnnpack_adaptive_avg_pool2d: QNNPACK's average pooling with
        # kernel = stride = input / output
        k = (sp[0] // o[0], sp[1] // o[1])
        _qnnpack_refusals(op, x, k)
        return _qnnpack_avg(x, k, k, (0, 0), o[0], o[1])
    a = x._data
    batched = x.ndim == nsp + 2
    torch_cl = batched and _channels_last(a, (1, 3, 2, 0) if nsp == 2 else (1, 4, 3, 2, 0))
    if profile == "reference":
        mode, cvec = AVG_REF, 0
    elif torch_cl:
        # the AVX512 part and the compiler-vectorised part of torch's channel loop
        mode, cvec = AVG_ADAPTIVE_NHWC, (0 if x._dtype is qint32 else x.shape[1] // 8 * 8)
    else:
        mode, cvec = AVG_ADAPTIVE_NCHW, 0
    nch = x.shape[-nsp - 1]
    sp3 = (1,) * (3 - nsp) + tuple(sp)
    o3 = (1,) * (3 - nsp) + o
    wins = tuple(_adaptive_windows(i, oo) for i, oo in zip(sp3, o3))
    if torch_cl and not is_cuda_array(a):
        perm = (0,) + tuple(range(2, nsp + 2)) + (1,)
        n = a.shape[0]
        data = np.ascontiguousarray(a.transpose(perm)).reshape((n,) + sp3 + (nch,))
        out = _run_avg(x, data, True, o3, wins, True, 0, mode, cvec, nch)
        out = out.reshape((n,) + o + (nch,))
        return _wrap(x, out.transpose((0, nsp + 1) + tuple(range(1, nsp + 1))))
    data = _contig(a).reshape((-1,) + sp3)
    out = _run_avg(x, data, False, o3, wins, True, 0, mode, cvec, nch)
    return _wrap(x, out.reshape(x.shape[:-nsp] + o))


def adaptive_avg_pool2d(input, output_size, *, numerics=None):
    """Adaptive 2-D average pooling of a quantized ``(N, C, H, W)`` or ``(C, H, W)`` tensor.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8, qint8 or qint32.
    output_size : int or tuple of 2 (int or None)
        ``None`` keeps that input dimension; 0 gives an empty output (torch).
    numerics : str, optional
        ``fbgemm`` / ``onednn`` (torch's ATen kernels), ``qnnpack`` (the same,
        except quint8 input whose spatial size is a multiple of a different
        output size, which torch sends to QNNPACK's average pooling),
        ``reference`` (exact mean, rounded half to even).  Other profiles
        raise NotImplementedError.

    Returns
    -------
    QTensor
        The input's scale and zero point carry over; channels-last inputs
        (torch's NHWC kernel) give channels-last outputs.
    """
    return _adaptive(input, output_size, numerics, "adaptive_avg_pool2d", 2)


def adaptive_avg_pool3d(input, output_size, *, numerics=None):
    """Adaptive 3-D average pooling of a quantized ``(N, C, D, H, W)`` or ``(C, D, H, W)`` tensor.

    As :func:`adaptive_avg_pool2d` with 3-tuples; ``qnnpack`` equals
    ``fbgemm`` (torch uses the ATen kernel for every engine).  Unbatched input
    always runs the NCHW kernel (see ``docs/ops_pool.md``).

    Returns
    -------
    QTensor
        The input's scale and zero point carry over.
    """
    return _adaptive(input, output_size, numerics, "adaptive_avg_pool3d", 3)
