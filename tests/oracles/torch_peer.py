"""torch 2.13 as an oracle: thin wrappers that take and return NumPy arrays.

Each function calls the torch operation of the same name and hands back what
a test compares (integers from ``int_repr()``, float32 results, quantization
parameters), so the tests read as ``qops(...) == torch_peer(...)``.  torch is
a test dependency only; import this module after ``pytest.importorskip``.

All functions run with the engine the caller selected
(``torch.backends.quantized.engine``); torch's quantize, dequantize and fake
quantize do not depend on it (measured against torch 2.13.0).
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch

__all__ = [
    "quiet",
    "engine",
    "torch_dtype",
    "QResult",
    "result",
    "quantize_per_tensor",
    "quantize_per_channel",
    "make_per_tensor",
    "make_per_channel",
    "dequantize",
    "requantize",
    "quantize_per_tensor_dynamic",
    "fake_quantize_per_tensor_affine",
    "fake_quantize_per_channel_affine",
]

#: torch 2.13 warns that its quantized dtypes are deprecated, on every call.
DEPRECATION_MESSAGE = r".*(deprecated|will be removed)"


@contextlib.contextmanager
def quiet():
    """Silence torch's deprecation warnings for quantized dtypes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DEPRECATION_MESSAGE, category=UserWarning)
        warnings.filterwarnings("ignore", message=DEPRECATION_MESSAGE, category=DeprecationWarning)
        yield


@contextlib.contextmanager
def engine(name):
    """Run the block with ``torch.backends.quantized.engine = name``."""
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = old


def torch_dtype(qdtype):
    """``torch.quint8`` for ``qops.quint8`` and so on (matched by name)."""
    return getattr(torch, qdtype.name)


class QResult:
    """What a test compares of a torch quantized tensor, as NumPy values.

    Attributes
    ----------
    int_repr : ndarray
        ``int_repr()`` (packed bytes for quint4x2 / quint2x4).
    dequantized : ndarray of float32
        ``dequantize()``.
    qscheme : str
        e.g. ``"per_channel_affine_float_qparams"``.
    scale, zero_point :
        Per-tensor parameters (``None`` for per-channel tensors).
    scales, zero_points : ndarray
        ``q_per_channel_scales()`` / ``q_per_channel_zero_points()`` with
        torch's dtypes (``None`` for per-tensor tensors).
    axis : int or None
    tensor : torch.Tensor
        The quantized tensor itself (for further torch calls).
    """

    def __init__(self, tq):
        self.tensor = tq
        self.int_repr = tq.int_repr().numpy()
        self.dequantized = tq.dequantize().numpy()
        self.qscheme = str(tq.qscheme()).rsplit(".", 1)[-1]
        if self.qscheme.startswith("per_channel"):
            self.scale = self.zero_point = None
            self.scales = tq.q_per_channel_scales().numpy()
            self.zero_points = tq.q_per_channel_zero_points().numpy()
            self.axis = int(tq.q_per_channel_axis())
        else:
            self.scale = tq.q_scale()
            self.zero_point = tq.q_zero_point()
            self.scales = self.zero_points = self.axis = None


def result(tq) -> QResult:
    with quiet():
        return QResult(tq)


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def quantize_per_tensor(x, scale, zero_point, qdtype) -> QResult:
    """``torch.quantize_per_tensor`` of a float32 array."""
    with quiet():
        return QResult(torch.quantize_per_tensor(_t(x), float(scale), int(zero_point), torch_dtype(qdtype)))


def quantize_per_channel(x, scales, zero_points, axis, qdtype) -> QResult:
    """``torch.quantize_per_channel``; float ``zero_points`` give float qparams."""
    with quiet():
        tq = torch.quantize_per_channel(
            _t(x), _t(np.asarray(scales, np.float64)), _t(zero_points), int(axis), torch_dtype(qdtype)
        )
        return QResult(tq)


