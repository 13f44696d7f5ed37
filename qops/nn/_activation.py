"""Activation modules over :mod:`qops._activation`, shaped like ``torch.ao.nn.quantized``'s:
ReLU6, Hardswish, ELU, LeakyReLU, Sigmoid, PReLU and Dropout (the identity)."""

from __future__ import annotations

import numbers

import numpy as np

from .. import _activation as A
from .._validate import check_scale
from ..dtypes import quint8
from ..numerics import resolve_numerics
from ..qtensor import QTensor
from ._modules import Module
from ._weights import is_torch_module, qtensor_from_torch

__all__ = ["ReLU6", "Hardswish", "ELU", "LeakyReLU", "Sigmoid", "PReLU", "Dropout"]


def _numerics(numerics):
    if numerics is not None:
        resolve_numerics(numerics)
    return numerics


def _zp(zero_point):
    if isinstance(zero_point, (bool, np.bool_)) or not isinstance(zero_point, numbers.Integral):
        raise TypeError(f"zero_point must be an integer, got {zero_point!r}")
    return int(zero_point)


def _observed_qparams(mod, name):
    """``(scale, zero_point)`` from a prepared torch module's activation observer."""
    post = getattr(mod, "activation_post_process", None)
    if post is None:
        raise ValueError(
            f"{name}.from_float needs a prepared torch module (with activation_post_process) "
            "or explicit scale and zero_point"
        )
    s, z = post.calculate_qparams()
    return float(s), int(z)


class ReLU6(Module):
    """``torch.ao.nn.quantized.ReLU6``: :func:`qops.functional.relu6`."""

    def __init__(self, inplace=False, *, numerics=None):
        self.inplace = bool(inplace)
        self.numerics = _numerics(numerics)

    def forward(self, input):
        return A.relu6(input, numerics=self.numerics)

    @classmethod
    def from_float(cls, mod=None, *, numerics=None):
        return cls(getattr(mod, "inplace", False), numerics=numerics)

    def __repr__(self):
        return f"QuantizedReLU6(inplace={self.inplace})"


class _OutQParams(Module):
    _fn = None
    _torch_name = ""

    def __init__(self, scale, zero_point, *, numerics=None):
        self.scale = check_scale(scale)
        self.zero_point = _zp(zero_point)
        self.numerics = _numerics(numerics)

    @classmethod
    def from_float(cls, mod, scale=None, zero_point=None, *, numerics=None):
        """From a prepared torch module (its observer's qparams) or explicit qparams."""
        if scale is None or zero_point is None:
            scale, zero_point = _observed_qparams(mod, cls.__name__)
        return cls._from(mod, scale, zero_point, numerics)

    @classmethod
    def _from(cls, mod, scale, zero_point, numerics):
        return cls(scale, zero_point, numerics=numerics)


class Hardswish(_OutQParams):
    """``torch.ao.nn.quantized.Hardswish(scale, zero_point)``.

    As torch's module, the scale is held as a float32 number.
    """

    def __init__(self, scale, zero_point, *, numerics=None):
        super().__init__(float(np.float32(check_scale(scale))), zero_point, numerics=numerics)

    def forward(self, input):
        return A.hardswish(input, self.scale, self.zero_point, numerics=self.numerics)

    def __repr__(self):
        return "QuantizedHardswish()"


class ELU(_OutQParams):
    """``torch.ao.nn.quantized.ELU(scale, zero_point, alpha=1.0)``."""

    def __init__(self, scale, zero_point, alpha=1.0, *, numerics=None):
        super().__init__(scale, zero_point, numerics=numerics)
        self.alpha = float(alpha)

    def forward(self, input):
        return A.elu(input, self.scale, self.zero_point, self.alpha, numerics=self.numerics)

    @classmethod
    def _from(cls, mod, scale, zero_point, numerics):
        return cls(scale, zero_point, getattr(mod, "alpha", 1.0), numerics=numerics)

    def __repr__(self):
        return f"QuantizedELU(alpha={self.alpha})"


class LeakyReLU(_OutQParams):
    """``torch.ao.nn.quantized.LeakyReLU(scale, zero_point, negative_slope=0.01)``.

    As torch's module, the scale is held as a float32 number.
    """

    def __init__(self, scale, zero_point, negative_slope=0.01, inplace=False, *, numerics=None):
        super().__init__(float(np.float32(check_scale(scale))), zero_point, numerics=numerics)
        self.negative_slope = float(negative_slope)
        self.inplace = bool(inplace)

    def forward(self, input):
        return A.leaky_relu(input, self.negative_slope, self.scale, self.zero_point,
                            numerics=self.numerics)

    @classmethod
    def _from(cls, mod, scale, zero_point, numerics):
        return cls(scale, zero_point, getattr(mod, "negative_slope", 0.01), numerics=numerics)

    def __repr__(self):
        return f"QuantizedLeakyReLU(negative_slope={self.negative_slope})"


