"""Quantized normalisation: layer_norm, group_norm, instance_norm, batch_norm.

validate -> canonicalise (the rows each torch kernel walks: contiguous rows
for layer norm and NCHW group norm, channels-last pixels for batch norm and
for group norm on channels-last input) -> allocate -> kernel
(:mod:`qops.kernels.cpu.norm` / :mod:`qops.kernels.cuda.norm`) -> wrap.

Under the torch profiles (``fbgemm``, ``onednn``, ``qnnpack``: torch 2.13 runs
the same ATen kernels for every engine) the integers are torch's, bit for bit;
``reference`` gives the ideal result.  ``docs/ops_norm.md`` has the details.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _dispatch
from ._device import is_cuda_array
from ._validate import check_scale, check_zero_point
from .dtypes import per_tensor_affine, per_tensor_symmetric, qint8, quint8
from .kernels.cpu._avx512 import avx512bw_available, vbmi_available
from .kernels.cpu.norm import GN_TABLE_MIN_HW, GN_TABLE_PARALLEL_MIN
from .numerics import resolve_numerics
from .qtensor import QTensor

__all__ = [
    "layer_norm",
    "group_norm",
    "instance_norm",
    "batch_norm",
    "batch_norm1d",
    "batch_norm2d",
    "batch_norm3d",
    "batch_norm_relu",
    "batch_norm1d_relu",
    "batch_norm2d_relu",
    "batch_norm3d_relu",
]

#: profiles that run torch's ATen kernels (identical for every torch engine)
_TORCH = ("fbgemm", "onednn", "qnnpack")
#: torch's group norm switches from per-group to per-pixel parallelism here
NHWC_HW_THRESHOLD = 512


# ------------------------------------------------------------------ helpers
def _profile(numerics, op):
    p = resolve_numerics(numerics)
    if p not in _TORCH and p != "reference":
        raise NotImplementedError(
            f"{op} under numerics {p!r} is not implemented: that backend has no quantized "
            f"{op} whose arithmetic qops reproduces; use numerics='fbgemm' or 'reference'"
        )
    return p


def _check_input(x, op, layout):
    if not isinstance(x, QTensor):
        raise TypeError(
            f"{op} expects a quantized input (a QTensor {layout}), got {type(x).__name__}; "
            "quantize it first with qops.quantize_per_tensor"
        )
    if x._axis is not None or x._qscheme not in (per_tensor_affine, per_tensor_symmetric):
        raise ValueError(
            f"{op} expects a per-tensor quantized input, got {x.qscheme().name}; requantize "
            "it to one scale with qops.requantize"
        )
    if x._dtype not in (quint8, qint8):
        raise NotImplementedError(
            f"{op} takes quint8 or qint8 inputs, got {x.dtype.name} (torch also accepts "
            "qint32 here; qops does not reproduce that path)"
        )
    if not isinstance(x._data, np.ndarray) and not is_cuda_array(x._data):
        raise TypeError(f"{op}: the input's data is neither a NumPy nor a CUDA device array")
    return x


def _check_eps(eps, op):
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real):
        raise TypeError(f"{op}: eps must be a real number, got {type(eps).__name__}")
    e = float(eps)
    if not (e >= 0.0) or not math.isfinite(e):
        raise ValueError(f"{op}: eps must be a finite number >= 0, got {e!r}")
    return e


def _affine(values, shape, what, op):
    """``values`` (None, or float numbers of ``shape``) as a flat float32 host array."""
    if values is None:
        return None
    if is_cuda_array(values):
        values = values.copy_to_host()
    elif hasattr(values, "detach") and hasattr(values, "numpy"):  # a torch tensor
        values = values.detach().cpu().numpy()
    a = np.asarray(values)
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise TypeError(f"{op}: {what} must be float numbers, got dtype {a.dtype}")
    if a.shape != tuple(shape):
        raise ValueError(f"{op}: {what} must have shape {tuple(shape)}, got {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32).reshape(-1)


def _out_qparams(x, scale, zero_point):
    so = x.q_scale() if scale is None else check_scale(scale, "scale")
    zo = x.q_zero_point() if zero_point is None else zero_point
    return so, check_zero_point(zo, x._dtype, "zero_point")


def _range(dtype):
    return (-128, 127) if dtype is qint8 else (0, 255)


def _gamma_beta(g, b, n):
    """Affine parameters for the kernels: a missing weight is ones and a missing
    bias zeros, exactly what torch's kernels substitute (``fma(p, 1, b)`` and
    ``fma(p, g, 0)``)."""
    return (np.ones(n, np.float32) if g is None else g,
            np.zeros(n, np.float32) if b is None else b)


def _is_channels_last(shape, strides_elems):
    """torch's ``is_contiguous(memory_format=torch.channels_last)`` (4-D only)."""
    if len(shape) != 4:
        return False
    expected = 1
    for d in (1, 3, 2, 0):
        if shape[d] != 1:
            if strides_elems[d] != expected:
                return False
            expected *= shape[d]
    return True


