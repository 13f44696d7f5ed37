"""Quantized modules: Quantize, DeQuantize, Linear, Conv1d/2d/3d and the fused ReLU forms.

Shaped like ``torch.ao.nn.quantized`` (and ``torch.ao.nn.intrinsic.quantized``):
each module holds its weight packed once for its kernel, output ``scale`` and
``zero_point`` attributes and a ``numerics`` profile (``None``: the active
one), and runs its op when called.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import _conv, _linear
from .._conv import PackedConvWeight
from .._ops import quantize_per_tensor
from .._packed import PackedLinearWeight
from .._validate import check_scale, check_zero_point
from ..dtypes import as_qdtype, qint8, quint8
from ..numerics import resolve_numerics
from ..qtensor import QTensor
from ._weights import (
    check_weight,
    float_weight_bias,
    is_torch_module,
    qtensor_from_torch,
    quantize_weight,
)

__all__ = [
    "Module",
    "Quantize",
    "DeQuantize",
    "Linear",
    "LinearReLU",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvReLU1d",
    "ConvReLU2d",
    "ConvReLU3d",
]


class Module:
    """Base class: ``module(x)`` calls ``forward(x)``."""

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError


def _check_numerics(numerics):
    if numerics is not None:
        resolve_numerics(numerics)
    return numerics


class Quantize(Module):
    """Quantize float input with fixed parameters (``torch.ao.nn.quantized.Quantize``)."""

    def __init__(self, scale, zero_point, dtype, *, numerics=None):
        self.dtype = as_qdtype(dtype)
        self.scale = check_scale(scale)
        self.zero_point = check_zero_point(zero_point, self.dtype)
        self.numerics = _check_numerics(numerics)

    def forward(self, x):
        return quantize_per_tensor(x, self.scale, self.zero_point, self.dtype, numerics=self.numerics)

    def __repr__(self):
        return f"Quantize(scale={self.scale}, zero_point={self.zero_point}, dtype={self.dtype!r})"


class DeQuantize(Module):
    """Dequantize a QTensor to float32 (``torch.ao.nn.quantized.DeQuantize``)."""

    def __init__(self, *, numerics=None):
        self.numerics = _check_numerics(numerics)

    def forward(self, q):
        if not isinstance(q, QTensor):
            raise TypeError(f"DeQuantize expects a QTensor, got {type(q).__name__}")
        return q.dequantize(numerics=self.numerics)

    def __repr__(self):
        return "DeQuantize()"


class _WeightedModule(Module):
    """Shared by Linear and Conv: the packed weight, bias and output qparams."""

    _packed = None

    def _set_output(self, scale, zero_point):
        self.scale = check_scale(scale)
        if isinstance(zero_point, (bool, np.bool_)) or not isinstance(zero_point, numbers.Integral):
            raise TypeError(f"zero_point must be an integer, got {zero_point!r}")
        self.zero_point = int(zero_point)

    def weight(self) -> QTensor:
        """The quantized weight (as given to :meth:`set_weight_bias`)."""
        return self._packed.weight

    def bias(self):
        """The bias (float32 or int32 array), or None."""
        b = self._packed.linear.bias if isinstance(self._packed, PackedConvWeight) else self._packed.bias
        return None if b is None else b.copy()

    def _qscheme_text(self):
        return f"qscheme={self.weight().qscheme()!r}"


class Linear(_WeightedModule):
    """Quantized linear layer (``torch.ao.nn.quantized.Linear``).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
        Whether the layer has a (float32) bias; initially zeros, as torch.
    numerics : str, optional
        The profile its calls use (default: the active one).

    Attributes
    ----------
    scale, zero_point : float, int
        Output quantization parameters (torch's defaults 1.0 and 0).

    Notes
    -----
    The weight starts as zeros (qint8, scale 1, zero point 0) like torch's;
    use :meth:`set_weight_bias` or :meth:`from_float`.  The weight is packed
    once, when set; each call runs :func:`qops.functional.linear` on it.
    """

    _relu = False
    _name = "QuantizedLinear"

    def __init__(self, in_features, out_features, bias=True, *, numerics=None):
        for v, name in ((in_features, "in_features"), (out_features, "out_features")):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.numerics = _check_numerics(numerics)
        self._set_output(1.0, 0)
        w = QTensor._per_tensor(np.zeros((self.out_features, self.in_features), np.int8), qint8, 1.0, 0)
        self.set_weight_bias(w, np.zeros(self.out_features, np.float32) if bias else None)

    def set_weight_bias(self, qweight, bias):
        """Set (and pack) the weight ``(out_features, in_features)`` and bias."""
        check_weight(qweight, (self.out_features, self.in_features), type(self).__name__)
        self._packed = PackedLinearWeight(qweight, bias, op=type(self).__name__)

    def forward(self, x):
        f = _linear.linear_relu if self._relu else _linear.linear
        return f(x, self._packed, None, self.scale, self.zero_point, numerics=self.numerics)

    @classmethod
    def from_float(cls, mod, bias=None, *, scale=None, zero_point=None, per_channel=True,
                   weight_dtype=qint8, numerics=None):
        """Build from float weights, or from a torch module.

        Parameters
        ----------
        mod : array_like, torch.nn.Linear or torch.ao.nn.quantized.Linear
            Float weights ``(out_features, in_features)``; a float torch module
            (its weight and bias are used); or a quantized torch module, whose
            integers, parameters, bias, scale and zero point are copied exactly.
        bias : array_like, optional
            Float bias for an array ``mod``.
        scale, zero_point : float, int
            Output parameters (required unless ``mod`` is a quantized torch module).
        per_channel : bool
            Float weights are quantized symmetrically (torch's default weight
            observers), per output channel or per tensor.
        weight_dtype : QDType
            qint8 (default) or quint8.
        """
        qweight, b, scale, zero_point = _from_float_args(mod, bias, scale, zero_point, per_channel,
                                                         weight_dtype, cls.__name__)
        n, k = qweight.shape if qweight.ndim == 2 else (None, None)
        if qweight.ndim != 2:
            raise ValueError(f"{cls.__name__}.from_float: the weight must be 2-D, got {qweight.shape}")
        m = cls(k, n, bias=False, numerics=numerics)
        m.set_weight_bias(qweight, b)
        m._set_output(scale, zero_point)
        return m

    def __repr__(self):
        return (f"{self._name}(in_features={self.in_features}, out_features={self.out_features}, "
                f"scale={self.scale}, zero_point={self.zero_point}, {self._qscheme_text()})")


class LinearReLU(Linear):
    """Linear followed by ReLU, fused (``torch.ao.nn.intrinsic.quantized.LinearReLU``)."""

    _relu = True
    _name = "QuantizedLinearReLU"


def _from_float_args(mod, bias, scale, zero_point, per_channel, weight_dtype, name):
    """``(qweight, bias, scale, zero_point)`` for ``from_float``."""
    if is_torch_module(mod):
        w = getattr(mod, "weight", None)
        if callable(w):  # a quantized torch module: weight() returns a quantized tensor
            qweight = qtensor_from_torch(mod.weight())
            tb = mod.bias()
            b = None if tb is None else tb.detach().cpu().numpy().astype(np.float32)
            return (qweight, b, mod.scale if scale is None else scale,
                    mod.zero_point if zero_point is None else zero_point)
        wf, b = float_weight_bias(mod)
    else:
        wf = np.asarray(mod, np.float32)
        b = None if bias is None else np.asarray(bias, np.float32)
    if scale is None or zero_point is None:
        raise ValueError(f"{name}.from_float needs the output scale and zero_point")
    dtype = as_qdtype(weight_dtype)
    if dtype not in (qint8, quint8):
        raise TypeError(f"{name}.from_float: weight_dtype must be qint8 or quint8, got {dtype!r}")
    return quantize_weight(wf, per_channel, dtype), b, scale, zero_point


class _ConvNd(_WeightedModule):
    _nd = 2
    _relu = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", *, numerics=None):
        name = type(self).__name__
        for v, vname in ((in_channels, "in_channels"), (out_channels, "out_channels"), (groups, "groups")):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name}: {vname} must be a positive integer, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must be divisible by groups ({groups})")
        nd = self._nd
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _conv._tuple(kernel_size, nd, "kernel_size", name, 1)
        self.stride = _conv._tuple(stride, nd, "stride", name, 1)
        self.padding = _conv._tuple(padding, nd, "padding", name, 0)
        self.dilation = _conv._tuple(dilation, nd, "dilation", name, 1)
        self.groups = int(groups)
        if padding_mode not in _conv.PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {', '.join(_conv.PADDING_MODES)}, "
                             f"got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.numerics = _check_numerics(numerics)
        self._set_output(1.0, 0)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        w = QTensor._per_tensor(np.zeros(shape, np.int8), qint8, 1.0, 0)
        self.set_weight_bias(w, np.zeros(self.out_channels, np.float32) if bias else None)

    def set_weight_bias(self, qweight, bias):
        """Set (and pack) the weight ``(out, in / groups, *kernel_size)`` and bias."""
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        check_weight(qweight, shape, type(self).__name__)
        self._packed = PackedConvWeight(qweight, bias, self.groups, self._nd, op=type(self).__name__)

    def forward(self, x):
        f = getattr(_conv, f"conv{self._nd}d" + ("_relu" if self._relu else ""))
        return f(x, self._packed, None, self.stride, self.padding, self.dilation, self.groups,
                 self.padding_mode, self.scale, self.zero_point, numerics=self.numerics)

    @classmethod
    def from_float(cls, mod, bias=None, *, scale=None, zero_point=None, stride=1, padding=0,
                   dilation=1, groups=1, padding_mode="zeros", per_channel=True,
                   weight_dtype=qint8, numerics=None):
        """Build from float weights ``(out, in / groups, *kernel)``, or from a
        (float or quantized) torch convolution module, whose geometry is used.

        See :meth:`Linear.from_float` for the parameters.
        """
        if is_torch_module(mod):
            stride, padding, dilation = mod.stride, mod.padding, mod.dilation
            groups = mod.groups
            padding_mode = getattr(mod, "padding_mode", "zeros")
        qweight, b, scale, zero_point = _from_float_args(mod, bias, scale, zero_point, per_channel,
                                                         weight_dtype, cls.__name__)
        if qweight.ndim != cls._nd + 2:
            raise ValueError(f"{cls.__name__}.from_float: the weight must be {cls._nd + 2}-D, "
                             f"got {qweight.shape}")
        o, cg = qweight.shape[:2]
        m = cls(cg * groups, o, qweight.shape[2:], stride, padding, dilation, groups, False,
                padding_mode, numerics=numerics)
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
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self._packed.linear.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        return f"Quantized{type(self).__name__}({text})"


class Conv1d(_ConvNd):
    """Quantized 1-D convolution (``torch.ao.nn.quantized.Conv1d``); see :class:`Conv2d`."""

    _nd = 1


class Conv2d(_ConvNd):
    """Quantized 2-D convolution (``torch.ao.nn.quantized.Conv2d``).

    Parameters are torch's: ``in_channels, out_channels, kernel_size,
    stride=1, padding=0, dilation=1, groups=1, bias=True,
    padding_mode="zeros"`` (qops also takes "reflect", "replicate" and
    "circular"), plus ``numerics``.  ``scale`` / ``zero_point`` attributes are
    the output's.  The weight is packed once (GEMM panels per group, or the
    depthwise table); calls run :func:`qops.functional.conv2d` on it.
    """

    _nd = 2


class Conv3d(_ConvNd):
    """Quantized 3-D convolution (``torch.ao.nn.quantized.Conv3d``); see :class:`Conv2d`."""

    _nd = 3


class ConvReLU1d(Conv1d):
    """Conv1d followed by ReLU, fused (``torch.ao.nn.intrinsic.quantized.ConvReLU1d``)."""

    _relu = True


class ConvReLU2d(Conv2d):
    """Conv2d followed by ReLU, fused (``torch.ao.nn.intrinsic.quantized.ConvReLU2d``)."""

    _relu = True


class ConvReLU3d(Conv3d):
    """Conv3d followed by ReLU, fused (``torch.ao.nn.intrinsic.quantized.ConvReLU3d``)."""

    _relu = True