def make_per_tensor(int_repr, scale, zero_point):
    """``torch._make_per_tensor_quantized_tensor`` (the dtype follows the integers)."""
    with quiet():
        return torch._make_per_tensor_quantized_tensor(_t(int_repr), float(scale), int(zero_point))


def make_per_channel(int_repr, scales, zero_points, axis):
    """``torch._make_per_channel_quantized_tensor`` (float64 scales, int64 zero points)."""
    with quiet():
        return torch._make_per_channel_quantized_tensor(
            _t(int_repr), _t(np.asarray(scales, np.float64)), _t(np.asarray(zero_points, np.int64)), int(axis)
        )


def dequantize(tq) -> np.ndarray:
    """``torch.dequantize`` as a float32 array."""
    with quiet():
        return torch.dequantize(tq).numpy()


def requantize(tq, scale, zero_point, qdtype) -> np.ndarray:
    """torch's only route to new parameters: quantize the dequantized values."""
    with quiet():
        out = torch.quantize_per_tensor(torch.dequantize(tq), float(scale), int(zero_point), torch_dtype(qdtype))
        return out.int_repr().numpy()


def quantize_per_tensor_dynamic(x, qdtype, reduce_range) -> QResult:
    """``torch.quantize_per_tensor_dynamic``: parameters chosen from the data."""
    with quiet():
        return QResult(torch.quantize_per_tensor_dynamic(_t(x), torch_dtype(qdtype), bool(reduce_range)))


def _with_grad(fn, x):
    """Forward output and the straight-through mask (``d sum(y) / dx != 0``)."""
    xt = _t(x).clone().requires_grad_(True)
    with quiet():
        y = fn(xt)
        y.sum().backward()
    return y.detach().numpy(), xt.grad.numpy() != 0


def fake_quantize_per_tensor_affine(x, scale, zero_point, quant_min, quant_max):
    """``torch.fake_quantize_per_tensor_affine``: ``(y, mask)``."""
    return _with_grad(
        lambda t: torch.fake_quantize_per_tensor_affine(t, float(scale), int(zero_point), quant_min, quant_max), x
    )


def fake_quantize_per_channel_affine(x, scales, zero_points, axis, quant_min, quant_max):
    """``torch.fake_quantize_per_channel_affine`` (float32 scales, int32 zero points): ``(y, mask)``."""
    s = _t(np.asarray(scales, np.float32))
    z = _t(np.asarray(zero_points, np.int32))
    return _with_grad(
        lambda t: torch.fake_quantize_per_channel_affine(t, s, z, int(axis), quant_min, quant_max), x
    )


# ------------------------------------------------------------------ linear
def linear(x, sx, zx, w, sw, zw, bias, so, zo, *, relu=False, axis=None):
    """``torch.ops.quantized.linear`` (or ``linear_relu``) with a prepacked weight.

    Runs under the engine the caller selected (:func:`engine`).

    Parameters
    ----------
    x : ndarray of uint8, ``(..., K)``
        Activation integers (quint8 with ``sx``, ``zx``).
    w : ndarray of int8, ``(N, K)``
        Weight integers (qint8): per-tensor with scalar ``sw``/``zw``
        (``axis=None``), or per-channel along axis 0 with arrays.
    bias : ndarray of float32 or None
    so, zo : output scale and zero point.

    Returns
    -------
    ndarray of uint8, ``(..., N)``
    """
    with quiet():
        xq = torch._make_per_tensor_quantized_tensor(_t(x), float(sx), int(zx))
        if axis is None:
            wq = torch._make_per_tensor_quantized_tensor(_t(w), float(sw), int(zw))
        else:
            wq = make_per_channel(w, sw, zw, axis)
        b = None if bias is None else _t(np.asarray(bias, np.float32))
        packed = torch.ops.quantized.linear_prepack(wq, b)
        op = torch.ops.quantized.linear_relu if relu else torch.ops.quantized.linear
        return op(xq, packed, float(so), int(zo)).int_repr().numpy()