def _strides(data):
    return tuple(int(s) // data.dtype.itemsize for s in data.strides)


def _bytes(data, dtype):
    """Flat uint8 view of host 8-bit data (qint8 keeps its bytes; ``sgn`` says so)."""
    return data.reshape(-1).view(np.uint8), int(dtype is qint8)


def _wrap(out_bytes, shape, dtype, so, zo):
    return QTensor._per_tensor(out_bytes.view(dtype.storage).reshape(shape), dtype, so, zo)


def _run(name, device, *args):
    return _dispatch.run("norm." + name, device, *args)


def _host_or_device(x):
    return "cuda" if is_cuda_array(x._data) else "cpu"


def _alloc(device, n):
    if device == "cuda":
        from numba import cuda

        return cuda.device_array(n, np.uint8)
    return np.empty(n, np.uint8)


def _to_device(device, a):
    if device == "cuda":
        from numba import cuda

        return cuda.to_device(a)
    return a


def _flat_bytes(x, device):
    data = x._data
    if device == "cuda":
        return data.reshape(-1).view(np.uint8), int(x._dtype is qint8)
    return _bytes(np.ascontiguousarray(data), x._dtype)


# ------------------------------------------------------------------ layer norm
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5, scale=None,
               zero_point=None, *, numerics=None) -> QTensor:
    """Quantized layer normalisation over the last ``len(normalized_shape)`` dims.

    Reproduces ``torch.ops.quantized.layer_norm`` (the kernel behind
    ``torch.ao.nn.quantized.LayerNorm``) bit for bit under the torch profiles.

    Parameters
    ----------
    input : QTensor
        quint8 or qint8, per-tensor; its trailing dims equal ``normalized_shape``.
    normalized_shape : int or sequence of int
        The normalised trailing shape.
    weight, bias : array_like, optional
        float32 elementwise affine parameters of shape ``normalized_shape``.
    eps : float
        Added to the variance (>= 0).
    scale, zero_point : float, int, optional
        Output quantization parameters; ``None`` means the input's.
    numerics : str, optional
        ``fbgemm`` (default), ``onednn``, ``qnnpack`` (torch's ATen kernel, the
        same for every engine) or ``reference``.

    Returns
    -------
    QTensor
        Same shape and dtype as the input, quantized with ``scale``/``zero_point``.

    Raises
    ------
    TypeError
        Non-QTensor input, non-float affine parameters.
    ValueError
        Shape mismatch, unusable eps or output qparams, per-channel input.
    NotImplementedError
        qint32 input; the onnxruntime and tflite profiles.

    Notes
    -----
    torch (measured against torch 2.13.0): integer sums, ``m = fl(S/N)``,
    ``var = max(fma(-m, m, fl(SS/N)), 0)``,
    ``rstd = fl(xs / sqrt(double(fl(fl(var*xs)*xs)) + eps))``,
    ``y = fma(fl(fl(x - zx - (m - zx)) * rstd), gamma, beta)``, quantized with
    the vector rule (round, then add the zero point) except the scalar tail of
    each row (see ``docs/ops_norm.md``), which adds the zero point in float32
    before rounding.

    Examples
    --------
    >>> import numpy as np, qops
    >>> x = qops.quantize_per_tensor(np.float32([[0.0, 1.0, 2.0, 3.0]]), 0.1, 0, qops.quint8)
    >>> qops.functional.layer_norm(x, [4], scale=0.05, zero_point=128).int_repr()
    array([[101, 119, 137, 155]], dtype=uint8)
    """
    op = "layer_norm"
    profile = _profile(numerics, op)
    x = _check_input(input, op, "(..., *normalized_shape)")
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (int(normalized_shape),)
    try:
        ns = tuple(int(s) for s in normalized_shape)
    except TypeError:
        raise TypeError(f"{op}: normalized_shape must be an int or a sequence of ints, "
                        f"got {normalized_shape!r}") from None
    shape = tuple(x._data.shape)
    if not ns or len(ns) > len(shape) or shape[len(shape) - len(ns):] != ns:
        raise ValueError(
            f"{op}: the input's trailing dims must equal normalized_shape={list(ns)}, "
            f"got input shape {shape}"
        )
    g = _affine(weight, ns, "weight", op)
    b = _affine(bias, ns, "bias", op)
    e = _check_eps(eps, op)
    so, zo = _out_qparams(x, scale, zero_point)
    n = math.prod(ns)
    m = math.prod(shape) // n if n else 0
    device = _host_or_device(x)
    out = _alloc(device, math.prod(shape))
    if m and n:
        xb, sgn = _flat_bytes(x, device)
        qmin, qmax = _range(x._dtype)
        ga, ba = _gamma_beta(g, b, n)
        ga, ba = _to_device(device, ga), _to_device(device, ba)
        xs = np.float32(x._scale)
        if profile == "reference":
            _run("layer_norm_ref", device, xb, sgn, m, n, ga, ba, float(xs),
                 x._zero_point, e, float(np.float32(so)), zo, qmin, qmax, out)
        else:
            inv = np.float32(np.float32(1.0) / np.float32(so))
            _run("layer_norm", device, xb, sgn, m, n, ga, ba, xs, x._zero_point, e,
                 inv, zo, qmin, qmax, out)
    return _wrap(out, shape, x._dtype, so, zo)


