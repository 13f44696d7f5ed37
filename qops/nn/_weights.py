"""Turning float weights (NumPy arrays or torch modules) into qint8 QTensors."""

from __future__ import annotations

import numpy as np

from .._ops import make_per_channel_qtensor, make_per_tensor_qtensor, quantize_per_channel, quantize_per_tensor
from ..dtypes import qint8, quint8
from ..qtensor import QTensor

_EPS = float(np.finfo(np.float32).eps)


def symmetric_qparams(amax, dtype=qint8):
    """torch's symmetric MinMaxObserver formula: ``scale = max(amax / ((qmax - qmin) / 2), eps)``
    (float32), zero point 0 for qint8, 128 for quint8."""
    amax = np.asarray(amax, np.float32)
    scale = np.maximum(amax / np.float32((dtype.qmax - dtype.qmin) / 2), np.float32(_EPS)).astype(np.float32)
    zp = 0 if dtype is qint8 else 128
    return scale, zp


def quantize_weight(w, per_channel=True, dtype=qint8):
    """Quantize float weights ``(out, ...)`` symmetrically, per output channel
    (axis 0) or per tensor, as torch's default weight observers do."""
    w = np.asarray(w, np.float32)
    if w.ndim < 2:
        raise ValueError(f"weights need at least 2 dimensions (out, in, ...), got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("the float weight holds NaN or infinity")
    flat = np.abs(w.reshape(w.shape[0], -1))
    if per_channel:
        scale, zp = symmetric_qparams(flat.max(axis=1) if flat.size else np.zeros(w.shape[0]), dtype)
        return quantize_per_channel(w, scale.astype(np.float64), np.full(w.shape[0], zp), 0, dtype,
                                    numerics="fbgemm")
    scale, zp = symmetric_qparams(flat.max() if flat.size else 0.0, dtype)
    return quantize_per_tensor(w, float(scale), zp, dtype, numerics="fbgemm")


def is_torch_module(obj) -> bool:
    return type(obj).__module__.startswith("torch.")


def qtensor_from_torch(t):
    """A torch quantized tensor as a QTensor (integers and parameters copied exactly)."""
    import torch

    ints = t.int_repr().detach().cpu().numpy()
    dtype = {torch.qint8: qint8, torch.quint8: quint8}.get(t.dtype)
    if dtype is None:
        raise TypeError(f"cannot convert a torch tensor of dtype {t.dtype} to a qint8/quint8 QTensor")
    if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        return make_per_channel_qtensor(
            ints, t.q_per_channel_scales().numpy(), t.q_per_channel_zero_points().numpy(),
            t.q_per_channel_axis(), dtype,
        )
    return make_per_tensor_qtensor(ints, t.q_scale(), t.q_zero_point(), dtype)


def float_weight_bias(mod):
    """``(weight, bias)`` float32 arrays from a float torch module (or anything
    with ``weight`` / ``bias`` tensors)."""
    w = mod.weight.detach().cpu().numpy().astype(np.float32)
    b = getattr(mod, "bias", None)
    b = None if b is None else b.detach().cpu().numpy().astype(np.float32)
    return w, b


def check_weight(w, shape, name):
    if not isinstance(w, QTensor):
        raise TypeError(f"{name}: the weight must be a QTensor, got {type(w).__name__}")
    if tuple(w.shape) != tuple(shape):
        raise ValueError(f"{name}: the weight must have shape {tuple(shape)}, got {w.shape}")
