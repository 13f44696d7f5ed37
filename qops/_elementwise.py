"""Quantized elementwise and structure ops: add, add_relu, mul, mul_relu, add_scalar, mul_scalar, cat, matmul, softmax.

validate -> reproduce torch's TensorIterator geometry (broadcast, dimension
order, coalescing: which elements torch sends down its AVX512 vector lambda
and which down the scalar one) -> allocate -> kernel
(:mod:`qops.kernels.cpu.elementwise`) -> wrap.  ``docs/ops_elementwise.md``
describes the arithmetic of every profile.
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from . import _dispatch
from ._device import is_cuda_array, to_device
from ._recipes import channel_params, quantize_recipe
from ._ops import dequantize, quantize_per_tensor, requantize
from ._validate import check_scale, check_zero_point
from .dtypes import per_tensor_affine, per_tensor_symmetric, qint8, qint32, quint8
from .kernels.cpu._avx512 import avx512bw_available
from .kernels.cpu.elementwise import OP_ADD, OP_ADD_SCALAR, OP_MUL, softmax_vector_columns
from .numerics import resolve_numerics
from .qtensor import QTensor

__all__ = ["add", "add_relu", "mul", "mul_relu", "add_scalar", "mul_scalar", "cat", "matmul", "softmax"]

_TORCH = ("fbgemm", "onednn", "qnnpack")
_F32 = np.float32


# ------------------------------------------------------------------ validation
def _check_q(x, op, what="input", dtypes=(quint8, qint8, qint32)):
    if not isinstance(x, QTensor):
        raise TypeError(
            f"{op} expects a quantized {what} (a QTensor), got {type(x).__name__}; "
            "quantize it first with qops.quantize_per_tensor"
        )
    if x._axis is not None or x._qscheme not in (per_tensor_affine, per_tensor_symmetric):
        raise ValueError(
            f"{op} expects a per-tensor quantized {what}, got {x.qscheme().name}; requantize it "
            "to one scale with qops.requantize"
        )
    if x._dtype not in dtypes:
        names = ", ".join(d.name for d in dtypes)
        raise TypeError(f"{op} expects a {names} {what}, got {x.dtype.name}")
    if is_cuda_array(x._data) and not x._data.is_c_contiguous():
        raise ValueError(f"{op}: a CUDA {what} must be C-contiguous")
    return x


def _device(op, *xs):
    """'cuda' if the inputs' data are CUDA device arrays, 'cpu' for NumPy arrays."""
    devs = {"cuda" if is_cuda_array(x._data) else "cpu" for x in xs}
    if len(devs) > 1:
        raise ValueError(f"{op}: all inputs must be on one device, got both CPU and CUDA "
                         "QTensors; move them with .cpu() or .cuda()")
    return devs.pop()


def _to(device, a):
    if device == "cuda":
        from numba import cuda

        return cuda.to_device(np.ascontiguousarray(a))
    return a


def _empty(device, n, dtype):
    if device == "cuda":
        from numba import cuda

        return cuda.device_array(n, dtype)
    return np.empty(n, dtype)


def _strided_out(device, buf, shape, strides):
    """The output buffer viewed with ``strides`` (elements) over ``shape``."""
    if device == "cuda":
        if tuple(strides) != _contiguous_strides(shape) and math.prod(shape) > 1:
            raise NotImplementedError("this broadcast gives torch a non-C-ordered output; "
                                      "CUDA QTensors are C-contiguous: use .cpu()")
        return buf.reshape(shape)
    return np.lib.stride_tricks.as_strided(buf, shape=shape, strides=tuple(s * buf.itemsize for s in strides))


def _not_implemented(op, profile):
    return NotImplementedError(
        f"{op} under numerics '{profile}' is not implemented: qops reproduces torch's "
        "arithmetic for this op only; use numerics='fbgemm' or 'reference'"
    )


def _output_qparams(op, scale, zero_point, dtype):
    if scale is None or zero_point is None:
        raise TypeError(f"{op} needs the output scale and zero_point (torch requires them too)")
    return check_scale(scale), check_zero_point(zero_point, dtype)


# ------------------------------------------------------------------ geometry
def _elem_strides(a: np.ndarray):
    """``(flat buffer, base offset, strides)`` in elements for any NumPy view."""
    item = a.itemsize
    if any(s % item for s in a.strides):
        a = np.ascontiguousarray(a)
    strides = tuple(s // item for s in a.strides)
    if a.flags.c_contiguous and a.size:
        return a.reshape(-1), 0, _contiguous_strides(a.shape)
    if a.size == 0:
        return np.zeros(1, a.dtype), 0, strides
    low = tuple(slice(n - 1, n) if s < 0 else slice(0, 1) for n, s in zip(a.shape, strides))
    base = a[low]
    span = 1 + sum(abs(s) * (n - 1) for n, s in zip(a.shape, strides))
    buf = np.lib.stride_tricks.as_strided(base.reshape(-1)[:1], shape=(span,), strides=(item,))
    offset = sum(-s * (n - 1) for n, s in zip(a.shape, strides) if s < 0)
    return buf, offset, strides


def _buffer(a):
    """:func:`_elem_strides` for NumPy arrays; a C-contiguous CUDA array's flat view."""
    if is_cuda_array(a):
        return a.reshape(-1) if a.size else a, 0, _contiguous_strides(a.shape)
    return _elem_strides(a)


def _contiguous_strides(shape):
    st, acc = [], 1
    for n in reversed(shape):
        st.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(st))


def _is_channels_last(shape, strides):
    """ATen's ``is_channels_last_strides_2d`` (``suggest_memory_format``)."""
    if len(shape) != 4 or strides[1] == 0:
        return False
    mn = 0
    for d in (1, 3, 2, 0):
        if shape[d] == 0 or strides[d] < mn:
            return False
        if d == 0 and mn == strides[1]:
            return False
        mn = strides[d] * (shape[d] if shape[d] > 1 else 1)
    return True


def _channels_last_view(x):
    """A 4-D view of an NHWC buffer that is not also C-contiguous."""
    return x.ndim == 4 and not x.flags.c_contiguous and x.transpose(0, 2, 3, 1).flags.c_contiguous \
        and _is_channels_last(x.shape, _elem_strides(x)[2])


def _format_strides(shape, like_shape, like_strides):
    """Strides of a new tensor of ``shape`` in the memory format ``like`` suggests."""
    if len(shape) == 4 and _is_channels_last(like_shape, like_strides):
        n, c, h, w = shape
        c1, w1, h1 = max(c, 1), max(w, 1), max(h, 1)
        return (h1 * w1 * c1, 1, w1 * c1, c1)
    return _contiguous_strides(shape)