# ------------------------------------------------------------------ group norm
def _group_norm(x, num_groups, weight, bias, eps, scale, zero_point, numerics, torch_threads, op):
    profile = _profile(numerics, op)
    x = _check_input(x, op, "(N, C, *)")
    shape = tuple(x._data.shape)
    if len(shape) < 3:
        raise ValueError(f"{op} expects an input of at least 3 dims (N, C, *), got shape {shape}")
    c = shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral):
        raise TypeError(f"{op}: num_groups must be an int, got {type(num_groups).__name__}")
    groups = int(num_groups)
    if groups <= 0 or c % groups:
        raise ValueError(f"{op}: num_groups={groups} must be positive and divide the "
                         f"{c} channels")
    g = _affine(weight, (c,), "weight", op)
    b = _affine(bias, (c,), "bias", op)
    e = _check_eps(eps, op)
    so, zo = _out_qparams(x, scale, zero_point)
    if torch_threads is None:
        import numba

        nthreads = numba.get_num_threads()
    else:
        if isinstance(torch_threads, bool) or not isinstance(torch_threads, numbers.Integral) \
                or torch_threads < 1:
            raise ValueError(f"{op}: torch_threads must be a positive int, got {torch_threads!r}")
        nthreads = int(torch_threads)
    bs = shape[0]
    hw = math.prod(shape[2:])
    cpg = c // groups
    total = math.prod(shape)
    device = _host_or_device(x)
    out = _alloc(device, total)
    qmin, qmax = _range(x._dtype)
    ga, ba = _gamma_beta(g, b, c)
    ga, ba = _to_device(device, ga), _to_device(device, ba)
    xs = np.float32(x._scale)
    zx = x._zero_point
    inv = np.float32(np.float32(1.0) / np.float32(so))
    channels_last = _is_channels_last(shape, _strides(x._data)) and profile != "reference"
    if total == 0:
        return _wrap(out, shape, x._dtype, so, zo)
    if channels_last:
        data = x._data
        if device == "cpu":
            # (N, H, W, C) in memory: a view of the channels-last buffer
            data = np.ascontiguousarray(np.moveaxis(data, 1, -1))
            xb, sgn = _bytes(data, x._dtype)
        else:
            xb, sgn = data.reshape(-1).view(np.uint8), int(x._dtype is qint8)
        sc = _to_device(device, np.zeros(bs * c, np.float32))
        bi = _to_device(device, np.zeros(bs * c, np.float32))
        if hw < NHWC_HW_THRESHOLD:
            _run("group_norm_nhwc_rows", device, xb, sgn, bs, groups, cpg, hw, ga, ba,
                 xs, zx, e, inv, zo, qmin, qmax, sc, bi, out)
        else:
            buf = _to_device(device, np.zeros((nthreads, bs, 2, c), np.float32))
            # AVX512-BW: 64 channels at a time
            simd = "_simd" if device == "cpu" and c >= 64 and avx512bw_available() else ""
            _run("group_norm_nhwc_sums" + simd, device, xb, sgn, bs, hw, c, nthreads, buf)
            _run("group_norm_nhwc_apply" + simd, device, xb, sgn, bs, groups, cpg, hw, buf, ga, ba,
                 xs, zx, e, inv, zo, qmin, qmax, sc, bi, out)
        if device == "cpu":
            nhwc = out.view(x._dtype.storage).reshape((bs,) + shape[2:] + (c,))
            return QTensor._per_tensor(np.moveaxis(nhwc, -1, 1), x._dtype, so, zo)
        return _wrap(out, shape, x._dtype, so, zo)
    xb, sgn = _flat_bytes(x, device)
    if profile == "reference":
        _run("group_norm_ref", device, xb, sgn, bs * groups, groups, cpg, hw, ga, ba,
             float(xs), zx, e, float(np.float32(so)), zo, qmin, qmax, out)
    else:
        name = "group_norm_nchw"
        if device == "cpu" and hw >= GN_TABLE_MIN_HW and vbmi_available():
            name = ("group_norm_nchw_vbmi_parallel" if total >= GN_TABLE_PARALLEL_MIN
                    else "group_norm_nchw_vbmi")
        _run(name, device, xb, sgn, bs * groups, groups, cpg, hw, ga, ba, xs, zx, e, inv, zo, qmin,
             qmax, out)
    return _wrap(out, shape, x._dtype, so, zo)


