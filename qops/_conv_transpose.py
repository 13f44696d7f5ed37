"""Quantized transposed convolution: ``qops.functional.conv_transpose1d/2d/3d``.

validate -> canonicalise (channels-last ``(N, D, H, W, C)`` uint8; 1-D and
2-D as 3-D with unit dimensions) -> per group, one raw GEMM of the input
pixels against the ``(taps * C_out/groups, C_in/groups)`` weight matrix
(:mod:`qops.kernels.cpu.gemm`) -> :func:`qops.kernels.cpu.conv_transpose.col2im`
gathers the products onto the output pixels and applies the zero-point
corrections (int32, wrapping) -> the requantization epilogue shared with
linear and convolution (:mod:`qops.kernels.cpu.requant`) -> wrap.  CUDA
inputs run the same steps with the CUDA twins of these kernels.

torch 2.13.0 (``torch.ops.quantized.conv_transpose{1,2,3}d``) accumulates
``A = sum (x - zx)(w - zw)`` over the (input pixel, tap) pairs that land on
an output pixel and requantizes it exactly as its convolution does (fbgemm,
qnnpack and onednn epilogues of ``shared NUMERICS.md`` section 3; measured).
"""

from __future__ import annotations

import numbers

import numpy as np

from ._conv import _as3, _tuple
from ._device import is_cuda_array
from ._linear import INT32_MAX, check_activation, overflow_bound, warn_overflow
from ._packed import PackedLinearWeight, output_qparams, wrap32
from . import _dispatch
from .dtypes import qint8, quint8
from .kernels.cpu.gemm import NR, pack_activations, pack_weight
from .numerics import resolve_numerics
from .qtensor import QTensor

__all__ = ["PackedConvTransposeWeight", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]

#: profiles whose peer has no quantized transposed convolution to match
_NO_PEER = {
    "onnxruntime": "onnxruntime 1.32 registers no CPU kernel for com.microsoft.QLinearConvTranspose",
    "tflite": "qops has no tested oracle of TFLite's TRANSPOSE_CONV",
    "tflite_single": "qops has no tested oracle of TFLite's TRANSPOSE_CONV",
}


def _check_peer(profile, op):
    if profile in _NO_PEER:
        raise NotImplementedError(
            f"{op} under numerics {profile!r} is not implemented: {_NO_PEER[profile]}; use "
            "numerics='fbgemm', 'qnnpack', 'onednn' or 'reference'"
        )


