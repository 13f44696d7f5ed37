"""Quantized convolution: ``qops.functional.conv1d/2d/3d`` and the fused ReLU forms.

validate -> canonicalise (channels-last ``(N, D, H, W, C)`` uint8, 1-D and
2-D as 3-D with unit dimensions; other padding modes applied to the integers)
-> im2col per group (:mod:`qops.kernels.cpu.conv`) -> raw GEMM
(:mod:`qops.kernels.cpu.gemm`) -> fused zero-point corrections and
requantization (:mod:`qops.kernels.cpu.requant`, the same epilogue as
linear) -> wrap.  Depthwise convolutions (one input channel per group) run a
kernel vectorised across channels instead of a GEMM per channel.  CUDA inputs
(zero padding) run the same steps with the CUDA twins of these kernels
(:mod:`qops.kernels.cuda`) and give a contiguous ``(N, O, *spatial)`` output.

The output QTensor is logically ``(N, O, *spatial)`` over a channels-last
buffer, as torch stores quantized conv outputs; feeding it to the next conv
needs no transpose.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._device import is_cuda_array
from ._linear import INT32_MAX, check_activation, overflow_bound, warn_overflow
from ._packed import PackedLinearWeight, output_qparams
from . import _dispatch
from .dtypes import qint8, quint8
from .kernels.cpu.conv import conv_block_rows
from .kernels.cpu.gemm import KG, MR, NR, pack_activations, pack_weight, vnni_available
from .numerics import resolve_numerics
from .qtensor import QTensor

__all__ = ["PackedConvWeight", "conv1d", "conv2d", "conv3d", "conv1d_relu", "conv2d_relu", "conv3d_relu"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NP_PAD = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
#: depthwise (one output channel per input channel, zero padding) through the
#: fused kernel; False runs the unfused ``depthwise`` + epilogue (same result)
_FUSED_DEPTHWISE = True
#: other convolutions through the fused im2col + GEMM + epilogue kernel; False
#: runs the three kernels one after the other (same result)
_FUSED_CONV = True
#: fused depthwise convolutions with fewer multiply-adds (padded input size
#: times taps) run on one thread.  Measured on 2 cores: 3x3, 32 channels at
#: 112x112 (3.7M) 0.40 ms on one thread, 0.26 ms in parts on Python threads
#: (``kernels/_split.py``; on the ``workqueue`` layer's ``prange`` it had
#: taken 0.63 ms, and one thread was faster up to about 6M)
_DW_SERIAL_MACS = 1 << 18
#: NCHW inputs below this many bytes go channels-last on one thread (a
#: hand-over costs more than the copy): with the parts handed over in
#: compiled code, 50K bytes (64 x 28 x 28) took 12.0 us on one thread and
#: 9.0 in two parts, 25K 6.4 and 5.8, 12.5K 3.6 and 4.3 (it was 4M bytes
#: with the Python hand-over, whose 800K took 104 us against 158 on one
#: thread and 93 now)
_TRANSPOSE_SERIAL_BYTES = 1 << 15


def _tuple(v, nd, name, op, minimum):
    if type(v) is tuple and len(v) == nd and all(type(e) is int and e >= minimum for e in v):
        return v  # the common case (a module's own tuples), briefly
    if type(v) is int and v >= minimum:
        return (v,) * nd
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {v!r}")
    if isinstance(v, numbers.Integral):
        t = (int(v),) * nd
    elif isinstance(v, (tuple, list)) and len(v) == nd and all(
        isinstance(e, numbers.Integral) and not isinstance(e, (bool, np.bool_)) for e in v
    ):
        t = tuple(int(e) for e in v)
    else:
        raise TypeError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {v!r}")
    if any(e < minimum for e in t):
        what = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{op}: {name} must be {what}, got {t}")
    return t


def _as3(t, nd, fill):
    return (fill,) * (3 - nd) + tuple(t)


class PackedConvWeight:
    """A convolution weight ``(O, C/groups, *kernel)`` and its bias, packed once.

    The weight is reordered tap-major (``(O, kd, kh, kw, C/groups)``, the
    order of :func:`qops.kernels.cpu.conv.im2col` rows) into a
    :class:`qops._packed.PackedLinearWeight`, which holds the per-channel
    constants and the epilogue cache; each group gets its own GEMM panels, and
    depthwise weights a ``(taps, O)`` table.
    """

    __slots__ = ("weight", "nd", "groups", "o", "cg", "og", "kernel", "linear", "group_panels",
                 "group_np", "dw_table")

    def __init__(self, weight, bias=None, groups=1, nd=2, *, op="conv2d"):
        if not isinstance(weight, QTensor):
            raise TypeError(
                f"{op} expects the weight as a qint8 QTensor of shape (out_channels, "
                f"in_channels/groups, *kernel_size), got {type(weight).__name__}"
            )
        if weight.ndim != nd + 2:
            raise ValueError(
                f"{op} expects a {nd + 2}-D weight (out_channels, in_channels/groups"
                f"{', kD' if nd == 3 else ''}{', kH' if nd >= 2 else ''}, kW), got shape {weight.shape}"
            )
        if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, numbers.Integral) or groups < 1:
            raise ValueError(f"{op}: groups must be a positive integer, got {groups!r}")
        o, cg = weight.shape[:2]
        if o % groups:
            raise ValueError(f"{op}: out_channels={o} is not divisible by groups={groups}")
        if 0 in weight.shape:
            raise ValueError(f"{op}: the weight has an empty dimension: {weight.shape}")
        if weight.is_per_channel and weight.q_per_channel_axis() != 0:
            raise ValueError(
                f"{op}: a per-channel weight must be quantized along axis 0 (output channels), "
                f"got axis {weight.q_per_channel_axis()}"
            )
        self.weight = weight
        self.nd = nd
        self.groups = int(groups)
        self.o = o
        self.cg = cg
        self.og = o // self.groups
        self.kernel = tuple(weight.shape[2:])
        perm = (0,) + tuple(range(2, nd + 2)) + (1,)
        w2 = weight.permute(perm).contiguous().reshape(o, -1)
        self.linear = PackedLinearWeight(w2, bias, op=op, conv=True)
        ws = np.ascontiguousarray(w2._data)
        if weight.dtype is quint8:
            ws = (ws ^ np.uint8(0x80)).view(np.int8)
        self.group_np = -(-self.og // NR) * NR
        if self.groups == 1:
            self.group_panels = [self.linear.panels]
        else:
            self.group_panels = [pack_weight(ws[g * self.og:(g + 1) * self.og]) for g in range(self.groups)]
        if cg == 1:
            self.dw_table = np.ascontiguousarray(ws.T)  # (taps, O)
        else:
            self.dw_table = None


def _fbgemm_depthwise_quirk(p: PackedConvWeight, nd, c, stride, padding, dilation):
    """Whether fbgemm runs its int16-saturating depthwise kernel (NUMERICS.md
    section 3): fbgemm's ``takeDepthWiseFastPath`` (FbgemmConv.cc), which
    torch 2.13.0 follows: 2-D or 3-D, groups == channels, a multiple of 8,
    out_channels in {C, 2C}, every kernel size 3, 5 or 7 with kH == kW (kD
    free), every stride 1 or 2 (independently), dilation 1 and padding
    ``(k - 1) // 2`` per dimension."""
    if nd == 1 or p.cg != 1 or p.groups != c or p.groups % 8 or p.o not in (c, 2 * c):
        return False
    if p.kernel[-2] != p.kernel[-1] or any(k not in (3, 5, 7) for k in p.kernel):
        return False
    return (all(s in (1, 2) for s in stride) and dilation == (1,) * nd
            and padding == tuple((k - 1) // 2 for k in p.kernel))


def _conv(input, weight, bias, stride, padding, dilation, groups, padding_mode, scale, zero_point,
          numerics, relu, nd, op):
    profile = resolve_numerics(numerics)
    layout = "(N, C, L)" if nd == 1 else ("(N, C, H, W)" if nd == 2 else "(N, C, D, H, W)")
    x = check_activation(input, profile, op, layout)
    if x.ndim != nd + 2:
        raise ValueError(f"{op} expects a {nd + 2}-D input {layout}, got shape {x.shape}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{op}: padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    if isinstance(weight, PackedConvWeight):
        if bias is not None:
            raise ValueError(f"{op}: a packed weight carries its own bias; pass bias=None")
        if weight.nd != nd or (groups != 1 and groups != weight.groups):
            raise ValueError(f"{op}: the packed weight was built for conv{weight.nd}d with groups={weight.groups}")
        packed = weight
    else:
        packed = PackedConvWeight(weight, bias, groups, nd, op=op)
    lin = packed.linear
    lin.check_profile(profile, op)
    stride = _tuple(stride, nd, "stride", op, 1)
    padding = _tuple(padding, nd, "padding", op, 0)
    dilation = _tuple(dilation, nd, "dilation", op, 1)
    n, c = x.shape[:2]
    if c != packed.cg * packed.groups:
        raise ValueError(
            f"{op}: the input has {c} channels but the weight expects in_channels = "
            f"{packed.cg} * groups {packed.groups} = {packed.cg * packed.groups}"
        )
    spatial = x.shape[2:]
    for i in range(nd):
        if padding_mode == "zeros":
            continue
        # torch's F.pad limits: reflect needs padding < size, circular <= size,
        # replicate any padding of a non-empty dimension
        limit = {"reflect": spatial[i] - 1, "circular": spatial[i],
                 "replicate": padding[i] if spatial[i] else 0}[padding_mode]
        if padding[i] > limit:
            raise ValueError(
                f"{op}: padding {padding[i]} is too large for padding_mode={padding_mode!r} on a "
                f"dimension of size {spatial[i]}"
            )
    out_sp = tuple(
        (spatial[i] + 2 * padding[i] - dilation[i] * (packed.kernel[i] - 1) - 1) // stride[i] + 1
        for i in range(nd)
    )
    if any(s < 1 for s in out_sp):
        raise ValueError(
            f"{op}: the kernel {packed.kernel} (dilation {dilation}) is larger than the padded "
            f"input {tuple(s + 2 * p for s, p in zip(spatial, padding))}"
        )
    out_dtype = x.dtype
    so, zo = output_qparams(x, scale, zero_point, out_dtype)
    sx, zx = x.q_scale(), x.q_zero_point()
    x_signed = x.dtype is qint8
    zxu = zx + 128 if x_signed else zx
    if is_cuda_array(x._data):
        if padding_mode != "zeros":
            raise NotImplementedError(
                f"{op}: padding_mode={padding_mode!r} is not implemented for CUDA input; use "
                "input.cpu() (or padding_mode='zeros')"
            )
        data = _conv_cuda(x, packed, profile, nd, stride, padding, dilation, out_sp, so, zo,
                          relu, op)
        return QTensor._per_tensor(data, out_dtype, so, zo)

    if (_FUSED_DEPTHWISE and padding_mode == "zeros" and packed.dw_table is not None
            and packed.og == 1 and x._data.size):
        return _depthwise_fused(x, packed, lin, profile, nd, stride, padding, dilation, out_sp,
                                so, zo, relu, op)

    # channels-last uint8, as (N, *spatial, C)
    xs = _channels_last_uint8(x, nd, (0, 0, 0), 0, x._data.size < _TRANSPOSE_SERIAL_BYTES)
    xs = xs.reshape((n,) + tuple(x.shape[2:]) + (c,))
    if padding_mode != "zeros":
        widths = [(0, 0)] + [(p, p) for p in padding] + [(0, 0)]
        xs = np.pad(xs, widths, mode=_NP_PAD[padding_mode])
        padding = (0,) * nd
    xs = xs.reshape((n,) + _as3(xs.shape[1:nd + 1], nd, 1) + (c,))
    k3 = _as3(packed.kernel, nd, 1)
    s3, p3, d3 = _as3(stride, nd, 1), _as3(padding, nd, 0), _as3(dilation, nd, 1)
    o3 = _as3(out_sp, nd, 1)
    geometry = k3 + s3 + p3 + d3 + o3

    o = packed.o
    m = n * o3[0] * o3[1] * o3[2]
    out = np.empty(m * o, out_dtype.storage)
    if m:
        ktot = math.prod(k3) * packed.cg
        bound = overflow_bound(ktot, xs, zxu, 0, 255, lin.wmax)
        if bound:
            warn_overflow(op, bound, 3)
        ep = lin.epilogue(profile, sx, zx, so, zo, relu, out_dtype, x_signed)
        if packed.dw_table is not None and packed.og <= 8:
            quirk = profile == "fbgemm" and _fbgemm_depthwise_quirk(
                packed, nd, c, stride, padding, dilation
            )
            acc = np.empty(m * o, np.int32)
            _dispatch.run("depthwise", "cpu", xs, zxu, packed.dw_table, ep.zw, packed.og,
                          *geometry, quirk, acc)
            # the depthwise kernel returns finished accumulators: no corrections
            zeros = np.zeros(max(o, 1), np.int32)
            _dispatch.run("requantize_accumulators", "cpu", ep.mode, acc, 0, o, m, o,
                          np.zeros(m, np.int32), zeros, zeros, ep.ip, ep.fp, ep.cf0, ep.cf1,
                          ep.ci0, ep.zo, ep.lo, ep.hi, out, 0, o, 0)
        elif _FUSED_CONV:
            kp = -(-ktot // KG) * KG
            np_ = packed.group_np
            fused = "conv.conv_requantized_vnni" if vnni_available() else "conv.conv_requantized_portable"
            mb = conv_block_rows(kp, np_)
            o8 = out.view(np.uint8)
            og = packed.og
            direct = (packed.groups == 1 and k3 == (1, 1, 1) and s3 == (1, 1, 1)
                      and p3 == (0, 0, 0) and c == kp)
            for g in range(packed.groups):
                _dispatch.run(fused, "cpu", xs, zxu, g * packed.cg, packed.cg, *geometry,
                              packed.group_panels[g], np_, kp, mb, lin.any_zw, direct, ep.mode, ep.zw,
                              ep.cc, ep.ip, ep.fp, ep.cf0, ep.cf1, ep.ci0, ep.zo, ep.lo, ep.hi,
                              o8, g * og, o, g * og, og)
        elif packed.groups == 1 and k3 == (1, 1, 1) and s3 == (1, 1, 1) and p3 == (0, 0, 0):
            # pointwise: the channels-last input already is the (M, C) matrix
            a, mp, kp = pack_activations(xs.reshape(m, c))
            rowsum = np.zeros(m, np.int32)
            raw = _dispatch.run("gemm_raw", "cpu", a, mp, kp, packed.group_panels[0], packed.group_np)
            if lin.any_zw:
                _dispatch.run("row_sums", "cpu", xs.reshape(m, c), rowsum)
            _dispatch.run("requantize_accumulators", "cpu", ep.mode, raw, 0, packed.group_np, m, o,
                          rowsum, ep.zw, ep.cc, ep.ip, ep.fp, ep.cf0, ep.cf1, ep.ci0, ep.zo,
                          ep.lo, ep.hi, out, 0, o, 0)
        else:
            kp = -(-ktot // KG) * KG
            mp = -(-m // MR) * MR
            cols = np.zeros(mp * kp, np.uint8)
            rowsum = np.zeros(m, np.int32)
            og, np_ = packed.og, packed.group_np
            for g in range(packed.groups):
                _dispatch.run("im2col", "cpu", xs, zxu, g * packed.cg, packed.cg, *geometry,
                              cols, kp)
                raw = _dispatch.run("gemm_raw", "cpu", cols.view(np.int32), mp, kp,
                                    packed.group_panels[g], np_)
                if lin.any_zw:
                    _dispatch.run("row_sums", "cpu", cols.reshape(mp, kp)[:m], rowsum)
                _dispatch.run("requantize_accumulators", "cpu", ep.mode, raw, 0, np_, m, og,
                              rowsum, ep.zw, ep.cc, ep.ip, ep.fp, ep.cf0, ep.cf1, ep.ci0, ep.zo,
                              ep.lo, ep.hi, out, g * og, o, g * og)
    data = out.reshape((n,) + o3 + (o,)).transpose(0, 4, 1, 2, 3)
    data = data[(slice(None), slice(None)) + (0,) * (3 - nd)]  # drop the unit dims of 1-D/2-D
    return QTensor._per_tensor(data, out_dtype, so, zo)


def _channels_last_uint8(x, nd, pads, border, serial):
    """The CPU input as a C-contiguous channels-last uint8 array ``(N, D + 2*pd,
    H + 2*ph, W + 2*pw, C)`` with a border of ``border`` (the padded zero
    point), int8 moved to uint8 (XOR 0x80): one copy through the blocked 8x8
    transposes of ``pad_channels_last`` (about twice numpy's speed from NCHW).
    An unsigned channels-last input (a conv output) without border is used as
    it is."""
    n, c = x.shape[:2]
    sp = _as3(x.shape[2:], nd, 1)
    data = x._data.view(np.uint8)
    last = data.transpose((0,) + tuple(range(2, nd + 2)) + (1,))
    cl = not data.flags.c_contiguous and last.flags.c_contiguous
    if cl and x.dtype is not qint8 and not any(pads):
        return last.reshape((n,) + sp + (c,))
    out = np.empty((n,) + tuple(sp[i] + 2 * pads[i] for i in range(3)) + (c,), np.uint8)
    if out.size:
        src = (last if cl else np.ascontiguousarray(data)).reshape(-1)
        _dispatch.run("conv.pad_channels_last" + ("_serial" if serial else ""), "cpu", src, cl,
                      0x80 if x.dtype is qint8 else 0, border, n, c, *sp, *pads, out)
    return out


def _depthwise_fused(x, packed, lin, profile, nd, stride, padding, dilation, out_sp, so, zo,
                     relu, op):
    """The CPU path of :func:`_conv` for depthwise convolutions with one output
    channel per input channel (zero padding): the input copied once into a
    padded channels-last buffer, then accumulation and requantization fused
    in one kernel."""
    x_signed = x.dtype is qint8
    sx, zx = x.q_scale(), x.q_zero_point()
    zxu = zx + 128 if x_signed else zx
    n, c = x.shape[:2]
    k3 = _as3(packed.kernel, nd, 1)
    s3, p3, d3 = _as3(stride, nd, 1), _as3(padding, nd, 0), _as3(dilation, nd, 1)
    o3 = _as3(out_sp, nd, 1)
    sp = _as3(x.shape[2:], nd, 1)
    # one thread for small convolutions: a parallel launch costs tens of microseconds
    padded = n * c * math.prod([sp[i] + 2 * p3[i] for i in range(3)])
    serial = "_serial" if padded * math.prod(k3) < _DW_SERIAL_MACS else ""
    xp = _channels_last_uint8(x, nd, p3, zxu, bool(serial))
    o = packed.o
    m = n * o3[0] * o3[1] * o3[2]
    out_dtype = x.dtype
    out = np.empty(m * o, out_dtype.storage)
    bound = overflow_bound(math.prod(k3), xp, zxu, 0, 255, lin.wmax)
    if bound:
        warn_overflow(op, bound, 4)
    ep = lin.epilogue(profile, sx, zx, so, zo, relu, out_dtype, x_signed)
    quirk = profile == "fbgemm" and _fbgemm_depthwise_quirk(packed, nd, c, stride, padding, dilation)
    _dispatch.run("conv.depthwise_requantized" + serial, "cpu", xp, zxu, packed.dw_table, ep.zw,
                  *k3, *s3, *d3, *o3, quirk, ep.mode, ep.ip, ep.fp, ep.cf0, ep.cf1, ep.ci0,
                  ep.zo, ep.lo, ep.hi, out.view(np.uint8))
    data = out.reshape((n,) + o3 + (o,)).transpose(0, 4, 1, 2, 3)
    data = data[(slice(None), slice(None)) + (0,) * (3 - nd)]
    return QTensor._per_tensor(data, out_dtype, so, zo)


def _conv_cuda(x, packed, profile, nd, stride, padding, dilation, out_sp, so, zo, relu, op):
    """The CUDA path of :func:`_conv` (zero padding): the CPU pipeline's steps
    with the CUDA twins of its kernels (``qops.kernels.cuda``) on device
    arrays.  Returns the contiguous ``(N, O, *out_spatial)`` device output."""
    from numba import cuda

    from .kernels.cuda.conv import to_channels_first, to_channels_last
    from .kernels.cuda.gemm import device_constant as dc

    lin = packed.linear
    out_dtype = x.dtype
    signed = out_dtype is qint8
    sx, zx = x.q_scale(), x.q_zero_point()
    zxu = zx + 128 if signed else zx
    n, c = x.shape[:2]
    sp = tuple(x.shape[2:])
    s_in = int(np.prod(sp))
    o = packed.o
    result = cuda.device_array((n, o) + tuple(out_sp), out_dtype.storage)
    k3 = _as3(packed.kernel, nd, 1)
    o3 = _as3(out_sp, nd, 1)
    geometry = (k3 + _as3(stride, nd, 1) + _as3(padding, nd, 0) + _as3(dilation, nd, 1) + o3)
    s_out = o3[0] * o3[1] * o3[2]
    m = n * s_out
    if m == 0:
        return result
    xs = cuda.device_array(n * s_in * c, np.uint8)
    to_channels_last(x.contiguous()._data.reshape(n, c, s_in), signed, xs)
    xs5 = xs.reshape((n,) + _as3(sp, nd, 1) + (c,))
    ktot = int(np.prod(k3)) * packed.cg
    if ktot * max(zxu, 255 - zxu) * lin.wmax > INT32_MAX:  # rare: scan on the host
        bound = overflow_bound(ktot, xs.copy_to_host(), zxu, 0, 255, lin.wmax)
        if bound:
            warn_overflow(op, bound, 4)
    ep = lin.epilogue(profile, sx, zx, so, zo, relu, out_dtype, signed)
    out = cuda.device_array(m * o, out_dtype.storage)
    if packed.dw_table is not None and packed.og <= 8:
        quirk = profile == "fbgemm" and _fbgemm_depthwise_quirk(packed, nd, c, stride, padding,
                                                                dilation)
        acc = cuda.device_array(m * o, np.int32)
        _dispatch.run("depthwise", "cuda", xs5, zxu, dc(packed.dw_table), dc(ep.zw), packed.og,
                      *geometry, quirk, acc)
        zeros = cuda.to_device(np.zeros(max(o, 1), np.int32))
        _dispatch.run("requantize_accumulators", "cuda", ep.mode, acc, 0, o, m, o,
                      cuda.to_device(np.zeros(m, np.int32)), zeros, zeros, dc(ep.ip), dc(ep.fp),
                      ep.cf0, ep.cf1, ep.ci0, ep.zo, ep.lo, ep.hi, out, 0, o, 0)
    else:
        kp = -(-ktot // KG) * KG
        mp = -(-m // MR) * MR
        cols = cuda.to_device(np.zeros(mp * kp, np.uint8))
        words = cols.view(np.int32)
        rowsum = cuda.to_device(np.zeros(m, np.int32))
        og, np_ = packed.og, packed.group_np
        for g in range(packed.groups):
            _dispatch.run("im2col", "cuda", xs5, zxu, g * packed.cg, packed.cg, *geometry, cols, kp)
            raw = _dispatch.run("gemm_raw", "cuda", words, mp, kp, dc(packed.group_panels[g]), np_)
            if lin.any_zw:
                _dispatch.run("row_sums", "cuda", cols.reshape(mp, kp)[:m], rowsum)
            _dispatch.run("requantize_accumulators", "cuda", ep.mode, raw, 0, np_, m, og, rowsum,
                          dc(ep.zw), dc(ep.cc), dc(ep.ip), dc(ep.fp), ep.cf0, ep.cf1, ep.ci0,
                          ep.zo, ep.lo, ep.hi, out, g * og, o, g * og)
    to_channels_first(out.reshape(n, s_out, o), result.reshape(n * o * s_out))
    return result


_CONV_DOC = """Quantized {nd}-D convolution{relu_text}, requantized to ``scale`` / ``zero_point``.

    Reproduces ``torch.ao.nn.quantized.functional.conv{nd}d`` (the
    ``torch.ops.quantized.conv{nd}d{relu_op}`` kernels) bit for bit under the
    torch profiles, onnxruntime's QLinearConv under ``onnxruntime``, TFLite's
    reference kernels under ``tflite`` / ``tflite_single``, and the exact
    result under ``reference``.

    Parameters
    ----------
    input : QTensor
        Per-tensor, ``{layout}``; quint8 (torch profiles), quint8 or qint8
        (onnxruntime, reference), qint8 (tflite).  Any strides: a channels-last
        buffer (as conv outputs are) is used without a copy.
    weight : QTensor or PackedConvWeight
        ``(out_channels, in_channels / groups, {kernel})``, qint8 (onnxruntime
        and reference also quint8), per-tensor or per-channel along axis 0.
    bias : array_like, optional
        ``out_channels`` float32 values (torch) or int32 values in the
        accumulator scale (onnxruntime, tflite, reference), as for
        :func:`qops.functional.linear`.
    stride, padding, dilation : int or tuple of {nd} ints
        Positive, non-negative and positive respectively.
    groups : int
        Divides both channel counts; ``groups == in_channels`` is a depthwise
        convolution (run by its own kernel).
    padding_mode : {{"zeros", "reflect", "replicate", "circular"}}
        Zeros pads with the input zero point (every backend's behaviour);
        the other modes, which torch's quantized convolutions lack, pad the
        integers as torch's float ``Conv{nd}d`` pads floats.
    scale, zero_point : float, int
        Output quantization parameters (torch's defaults: 1.0, 0).
    numerics : str, optional
        Numerics profile (default: the active one).

    Returns
    -------
    QTensor
        Per-tensor, of the input's dtype, logically ``(N, out_channels,
        *out_spatial)`` over a channels-last buffer.

    Raises
    ------
    TypeError
        Wrong input or weight types or dtypes for the profile, int32 bias for a
        torch profile.
    ValueError
        Wrong ranks, in_channels not matching the weight, groups not dividing
        the channels, non-positive stride or dilation, negative padding, a
        kernel larger than the padded input, bias of the wrong length, nonzero
        weight zero points for onednn / tflite, output zero point outside the
        dtype.

    Notes
    -----
    Padded taps read the input zero point, so they add exactly 0 to the int32
    accumulator.  Under ``fbgemm``, depthwise 2-D and 3-D convolutions with
    groups a multiple of 8, out_channels in {{C, 2C}}, kernel sizes 3, 5 or 7
    with kH == kW, strides 1 or 2, dilation 1 and "same" padding use fbgemm's
    kernel, which adds products of consecutive taps in pairs with int16
    saturation (and sums the activations of a window in saturating int16,
    which a 7x7x7 window can reach); ``reference`` shows the error that
    causes when activations exceed 127.
"""


def _make(nd, relu):
    name = f"conv{nd}d" + ("_relu" if relu else "")

    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
             padding_mode="zeros", scale=1.0, zero_point=0, *, numerics=None):
        return _conv(input, weight, bias, stride, padding, dilation, groups, padding_mode, scale,
                     zero_point, numerics, relu, nd, name)

    layout = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[nd]
    kernel = {1: "kW", 2: "kH, kW", 3: "kD, kH, kW"}[nd]
    conv.__name__ = conv.__qualname__ = name
    conv.__doc__ = _CONV_DOC.format(
        nd=nd, relu_text=" followed by ReLU (fused: outputs clamp at the zero point)" if relu else "",
        relu_op="_relu" if relu else "", layout=layout, kernel=kernel,
    )
    return conv


conv1d = _make(1, False)
conv2d = _make(2, False)
conv3d = _make(3, False)
conv1d_relu = _make(1, True)
conv2d_relu = _make(2, True)
conv3d_relu = _make(3, True)