_GN_NOTES = """
    torch_threads : int, optional
        Only for channels-last 4-D inputs with ``H*W >= 512`` under the torch
        profiles: torch then sums in float32 per torch thread, so its result
        depends on ``torch.get_num_threads()``; pass that number (default:
        ``numba.get_num_threads()``).
    numerics : str, optional
        ``fbgemm`` (default), ``onednn``, ``qnnpack`` (one ATen kernel for every
        torch engine) or ``reference``.

    Returns
    -------
    QTensor
        Same shape and dtype as the input, quantized with ``scale``/``zero_point``
        (channels-last memory when the input was channels-last, as torch).

    Raises
    ------
    TypeError
        Non-QTensor input, non-float affine parameters.
    ValueError
        Fewer than 3 dims, groups not dividing the channels, unusable eps or
        output qparams, per-channel input.
    NotImplementedError
        qint32 input; the onnxruntime and tflite profiles.

    Notes
    -----
    torch picks its kernel by memory format: channels-last 4-D input (also a
    contiguous one with ``C == 1`` or ``H == W == 1``, which torch counts as
    channels-last) runs the NHWC kernel, everything else the NCHW one; the two
    round differently, and qops follows the same choice.
"""


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5, scale=None, zero_point=None,
               *, numerics=None, torch_threads=None) -> QTensor:
    return _group_norm(input, num_groups, weight, bias, eps, scale, zero_point, numerics,
                       torch_threads, "group_norm")