class PackedConvTransposeWeight:
    """A transposed-convolution weight ``(C_in, C_out / groups, *kernel)`` and
    its bias, packed once.

    Each group's weights become a ``(taps * og, cg)`` matrix (row ``t*og + o``
    holds ``w[g*cg + c, o, t]`` over ``c``) in GEMM panels, with the tap sums
    ``sum_c (w - zw)`` that the zero-point correction needs.  The
    requantization constants come from a :class:`qops._packed.PackedLinearWeight`
    of the equivalent ``(C_out, cg * taps)`` weight (same scales, zero points
    and bias per output channel).

    Per-channel weights are quantized along axis 1 (``C_out / groups``, as
    torch's ConvTranspose modules and its qnnpack kernel take them); output
    channel ``g*og + o`` uses the parameters of index ``o``.
    """

    __slots__ = ("weight", "nd", "groups", "cin", "cg", "og", "o", "kernel", "taps", "linear",
                 "np_", "zw", "per_channel", "_ws", "_packs")

    def __init__(self, weight, bias=None, groups=1, nd=2, *, op="conv_transpose2d"):
        if not isinstance(weight, QTensor):
            raise TypeError(
                f"{op} expects the weight as a qint8 QTensor of shape (in_channels, "
                f"out_channels/groups, *kernel_size), got {type(weight).__name__}"
            )
        if weight.dtype not in (qint8, quint8):
            raise TypeError(f"{op} expects a qint8 weight (quint8 for numerics='reference'), "
                            f"got {weight.dtype!r}")
        if weight.ndim != nd + 2:
            raise ValueError(
                f"{op} expects a {nd + 2}-D weight (in_channels, out_channels/groups"
                f"{', kD' if nd == 3 else ''}{', kH' if nd >= 2 else ''}, kW), got shape {weight.shape}"
            )
        if is_cuda_array(weight._data):
            raise NotImplementedError(f"{op}: CUDA weights are not supported; use weight.cpu()")
        if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, numbers.Integral) or groups < 1:
            raise ValueError(f"{op}: groups must be a positive integer, got {groups!r}")
        if 0 in weight.shape:
            raise ValueError(f"{op}: the weight has an empty dimension: {weight.shape}")
        cin, og = weight.shape[:2]
        if cin % groups:
            raise ValueError(f"{op}: in_channels={cin} (weight dimension 0) is not divisible by "
                             f"groups={groups}")
        if weight.is_per_channel:
            if weight.q_per_channel_axis() != 1:
                raise NotImplementedError(
                    f"{op}: per-channel weights must be quantized along axis 1 (out_channels/"
                    f"groups), one scale per output channel, got axis "
                    f"{weight.q_per_channel_axis()}; torch 2.13's qnnpack (the only engine with "
                    "per-channel transposed convolution) reads them that way"
                )
            if np.asarray(weight._zero_points).dtype.kind == "f":
                raise NotImplementedError(f"{op}: weights with float zero points are not supported")
        g = int(groups)
        self.weight = weight
        self.nd = nd
        self.groups = g
        self.cin = cin
        self.cg = cin // g
        self.og = og
        self.o = og * g
        self.kernel = tuple(weight.shape[2:])
        self.taps = int(np.prod(self.kernel))
        self.per_channel = weight.is_per_channel
        data = np.ascontiguousarray(weight._data)
        ws = (data ^ np.uint8(0x80)).view(np.int8) if weight.dtype is quint8 else data
        if self.per_channel:
            zw = np.asarray(weight._zero_points, np.int64)
        else:
            zw = np.full(og, weight.q_zero_point(), np.int64)
        zws = zw - 128 if weight.dtype is quint8 else zw
        self.zw = zws.astype(np.int32)
        self.np_ = -(-max(self.taps * og, 1) // NR) * NR
        self._ws = ws
        self._packs = {}
        # the equivalent (C_out, cg * taps) weight: the epilogue's scales, zero points, bias
        w2 = np.ascontiguousarray(data.reshape(g, self.cg, og, self.taps).transpose(0, 2, 1, 3))
        w2 = w2.reshape(self.o, self.cg * self.taps)
        if self.per_channel:
            lw = QTensor._per_channel(w2, weight.dtype, np.tile(weight._scales, g), np.tile(zw, g), 0,
                                      weight.qscheme())
        else:
            lw = QTensor._per_tensor(w2, weight.dtype, weight.q_scale(), weight.q_zero_point(),
                                     weight.qscheme())
        self.linear = PackedLinearWeight(lw, bias, op=op, conv=True)

    def group_packs(self, profile):
        """``(panels, wc)`` per group: the GEMM panels of the ``(taps*og, cg)``
        weight matrix and the tap sums ``sum_c (w - zw)`` (``(taps, og)``,
        flat, exact).  Under ``onednn`` each group's weight is first permuted
        as torch 2.13's onednn engine reads it (:func:`onednn_weight_order`)."""
        key = "onednn" if profile == "onednn" and self.cg != self.og else "ideal"
        packs = self._packs.get(key)
        if packs is None:
            g, cg, og, taps = self.groups, self.cg, self.og, self.taps
            wr = self._ws.reshape(g, cg, og, taps)  # (group, c, o, tap)
            if key == "onednn":
                wr = wr.reshape(g, cg * og, taps)[:, onednn_weight_order(cg, og)].reshape(g, cg, og, taps)
            zws = self.zw.astype(np.int64)
            packs = []
            for gi in range(g):
                wmat = np.ascontiguousarray(wr[gi].transpose(2, 1, 0)).reshape(taps * og, cg)
                wsum = wr[gi].astype(np.int64).sum(axis=0) - cg * zws[:, None]  # (o, tap)
                packs.append((pack_weight(wmat), np.ascontiguousarray(wsum.T).reshape(-1)))
            self._packs[key] = packs
        return packs

    def check_profile(self, profile, op):
        """Raise where torch 2.13 (or the profile's peer) has no such transposed convolution."""
        _check_peer(profile, op)
        if self.per_channel and profile in ("fbgemm", "onednn"):
            raise NotImplementedError(
                f"{op}: numerics={profile!r} takes per-tensor weights only (torch 2.13's fbgemm, "
                "x86 and onednn engines refuse per-channel weights for transposed convolution); "
                "use a per-tensor weight, or numerics='qnnpack' (groups=1) or 'reference'"
            )
        if self.per_channel and profile == "qnnpack" and self.groups != 1:
            raise NotImplementedError(
                f"{op}: numerics='qnnpack' takes per-channel weights with groups=1 only (torch "
                f"2.13's qnnpack needs out_channels scales, a grouped weight holds out_channels/"
                f"groups = {self.og}); use a per-tensor weight or numerics='reference'"
            )
        if profile == "qnnpack" and self.nd == 3:
            raise NotImplementedError(
                f"{op} under numerics='qnnpack' is not implemented: torch 2.13's qnnpack "
                "conv_transpose3d fills only the first output depth slice and leaves the rest "
                "uninitialized (measured); use numerics='fbgemm' or 'reference'"
            )
        self.linear.check_profile(profile, op)


def fbgemm_direct_path(packed, stride, padding, dilation):
    """Whether torch 2.13's fbgemm takes its direct transposed-convolution
    kernel (fbgemm's ``takeDirectConvPath``; conditions measured against
    torch 2.13.0): 2-D, groups 1, C_in and C_out multiples of 8, kernel
    height 2 and width <= 6, strides 1 or 2, padding 0, dilation 1."""
    return (packed.nd == 2 and packed.groups == 1 and packed.cin % 8 == 0 and packed.o % 8 == 0
            and packed.kernel[0] == 2 and packed.kernel[1] <= 6 and stride[0] in (1, 2)
            and stride[1] in (1, 2) and padding == (0, 0) and dilation == (1, 1))


def onednn_weight_order(cg, og):
    """The element of a group's ``(cg, og)`` weight block (row-major index)
    that torch 2.13's onednn engine uses as ``w[c, o]``, for every ``(c, o)``.

    Measured against torch 2.13.0 (engines onednn and x86): its transposed
    convolution reads the ``(C_in/groups, C_out/groups)`` block of each group
    as ``w'[o, c] = block[(n % og) * cg + n // og]`` with ``n = o*cg + c``, taps
    moving with their element; this is the identity only when ``cg == og``.
    """
    c = np.arange(cg)[:, None]
    o = np.arange(og)[None, :]
    n = o * cg + c
    return ((n % og) * cg + n // og).reshape(-1)


def _output_size(spatial, kernel, stride, padding, output_padding, dilation):
    return tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1
                 for n, k, s, p, op, d in zip(spatial, kernel, stride, padding, output_padding, dilation))


def _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, scale,
                    zero_point, numerics, nd, op):
    profile = resolve_numerics(numerics)
    layout = "(N, C, L)" if nd == 1 else ("(N, C, H, W)" if nd == 2 else "(N, C, D, H, W)")
    _check_peer(profile, op)
    x = check_activation(input, profile, op, layout)
    if x.ndim != nd + 2:
        raise ValueError(f"{op} expects a {nd + 2}-D input {layout}, got shape {x.shape}")
    if isinstance(weight, PackedConvTransposeWeight):
        if bias is not None:
            raise ValueError(f"{op}: a packed weight carries its own bias; pass bias=None")
        if weight.nd != nd or (groups != 1 and groups != weight.groups):
            raise ValueError(f"{op}: the packed weight was built for conv_transpose{weight.nd}d with "
                             f"groups={weight.groups}")
        packed = weight
    else:
        packed = PackedConvTransposeWeight(weight, bias, groups, nd, op=op)
    packed.check_profile(profile, op)
    lin = packed.linear
    stride = _tuple(stride, nd, "stride", op, 1)
    padding = _tuple(padding, nd, "padding", op, 0)
    output_padding = _tuple(output_padding, nd, "output_padding", op, 0)
    dilation = _tuple(dilation, nd, "dilation", op, 1)
    for i in range(nd):
        if output_padding[i] >= max(stride[i], dilation[i]):
            raise ValueError(
                f"{op}: output_padding must be smaller than either stride or dilation (as in "
                f"torch), got output_padding={output_padding}, stride={stride}, dilation={dilation}"
            )
    if profile == "fbgemm" and fbgemm_direct_path(packed, stride, padding, dilation):
        raise NotImplementedError(
            f"{op} under numerics='fbgemm' is not implemented for this shape: torch 2.13's fbgemm "
            "runs 2-D transposed convolutions with groups 1, in and out channels multiples of 8, "
            "kernel height 2, kernel width <= 6, strides 1 or 2, padding 0 and dilation 1 "
            "through its direct kernel, whose results are wrong (and vary from run to run for "
            "batches > 1; measured); use numerics='reference' (the exact result) or 'qnnpack'"
        )
    if profile == "onednn" and any(output_padding):
        raise NotImplementedError(
            f"{op}: numerics='onednn' takes output_padding 0 only (torch 2.13's onednn engine "
            f"refuses other values), got {output_padding}; use numerics='fbgemm' or 'reference'"
        )
    n, c = x.shape[:2]
    if c != packed.cin:
        raise ValueError(
            f"{op}: the input has {c} channels but the weight (in_channels, out_channels/groups, "
            f"*kernel) = {packed.weight.shape} expects {packed.cin}"
        )
    spatial = tuple(x.shape[2:])
    if 0 in spatial:
        raise ValueError(f"{op}: the input has an empty spatial dimension: {x.shape}")
    out_sp = _output_size(spatial, packed.kernel, stride, padding, output_padding, dilation)
    if any(s < 1 for s in out_sp):
        raise ValueError(
            f"{op}: the output size {out_sp} is not positive (input {spatial}, kernel "
            f"{packed.kernel}, stride {stride}, padding {padding}, output_padding "
            f"{output_padding}, dilation {dilation}); reduce the padding"
        )
    out_dtype = x.dtype
    so, zo = output_qparams(x, scale, zero_point, out_dtype)
    sx, zx = x.q_scale(), x.q_zero_point()
    x_signed = x.dtype is qint8
    zxu = zx + 128 if x_signed else zx
    ep = lin.epilogue(profile, sx, zx, so, zo, False, out_dtype, x_signed)
    geometry = (_as3(spatial, nd, 1) + _as3(packed.kernel, nd, 1) + _as3(stride, nd, 1)
                + _as3(padding, nd, 0) + _as3(dilation, nd, 1) + _as3(out_sp, nd, 1))
    if is_cuda_array(x._data):
        data = _conv_transpose_cuda(x, packed, profile, ep, nd, geometry, out_sp, zxu, op)
        return QTensor._per_tensor(data, out_dtype, so, zo)

    m_in = n * int(np.prod(spatial))
    xs = np.empty(m_in * c, np.uint8)
    raw = x._data.view(np.uint8)
    if raw.flags.c_contiguous and xs.size:
        # the 8x8-block transpose of the convolutions (in parts), about five
        # times the element loop of to_channels_last for 2M bytes
        d3, h3, w3 = _as3(spatial, nd, 1)
        _dispatch.run("conv.pad_channels_last", "cpu", raw.reshape(-1), False, 0x80 if x_signed else 0, 0,
                      n, c, d3, h3, w3, 0, 0, 0, xs.reshape(n, d3, h3, w3, c))
    else:
        _dispatch.run("conv_transpose.to_channels_last", "cpu", raw.reshape(n, c, -1), x_signed, xs)
    xs = xs.reshape(m_in, c)
    o = packed.o
    o3 = _as3(out_sp, nd, 1)
    m = n * o3[0] * o3[1] * o3[2]
    out = np.empty(m * o, out_dtype.storage)
    if m and n:
        bound = overflow_bound(packed.cg * packed.taps, xs, zxu, 0, 255, lin.wmax)
        if bound:
            warn_overflow(op, bound, 3)
        acc = np.empty(m * o, np.int32)
        rowsum = np.zeros(m_in, np.int32)
        any_zw = bool(np.any(packed.zw != 0))
        cg, og = packed.cg, packed.og
        for g, (panels, wc) in enumerate(packed.group_packs(profile)):
            xg = xs if packed.groups == 1 else xs[:, g * cg:(g + 1) * cg]
            a, mp, kp = pack_activations(xg)
            raw = _dispatch.run("gemm_raw", "cpu", a, mp, kp, panels, packed.np_)
            if any_zw:
                _dispatch.run("row_sums", "cpu", xg, rowsum)
            wcz = wrap32(zxu * wc)
            _dispatch.run("conv_transpose.col2im", "cpu", raw, packed.np_, rowsum, wcz, packed.zw,
                          og, g * og, o, n, *geometry, acc)
        zeros = np.zeros(o, np.int32)
        _dispatch.run("requantize_accumulators", "cpu", ep.mode, acc, 0, o, m, o,
                      np.zeros(m, np.int32), zeros, zeros, ep.ip, ep.fp, ep.cf0, ep.cf1, ep.ci0,
                      ep.zo, ep.lo, ep.hi, out, 0, o, 0)
    data = out.reshape((n,) + o3 + (o,)).transpose(0, 4, 1, 2, 3)
    data = data[(slice(None), slice(None)) + (0,) * (3 - nd)]  # drop the unit dims of 1-D/2-D
    return QTensor._per_tensor(data, out_dtype, so, zo)


