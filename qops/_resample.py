"""Quantized resampling and channel shuffle.

interpolate, upsample, upsample_nearest, upsample_bilinear, channel_shuffle:
validate -> choose torch's kernel (NCHW or channels-last, by the input's
strides as torch decides it) -> index and weight tables in torch's float32
arithmetic (host, NumPy) -> gather / blend kernel
(:mod:`qops.kernels.cpu.resample`, CUDA twins in
:mod:`qops.kernels.cuda.resample`) -> wrap with the input's scale and zero
point.  docs/ops_resample.md states the arithmetic reproduced.
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from . import _dispatch
from ._device import is_cuda_array
from .dtypes import per_tensor_affine, per_tensor_symmetric, qint32, qint8, quint8
from .numerics import resolve_numerics
from .qtensor import QTensor

__all__ = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "channel_shuffle"]

#: modes qops implements, and the input ranks each takes
_MODES = {"nearest": (4, 5), "nearest-exact": (4, 5), "bilinear": (4,), "area": (4, 5)}
#: modes torch's float interpolate knows that torch 2.13's quantized CPU backend lacks
#: (``area`` runs there as adaptive average pooling)
_TORCH_ONLY = {
    "linear": "upsample_linear1d",
    "bicubic": "upsample_bicubic2d",
    "trilinear": "upsample_trilinear3d",
    "lanczos": "lanczos interpolation",
}
#: profiles whose bilinear arithmetic qops reproduces (torch's ATen kernel; qnnpack and
#: onednn run the same kernel in torch 2.13.0) plus the ideal
_BILINEAR_PROFILES = ("fbgemm", "qnnpack", "onednn", "reference")
_DTYPES = (quint8, qint8, qint32)


# ------------------------------------------------------------------ checks
def _check_input(input, op):
    if not isinstance(input, QTensor):
        raise TypeError(
            f"{op} expects a quantized input (a QTensor), got {type(input).__name__}; "
            "quantize it first with qops.quantize_per_tensor"
        )
    if input._dtype not in _DTYPES:
        raise TypeError(
            f"{op} expects a quint8, qint8 or qint32 input, got {input.dtype.name}; "
            "requantize it first with qops.requantize"
        )
    if input._axis is not None or input._qscheme not in (per_tensor_affine, per_tensor_symmetric):
        raise ValueError(
            f"{op} expects a per-tensor quantized input (torch's kernels read one scale and "
            f"zero point), got {input.qscheme().name}; requantize it with qops.requantize"
        )
    if not isinstance(input._data, np.ndarray) and not is_cuda_array(input._data):
        raise TypeError(f"{op}: the input's data is neither a NumPy nor a CUDA device array")
    return input


def _is_int(v):
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v):
    return isinstance(v, (numbers.Real, np.floating, np.integer)) and not isinstance(v, (bool, np.bool_))


def _output_geometry(op, spatial, size, scale_factor):
    """Output spatial sizes and the scale factors torch passes to its kernel
    (``None`` per dimension when a size was given)."""
    dim = len(spatial)
    if size is not None and scale_factor is not None:
        raise ValueError(f"{op}: only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError(f"{op}: either size or scale_factor should be defined")
    if size is not None:
        sizes = tuple(size) if isinstance(size, (tuple, list)) else (size,) * dim
        if len(sizes) != dim:
            raise ValueError(
                f"{op}: size must give {dim} spatial sizes for an input with spatial dimensions "
                f"{list(spatial)}, got {size!r}"
            )
        if not all(_is_int(s) for s in sizes):
            raise TypeError(f"{op}: size must be an int or a tuple of {dim} ints, got {size!r}")
        out = tuple(int(s) for s in sizes)
        scales = (None,) * dim
    else:
        factors = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * dim
        if len(factors) != dim:
            raise ValueError(
                f"{op}: scale_factor must give {dim} factors for an input with spatial dimensions "
                f"{list(spatial)}, got {scale_factor!r}"
            )
        if not all(_is_real(f) for f in factors):
            raise TypeError(f"{op}: scale_factor must be a number or a tuple of {dim} numbers, got {scale_factor!r}")
        scales = tuple(float(f) for f in factors)
        if not all(math.isfinite(f) and f > 0 for f in scales):
            raise ValueError(f"{op}: scale_factor must be finite and positive, got {scale_factor!r}")
        # torch: static_cast<int64_t>(input_size * scale_factor), in double
        out = tuple(int(n * f) for n, f in zip(spatial, scales))
    if any(n <= 0 for n in spatial) or any(n <= 0 for n in out):
        raise ValueError(
            f"{op}: input and output spatial sizes must be positive, got input {list(spatial)} and "
            f"output {list(out)}"
        )
    return out, scales


def _channels_last(data, ndim):
    """torch's ``is_contiguous(memory_format=ChannelsLast[3d])`` for these strides:
    dimensions of size 1 are skipped, so a tensor can be contiguous both ways."""
    shape = data.shape
    item = data.dtype.itemsize
    strides = [s // item for s in data.strides]
    order = (1, 3, 2, 0) if ndim == 4 else (1, 4, 3, 2, 0)
    expected = 1
    for d in order:
        if shape[d] != 1:
            if strides[d] != expected:
                return False
            expected *= shape[d]
    return True


# ------------------------------------------------------------------ index tables
def _scale32(n_in, n_out, sf):
    """torch's ``compute_scales_value<float>``: ``(float)(1.0 / sf)`` if a scale
    factor was given, else ``(float)n_in / n_out`` in float32."""
    if sf is not None:
        return np.float32(1.0 / sf)
    return np.float32(np.float32(n_in) / np.float32(n_out))


def _frozen(*arrays):
    for a in arrays:
        a.setflags(write=False)
    return arrays


@functools.lru_cache(maxsize=64)
def nearest_indices(n_in, n_out, sf, exact):
    """Source index of every output position, as torch 2.13 computes it
    (a read-only, cached array).

    ``nearest``: ``min(floorf(float(i) * scale), n_in - 1)`` in float32;
    ``nearest-exact``: ``min(floorf((float)((i + 0.5) * (double)scale)), n_in - 1)``
    (the product in double, rounded to float32 by ``floorf``'s argument).
    """
    scale = _scale32(n_in, n_out, sf)
    i = np.arange(n_out)
    if exact:
        src = np.floor(((i + 0.5) * np.float64(scale)).astype(np.float32))
    else:
        src = np.floor(i.astype(np.float32) * scale)
    return _frozen(np.minimum(src.astype(np.int64), n_in - 1))[0]


@functools.lru_cache(maxsize=64)
def linear_weights(n_in, n_out, align_corners, sf, fused):
    """torch's ``area_pixel_compute_source_index<float>`` and the two weights.

    Returns ``(idx, off, l0, l1)`` (read-only, cached): the first source index,
    the offset (0 or 1) of the second, and the float32 weights ``l0 = 1 - l1``,
    ``l1 = r - idx``.
    ``fused``: the source coordinate ``scale * (i + 0.5f) - 0.5f`` is one fused
    multiply-add, as in torch's channels-last kernel (built with FMA).
    """
    i = np.arange(n_out)
    if align_corners:
        scale = np.float32(np.float32(n_in - 1) / np.float32(n_out - 1)) if n_out > 1 else np.float32(0)
        r = scale * i.astype(np.float32)
    else:
        scale = _scale32(n_in, n_out, sf)
        x = i.astype(np.float32) + np.float32(0.5)
        if fused:
            # the float64 product of two float32 values is exact, and so is the
            # difference with 0.5 wherever it is >= 0: one rounding, as fmaf
            r = (np.float64(scale) * x.astype(np.float64) - 0.5).astype(np.float32)
        else:
            r = scale * x - np.float32(0.5)
        r = np.where(r < 0, np.float32(0), r).astype(np.float32)
    idx = np.minimum(r.astype(np.int64), n_in - 1)
    off = (idx < n_in - 1).astype(np.int64)
    l1 = (r - idx.astype(np.float32)).astype(np.float32)
    l0 = (np.float32(1) - l1).astype(np.float32)
    return _frozen(idx, off, l0, l1)


def linear_weights_exact(n_in, n_out, align_corners, sf):
    """The ideal source coordinates and weights, in float64."""
    i = np.arange(n_out, dtype=np.float64)
    if align_corners:
        r = i * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros(n_out)
    else:
        scale = 1.0 / sf if sf is not None else n_in / n_out
        r = np.maximum(scale * (i + 0.5) - 0.5, 0.0)
    idx = np.minimum(np.floor(r).astype(np.int64), n_in - 1)
    off = (idx < n_in - 1).astype(np.int64)
    l1 = r - idx
    return idx, off, 1.0 - l1, l1


# ------------------------------------------------------------------ device helpers
def _cuda():
    from numba import cuda

    return cuda


def _to(device, *arrays):
    if device == "cpu":
        return arrays
    cuda = _cuda()
    return tuple(cuda.to_device(np.ascontiguousarray(a)) for a in arrays)


def _empty(shape, dtype, device):
    if device == "cpu":
        return np.empty(shape, dtype)
    return _cuda().device_array(shape, dtype)


def _copy(data, device):
    if device == "cpu":
        return np.array(data, copy=True)
    out = _cuda().device_array(data.shape, data.dtype)
    out.copy_to_device(data)
    return out


def _nchw_to_nhwc_view(out_nhwc, ndim):
    """The logical NCHW (NCDHW) view of a channels-last buffer."""
    return out_nhwc.transpose((0, ndim - 1) + tuple(range(1, ndim - 1)))


def _nhwc_to_nchw_cuda(out_nhwc):
    """A C-contiguous NCHW copy of a channels-last CUDA buffer (CUDA QTensors
    are C-contiguous): the shuffle kernel transposes (N, OH*OW, C) to (N, C, OH*OW)."""
    n, oh, ow, c = out_nhwc.shape
    out = _empty((n, c, oh * ow, 1), out_nhwc.dtype, "cuda")
    _dispatch.run("resample.channel_shuffle", "cuda", out_nhwc.reshape(n, oh * ow, c, 1), out)
    return out.reshape(n, c, oh, ow)


def _byte_view(a):
    """int8 data moves as uint8 (one kernel specialisation per element size)."""
    return a.view(np.uint8) if a.dtype == np.int8 else a


# ------------------------------------------------------------------ interpolate
def _nearest(x, out_sizes, scales, exact, device):
    data = x._data
    nd = data.ndim
    spatial = data.shape[2:]
    n, c = data.shape[:2]
    if tuple(out_sizes) == tuple(spatial):  # torch copies (both layouts)
        return _copy(data, device)
    idx = [nearest_indices(i, o, s, exact) for i, o, s in zip(spatial, out_sizes, scales)]
    if nd == 4:
        idx.insert(0, np.zeros(1, np.int64))
    od, oh, ow = (1,) * (5 - nd) + tuple(out_sizes)
    d_in = spatial[0] if nd == 5 else 1
    di, hi, wi = _to(device, *idx)
    if device == "cpu" and _channels_last(data, nd):
        perm = (0,) + tuple(range(2, nd)) + (1,)
        xk = np.ascontiguousarray(data.transpose(perm)).reshape(n, d_in, spatial[-2], spatial[-1], c)
        out = np.empty((n, od, oh, ow, c), data.dtype)
        _dispatch.run("resample.nearest", "cpu", _byte_view(xk), di, hi, wi, _byte_view(out))
        return _nchw_to_nhwc_view(out.reshape((n,) + tuple(out_sizes) + (c,)), nd)
    if device == "cpu":
        data = np.ascontiguousarray(data)
    xk = data.reshape(n * c, d_in, spatial[-2], spatial[-1], 1)
    out = _empty((n * c, od, oh, ow, 1), data.dtype, device)
    _dispatch.run("resample.nearest", device, _byte_view(xk), di, hi, wi, _byte_view(out))
    return out.reshape((n, c) + tuple(out_sizes))


def _bilinear(x, out_sizes, scales, align_corners, profile, device):
    data = x._data
    n, c, h, w = data.shape
    (oh, ow), (sh, sw) = out_sizes, scales
    dt = x._dtype
    if profile == "reference":
        if (oh, ow) == (h, w):  # no resampling: the integers as they are (torch's NCHW kernel too)
            return _copy(data, device)
        th = linear_weights_exact(h, oh, align_corners, sh)
        tw = linear_weights_exact(w, ow, align_corners, sw)
        if device == "cpu":
            data = np.ascontiguousarray(data)
        out = _empty((n * c, oh, ow), data.dtype, device)
        _dispatch.run("resample.bilinear_reference", device, data.reshape(n * c, h, w), *_to(device, *th),
                      *_to(device, *tw), x._zero_point, dt.qmin, dt.qmax, out)
        return out.reshape(n, c, oh, ow)
    zpf = np.float32(x._zero_point)
    if _channels_last(data, 4):
        th = _to(device, *linear_weights(h, oh, align_corners, sh, True))
        tw = _to(device, *linear_weights(w, ow, align_corners, sw, True))
        # channels torch blends in vector code: its explicit 16-lane loop (8-bit types
        # only) and the compiler's 8-lane vectorisation of the scalar tail
        nvec = 0 if dt is qint32 else 16 * (c // 16) + 8 * ((c % 16) // 8)
        if device == "cpu":
            xk = np.ascontiguousarray(data.transpose(0, 2, 3, 1))
        else:  # a C-contiguous CUDA tensor is channels-last only where both orders coincide
            xk = data.reshape(n, h, w, c)
        out = _empty((n, oh, ow, c), data.dtype, device)
        _dispatch.run("resample.bilinear_nhwc", device, xk, *th, *tw, zpf, dt.qmin, dt.qmax, nvec, out)
        return _nchw_to_nhwc_view(out, 4) if device == "cpu" else _nhwc_to_nchw_cuda(out)
    if (oh, ow) == (h, w):  # torch's NCHW kernel copies
        return _copy(data, device)
    th = _to(device, *linear_weights(h, oh, align_corners, sh, False))
    tw = _to(device, *linear_weights(w, ow, align_corners, sw, False))
    if device == "cpu":
        data = np.ascontiguousarray(data)
    out = _empty((n * c, oh, ow), data.dtype, device)
    _dispatch.run("resample.bilinear_nchw", device, data.reshape(n * c, h, w), *th, *tw, zpf,
                  dt.qmin, dt.qmax, out)
    return out.reshape(n, c, oh, ow)


def _interpolate(input, size, scale_factor, mode, align_corners, numerics, op):
    profile = resolve_numerics(numerics)
    x = _check_input(input, op)
    if not isinstance(mode, str):
        raise TypeError(f"{op}: mode must be a string, got {type(mode).__name__}")
    if mode in _TORCH_ONLY:
        raise NotImplementedError(
            f"{op}: mode {mode!r} is not implemented: torch 2.13's quantized CPU backend has no "
            f"{_TORCH_ONLY[mode]} kernel; qops implements 'nearest', 'nearest-exact', 'bilinear' and 'area'"
        )
    if mode not in _MODES:
        raise ValueError(f"{op}: unknown mode {mode!r}; use 'nearest', 'nearest-exact', 'bilinear' or 'area'")
    if mode != "bilinear":  # torch's rule: only the interpolating modes take align_corners
        if align_corners is not None:
            raise ValueError(
                f"{op}: align_corners can only be set with mode='bilinear' (torch: 'align_corners "
                "option can only be set with the interpolating modes'); leave it None"
            )
    elif align_corners is None:
        align_corners = False
    elif not isinstance(align_corners, (bool, np.bool_)):
        raise TypeError(f"{op}: align_corners must be a bool or None, got {align_corners!r}")
    nd = x.ndim
    if nd == 3 and mode != "bilinear":
        kernel = "adaptive_avg_pool1d" if mode == "area" else "upsample_nearest1d"
        raise NotImplementedError(
            f"{op}: 3-D input (N, C, L) is not implemented: torch 2.13's quantized CPU backend has "
            f"no {kernel} kernel; reshape the input to (N, C, 1, L) and resample that"
        )
    if nd not in _MODES[mode]:
        layouts = " or ".join({4: "4-D (N, C, H, W)", 5: "5-D (N, C, D, H, W)"}[r] for r in _MODES[mode])
        raise ValueError(f"{op}: mode {mode!r} expects a {layouts} input, got shape {x.shape}")
    if mode == "bilinear" and profile not in _BILINEAR_PROFILES:
        raise NotImplementedError(
            f"{op} with mode 'bilinear' under numerics '{profile}' is not implemented: it blends in "
            "float with backend-specific rounding; use numerics='fbgemm' or 'reference'"
        )
    if x.shape[1] == 0:
        raise ValueError(f"{op}: the input has no channels (shape {x.shape}); torch needs a non-empty input")
    out_sizes, scales = _output_geometry(op, x.shape[2:], size, scale_factor)
    if mode == "area":  # torch: adaptive average pooling to the output size
        from . import _pool

        pool = _pool.adaptive_avg_pool2d if nd == 4 else _pool.adaptive_avg_pool3d
        return pool(x, tuple(out_sizes), numerics=profile)
    device = x.device
    if x.shape[0] == 0:
        data = _empty((0, x.shape[1]) + tuple(out_sizes), x._data.dtype, device)
    elif mode == "bilinear":
        data = _bilinear(x, out_sizes, scales, bool(align_corners), profile, device)
    else:
        data = _nearest(x, out_sizes, scales, mode == "nearest-exact", device)
    return QTensor._per_tensor(data, x._dtype, x._scale, x._zero_point, x._qscheme)


_INTERP_NOTES = """
    Parameters
    ----------
    input : QTensor
        Per-tensor quint8, qint8 or qint32: ``(N, C, H, W)`` for every mode,
        ``(N, C, D, H, W)`` for ``'nearest'``, ``'nearest-exact'`` and ``'area'``.  A
        channels-last tensor (a permuted view of an ``(N, H, W, C)`` buffer)
        runs torch's channels-last kernel, as torch picks it from the strides.
    size : int or tuple of int, optional
        Output spatial size (one int for every spatial dimension, or one per
        dimension).  Exactly one of ``size`` and ``scale_factor``.
    scale_factor : float or tuple of float, optional
        Spatial multiplier(s): the output size is ``int(in * scale_factor)``
        and, as torch without ``recompute_scale_factor``, the kernel maps
        positions with ``1 / scale_factor`` itself, not ``in / out``.
    mode : str
        ``'nearest'`` (default), ``'nearest-exact'``, ``'bilinear'`` or
        ``'area'`` (adaptive average pooling to the output size, as torch:
        :func:`qops.functional.adaptive_avg_pool2d` / ``3d`` and their
        profiles).
    align_corners : bool, optional
        Bilinear only (default False); ``None`` for the nearest modes.
    numerics : str, optional
        Numerics profile (default: the active one).

    Returns
    -------
    QTensor
        ``(N, C, *size)``, the input's dtype, scale and zero point.  It is
        channels-last (a permuted view) where torch's result is.

    Raises
    ------
    TypeError
        Non-QTensor input, an unsupported dtype, non-integer sizes.
    ValueError
        Unknown mode, both or neither of size and scale_factor, a rank the
        mode does not take, ``align_corners`` with a nearest mode,
        non-positive input or output sizes, per-channel input.
    NotImplementedError
        Modes torch 2.13's quantized backend lacks (linear, bicubic,
        trilinear, lanczos), 3-D input, and bilinear under the onnxruntime
        and tflite profiles.

    Notes
    -----
    Nearest modes move integers (every profile gives torch's result);
    bilinear blends in float32 exactly as torch's kernel for the layout
    (fbgemm, qnnpack and onednn run the same kernel in torch 2.13.0), or in
    float64 with one rounding under ``reference``.  See docs/ops_resample.md.
"""


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, *, numerics=None) -> QTensor:
    return _interpolate(input, size, scale_factor, mode, align_corners, numerics, "interpolate")


interpolate.__doc__ = (
    """Resample a quantized tensor to a new spatial size, as ``torch.ao.nn.quantized.functional.interpolate``.
""" + _INTERP_NOTES + """
    Examples
    --------
    >>> import numpy as np, qops
    >>> q = qops.quantize_per_tensor(np.float32([[[[1, 2], [3, 4]]]]), 1.0, 0, qops.quint8)
    >>> qops.functional.interpolate(q, scale_factor=2).int_repr()[0, 0]
    array([[1, 1, 2, 2],
           [1, 1, 2, 2],
           [3, 3, 4, 4],
           [3, 3, 4, 4]], dtype=uint8)
""")


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None, *, numerics=None) -> QTensor:
    return _interpolate(input, size, scale_factor, mode, align_corners, numerics, "upsample")


upsample.__doc__ = """Same as :func:`interpolate` (torch keeps ``upsample`` as a deprecated alias).
""" + _INTERP_NOTES


def upsample_nearest(input, size=None, scale_factor=None, *, numerics=None) -> QTensor:
    return _interpolate(input, size, scale_factor, "nearest", None, numerics, "upsample_nearest")


upsample_nearest.__doc__ = """Nearest-neighbour upsampling: :func:`interpolate` with ``mode='nearest'``.

    4-D or 5-D per-tensor input; see :func:`interpolate` for the parameters.
    Every numerics profile gives torch's result (the integers only move).
"""


def upsample_bilinear(input, size=None, scale_factor=None, *, numerics=None) -> QTensor:
    return _interpolate(input, size, scale_factor, "bilinear", True, numerics, "upsample_bilinear")


upsample_bilinear.__doc__ = """Bilinear upsampling with ``align_corners=True``, as torch's ``upsample_bilinear``.

    4-D per-tensor input; see :func:`interpolate` for the parameters and the
    profiles (fbgemm, qnnpack, onednn and reference).
"""


# ------------------------------------------------------------------ channel shuffle
def channel_shuffle(input, groups, *, numerics=None) -> QTensor:
    """Shuffle channels in groups: ``(N, g*k, *) -> (N, k*g, *)``, channel ``i*k + j`` moving to ``j*g + i``.

    Parameters
    ----------
    input : QTensor
        Per-tensor, ``(N, C, *)`` with at least one spatial dimension.
        quint8 as torch; qint8 and qint32 too (torch 2.13's quantized kernel
        takes quint8 only; the integers just move, so every dtype gives the
        reference result).
    groups : int
        Positive and dividing ``C``.
    numerics : str, optional
        Numerics profile; every profile gives the same result.

    Returns
    -------
    QTensor
        The input's shape, dtype, scale and zero point; channels-last where
        the input is (as torch).

    Raises
    ------
    TypeError
        Non-QTensor input, an unsupported dtype, non-integer ``groups``.
    ValueError
        Fewer than 3 dimensions, ``groups`` not positive or not dividing
        the channels, per-channel input.

    Examples
    --------
    >>> import numpy as np, qops
    >>> q = qops.quantize_per_tensor(np.arange(6, dtype=np.float32).reshape(1, 6, 1, 1), 1.0, 0, qops.quint8)
    >>> qops.functional.channel_shuffle(q, 2).int_repr().ravel()
    array([0, 3, 1, 4, 2, 5], dtype=uint8)
    """
    resolve_numerics(numerics)
    op = "channel_shuffle"
    x = _check_input(input, op)
    if not _is_int(groups):
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    groups = int(groups)
    if x.ndim < 3:
        raise ValueError(f"{op} expects an (N, C, *) input with at least one spatial dimension, got shape {x.shape}")
    c = x.shape[1]
    if groups <= 0:
        raise ValueError(f"{op}: groups must be positive, got {groups}")
    if c % groups:
        raise ValueError(f"{op}: groups={groups} must divide the {c} channels")
    data = x._data
    device = x.device
    n = data.shape[0]
    spatial = int(np.prod(data.shape[2:], dtype=np.int64))
    if data.size == 0 or groups == 1:
        out = _copy(data, device)
    elif device == "cpu" and x.ndim in (4, 5) and _channels_last(data, x.ndim):
        perm = (0,) + tuple(range(2, x.ndim)) + (1,)
        xk = np.ascontiguousarray(data.transpose(perm))
        o = np.empty(xk.shape, data.dtype)
        _dispatch.run("resample.channel_shuffle", "cpu", _byte_view(xk).reshape(n * spatial, groups, c // groups, 1),
                      _byte_view(o).reshape(n * spatial, c // groups, groups, 1))
        out = _nchw_to_nhwc_view(o, x.ndim)
    else:
        if device == "cpu":
            data = np.ascontiguousarray(data)
        o = _empty((n, c // groups, groups, spatial), data.dtype, device)
        _dispatch.run("resample.channel_shuffle", device, _byte_view(data).reshape(n, groups, c // groups, spatial),
                      _byte_view(o))
        out = o.reshape(data.shape)
    return QTensor._per_tensor(out, x._dtype, x._scale, x._zero_point, x._qscheme)


# ------------------------------------------------------------------ precompile
def _precompile(device="cpu"):
    """Run every resampling kernel once per dtype on tiny inputs and on
    inputs above the parallel threshold (CPU), so later calls start compiled."""
    from ._ops import make_per_tensor_qtensor
    from .kernels._options import PARALLEL_MIN

    side = int(np.ceil(np.sqrt(PARALLEL_MIN / 8)))
    for dtype in _DTYPES:
        for shape in ((1, 2, 3, 3), (1, 8, side // 2, side // 2)):
            ints = np.zeros(shape, dtype.storage)
            for layout in ("nchw", "nhwc"):
                if layout == "nhwc":
                    q = make_per_tensor_qtensor(np.ascontiguousarray(ints.transpose(0, 2, 3, 1)), 0.1, 0, dtype)
                    q = q.permute(0, 3, 1, 2)
                else:
                    q = make_per_tensor_qtensor(ints, 0.1, 0, dtype)
                if device != "cpu":
                    if layout == "nhwc":
                        continue
                    q = q.to(device)
                interpolate(q, scale_factor=2.0)
                interpolate(q, scale_factor=2.0, mode="bilinear")
                interpolate(q, scale_factor=2.0, mode="bilinear", numerics="reference")
                channel_shuffle(q, 2)