group_norm.__doc__ = (
    """Quantized group normalisation of an ``(N, C, *)`` input.

    Reproduces ``torch.ops.quantized.group_norm`` (``torch.ao.nn.quantized.GroupNorm``)
    bit for bit under the torch profiles.

    Parameters
    ----------
    input : QTensor
        quint8 or qint8, per-tensor, ``(N, C, *)`` with at least 3 dims.
    num_groups : int
        Number of groups; divides ``C``.
    weight, bias : array_like, optional
        ``C`` float32 per-channel affine parameters.
    eps : float
        Added to the variance (>= 0).
    scale, zero_point : float, int, optional
        Output quantization parameters; ``None`` means the input's.
"""
    + _GN_NOTES
    + """
    Examples
    --------
    >>> import numpy as np, qops
    >>> x = qops.quantize_per_tensor(np.arange(8, dtype=np.float32).reshape(1, 2, 4), 0.1, 0, qops.quint8)
    >>> qops.functional.group_norm(x, 1, scale=0.05, zero_point=128).int_repr()
    array([[[ 97, 106, 115, 124],
            [132, 141, 150, 159]]], dtype=uint8)
"""
)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5, scale=None, zero_point=None,
                  *, numerics=None, torch_threads=None) -> QTensor:
    op = "instance_norm"
    if running_mean is not None or running_var is not None or not use_input_stats:
        raise NotImplementedError(
            "instance_norm normalises with the input's own statistics only (torch's "
            "quantized instance_norm has no running statistics); pass running_mean=None, "
            "running_var=None, use_input_stats=True"
        )
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"{op}: momentum must be a real number, got {type(momentum).__name__}")
    if not isinstance(input, QTensor):
        _check_input(input, op, "(N, C, *)")
    shape = tuple(input._data.shape)
    if len(shape) < 3:
        raise ValueError(f"{op} expects an input of at least 3 dims (N, C, *), got shape {shape}")
    if shape[1] <= 0:
        raise ValueError(f"{op}: the input needs at least one channel, got shape {shape}")
    return _group_norm(input, shape[1], weight, bias, eps, scale, zero_point, numerics,
                       torch_threads, op)


instance_norm.__doc__ = (
    """Quantized instance normalisation: group norm with one group per channel.

    Reproduces ``torch.ops.quantized.instance_norm`` (``torch.ao.nn.quantized.InstanceNorm1d/2d/3d``),
    which torch computes as ``group_norm(input, C, ...)``.

    Parameters
    ----------
    input : QTensor
        quint8 or qint8, per-tensor, ``(N, C, *)`` with at least 3 dims.
    running_mean, running_var : None
        Not supported (torch's quantized op has none); must be None.
    weight, bias : array_like, optional
        ``C`` float32 per-channel affine parameters.
    use_input_stats : bool
        Must be True.
    momentum : float
        Accepted for signature compatibility; without running statistics it
        has no effect.
    eps : float
        Added to the variance (>= 0).
    scale, zero_point : float, int, optional
        Output quantization parameters; ``None`` means the input's.
"""
    + _GN_NOTES
)


# ------------------------------------------------------------------ batch norm
def _fused_params(weight, bias, mean, var, eps, in_scale, out_scale):
    """torch's ``compute_fused_params`` (qbatch_norm.cpp), in its float32/double mix.

    ``inv_sigma = fl(1.0 / double(sqrtf(fl(var + fl(eps)))))``,
    ``alpha = fl(double(fl(inv_sigma * w)) * (in_scale / out_scale))``,
    ``beta = fl(double(fl(b - fl(fl(mean * inv_sigma) * w))) / out_scale)``.
    """
    f32 = np.float32
    with np.errstate(all="ignore"):
        inv_sigma = (1.0 / np.sqrt((var + f32(eps)).astype(f32)).astype(np.float64)).astype(f32)
        alpha = ((inv_sigma * weight).astype(f32).astype(np.float64)
                 * (in_scale / out_scale)).astype(f32)
        t = ((mean * inv_sigma).astype(f32) * weight).astype(f32)
        beta = ((bias - t).astype(f32).astype(np.float64) / out_scale).astype(f32)
    return alpha, beta


def _batch_norm(input, weight, bias, mean, var, eps, scale, zero_point, numerics, relu, ranks, op):
    profile = _profile(numerics, op)
    x = _check_input(input, op, "(N, C, *)")
    shape = tuple(x._data.shape)
    if len(shape) not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise ValueError(f"{op} expects a {want} input (N, C, ...), got shape {shape}")
    c = shape[1]
    e = _check_eps(eps, op)
    m = _affine(mean, (c,), "running mean", op)
    v = _affine(var, (c,), "running var", op)
    if m is None or v is None:
        raise ValueError(f"{op} needs the running mean and variance ({c} values each)")
    w = _affine(weight, (c,), "weight", op)
    b = _affine(bias, (c,), "bias", op)
    w = np.ones(c, np.float32) if w is None else w
    b = np.zeros(c, np.float32) if b is None else b
    total = math.prod(shape)
    if total == 0:
        # torch returns a clone of the input (with the input's qparams)
        return x.clone()
    so, zo = _out_qparams(x, scale, zero_point)
    device = _host_or_device(x)
    bs = shape[0]
    inner = math.prod(shape[2:])
    qmin, qmax = _range(x._dtype)
    xb, sgn = _flat_bytes(x, device)
    out = _alloc(device, total)
    if profile == "reference":
        _run("batch_norm_ref", device, xb, sgn, bs, c, inner, _to_device(device, w),
             _to_device(device, b), _to_device(device, m), _to_device(device, v), e,
             float(np.float32(x._scale)), x._zero_point, float(np.float32(so)), zo, relu,
             qmin, qmax, out)
    else:
        alpha, beta = _fused_params(w, b, m, v, e, x._scale, so)
        _run("batch_norm", device, xb, sgn, bs, c, inner, _to_device(device, alpha),
             _to_device(device, beta), x._zero_point, zo, relu, qmin, qmax, out)
    return _wrap(out, shape, x._dtype, so, zo)