def _conv_transpose_cuda(x, packed, profile, ep, nd, geometry, out_sp, zxu, op):
    """The CUDA path of :func:`_conv_transpose`: the same steps with the CUDA
    twins of the kernels on device arrays.  Returns the contiguous
    ``(N, C_out, *out_spatial)`` device output."""
    from numba import cuda

    from .kernels.cuda.conv import to_channels_first
    from .kernels.cuda.gemm import device_constant as dc, pack_activations

    lin = packed.linear
    out_dtype = x.dtype
    signed = out_dtype is qint8
    n, c = x.shape[:2]
    s_in = int(np.prod(x.shape[2:]))
    o = packed.o
    o3 = _as3(out_sp, nd, 1)
    s_out = o3[0] * o3[1] * o3[2]
    m = n * s_out
    result = cuda.device_array((n, o) + tuple(out_sp), out_dtype.storage)
    if m == 0:
        return result
    m_in = n * s_in
    xs = cuda.device_array(m_in * c, np.uint8)
    _dispatch.run("conv_transpose.to_channels_last", "cuda", x.contiguous()._data.reshape(n, c, s_in),
                  signed, xs)
    xs2 = xs.reshape(m_in, c)
    ktot = packed.cg * packed.taps
    if ktot * max(zxu, 255 - zxu) * lin.wmax > INT32_MAX:  # rare: scan on the host
        bound = overflow_bound(ktot, xs.copy_to_host(), zxu, 0, 255, lin.wmax)
        if bound:
            warn_overflow(op, bound, 4)
    acc = cuda.device_array(m * o, np.int32)
    rowsum = cuda.to_device(np.zeros(m_in, np.int32))
    any_zw = bool(np.any(packed.zw != 0))
    cg, og = packed.cg, packed.og
    zw = dc(packed.zw)
    for g, (panels, wc) in enumerate(packed.group_packs(profile)):
        words, mp, kp = pack_activations(xs2[:, g * cg:(g + 1) * cg])
        raw = _dispatch.run("gemm_raw", "cuda", words, mp, kp, dc(panels), packed.np_)
        if any_zw:
            _dispatch.run("row_sums", "cuda", words.view(np.uint8).reshape(mp, kp)[:m_in], rowsum)
        wcz = cuda.to_device(wrap32(zxu * wc))
        _dispatch.run("conv_transpose.col2im", "cuda", raw, packed.np_, rowsum, wcz, zw, og, g * og,
                      o, n, *geometry, acc)
    out = cuda.device_array(m * o, out_dtype.storage)
    zeros = cuda.to_device(np.zeros(o, np.int32))
    _dispatch.run("requantize_accumulators", "cuda", ep.mode, acc, 0, o, m, o,
                  cuda.to_device(np.zeros(m, np.int32)), zeros, zeros, dc(ep.ip), dc(ep.fp), ep.cf0,
                  ep.cf1, ep.ci0, ep.zo, ep.lo, ep.hi, out, 0, o, 0)
    to_channels_first(out.reshape(n, s_out, o), result.reshape(n * o * s_out))
    return result


