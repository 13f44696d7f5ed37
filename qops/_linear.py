"""Quantized linear: ``qops.functional.linear`` and ``linear_relu``.

validate -> canonicalise (``(..., K)`` rows as a ``(M, K)`` uint8 matrix) ->
pack activations -> raw GEMM (:mod:`qops.kernels.cpu.gemm`) -> fused
zero-point corrections and requantization (:mod:`qops.kernels.cpu.requant`)
-> wrap; CUDA inputs run the same steps with the CUDA twins of the kernels
(:mod:`qops.kernels.cuda`).  The weight is packed once by
:class:`qops._packed.PackedLinearWeight` (module wrappers keep one; the
functional form packs per call, as torch's).
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np

from ._device import is_cuda_array
from ._packed import PackedLinearWeight, output_qparams
from . import _dispatch
from .dtypes import per_tensor_affine, per_tensor_symmetric, qint8, quint8
from .kernels.cpu.gemm import KG, pack_activations
from .numerics import resolve_numerics
from .qtensor import QTensor

__all__ = ["linear", "linear_relu", "check_activation", "output_qparams", "overflow_bound", "warn_overflow"]

INT32_MAX = 2**31 - 1

#: activation dtypes each profile takes (the output has the same dtype)
ACTIVATION_DTYPES = {
    "fbgemm": (quint8,),
    "qnnpack": (quint8,),
    "onednn": (quint8,),
    "onnxruntime": (quint8, qint8),
    "tflite": (qint8,),
    "tflite_single": (qint8,),
    "reference": (quint8, qint8),
}

_warned_sites: set = set()


# ------------------------------------------------------------------ helpers
def check_activation(x, profile, op, layout="(..., in_features)"):
    """The input QTensor, checked for ``profile``: per-tensor, a dtype the
    profile takes, its data a NumPy or a CUDA device array."""
    if not isinstance(x, QTensor):
        raise TypeError(
            f"{op} expects a quantized input (a QTensor {layout}), got {type(x).__name__}; "
            "quantize it first with qops.quantize_per_tensor"
        )
    allowed = ACTIVATION_DTYPES[profile]
    if x._dtype not in allowed:
        names = " or ".join(d.name for d in allowed)
        raise TypeError(
            f"{op} with numerics={profile!r} expects a {names} input, got {x.dtype.name}; "
            "requantize it first with qops.requantize"
        )
    if x._axis is not None or x._qscheme not in (per_tensor_affine, per_tensor_symmetric):
        raise ValueError(
            f"{op} expects a per-tensor quantized input, got {x.qscheme().name}; requantize it "
            "to one scale with qops.requantize"
        )
    if not isinstance(x._data, np.ndarray) and not is_cuda_array(x._data):
        raise TypeError(f"{op}: the input's data is neither a NumPy nor a CUDA device array")
    return x


def overflow_bound(k, xu, zxu, x_qmin, x_qmax, wmax):
    """``K * max|x - zx| * max|w - zw|`` if it can exceed ``2**31 - 1``, else 0.

    ``xu`` are the activations (zero point ``zxu``, range ``[x_qmin, x_qmax]``,
    0 and 255 for the flipped uint8 bytes).  The dtype range decides first;
    only when it could overflow are the activations scanned.
    """
    if k * max(zxu - x_qmin, x_qmax - zxu) * wmax <= INT32_MAX or xu.size == 0:
        return 0
    xmax = max(int(xu.max()) - zxu, zxu - int(xu.min()))
    bound = k * xmax * wmax
    return bound if bound > INT32_MAX else 0


def warn_overflow(op, bound, stacklevel):
    """Warn once per call site that the int32 accumulator can wrap.

    ``stacklevel`` counts like :func:`warnings.warn`'s, from the caller of
    this function: 2 is the function that called ``warn_overflow``'s caller.
    """
    frame = sys._getframe(stacklevel)
    site = (frame.f_code.co_filename, frame.f_lineno)
    if site in _warned_sites:
        return
    _warned_sites.add(site)
    warnings.warn(
        f"{op}: the int32 accumulator can overflow (K * max|x - zx| * max|w - zw| = {bound} "
        f"> 2**31 - 1 = {INT32_MAX}); it wraps around as in every backend, so affected "
        "outputs are meaningless",
        RuntimeWarning,
        stacklevel=stacklevel + 1,
    )


# ------------------------------------------------------------------ linear
def _linear(input, weight, bias, scale, zero_point, numerics, relu, op):
    profile = resolve_numerics(numerics)
    x = check_activation(input, profile, op)
    if type(weight) is PackedLinearWeight:
        if bias is not None:
            raise ValueError(
                f"{op}: a packed weight carries its own bias; pass bias=None (or repack the "
                "weight with the new bias)"
            )
        packed = weight
    else:
        packed = PackedLinearWeight(weight, bias, op=op)
    packed.check_profile(profile, op)
    n, k = packed.n, packed.k
    shape = tuple(x._data.shape)
    if not shape or shape[-1] != k:
        raise ValueError(
            f"{op}: the input's last dimension must equal in_features={k} (the weight is "
            f"(out_features, in_features) = ({n}, {k})), got input shape {tuple(shape)}"
        )
    out_dtype = x._dtype
    ep = packed.epilogue_for(profile, x, scale, zero_point, relu, out_dtype)
    lead = shape[:-1]
    m = math.prod(lead)
    if is_cuda_array(x._data):
        out = _linear_cuda(x, packed, ep, m, n, k, op)
        return QTensor._per_tensor(out.reshape(lead + (n,)), out_dtype, ep.so, ep.zo)
    out = np.empty(m * n, out_dtype.storage)
    if m and n:
        x2 = x._data.reshape(m, k)
        if out_dtype is qint8:
            xu = x2.view(np.uint8) ^ np.uint8(0x80)
            zxu = x._zero_point + 128
        else:
            xu = x2 if x2.flags.c_contiguous else np.ascontiguousarray(x2)
            zxu = x._zero_point
        bound = overflow_bound(k, xu, zxu, 0, 255, packed.wmax)
        if bound:
            warn_overflow(op, bound, 3)
        if k % KG == 0 and xu.flags.c_contiguous:  # no copy; the GEMM takes any row count
            a, mp, kp = xu.reshape(-1).view(np.int32), m, k
        else:
            a, mp, kp = pack_activations(xu)
        rowsum = np.zeros(m, np.int32)
        raw = _dispatch.run("gemm_raw", "cpu", a, mp, kp, packed.panels, packed.np_)
        if packed.any_zw and k:
            _dispatch.run("row_sums", "cpu", xu, rowsum)
        _dispatch.run("requantize_accumulators", "cpu", ep.mode, raw, 0, packed.np_, m, n, rowsum,
                      ep.zw, ep.cc, ep.ip, ep.fp, ep.cf0, ep.cf1, ep.ci0, ep.zo, ep.lo, ep.hi,
                      out, 0, n, 0)
    return QTensor._per_tensor(out.reshape(lead + (n,)), out_dtype, ep.so, ep.zo)


def _linear_cuda(x, packed, ep, m, n, k, op):
    """The CUDA path of :func:`_linear`: the same kernels' CUDA twins
    (``qops.kernels.cuda``) on device arrays; returns the flat device output."""
    from .kernels.cuda.gemm import device_constant, pack_activations
    from numba import cuda

    out_dtype = x._dtype
    out = cuda.device_array(m * n, out_dtype.storage)
    if not (m and n):
        return out
    signed = out_dtype is qint8
    zxu = x._zero_point + 128 if signed else x._zero_point
    x2 = x.contiguous()._data.reshape(m, k)
    if k * max(zxu, 255 - zxu) * packed.wmax > INT32_MAX:  # rare: scan on the host
        xh = x2.copy_to_host()
        bound = overflow_bound(k, xh.view(np.uint8) ^ np.uint8(0x80) if signed else xh, zxu,
                               0, 255, packed.wmax)
        if bound:
            warn_overflow(op, bound, 4)
    a, mp, kp = pack_activations(x2, signed)
    rowsum = cuda.to_device(np.zeros(m, np.int32))
    raw = _dispatch.run("gemm_raw", "cuda", a, mp, kp, device_constant(packed.panels), packed.np_)
    if packed.any_zw and k:
        _dispatch.run("row_sums", "cuda", a.view(np.uint8).reshape(mp, kp)[:m], rowsum)
    c = device_constant
    _dispatch.run("requantize_accumulators", "cuda", ep.mode, raw, 0, packed.np_, m, n, rowsum,
                  c(ep.zw), c(ep.cc), c(ep.ip), c(ep.fp), ep.cf0, ep.cf1, ep.ci0, ep.zo, ep.lo,
                  ep.hi, out, 0, n, 0)
    return out


_LINEAR_NOTES = """
    Parameters
    ----------
    input : QTensor
        Per-tensor quantized, shape ``(..., in_features)``.  quint8 for the
        torch profiles (fbgemm, qnnpack, onednn); quint8 or qint8 for
        onnxruntime and reference; qint8 for tflite / tflite_single.
    weight : QTensor or PackedLinearWeight
        ``(out_features, in_features)``, qint8 (onnxruntime and reference also
        take quint8), per-tensor or per-channel along axis 0.  onednn and
        tflite need every weight zero point 0.  A weight packed by
        ``qops._packed.PackedLinearWeight`` (as module wrappers hold it) skips
        the packing; it carries its own bias.
    bias : array_like, optional
        ``out_features`` float values (torch convention, used as float32), or
        an int32 array already in the accumulator scale ``sx * sw_j`` (ONNX /
        TFLite convention; onnxruntime, tflite, tflite_single and reference
        only).  onnxruntime and tflite quantize a float bias as converters do,
        ``rne(b / (double(sx) * double(sw_j)))``.
    scale, zero_point : float, int, optional
        Output quantization parameters; ``None`` means the input's (as torch).
        The zero point must lie in the output dtype's range (torch silently
        returns all 255 otherwise; qops refuses).
    numerics : str, optional
        Numerics profile (default: the active one).

    Returns
    -------
    QTensor
        Per-tensor, shape ``(..., out_features)``, of the input's dtype.

    Raises
    ------
    TypeError
        Non-QTensor input or weight, a dtype the profile does not take, an
        int32 bias for a torch profile.
    ValueError
        Shape mismatch, bias of the wrong length, nonzero weight zero points
        for onednn / tflite, unusable output scale or zero point, a NaN or
        infinite float bias where it must be quantized to int32 (onnxruntime,
        tflite), a qnnpack requantization scale that is not a positive normal
        float32 (torch raises there too).

    Warns
    -----
    RuntimeWarning
        Once per call site when ``K * max|x - zx| * max|w - zw|`` exceeds
        ``2**31 - 1``: the int32 accumulator wraps, as in every backend.

    Notes
    -----
    The accumulator ``A = sum_k (x - zx)(w - zw)`` is int32 with wraparound;
    each profile requantizes it as ``docs/numerics.md`` (section 3) describes:
    fbgemm adds the float bias in the accumulator domain and maps overflow to
    the low clamp, qnnpack and onnxruntime add an int32 bias, onednn works on
    reciprocal scales and saturates, tflite uses gemmlowp's fixed-point
    multiplier, reference rounds the exact real value half to even.
