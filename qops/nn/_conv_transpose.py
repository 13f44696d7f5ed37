"""Modules over :mod:`qops._conv_transpose`: ConvTranspose1d/2d/3d.

Shaped like ``torch.ao.nn.quantized.ConvTranspose{1,2,3}d``: the weight
``(in_channels, out_channels / groups, *kernel_size)`` is packed once
(:class:`qops._conv_transpose.PackedConvTransposeWeight`), ``scale`` /
``zero_point`` are the output's, ``numerics`` the profile (``None``: the
active one).
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import _conv_transpose
from .._conv import _tuple
from .._conv_transpose import PackedConvTransposeWeight
from .._ops import quantize_per_channel, quantize_per_tensor
from ..dtypes import as_qdtype, qint8, quint8
from ..qtensor import QTensor
from ._modules import _check_numerics, _WeightedModule
from ._weights import check_weight, float_weight_bias, is_torch_module, qtensor_from_torch, symmetric_qparams

__all__ = ["ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]


def _quantize_transposed_weight(w, per_channel, dtype):
    """Symmetric quantization as torch's default weight observers: per tensor,
    or per output channel, i.e. along axis 1 of ``(C_in, C_out/groups, *k)``."""
    w = np.asarray(w, np.float32)
    if not np.all(np.isfinite(w)):
        raise ValueError("the float weight holds NaN or infinity")
    if per_channel:
        amax = np.abs(np.moveaxis(w, 1, 0).reshape(w.shape[1], -1)).max(axis=1)
        scale, zp = symmetric_qparams(amax, dtype)
        return quantize_per_channel(w, scale.astype(np.float64), np.full(w.shape[1], zp), 1, dtype,
                                    numerics="fbgemm")
    scale, zp = symmetric_qparams(np.abs(w).max(), dtype)
    return quantize_per_tensor(w, float(scale), zp, dtype, numerics="fbgemm")


class _ConvTransposeNd(_WeightedModule):
    _nd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", *, numerics=None):
        name = type(self).__name__
        for v, vname in ((in_channels, "in_channels"), (out_channels, "out_channels"), (groups, "groups")):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name}: {vname} must be a positive integer, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must be divisible by groups ({groups})")
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported for transposed "
                             f"convolution (as in torch), got {padding_mode!r}")
        nd = self._nd
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _tuple(kernel_size, nd, "kernel_size", name, 1)
        self.stride = _tuple(stride, nd, "stride", name, 1)
        self.padding = _tuple(padding, nd, "padding", name, 0)
        self.output_padding = _tuple(output_padding, nd, "output_padding", name, 0)
        self.dilation = _tuple(dilation, nd, "dilation", name, 1)
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.numerics = _check_numerics(numerics)
        self._set_output(1.0, 0)
        shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        w = QTensor._per_tensor(np.zeros(shape, np.int8), qint8, 1.0, 0)
        self.set_weight_bias(w, np.zeros(self.out_channels, np.float32) if bias else None)

    def set_weight_bias(self, qweight, bias):
        """Set (and pack) the weight ``(in, out / groups, *kernel_size)`` and bias."""
        shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        check_weight(qweight, shape, type(self).__name__)
        self._packed = PackedConvTransposeWeight(qweight, bias, self.groups, self._nd,
                                                 op=type(self).__name__)

    def bias(self):
        """The bias (float32 or int32 array), or None."""
        b = self._packed.linear.bias
        return None if b is None else b.copy()

    def forward(self, x):
        f = getattr(_conv_transpose, f"conv_transpose{self._nd}d")
        return f(x, self._packed, None, self.stride, self.padding, self.output_padding, self.groups,
                 self.dilation, self.scale, self.zero_point, numerics=self.numerics)

    @classmethod
    def from_float(cls, mod, bias=None, *, scale=None, zero_point=None, stride=1, padding=0,
                   output_padding=0, groups=1, dilation=1, per_channel=False, weight_dtype=qint8,
                   numerics=None):
        """Build from float weights ``(in, out / groups, *kernel)``, or from a
        (float or quantized) torch transposed-convolution module, whose geometry
        is used.

        Parameters
        ----------
        mod : array_like or torch module
            Float weights; a float ``torch.nn.ConvTranspose{n}d`` (its weight and
            bias); or a quantized ``torch.ao.nn.quantized.ConvTranspose{n}d``,
            whose integers, parameters, bias, scale and zero point are copied
            exactly.
        bias : array_like, optional
            Float bias for an array ``mod``.
        scale, zero_point : float, int
            Output parameters (required unless ``mod`` is a quantized torch module).
        stride, padding, output_padding, groups, dilation
            Geometry for an array ``mod``.
        per_channel : bool
            Float weights are quantized symmetrically per tensor (default: the
            only form torch's fbgemm and onednn engines take for transposed
            convolution) or per output channel (axis 1).
        weight_dtype : QDType
            qint8 (default) or quint8.
        numerics : str, optional
            The profile its calls use.
        """
        name = cls.__name__
        if is_torch_module(mod):
            stride, padding, output_padding = mod.stride, mod.padding, mod.output_padding
            groups, dilation = mod.groups, mod.dilation
            w = getattr(mod, "weight", None)
            if callable(w):  # quantized torch module
                qweight = qtensor_from_torch(mod.weight())
                tb = mod.bias()
                b = None if tb is None else tb.detach().cpu().numpy().astype(np.float32)
                scale = mod.scale if scale is None else scale
                zero_point = mod.zero_point if zero_point is None else zero_point
            else:
                wf, b = float_weight_bias(mod)
                qweight = None
        else:
            wf = np.asarray(mod, np.float32)
            b = None if bias is None else np.asarray(bias, np.float32)
            qweight = None
        if scale is None or zero_point is None:
            raise ValueError(f"{name}.from_float needs the output scale and zero_point")
        if qweight is None:
            dtype = as_qdtype(weight_dtype)
            if dtype not in (qint8, quint8):
                raise TypeError(f"{name}.from_float: weight_dtype must be qint8 or quint8, got {dtype!r}")
            if wf.ndim != cls._nd + 2:
                raise ValueError(f"{name}.from_float: the weight must be {cls._nd + 2}-D, got {wf.shape}")
            qweight = _quantize_transposed_weight(wf, per_channel, dtype)
        if qweight.ndim != cls._nd + 2:
            raise ValueError(f"{name}.from_float: the weight must be {cls._nd + 2}-D, got {qweight.shape}")
        cin, og = qweight.shape[:2]
        m = cls(cin, og * groups, qweight.shape[2:], stride, padding, output_padding, groups, False,
                dilation, numerics=numerics)
        m.set_weight_bias(qweight, b)
        m._set_output(scale, zero_point)
        return m

    def __repr__(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, scale={self.scale}, zero_point={self.zero_point}")
        if any(self.padding):
            text += f", padding={self.padding}"
        if any(d != 1 for d in self.dilation):
            text += f", dilation={self.dilation}"
        if any(self.output_padding):
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self._packed.linear.bias is None:
            text += ", bias=False"
        return f"Quantized{type(self).__name__}({text})"


class ConvTranspose1d(_ConvTransposeNd):
    """Quantized 1-D transposed convolution (``torch.ao.nn.quantized.ConvTranspose1d``);
    see :class:`ConvTranspose2d`."""

    _nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    """Quantized 2-D transposed convolution (``torch.ao.nn.quantized.ConvTranspose2d``).

    Parameters are torch's: ``in_channels, out_channels, kernel_size,
    stride=1, padding=0, output_padding=0, groups=1, bias=True, dilation=1,
    padding_mode="zeros"``, plus ``numerics``.  The weight is
    ``(in_channels, out_channels / groups, *kernel_size)``, initially zeros
    (qint8, scale 1, zero point 0) like torch's; ``scale`` / ``zero_point``
    attributes are the output's.  The weight is packed once, when set; calls
    run :func:`qops.functional.conv_transpose2d` on it.
    """

    _nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    """Quantized 3-D transposed convolution (``torch.ao.nn.quantized.ConvTranspose3d``);
    see :class:`ConvTranspose2d`."""

    _nd = 3