def _memory_order(shape, strides):
    """Axis order (outermost first) of the memory format torch suggests for a
    tensor with these strides: channels-last for such 4-D tensors, else C order."""
    if len(shape) == 4 and _is_channels_last(shape, strides):
        return (0, 2, 3, 1)
    return tuple(range(len(shape)))


def _broadcast_strides(shape, sub_shape, sub_strides):
    k = len(shape) - len(sub_shape)
    out = [0] * len(shape)
    for i, (n, s) in enumerate(zip(sub_shape, sub_strides)):
        out[k + i] = 0 if (n == 1 and shape[k + i] != 1) else s
    return out


def _iterator(shape, strides, out_resize):
    """torch 2.13's TensorIterator: dimension order, coalescing and rows.

    ``strides``: per operand (output first) element strides over ``shape``.
    Returns ``(n0, inner strides, row offsets per operand, out strides)``: the
    inner length of every row, each operand's inner stride, each operand's
    row base offsets (rows in iteration order) and, when the output is
    allocated here (``out_resize``), its strides over ``shape``.
    """
    nd = len(shape)
    nops = len(strides)
    if nd == 0:
        return 1, [0] * nops, [np.zeros(1, np.int64) for _ in range(nops)], strides[0]
    perm = list(range(nd - 1, -1, -1))

    def should_swap(d0, d1):
        for k in range(nops):
            if k == 0 and out_resize:
                continue
            s0, s1 = strides[k][d0], strides[k][d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 < s1:
                return -1
            if s0 > s1:
                return 1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    for i in range(1, nd):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            c = should_swap(perm[d0], perm[d1])
            if c > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif c < 0:
                break
    shp = [shape[p] for p in perm]
    st = [[s[p] for p in perm] for s in strides]
    out_strides = strides[0]
    if out_resize:
        acc = 1
        for i in range(nd):
            st[0][i] = acc
            acc *= shp[i]
        inv = [0] * nd
        for i, p in enumerate(perm):
            inv[p] = st[0][i]
        out_strides = tuple(inv)
    # coalesce
    prev = 0
    for d in range(1, nd):
        if shp[prev] == 1 or shp[d] == 1 or all(shp[prev] * s[prev] == s[d] for s in st):
            if shp[prev] == 1:
                for s in st:
                    s[prev] = s[d]
            shp[prev] *= shp[d]
        else:
            prev += 1
            if prev != d:
                for s in st:
                    s[prev] = s[d]
                shp[prev] = shp[d]
    shp = shp[: prev + 1]
    st = [s[: prev + 1] for s in st]
    rows = []
    for s in st:
        off = np.zeros(1, np.int64)
        for d in range(1, len(shp)):
            off = (np.arange(shp[d], dtype=np.int64)[:, None] * s[d] + off[None, :]).reshape(-1)
        rows.append(off)
    return shp[0], [s[0] for s in st], rows, out_strides


def _vector_prefix(n0, inner, dtype):
    """Elements of each row that torch's ``vectorized_loop`` sends down the vector
    lambda: whole vectors of ``Vectorized<T>::size()`` (64 for the 8-bit types,
    16 for qint32; measured against torch 2.13.0) when every operand is
    contiguous along the row, or one input is a broadcast scalar there."""
    width = 16 if dtype is qint32 else 64
    out_s, rest = inner[0], inner[1:]
    ok = out_s == 1 and (all(s == 1 for s in rest)
                         or any(s == 0 and all(t == 1 for j, t in enumerate(rest) if j != i)
                                for i, s in enumerate(rest)))
    return (n0 // width) * width if ok else 0


def _broadcast_shape(op, sa, sb):
    try:
        return tuple(np.broadcast_shapes(sa, sb))
    except ValueError:
        raise ValueError(f"{op}: the shapes {sa} and {sb} do not broadcast") from None


# ------------------------------------------------------------------ add / mul
#: From this many elements on, 8-bit ops look their results up in a table of
#: all 2 * 65536 (path, a, b) results instead of computing each one.
_TABLE_MIN = 1 << 16
#: From this many elements on, the 8-bit add / mul runs in parts on several
#: threads (``kernels.cpu.elementwise.binary8_*_parts``).  Measured with the
#: AVX-512 add on the reference machine, whole calls, median of 40 back to
#: back, one thread / two parts: 512K elements 0.086 / 0.064 ms, 1M 0.153 /
#: 0.098 ms, 2M 0.29 / 0.18 ms (a (1024, 1024) + (1024,) broadcast: 0.157 /
#: 0.102 ms).  While the threads of the parts still slept between calls
#: (before the pool polled) two parts only paid off from 4M elements.
_FLAT_PARALLEL_MIN = 1 << 19
#: The same for QNNPACK's add, whose parallel kernel is a ``prange``.
_Q8ADD_PARALLEL_MIN = 1 << 22


def _torch_params(kind, a, b, so, zo, dtype):
    """torch's float32 constants of add / mul, in the kernels' argument order:
    ``(sa, za, fl(sa * -za), sb, zb, fl(sb * -zb), inv, zo, m, qmin, qmax)``
    with ``inv = fl(1 / so)`` and ``m = fl(fl(sa * sb) * inv)``."""
    sa, za, sb, zb = _F32(a._scale), a._zero_point, _F32(b._scale), b._zero_point
    inv = _F32(1.0) / _F32(so)
    m = _F32(sa * sb) * inv
    return (sa, za, _F32(sa * _F32(-za)), sb, zb, _F32(sb * _F32(-zb)), inv, zo, m, dtype.qmin,
            dtype.qmax)


def _flat8_kernel(kind, numel):
    """The 8-bit add / mul kernel over ``numel`` elements: ``kind`` "flat" (one
    contiguous row) or "rows"; AVX-512 where the host has it; in parts from
    ``_FLAT_PARALLEL_MIN`` elements."""
    simd = "_simd" if avx512bw_available() else ""
    par = "_parts" if numel >= _FLAT_PARALLEL_MIN else ""
    return f"elementwise.binary8_{kind}{simd}{par}"


def _flat_ok(kind, params):
    """Whether :func:`qops.kernels.cpu.elementwise.binary8_flat` applies: every
    float32 the 8-bit vector path forms is finite (true unless scales are near
    float32's limits)."""
    sa, _, pa, sb, _, pb, inv, _, m = (float(v) for v in params[:9])
    if kind == OP_MUL:
        return math.isfinite(m)
    bound = 256.0 * (abs(sa) + abs(sb)) + abs(pa) + abs(pb)
    return all(math.isfinite(v) for v in (sa, pa, sb, pb, inv)) and bound < 1e38


def _lookup(kind, relu, dtype, params, a_buf, b_buf, out_buf, ra, rb, ro, n0, inner, nv):
    table = np.empty((2, 65536), dtype.storage)
    _dispatch.run("elementwise.build_table", "cpu", kind, relu, dtype is qint8, *params, table)
    u = np.uint8
    _dispatch.run("elementwise.lookup_rows", "cpu", table.view(u), a_buf.view(u), b_buf.view(u),
                  out_buf.view(u), ra, rb, ro, n0, inner[1], inner[2], inner[0], nv)


def _binary_scalar(kind, relu, a, b, so, zo, dtype):
    """Equal shapes, one input channels-last and the other contiguous: torch's
    iterator follows the first input's memory format, along which the other
    input is strided, so every element takes the scalar lambda (measured: 0
    mismatches in 45,122 add values).  The output has the first input's
    memory format."""
    cl = _channels_last_view(a._data)
    perm = (0, 2, 3, 1) if cl else (0, 1, 2, 3)
    ad = np.ascontiguousarray(a._data.transpose(perm)).reshape(-1)
    bd = np.ascontiguousarray(b._data.transpose(perm)).reshape(-1)
    out = np.empty(ad.size, dtype.storage)
    params = _torch_params(kind, a, b, so, zo, dtype)
    params = params[:9] + (0,) + params[9:]
    rows = np.zeros(1, np.int64)
    fn = "elementwise.binary_torch_parallel" if ad.size >= (1 << 17) else "elementwise.binary_torch"
    _dispatch.run(fn, "cpu", kind, relu, dtype is qint32, ad, bd, out, rows, rows, rows, ad.size,
                  1, 1, 1, 0, *params)
    shape = a._data.shape
    if cl:
        out = out.reshape(shape[0], shape[2], shape[3], shape[1]).transpose(0, 3, 1, 2)
    return QTensor._per_tensor(out.reshape(shape), dtype, so, zo)


def _binary(kind, relu, a, b, scale, zero_point, numerics, op):
    profile = resolve_numerics(numerics)
    a = _check_q(a, op, "first input")
    b = _check_q(b, op, "second input")
    if a._dtype is not b._dtype:
        raise TypeError(
            f"{op}: both inputs must have the same dtype, got {a.dtype.name} and "
            f"{b.dtype.name}; requantize one with qops.requantize"
        )
    dtype = a._dtype
    so, zo = _output_qparams(op, scale, zero_point, dtype)
    shape = _broadcast_shape(op, a._data.shape, b._data.shape)
    if profile not in _TORCH and profile != "reference":
        raise _not_implemented(op, profile)
    device = _device(op, a, b)
    if profile == "qnnpack" and kind == OP_ADD and dtype is quint8 and a._data.shape == b._data.shape:
        return _qnnpack_add(op, relu, a, b, so, zo, device)
    ad, bd = a._data, b._data
    if (device == "cpu" and dtype is not qint32 and profile != "reference" and ad.shape == bd.shape
            and ad.flags.c_contiguous and bd.flags.c_contiguous):
        # the common case, first: one flat row, the vector path for whole
        # 64-lane blocks, the scalar path for the rest
        params = _torch_params(kind, a, b, so, zo, dtype)
        if _flat_ok(kind, params):
            numel = ad.size
            out = np.empty(ad.shape, dtype.storage)
            _dispatch.run(_flat8_kernel("flat", numel), device, kind, relu, ad.reshape(-1),
                          bd.reshape(-1), out.reshape(-1), numel, numel // 64 * 64, *params)
            return QTensor._per_tensor(out, dtype, so, zo)
    if (device == "cpu" and dtype is not qint32 and profile != "reference" and bd.size > 1
            and 0 < bd.ndim <= ad.ndim and ad.shape[ad.ndim - bd.ndim:] == bd.shape
            and ad.flags.c_contiguous and bd.flags.c_contiguous):
        # the second input repeated along the first's leading dims (a bias
        # row, say): torch's rows are b.size long, b's offset stays 0; what
        # _iterator would find, without its Python cost
        params = _torch_params(kind, a, b, so, zo, dtype)
        if _flat_ok(kind, params):
            n0 = bd.size
            ra = np.arange(0, ad.size, n0, dtype=np.int64)
            out = np.empty(ad.shape, dtype.storage)
            _dispatch.run(_flat8_kernel("rows", ad.size), device, kind, relu, ad.reshape(-1),
                          bd.reshape(-1), out.reshape(-1), ra, np.zeros_like(ra), ra, n0,
                          n0 // 64 * 64, *params)
            return QTensor._per_tensor(out, dtype, so, zo)
    if device == "cpu" and ad.shape == bd.shape and all(_channels_last_view(x) for x in (ad, bd)):
        # both channels-last (e.g. two conv outputs): torch's output is
        # channels-last and its flat loop runs in memory order, which is the
        # same op on the NHWC buffers
        nhwc = (0, 2, 3, 1)
        r = _binary(kind, relu, a._with_data(ad.transpose(nhwc)), b._with_data(bd.transpose(nhwc)),
                    scale, zero_point, profile, op)
        return r.permute(0, 3, 1, 2)
    if (device == "cpu" and profile != "reference" and ad.shape == bd.shape
            and ((_channels_last_view(ad) and bd.flags.c_contiguous)
                 or (ad.flags.c_contiguous and _channels_last_view(bd)))):
        return _binary_scalar(kind, relu, a, b, so, zo, dtype)
    if device == "cpu" and ad.shape == bd.shape:
        # equal shapes: torch 2.13 runs one flat loop in the output's memory
        # order (measured), as if both inputs were laid out like the output
        order = tuple(range(ad.ndim))
        ad = np.ascontiguousarray(ad.transpose(order)).transpose(np.argsort(order))
        bd = np.ascontiguousarray(bd.transpose(order)).transpose(np.argsort(order))
    a_buf, a_off, a_st = _buffer(ad)
    b_buf, b_off, b_st = _buffer(bd)
    out_resize = kind == OP_ADD and shape != tuple(a._data.shape)
    if out_resize:
        o_st = (0,) * len(shape)
    else:
        o_st = _format_strides(shape, a._data.shape, a_st)
    strides = [list(o_st), _broadcast_strides(shape, ad.shape, a_st),
               _broadcast_strides(shape, bd.shape, b_st)]
    numel = math.prod(shape)
    out_buf = _empty(device, max(numel, 1), dtype.storage)
    if numel == 0:
        return QTensor._per_tensor(_empty(device, shape, dtype.storage), dtype, so, zo)
    n0, inner, rows, o_st = _iterator(tuple(shape), strides, out_resize)
    ra, rb, ro = _to(device, rows[1] + a_off), _to(device, rows[2] + b_off), _to(device, rows[0])
    qmin, qmax = dtype.qmin, dtype.qmax
    sa, za, sb, zb = a._scale, a._zero_point, b._scale, b._zero_point
    if profile == "reference":
        _dispatch.run("elementwise.binary_reference", device, kind, relu, a_buf, b_buf, out_buf,
                      ra, rb, ro, n0, inner[1], inner[2], inner[0],
                      float(_F32(sa)), za, float(_F32(sb)), zb, float(_F32(so)), zo, 0.0, qmin, qmax)
    else:
        nv = _vector_prefix(n0, inner, dtype)
        params = _torch_params(kind, a, b, so, zo, dtype)
        if (device == "cpu" and dtype is not qint32 and tuple(inner) == (1, 1, 1)
                and nv == n0 // 64 * 64 and _flat_ok(kind, params)):
            # rows contiguous in every operand (a row broadcast along the
            # others, say): the flat kernel's vector loops row by row
            fn = _flat8_kernel("rows", numel)
            _dispatch.run(fn, device, kind, relu, a_buf, b_buf, out_buf, ra, rb, ro, n0, nv, *params)
        else:
            # the element kernels take add_scalar's constant too (0 here)
            params = params[:9] + (0,) + params[9:]
            if device == "cpu" and dtype is not qint32 and numel >= _TABLE_MIN:
                _lookup(kind, relu, dtype, params, a_buf, b_buf, out_buf, ra, rb, ro, n0, inner, nv)
            else:
                fn = ("elementwise.binary_torch_parallel" if numel >= (1 << 17)
                      else "elementwise.binary_torch")
                _dispatch.run(fn, device, kind, relu, dtype is qint32, a_buf, b_buf, out_buf,
                              ra, rb, ro, n0, inner[1], inner[2], inner[0], nv, *params)
    return QTensor._per_tensor(_strided_out(device, out_buf, shape, o_st), dtype, so, zo)


#: QNNPACK's range of input-to-output scale ratios (``pytorch_qnnp_create_add_nc_q8``).
_Q8ADD_RATIO_MIN = 2.0 ** -14
_Q8ADD_RATIO_MAX = 2.0 ** 8


def q8add_params(sa, za, sb, zb, so, zo, relu):
    """QNNPACK's add parameters (``pytorch_qnnp_compute_add_quantization_params``
    as torch 2.13's ``qnnpack_add`` calls it), or a string saying why QNNPACK
    refuses the operator.

    The float32 ratios ``sa / so`` and ``sb / so`` become integer multipliers
    below 2**22 with a common ``shift`` (21 minus the larger ratio's binary
    exponent); ``relu`` raises the output minimum to the zero point."""
    f32 = np.float32
    ra, rb = f32(f32(sa) / f32(so)), f32(f32(sb) / f32(so))
    for name, r in (("first", ra), ("second", rb)):
        if not _Q8ADD_RATIO_MIN <= r < _Q8ADD_RATIO_MAX:
            return (f"the {name} input's scale over the output scale is {float(r):.7g}, outside "
                    "QNNPACK's [2**-14, 2**8)")
    ymin = zo if relu else 0
    if ymin >= 255:
        return "add_relu with output zero point 255 leaves QNNPACK an empty output range"
    exponent = int((np.array(max(ra, rb), f32).view(np.uint32) >> 23) & 0xFF) - 127
    shift = 21 - exponent
    mult = f32(2.0 ** shift)
    am, bm = int(np.rint(ra * mult)), int(np.rint(rb * mult))
    mask = (1 << shift) - 1
    return am, bm, -(am * za + bm * zb), mask, mask >> 1, shift, zo, ymin, 255


def _qnnpack_add(op, relu, a, b, so, zo, device):
    """torch 2.13's add of equal-shaped quint8 tensors under engine qnnpack:
    QNNPACK's fixed-point ``q8vadd`` (:func:`q8add_params`); the output is
    contiguous in the first input's suggested memory format."""
    shape = tuple(a._data.shape)
    if not shape or 0 in shape[1:]:
        raise NotImplementedError(
            f"{op} under numerics 'qnnpack' of quint8 inputs of shape {shape}: torch 2.13's "
            "QNNPACK add refuses 0-d inputs and empty inner dimensions; use numerics='fbgemm'"
        )
    params = q8add_params(a._scale, a._zero_point, b._scale, b._zero_point, so, zo, relu)
    if isinstance(params, str):
        raise ValueError(f"{op} under numerics 'qnnpack': {params}; torch 2.13 fails to create "
                         "the QNNPACK operator there. Use numerics='fbgemm' or other scales")
    ad, bd = a._data, b._data
    cl = device == "cpu" and len(shape) == 4 and _is_channels_last(shape, _elem_strides(ad)[2]) \
        and not ad.flags.c_contiguous
    if cl:  # torch keeps the channels-last format: the same op on NHWC buffers
        ad, bd = ad.transpose(0, 2, 3, 1), bd.transpose(0, 2, 3, 1)
    if device == "cpu":
        ad, bd = np.ascontiguousarray(ad), np.ascontiguousarray(bd)
    n = math.prod(shape)
    out = _empty(device, n, np.uint8)
    if n:
        fn = "elementwise.q8add_parallel" if n >= _Q8ADD_PARALLEL_MIN else "elementwise.q8add"
        _dispatch.run(fn, device, ad.reshape(-1), bd.reshape(-1), out, *params)
    out = out.reshape(ad.shape).transpose(0, 3, 1, 2) if cl else out.reshape(shape)
    return QTensor._per_tensor(out, quint8, so, zo)


_BINARY_DOC = """
    Parameters
    ----------
    a, b : QTensor
        Per-tensor quantized quint8, qint8 or qint32 of the same dtype, any
        strides; shapes broadcast as torch broadcasts.
    scale, zero_point : float, int
        The output's quantization parameters (required, as in torch).
    numerics : str, optional
        ``fbgemm`` / ``onednn`` (torch 2.13's ATen kernel, the same on both
        engines), ``qnnpack`` (the ATen kernel, except add / add_relu of
        equal-shaped quint8 inputs: QNNPACK's fixed-point ``q8vadd``, as
        torch), ``reference`` (the ideal result); the other profiles raise
        NotImplementedError.

    Returns
    -------
    QTensor
        Per-tensor, the broadcast shape, the inputs' dtype, ``(scale,
        zero_point)``.

    Raises
    ------
    TypeError
        Non-QTensor inputs, different dtypes, missing output qparams.
    ValueError
        Per-channel inputs, shapes that do not broadcast, unusable output
        scale or zero point.
    NotImplementedError
        CUDA inputs, profiles and cases whose peer kernel qops does not
        reproduce (see ``docs/ops_elementwise.md``).
"""


def add(a, b, scale, zero_point, *, numerics=None) -> QTensor:
    return _binary(OP_ADD, False, a, b, scale, zero_point, numerics, "add")


def add_relu(a, b, scale, zero_point, *, numerics=None) -> QTensor:
    return _binary(OP_ADD, True, a, b, scale, zero_point, numerics, "add_relu")


def mul(a, b, scale, zero_point, *, numerics=None) -> QTensor:
    return _binary(OP_MUL, False, a, b, scale, zero_point, numerics, "mul")


def mul_relu(a, b, scale, zero_point, *, numerics=None) -> QTensor:
    return _binary(OP_MUL, True, a, b, scale, zero_point, numerics, "mul_relu")


add.__doc__ = (
    """Quantized addition ``a + b`` (``torch.ops.quantized.add``), requantized to ``(scale, zero_point)``.

    Under fbgemm / onednn the result is torch 2.13's bit for bit, including
    which elements torch computes in its AVX512 vector lambda (fused
    multiply-add dequantization) and which in its scalar tail.
"""
    + _BINARY_DOC
    + """
    Examples
    --------
    >>> import numpy as np, qops
    >>> a = qops.quantize_per_tensor(np.float32([1.0, 2.0, -3.0]), 0.1, 10, qops.quint8)
    >>> qops.functional.add(a, a, 0.2, 20).int_repr()
    array([30, 40, 10], dtype=uint8)
"""
)
add_relu.__doc__ = (
    """Quantized addition followed by ReLU, fused (``torch.ops.quantized.add_relu``).

    The float sum is clamped at 0 before requantization, as torch does.
"""
    + _BINARY_DOC
)
mul.__doc__ = (
    """Quantized multiplication ``a * b`` (``torch.ops.quantized.mul``).

    torch multiplies the integers ``(qa - za) * (qb - zb)`` in int32 and
    requantizes with the float32 multiplier ``fl(fl(sa * sb) * fl(1/so))``.
"""
    + _BINARY_DOC
)
mul_relu.__doc__ = (
    """Quantized multiplication followed by ReLU, fused (``torch.ops.quantized.mul_relu``).

    The requantized result is clamped at the output zero point.
"""
    + _BINARY_DOC
)


# ------------------------------------------------------------------ scalars
def _check_scalar(s, op):
    if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Real):
        raise TypeError(f"{op} expects a real scalar, got {type(s).__name__}")
    s = float(s)
    if not math.isfinite(s):
        raise ValueError(f"{op}: the scalar must be finite, got {s!r}")
    return s


def add_scalar(a, s, *, numerics=None) -> QTensor:
    """Add a float scalar (``torch.ops.quantized.add_scalar``).

    torch chooses the output parameters: with ``c_q = nearbyint(s / scale)``
    (float64), ``z - c_q`` inside the dtype's range keeps the integers and
    gives zero point ``z - c_q`` (scale unchanged); otherwise the zero point
    saturates at qmin (qmax) and the scale grows to
    ``(qmax - (z - c_q)) / (qmax - qmin) * scale`` (``(z - c_q - qmin) /
    (qmax - qmin) * scale``), the integers requantized from ``q - z + c_q``
    with torch's ``requantize_from_int`` (vector and scalar paths).

    Parameters
    ----------
    a : QTensor
        Per-tensor quint8, qint8 or qint32.
    s : float
        The scalar.
    numerics : str, optional
        fbgemm / onednn / qnnpack (the same ATen code on every engine) or
        reference (torch's output qparams, the exact ``(q - z) * scale + s``
        rounded once); the other profiles raise NotImplementedError.

    Returns
    -------
    QTensor
        Same shape and dtype, torch's output qparams.

    Examples
    --------
    >>> import numpy as np, qops
    >>> a = qops.quantize_per_tensor(np.float32([0.0, 1.0]), 0.5, 100, qops.quint8)
    >>> r = qops.functional.add_scalar(a, 1.0)
    >>> r.q_zero_point(), r.int_repr()
    (98, array([100, 102], dtype=uint8))
    """
    op = "add_scalar"
    profile = resolve_numerics(numerics)
    a = _check_q(a, op)
    c = _check_scalar(s, op)
    if profile not in _TORCH and profile != "reference":
        raise _not_implemented(op, profile)
    device = _device(op, a)
    dtype = a._dtype
    sc, z = a._scale, a._zero_point
    qmin, qmax = dtype.qmin, dtype.qmax
    cq = int(np.rint(c / sc))
    if qmin > z - cq:
        s2 = (float(qmax) - (z - cq)) / (float(qmax) - qmin) * sc
        z2 = qmin
    elif qmax < z - cq:
        s2 = (float(z - cq) - qmin) / (float(qmax) - qmin) * sc
        z2 = qmax
    else:
        s2, z2 = sc, z - cq
        if profile != "reference":
            return QTensor._per_tensor(_copy(device, a._data), dtype, s2, z2)
    data = a._data
    a_buf, a_off, a_st = _buffer(data)
    shape = tuple(data.shape)
    o_st = _format_strides(shape, shape, a_st)
    out_buf = _empty(device, max(data.size, 1), dtype.storage)
    if data.size:
        n0, inner, rows, _ = _iterator(shape, [list(o_st), list(a_st)], False)
        ra, ro = _to(device, rows[1] + a_off), _to(device, rows[0])
        if profile == "reference":
            _dispatch.run("elementwise.binary_reference", device, OP_ADD_SCALAR, False, a_buf, a_buf,
                          out_buf, ra, ra, ro, n0, inner[1], inner[1], inner[0],
                          float(_F32(sc)), z, 0.0, 0, float(_F32(s2)), z2, c, qmin, qmax)
        else:
            nv = _vector_prefix(n0, inner, dtype)
            inv = _F32(1.0) / _F32(s2)
            m = _F32(sc) * inv
            args = (_F32(sc), z, _F32(0), _F32(0), 0, _F32(0), inv, z2, m, cq, qmin, qmax)
            if (device == "cpu" and dtype is not qint32 and data.flags.c_contiguous
                    and len(rows[0]) == 1 and data.size >= 4096):
                # one contiguous row of 8-bit values: every result is one of
                # 256 per path; compute those (same kernel) and look them up
                lut = np.empty((2, 256), dtype.storage)
                every = np.arange(256).astype(np.uint8).view(dtype.storage)
                zero = np.zeros(1, np.int64)
                for p, nvp in ((0, 256), (1, 0)):
                    _dispatch.run("elementwise.binary_torch", device, OP_ADD_SCALAR, False, False, every,
                                  every, lut[p], zero, zero, zero, 256, 1, 1, 1, nvp, *args)
                if nv == 0:  # not vectorised: the scalar results everywhere
                    lut[0] = lut[1]
                u = np.uint8
                _dispatch.run("activation.lut_apply", "cpu", data.reshape(-1).view(u), out_buf.view(u),
                              lut.view(u), n0 if nv else 0)
                return QTensor._per_tensor(out_buf.reshape(shape), dtype, s2, z2)
            fn = "elementwise.binary_torch_parallel" if data.size >= (1 << 17) else "elementwise.binary_torch"
            _dispatch.run(fn, device, OP_ADD_SCALAR, False, dtype is qint32, a_buf, a_buf, out_buf,
                          ra, ra, ro, n0, inner[1], inner[1], inner[0], nv, *args)
    return QTensor._per_tensor(_strided_out(device, out_buf, shape, o_st), dtype, s2, z2)


def _copy(device, data):
    if device == "cuda":
        from numba import cuda

        out = cuda.device_array(data.shape, data.dtype)
        out.copy_to_device(data)
        return out
    return np.array(data, copy=True)


def mul_scalar(a, s, *, numerics=None) -> QTensor:
    """Multiply by a float scalar (``torch.ops.quantized.mul_scalar``).

    Exact under every profile, as in torch: ``s > 0`` keeps the integers with
    scale ``s * scale``; ``s == 0`` gives zeros with scale 1.0 and zero point
    0; ``s < 0`` maps ``q -> qmax + qmin - q`` with scale ``|s| * scale`` and
    zero point ``qmax - (z - qmin)``.

    Parameters
    ----------
    a : QTensor
        Per-tensor quint8, qint8 or qint32.
    s : float
    numerics : str, optional
        Accepted for every profile (the result is exact).

    Returns
    -------
    QTensor

    Examples
    --------
    >>> import numpy as np, qops
    >>> a = qops.quantize_per_tensor(np.float32([0.0, 1.0]), 0.5, 100, qops.quint8)
    >>> r = qops.functional.mul_scalar(a, -2.0)
    >>> r.q_scale(), r.q_zero_point(), r.int_repr()
    (1.0, 155, array([155, 153], dtype=uint8))
    """
    op = "mul_scalar"
    resolve_numerics(numerics)
    a = _check_q(a, op)
    c = _check_scalar(s, op)
    device = _device(op, a)
    dtype = a._dtype
    qmin, qmax = dtype.qmin, dtype.qmax
    data = a._data
    if c > 0.0:
        return QTensor._per_tensor(_copy(device, data), dtype, c * a._scale, a._zero_point)
    out = _empty(device, data.shape, dtype.storage)
    if c == 0.0:
        if data.size:
            _dispatch.run("elementwise.fill_zero", device, _flat(out))
        return QTensor._per_tensor(out, dtype, 1.0, 0)
    if data.size:
        src = data if device == "cuda" else np.ascontiguousarray(data)
        _dispatch.run("elementwise.flip", device, _flat(src), _flat(out), qmax + qmin)
    return QTensor._per_tensor(out, dtype, abs(c) * a._scale, qmax - (a._zero_point - qmin))


def _flat(a):
    return a.reshape(-1)


# ------------------------------------------------------------------ cat
def cat(tensors, dim=0, scale=None, zero_point=None, *, numerics=None) -> QTensor:
    """Concatenate quantized tensors along ``dim`` (``torch.ops.quantized.cat``).

    torch dequantizes every input, concatenates the floats and quantizes the
    result with ``(scale, zero_point)``: under the torch profiles each element
    is ``quantize_per_tensor(dequantize(q))`` bit for bit.  ``scale`` /
    ``zero_point`` None take the first input's.  When every input already has
    the output parameters the result is a copy of the integers (torch's round
    trip is the identity there), which every profile allows.

    Parameters
    ----------
    tensors : sequence of QTensor
        Per-tensor, one dtype, equal shapes except along ``dim``.
    dim : int
        Negative values count from the end.
    scale, zero_point : float, int, optional
    numerics : str, optional
        torch profiles (``dequantize`` -> ``quantize_per_tensor``), reference
        (exact requantization); onnxruntime / tflite / tflite_single only for
        the pure copy.

    Returns
    -------
    QTensor

    Examples
    --------
    >>> import numpy as np, qops
    >>> a = qops.quantize_per_tensor(np.float32([1.0, 2.0]), 0.5, 0, qops.quint8)
    >>> qops.functional.cat([a, a], 0).int_repr()
    array([2, 4, 2, 4], dtype=uint8)
    """
    op = "cat"
    profile = resolve_numerics(numerics)
    if isinstance(tensors, QTensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op} expects a list or tuple of QTensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op} needs at least one tensor")
    xs = [_check_q(t, op, f"tensors[{i}]") for i, t in enumerate(tensors)]
    dtype = xs[0]._dtype
    for i, t in enumerate(xs):
        if t._dtype is not dtype:
            raise TypeError(f"{op}: all tensors must have one dtype, got {dtype.name} and "
                            f"{t.dtype.name} (tensors[{i}])")
    nd = len(xs[0]._data.shape)
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: dim must be an integer, got {dim!r}")
    if nd == 0:
        raise ValueError(f"{op}: zero-dimensional tensors cannot be concatenated")
    d = int(dim)
    if not -nd <= d < nd:
        raise ValueError(f"{op}: dim={dim} is out of range for {nd}-dimensional tensors")
    d %= nd
    ref_shape = tuple(xs[0]._data.shape)
    for i, t in enumerate(xs):
        sh = tuple(t._data.shape)
        if len(sh) != nd or any(sh[k] != ref_shape[k] for k in range(nd) if k != d):
            raise ValueError(f"{op}: tensors[{i}] has shape {sh}, which does not match "
                             f"{ref_shape} outside dim {d}")
    so = xs[0]._scale if scale is None else check_scale(scale)
    zo = xs[0]._zero_point if zero_point is None else check_zero_point(zero_point, dtype)
    same = all(t._scale == so and t._zero_point == zo for t in xs)
    if not same and profile not in _TORCH and profile != "reference":
        raise _not_implemented(op, profile)
    device = _device(op, *xs)
    parts = [t._data if same else requantize(t, so, zo, numerics=profile)._data for t in xs]
    if device == "cpu":
        return QTensor._per_tensor(np.concatenate(parts, axis=d), dtype, so, zo)
    outer = math.prod(ref_shape[:d])
    inner = math.prod(ref_shape[d + 1:])
    total_n = sum(tuple(p.shape)[d] for p in parts)
    out_shape = ref_shape[:d] + (total_n,) + ref_shape[d + 1:]
    out = _empty(device, math.prod(out_shape), dtype.storage)
    offset = 0
    for p in parts:
        n = tuple(p.shape)[d] * inner
        if p.size:
            _dispatch.run("elementwise.copy_slab", device, p.reshape(-1), out, outer, n, total_n * inner, offset)
        offset += n
    return QTensor._per_tensor(out.reshape(out_shape), dtype, so, zo)


# ------------------------------------------------------------------ matmul
def matmul(a, b, scale, zero_point, *, numerics=None, torch_threads=None) -> QTensor:
    """Batched quantized matrix product (``torch.ops.quantized.matmul``).

    torch 2.13 on x86 (built without ruy) dequantizes both inputs, multiplies
    in float32 with ``at::matmul`` and quantizes with ``(scale,
    zero_point)``.  qops dequantizes and quantizes with torch's arithmetic
    and sums each product in the float32 order of torch's matmul as measured
    for MKL 2024.2 on an AVX-512 AMD EPYC host: MKL's blocked FMA kernel, its
    small-matrix and dot kernels, its split of rows between threads, and
    torch's own loop for small batches (``docs/ops_elementwise.md``).  There
    the integers are torch's; on a host where MKL picks other kernels the
    float sums, and so the outputs near a rounding tie, may differ by 1 LSB.

    Parameters
    ----------
    a, b : QTensor
        Per-tensor quint8 or qint8 (the same), the same rank >= 2, shapes
        ``(..., M, K)`` and ``(..., K, N)`` with equal batch dimensions (torch
        does not broadcast them).
    scale, zero_point : float, int
    numerics : str, optional
        torch profiles or reference (exact integer accumulation, one
        rounding); the others raise NotImplementedError.
    torch_threads : int, optional
        torch's intra-op thread count to reproduce (``torch.get_num_threads()``
        of the run compared with); it matters for a single matrix, whose rows
        MKL splits between threads.  Default: ``numba.get_num_threads()``.
        Measured exact for 1 and 2 threads.

    Returns
    -------
    QTensor
        ``(..., M, N)``.

    Examples
    --------
    >>> import numpy as np, qops
    >>> a = qops.quantize_per_tensor(np.float32([[1.0, 2.0]]), 0.5, 0, qops.quint8)
    >>> b = qops.quantize_per_tensor(np.float32([[1.0], [1.0]]), 0.5, 0, qops.quint8)
    >>> qops.functional.matmul(a, b, 0.5, 0).int_repr()
    array([[6]], dtype=uint8)
    """
    op = "matmul"
    profile = resolve_numerics(numerics)
    a = _check_q(a, op, "first input", (quint8, qint8))
    b = _check_q(b, op, "second input", (quint8, qint8))
    if a._dtype is not b._dtype:
        raise TypeError(f"{op}: both inputs must have the same dtype, got {a.dtype.name} and {b.dtype.name}")
    dtype = a._dtype
    so, zo = _output_qparams(op, scale, zero_point, dtype)
    threads = _torch_threads(op, torch_threads)
    sa_, sb_ = tuple(a._data.shape), tuple(b._data.shape)
    if len(sa_) != len(sb_) or len(sa_) < 2:
        raise ValueError(f"{op}: the inputs must have the same rank >= 2, got shapes {sa_} and {sb_}")
    if sa_[-1] != sb_[-2] or sa_[:-2] != sb_[:-2]:
        raise ValueError(f"{op}: shapes {sa_} and {sb_} do not multiply: need (..., M, K) and "
                         "(..., K, N) with equal batch dimensions")
    if profile not in _TORCH and profile != "reference":
        raise _not_implemented(op, profile)
    m, k, n = sa_[-2], sa_[-1], sb_[-1]
    batch = sa_[:-2]
    nb = math.prod(batch)
    out_shape = batch + (m, n)
    device = _device(op, a, b)
    if profile == "reference":
        out = _empty(device, (nb, m, n), dtype.storage)
        if nb * m * n:
            _dispatch.run("elementwise.matmul_reference", device, _contig(a._data).reshape(nb, m, k),
                          _contig(b._data).reshape(nb, k, n), a._zero_point, b._zero_point,
                          float(_F32(a._scale)) * float(_F32(b._scale)), float(_F32(so)), zo,
                          dtype.qmin, dtype.qmax, out)
        return QTensor._per_tensor(out.reshape(out_shape), dtype, so, zo)
    if device == "cpu":  # one fused launch: the same integers as the three steps below
        out = np.empty((nb, m, n), dtype.storage)
        if nb * m * n:
            rows, naive = _sgemm_plan(len(sa_), nb, m, k, n, threads)
            _dispatch.run("elementwise.matmul_q8", device, _contig(a._data).reshape(nb, m, k),
                          _contig(b._data).reshape(nb, k, n), _F32(a._scale), a._zero_point,
                          _F32(b._scale), b._zero_point, rows, naive, out, *_quantize_args(so, zo, dtype))
        return QTensor._per_tensor(out.reshape(out_shape), dtype, so, zo)
    fa = dequantize(a, numerics="fbgemm").reshape(nb, m, k)
    fb = dequantize(b, numerics="fbgemm").reshape(nb, k, n)
    fc = _empty(device, (nb, m, n), np.float32)
    if nb * m * n:
        rows, naive = _sgemm_plan(len(sa_), nb, m, k, n, threads)
        _dispatch.run("elementwise.matmul_sgemm", device, _contig(fa), _contig(fb), fc, rows, naive)
    return quantize_per_tensor(fc.reshape(out_shape), so, zo, dtype, numerics="fbgemm")


@functools.lru_cache(maxsize=256)
def _quantize_args(scale, zero_point, dtype):
    """``(mode, s, inv, zpf, zpi, qmin, qmax, nanq)`` of torch's per-tensor
    quantization to ``(scale, zero_point, dtype)``, as ``quantize_per_tensor``
    passes them to the quantize kernel."""
    mode, nanq = quantize_recipe("fbgemm", dtype, False, False)
    s32, inv32, _s64, zpf32, zpi = channel_params([scale], [zero_point])
    for arr in (s32, inv32, zpf32, zpi):
        arr.flags.writeable = False
    return (mode, s32, inv32, zpf32, zpi, dtype.qmin, dtype.qmax, nanq)


def _torch_threads(op, torch_threads):
    """Validate a ``torch_threads`` argument; None gives ``numba.get_num_threads()``."""
    if torch_threads is None:
        import numba

        return numba.get_num_threads()
    if isinstance(torch_threads, (bool, np.bool_)) or not isinstance(torch_threads, numbers.Integral):
        raise TypeError(f"{op}: torch_threads must be an integer, got {torch_threads!r}")
    if int(torch_threads) < 1:
        raise ValueError(f"{op}: torch_threads must be at least 1, got {torch_threads}")
    return int(torch_threads)


def _sgemm_plan(ndim, nb, m, k, n, threads):
    """How torch's ``at::matmul`` computes each matrix: ``(rows, naive)``.

    2-D inputs go to MKL's sgemm, which gives each of ``threads`` threads a
    share of rows, a multiple of 4.  Inputs of rank 3 and more go through
    ``bmm``: torch's own loop (``naive``) below 400 multiply-adds per matrix,
    or for a single column with more than one matrix; otherwise one matrix
    runs as in 2-D and several run one sgemm each, on one thread."""
    if ndim > 2 and (m * n * k < 400 or (nb > 1 and n == 1)):
        return m, True
    if nb > 1:
        return m, False
    share = -(-m // threads)
    return -(-share // 4) * 4, False


def _contig(a):
    return a if is_cuda_array(a) else np.ascontiguousarray(a)


# ------------------------------------------------------------------ softmax
def softmax(input, dim, scale, zero_point, *, numerics=None, torch_threads=None) -> QTensor:
    """Quantized softmax along ``dim`` (``torch.ops.quantized.softmax``).

    torch 2.13 (every engine but qnnpack, and qnnpack outside its special
    case) dequantizes, runs its float32 softmax and quantizes with ``(scale,
    zero_point)``; qint8 and qint32 are accepted like quint8.  qops runs the
    same float32 arithmetic: Sleef's vectorised ``exp``, torch's summation
    order and its final multiply or divide, so the integers are torch's.

    Over the last dimension the result does not depend on threads.  Over any
    other dimension torch splits the columns of the ``(outer, n, inner)``
    view between its intra-op threads, and the columns that do not fill a
    block of 16 at the end of a thread's range or of a row take its scalar
    path (glibc's ``expf``, whose last bit can differ from Sleef's):
    ``torch_threads`` is the thread count whose split is reproduced.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8, qint8 or qint32.
    dim : int
    scale, zero_point : float, int
    numerics : str, optional
        torch profiles; ``qnnpack`` raises NotImplementedError for quint8
        input with output ``scale == 2**-8`` and ``zero_point == 0`` (torch
        runs QNNPACK's lookup-table kernel there); reference: float64
        softmax of the exact dequantized values, one rounding.
    torch_threads : int, optional
        torch's intra-op thread count (``torch.get_num_threads()``) to
        reproduce for a softmax over a non-last dimension; default
        ``numba.get_num_threads()`` (as :func:`group_norm`), which equals
        torch's default where both use one thread per core.

    Returns
    -------
    QTensor

    Examples
    --------
    >>> import numpy as np, qops
    >>> x = qops.quantize_per_tensor(np.float32([0.0, 0.0]), 0.1, 0, qops.quint8)
    >>> qops.functional.softmax(x, 0, 1.0 / 256, 0).int_repr()
    array([128, 128], dtype=uint8)
    """
    op = "softmax"
    profile = resolve_numerics(numerics)
    x = _check_q(input, op)
    dtype = x._dtype
    so, zo = _output_qparams(op, scale, zero_point, dtype)
    nd = len(x._data.shape)
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: dim must be an integer, got {dim!r}")
    lim = max(nd, 1)
    if not -lim <= int(dim) < lim:
        raise ValueError(f"{op}: dim={dim} is out of range for a {nd}-dimensional input")
    torch_threads = _torch_threads(op, torch_threads)
    d = int(dim) % lim
    if profile not in _TORCH and profile != "reference":
        raise _not_implemented(op, profile)
    if profile == "qnnpack" and dtype is quint8 and nd > 0 and _F32(so) == _F32(2.0 ** -8) \
            and so == 2.0 ** -8 and zo == 0:
        raise NotImplementedError(
            "softmax under numerics 'qnnpack' is not implemented for quint8 input with output "
            "scale 2**-8 and zero point 0: torch 2.13 runs QNNPACK's softargmax kernel there; "
            "use numerics='fbgemm' or 'reference'"
        )
    ref = profile == "reference"
    device = _device(op, x)
    shape = tuple(x._data.shape)
    outer = math.prod(shape[:d])
    n = shape[d] if nd else 1
    inner = math.prod(shape[d + 1:])
    if ref:
        f = dequantize(x, numerics="reference").reshape(-1)
        y = _empty(device, f.size, np.float64)
        out = _empty(device, f.size, dtype.storage)
        if f.size:
            _dispatch.run("elementwise.softmax_reference", device, f, y, outer, n, inner)
            _dispatch.run("elementwise.quantize_exact", device, y, float(_F32(so)), zo,
                          dtype.qmin, dtype.qmax, out)
        return QTensor._per_tensor(out.reshape(shape), dtype, so, zo)
    # torch: softmax_lastdim_kernel when dim is the last one, else softmax_kernel
    lastdim = d == nd - 1 or nd == 0
    flags = np.zeros(0 if lastdim else outer * inner, np.uint8)
    if not lastdim and flags.size and n:
        softmax_vector_columns(outer, n, inner, int(torch_threads), flags)
    if device == "cpu" and dtype is not qint32:
        # 8-bit input has 256 levels: exp(x - max) per (row maximum, level)
        # from tables, the same float32 values as the general kernels'
        levels = (np.arange(256) - (128 if dtype is qint8 else 0)).astype(dtype.storage)
        xv = dequantize(QTensor._per_tensor(levels, dtype, x._scale, x._zero_point), numerics="fbgemm")
        q = np.ascontiguousarray(x._data).reshape(-1)
        out = np.empty(q.size, dtype.storage)
        if q.size:  # quantize_per_tensor's fbgemm arithmetic, in the kernel
            inv = np.float32(1.0) / np.float32(so)
            _dispatch.run("elementwise.softmax_levels", "cpu", q, np.asarray(xv, np.float32), flags, out,
                          outer, n, inner, lastdim, inv, np.float32(zo), dtype.qmin, dtype.qmax)
        return QTensor._per_tensor(out.reshape(shape), dtype, so, zo)
    f = _contig(dequantize(x, numerics="fbgemm")).reshape(-1)
    y = _empty(device, f.size, np.float32)
    if f.size:
        if lastdim:
            _dispatch.run("elementwise.softmax_rows", device, f, y, outer * inner, n)
        else:
            _dispatch.run("elementwise.softmax_columns", device, f, to_device(flags, device), y,
                          outer, n, inner)
    return quantize_per_tensor(y.reshape(shape), so, zo, dtype, numerics="fbgemm")