_BN_DOC = """Quantized batch normalisation with running statistics{relu}.

    Reproduces ``torch.ops.quantized.{torch_name}`` bit for bit under the torch
    profiles{ranks_note}.

    Parameters
    ----------
    input : QTensor
        quint8 or qint8, per-tensor, {ranks}.
    weight, bias : array_like or None
        ``C`` float32 values; ``None`` means ones / zeros (torch requires them).
    mean, var : array_like
        ``C`` float32 running mean and variance.
    eps : float
        Added to the variance (>= 0).
    scale, zero_point : float, int, optional
        Output quantization parameters; ``None`` means the input's.
    numerics : str, optional
        ``fbgemm`` (default), ``onednn``, ``qnnpack`` (torch's ATen kernel for
        every engine) or ``reference``.

    Returns
    -------
    QTensor
        Same shape and dtype as the input (contiguous; torch returns
        channels-last memory with the same values).  An empty input comes
        back unchanged with its own qparams, as in torch.

    Raises
    ------
    TypeError
        Non-QTensor input, non-float parameters.
    ValueError
        Wrong rank, parameter lengths other than ``C``, unusable eps or
        output qparams, per-channel input.
    NotImplementedError
        qint32 input; the onnxruntime and tflite profiles.

    Notes
    -----
    torch folds the statistics per channel (``compute_fused_params``) into
    ``alpha = fl(double(fl(inv_sigma * w)) * (in_scale / out_scale))`` and
    ``beta = fl(double(fl(b - fl(fl(mean * inv_sigma) * w))) / out_scale)``
    with ``inv_sigma = fl(1 / double(sqrtf(fl(var + eps))))``; each output is
    ``zp + rne(fma(alpha, x - zx, beta))``, clamped{relu_note}.
"""


def _make_bn(name, ranks, relu, ranks_text, ranks_note=""):
    def fn(input, weight, bias, mean, var, eps=1e-5, scale=None, zero_point=None, *,
           numerics=None) -> QTensor:
        return _batch_norm(input, weight, bias, mean, var, eps, scale, zero_point, numerics,
                           relu, ranks, name)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = _BN_DOC.format(
        relu=", then ReLU (fused)" if relu else "",
        torch_name=name,
        ranks=ranks_text,
        ranks_note=ranks_note,
        relu_note=" (and at the output zero point: fused ReLU)" if relu else "",
    )
    return fn


batch_norm = _make_bn("batch_norm", (2, 3, 4, 5), False, "``(N, C)``, ``(N, C, L)``, "
                      "``(N, C, H, W)`` or ``(N, C, D, H, W)``",
                      "; torch dispatches on the rank to its 1d/2d/3d kernels, all one arithmetic")
batch_norm1d = _make_bn("batch_norm1d", (2, 3), False, "``(N, C)`` or ``(N, C, L)``")
batch_norm2d = _make_bn("batch_norm2d", (4,), False, "``(N, C, H, W)``")
batch_norm3d = _make_bn("batch_norm3d", (5,), False, "``(N, C, D, H, W)``")
batch_norm_relu = _make_bn("batch_norm_relu", (2, 3, 4, 5), True, "``(N, C, *)``, 2-D to 5-D")
batch_norm1d_relu = _make_bn("batch_norm1d_relu", (2, 3), True, "``(N, C)`` or ``(N, C, L)``")
batch_norm2d_relu = _make_bn("batch_norm2d_relu", (4,), True, "``(N, C, H, W)``")
batch_norm3d_relu = _make_bn("batch_norm3d_relu", (5,), True, "``(N, C, D, H, W)``")