_DOC = """Quantized {nd}-D transposed convolution, requantized to ``scale`` / ``zero_point``.

    Reproduces ``torch.ao.nn.quantized.functional.conv_transpose{nd}d``
    (``torch.ops.quantized.conv_transpose{nd}d`` with
    ``conv_transpose{nd}d_prepack``) of torch 2.13 bit for bit under
    ``fbgemm``, ``qnnpack`` and ``onednn``, and the exact result under
    ``reference``.

    Parameters
    ----------
    input : QTensor
        Per-tensor, ``{layout}``; quint8 (torch profiles), quint8 or qint8
        (reference).  Any strides.
    weight : QTensor or PackedConvTransposeWeight
        ``(in_channels, out_channels / groups, {kernel})``, qint8 (reference
        also quint8), as torch's quantized ConvTranspose modules hold it.
        Per-tensor under every profile; per-channel along axis 1 (one scale
        per ``out_channels / groups`` index, shared by the groups) under
        ``qnnpack`` (groups 1) and ``reference``.  ``onednn`` needs weight zero
        point 0.
    bias : array_like, optional
        ``out_channels`` float32 values (reference also takes int32 in the
        accumulator scale ``sx * sw``).
    stride, padding, output_padding, dilation : int or tuple of {nd} ints
        Positive, non-negative, smaller than stride or dilation, positive.
        The output size is ``(L - 1)*stride - 2*padding + dilation*(k - 1) +
        output_padding + 1``.
    groups : int
        Divides ``in_channels``; the output has ``groups * weight.shape[1]``
        channels.
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
        Wrong input or weight types or dtypes for the profile.
    ValueError
        Wrong ranks, in_channels not matching the weight or not divisible by
        groups, invalid stride / padding / output_padding / dilation, a
        non-positive output size, bias of the wrong length, nonzero weight
        zero point under onednn, output zero point outside the dtype.
    NotImplementedError
        Per-channel weights under fbgemm / onednn (torch refuses them),
        per-channel weights with groups > 1 under qnnpack, per-channel
        weights along axis 0; the onnxruntime, tflite and tflite_single
        profiles (no peer kernel to match).

    Notes
    -----
    Every output pixel accumulates ``(x - zx)(w - zw)`` in int32 over the
    (input pixel, tap) pairs that reach it (pixels no pair reaches get 0) and
    is requantized exactly as :func:`qops.functional.conv{nd}d`: fbgemm adds
    the float bias in the accumulator domain, qnnpack quantizes it to int32,
    onednn works on reciprocal scales and saturates (``docs/numerics.md``
    section 3).

    Examples
    --------
    >>> import numpy as np, qops
    >>> x = qops.quantize_per_tensor(np.float32({xval}), 0.5, 2, qops.quint8)
    >>> w = qops.quantize_per_tensor(np.ones({wshape}, np.float32), 0.25, 0, qops.qint8)
    >>> y = qops.functional.conv_transpose{nd}d(x, w, None, stride=2, scale=0.5, zero_point=0)
    >>> y.shape
    {yshape}
"""

_EXAMPLES = {
    1: ("[[[1.0, 2.0]]]", "(1, 1, 2)", "(1, 1, 4)"),
    2: ("[[[[1.0, 2.0]]]]", "(1, 1, 2, 2)", "(1, 1, 2, 4)"),
    3: ("[[[[[1.0, 2.0]]]]]", "(1, 1, 2, 2, 2)", "(1, 1, 2, 2, 4)"),
}


def _make(nd):
    name = f"conv_transpose{nd}d"

    def conv_transpose(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                       dilation=1, scale=1.0, zero_point=0, *, numerics=None):
        return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                               dilation, scale, zero_point, numerics, nd, name)

    layout = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[nd]
    kernel = {1: "kW", 2: "kH, kW", 3: "kD, kH, kW"}[nd]
    xval, wshape, yshape = _EXAMPLES[nd]
    conv_transpose.__name__ = conv_transpose.__qualname__ = name
    conv_transpose.__doc__ = _DOC.format(nd=nd, layout=layout, kernel=kernel, xval=xval,
                                         wshape=wshape, yshape=yshape)
    return conv_transpose


conv_transpose1d = _make(1)
conv_transpose2d = _make(2)
conv_transpose3d = _make(3)