"""


def linear(input, weight, bias=None, scale=None, zero_point=None, *, numerics=None) -> QTensor:
    return _linear(input, weight, bias, scale, zero_point, numerics, False, "linear")


def linear_relu(input, weight, bias=None, scale=None, zero_point=None, *, numerics=None) -> QTensor:
    return _linear(input, weight, bias, scale, zero_point, numerics, True, "linear_relu")


linear.__doc__ = (
    """Quantized linear layer: ``y = x @ w.T + b``, requantized to the output's parameters.

    Reproduces ``torch.ao.nn.quantized.functional.linear`` (``torch.ops.quantized.linear``)
    bit for bit under the torch profiles, and onnxruntime's QLinearMatMul /
    QGemm, TFLite's fully connected kernel or the exact result under the others.
"""
    + _LINEAR_NOTES
    + """
    Examples
    --------
    >>> import numpy as np, qops
    >>> x = qops.quantize_per_tensor(np.float32([[1.0, 2.0]]), 0.1, 0, qops.quint8)
    >>> w = qops.quantize_per_tensor(np.float32([[0.5, -0.5], [1.0, 1.0]]), 0.01, 0, qops.qint8)
    >>> y = qops.functional.linear(x, w, np.float32([0.25, 0.0]), 0.05, 10)
    >>> y.int_repr()
    array([[ 5, 70]], dtype=uint8)
"""
)

linear_relu.__doc__ = (
    """Quantized linear layer followed by ReLU, fused: outputs clamp at the zero point.

    Reproduces ``torch.ops.quantized.linear_relu`` under the torch profiles; the
    other profiles clamp the requantized result at the output zero point.
"""
    + _LINEAR_NOTES
)