class Sigmoid(_OutQParams):
    """``torch.ao.nn.quantized.Sigmoid(output_scale, output_zero_point)``: sigmoid
    into the given qparams (``torch.ops.quantized.sigmoid``)."""

    def __init__(self, output_scale, output_zero_point, *, numerics=None):
        super().__init__(output_scale, output_zero_point, numerics=numerics)
        self.output_scale, self.output_zero_point = self.scale, self.zero_point

    def forward(self, input):
        x = A._check_input(input, "Sigmoid")
        p = A._profile(self.numerics, "sigmoid")
        so, zo = A._out_qparams(x, self.scale, self.zero_point, "Sigmoid")
        if p == "qnnpack" and x.dtype is quint8 and (so, zo) != (0.00390625, 0):
            raise NotImplementedError(
                "Sigmoid under numerics 'qnnpack' takes only output scale 1/256 and zero point 0 "
                "for quint8 (torch 2.13's QNNPACK sigmoid refuses others); use numerics='fbgemm'"
            )
        return A._sigmoid(x, so, zo, p)

    def __repr__(self):
        return "QuantizedSigmoid()"


class PReLU(Module):
    """``torch.ao.nn.quantized.PReLU(output_scale, output_zero_point, num_parameters=1)``.

    The weight is a per-tensor quint8 QTensor (torch quantizes it with scale 1,
    zero point 0 until :meth:`set_weight`); for a qint8 input set a qint8 weight.
    """

    def __init__(self, output_scale, output_zero_point, num_parameters=1, *, numerics=None):
        self.scale = check_scale(output_scale)
        self.zero_point = _zp(output_zero_point)
        self.num_parameters = int(num_parameters)
        if self.num_parameters < 1:
            raise ValueError(f"num_parameters must be >= 1, got {num_parameters}")
        self.numerics = _numerics(numerics)
        from .._ops import quantize_per_tensor
        from ..dtypes import quint8

        w = np.random.default_rng(0).standard_normal(self.num_parameters).astype(np.float32)
        self.weight = quantize_per_tensor(w, 1.0, 0, quint8)

    def set_weight(self, w):
        if not isinstance(w, QTensor):
            raise TypeError(f"PReLU.set_weight expects a QTensor, got {type(w).__name__}")
        self.weight = w

    def forward(self, input):
        return A.prelu(input, self.weight, self.scale, self.zero_point, numerics=self.numerics)

    @classmethod
    def from_float(cls, mod, scale=None, zero_point=None, *, numerics=None):
        """From a torch ``PReLU`` (prepared: observer qparams; weight observed with its
        qconfig's weight observer, quantized to quint8 as torch does)."""
        if not is_torch_module(mod):
            raise TypeError("PReLU.from_float expects a torch.nn.PReLU module")
        import torch

        if scale is None or zero_point is None:
            scale, zero_point = _observed_qparams(mod, "PReLU")
        q = cls(scale, zero_point, mod.num_parameters, numerics=numerics)
        wf = mod.weight.detach().float()
        obs = mod.qconfig.weight() if getattr(mod, "qconfig", None) is not None else None
        if obs is None:
            raise ValueError("PReLU.from_float needs the module's qconfig (a weight observer)")
        obs(wf)
        ws, wz = obs.calculate_qparams()
        q.set_weight(qtensor_from_torch(torch.quantize_per_tensor(wf, float(ws), int(wz), torch.quint8)))
        return q

    def __repr__(self):
        return f"QuantizedPReLU(num_parameters={self.num_parameters})"


class Dropout(Module):
    """``torch.ao.nn.quantized.Dropout``: the identity at inference."""

    def __init__(self, p=0.5, inplace=False):
        self.p = float(p)
        self.inplace = bool(inplace)

    def forward(self, input):
        return input

    @classmethod
    def from_float(cls, mod=None, *, numerics=None):
        return cls(getattr(mod, "p", 0.5), getattr(mod, "inplace", False))

    def __repr__(self):
        return f"QuantizedDropout(p={self.p}, inplace={self.inplace})"
