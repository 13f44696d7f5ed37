"""Modules over :mod:`qops._norm`: quantized batch, layer, group and instance norm.

Shaped like ``torch.ao.nn.quantized`` (BatchNorm2d/3d, LayerNorm, GroupNorm,
InstanceNorm1d/2d/3d) and ``torch.ao.nn.intrinsic.quantized`` (BNReLU2d/3d):
float32 affine parameters (and running statistics for batch norm), output
``scale`` and ``zero_point``, a ``numerics`` profile (``None``: the active
one); repr like torch's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import _norm
from .._validate import check_scale
from ._modules import Module, _check_numerics
from ._weights import is_torch_module

__all__ = [
    "BatchNorm2d",
    "BatchNorm3d",
    "BNReLU2d",
    "BNReLU3d",
    "LayerNorm",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
]


def _f32(values, what, cls):
    if values is None:
        return None
    if hasattr(values, "detach") and hasattr(values, "numpy"):
        values = values.detach().cpu().numpy()
    a = np.asarray(values)
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise TypeError(f"{cls}: {what} must be float numbers, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _output(scale, zero_point, cls):
    if scale is None or zero_point is None:
        raise ValueError(f"{cls}.from_float needs the output scale and zero_point "
                         "(or a quantized torch module that carries them)")
    zp = int(zero_point)
    if not -128 <= zp <= 255:
        raise ValueError(f"{cls}: zero_point={zp} lies outside every 8-bit range")
    return check_scale(scale), zp


def _source(mod, names, cls):
    """The float parameters ``names`` of ``mod`` (a torch module or a mapping),
    and the module's output qparams when it is a quantized torch module."""
    if isinstance(mod, Mapping):
        missing = [n for n in names if n not in mod]
        if missing:
            raise ValueError(f"{cls}.from_float: the mapping lacks {', '.join(missing)}")
        return {n: mod[n] for n in names}, None, None
    if not is_torch_module(mod):
        raise TypeError(f"{cls}.from_float expects a torch module or a mapping of float "
                        f"parameters ({', '.join(names)}), got {type(mod).__name__}")
    if hasattr(mod, "__getitem__") and type(mod).__name__.startswith("BNReLU"):
        try:
            mod = mod[0]  # a float fused BNReLU module: its BatchNorm
        except (TypeError, IndexError):
            pass
    vals = {n: getattr(mod, n, None) for n in names}
    scale = getattr(mod, "scale", None)
    zp = getattr(mod, "zero_point", None)
    if scale is not None and zp is not None:
        return vals, float(scale), int(zp)
    return vals, None, None


# ------------------------------------------------------------------ batch norm
class _BatchNorm(Module):
    _fn = None
    _relu = False

    def __init__(self, num_features, eps=1e-5, momentum=0.1, *, numerics=None):
        self.num_features = int(num_features)
        if self.num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be positive, got {num_features}")
        self.eps = float(eps)
        self.momentum = momentum
        c = self.num_features
        self.weight = np.ones(c, np.float32)
        self.bias = np.zeros(c, np.float32)
        self.running_mean = np.zeros(c, np.float32)
        self.running_var = np.ones(c, np.float32)
        self.scale = 1.0
        self.zero_point = 0
        self.numerics = _check_numerics(numerics)

    def forward(self, x):
        return type(self)._fn(x, self.weight, self.bias, self.running_mean, self.running_var,
                              self.eps, self.scale, self.zero_point, numerics=self.numerics)

    @classmethod
    def from_float(cls, mod, *, scale=None, zero_point=None, eps=None, numerics=None):
        """Build from float parameters, or from a torch module.

        Parameters
        ----------
        mod : torch module or mapping
            A torch ``BatchNorm2d``/``BatchNorm3d`` (float, fused ``BNReLU`` or
            quantized) or a mapping with ``weight``, ``bias``, ``running_mean``,
            ``running_var`` (float arrays) and optionally ``eps``.
        scale, zero_point : float, int
            Output parameters (taken from a quantized torch module if omitted).
        eps : float, optional
            Overrides the module's (or mapping's) eps.
        numerics : str, optional
            Numerics profile of the new module.
        """
        names = ("weight", "bias", "running_mean", "running_var")
        vals, s, z = _source(mod, names, cls.__name__)
        scale = s if scale is None else scale
        zero_point = z if zero_point is None else zero_point
        scale, zero_point = _output(scale, zero_point, cls.__name__)
        rm = _f32(vals["running_mean"], "running_mean", cls.__name__)
        if rm is None:
            raise ValueError(f"{cls.__name__}.from_float: the module has no running statistics")
        if eps is None:
            eps = mod["eps"] if isinstance(mod, Mapping) and "eps" in mod else getattr(mod, "eps", 1e-5)
        m = cls(rm.size, eps, numerics=numerics)
        if vals["weight"] is not None:
            m.weight = _f32(vals["weight"], "weight", cls.__name__).reshape(-1)
        if vals["bias"] is not None:
            m.bias = _f32(vals["bias"], "bias", cls.__name__).reshape(-1)
        m.running_mean = rm.reshape(-1)
        m.running_var = _f32(vals["running_var"], "running_var", cls.__name__).reshape(-1)
        m.scale, m.zero_point = scale, zero_point
        return m

    def _get_name(self):
        return "Quantized" + type(self).__name__

    def __repr__(self):
        return (f"{self._get_name()}({self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                "affine=True, bias=True, track_running_stats=True)")


class BatchNorm2d(_BatchNorm):
    """Quantized BatchNorm2d (``torch.ao.nn.quantized.BatchNorm2d``); runs
    :func:`qops.functional.batch_norm2d`."""

    _fn = staticmethod(_norm.batch_norm2d)


class BatchNorm3d(_BatchNorm):
    """Quantized BatchNorm3d (``torch.ao.nn.quantized.BatchNorm3d``); runs
    :func:`qops.functional.batch_norm3d`."""

    _fn = staticmethod(_norm.batch_norm3d)


class BNReLU2d(_BatchNorm):
    """BatchNorm2d followed by ReLU, fused (``torch.ao.nn.intrinsic.quantized.BNReLU2d``)."""

    _fn = staticmethod(_norm.batch_norm2d_relu)


class BNReLU3d(_BatchNorm):
    """BatchNorm3d followed by ReLU, fused (``torch.ao.nn.intrinsic.quantized.BNReLU3d``)."""

    _fn = staticmethod(_norm.batch_norm3d_relu)


# ------------------------------------------------------------------ layer norm
class LayerNorm(Module):
    """Quantized LayerNorm (``torch.ao.nn.quantized.LayerNorm``); runs
    :func:`qops.functional.layer_norm`.

    Parameters
    ----------
    normalized_shape : int or sequence of int
    weight, bias : array_like or None
        float32 elementwise affine parameters of ``normalized_shape``.
    scale, zero_point : float, int
        Output quantization parameters.
    eps : float
    elementwise_affine : bool
        Recorded for the repr, as in torch (``weight``/``bias`` decide).
    numerics : str, optional
    """

    def __init__(self, normalized_shape, weight, bias, scale, zero_point, eps=1e-5,
                 elementwise_affine=True, *, numerics=None):
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.weight = _f32(weight, "weight", "LayerNorm")
        self.bias = _f32(bias, "bias", "LayerNorm")
        self.scale = check_scale(scale)
        self.zero_point = int(zero_point)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.numerics = _check_numerics(numerics)

    def forward(self, x):
        return _norm.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps,
                                self.scale, self.zero_point, numerics=self.numerics)

    @classmethod
    def from_float(cls, mod, *, scale=None, zero_point=None, numerics=None):
        """From a torch ``LayerNorm`` (float or quantized) or a mapping with
        ``normalized_shape``, ``weight``, ``bias`` and optionally ``eps``."""
        vals, s, z = _source(mod, ("normalized_shape", "weight", "bias"), cls.__name__)
        scale = s if scale is None else scale
        zero_point = z if zero_point is None else zero_point
        scale, zero_point = _output(scale, zero_point, cls.__name__)
        eps = mod.get("eps", 1e-5) if isinstance(mod, Mapping) else mod.eps
        affine = vals["weight"] is not None
        return cls(vals["normalized_shape"], vals["weight"], vals["bias"], scale, zero_point,
                   eps, affine, numerics=numerics)

    def __repr__(self):
        return (f"QuantizedLayerNorm({self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None})")


# ------------------------------------------------------------------ group norm
class GroupNorm(Module):
    """Quantized GroupNorm (``torch.ao.nn.quantized.GroupNorm``); runs
    :func:`qops.functional.group_norm`.

    Parameters
    ----------
    num_groups, num_channels : int
    weight, bias : array_like or None
        ``num_channels`` float32 values.
    scale, zero_point : float, int
        Output quantization parameters.
    eps : float
    affine : bool
        Recorded for the repr, as in torch (``weight``/``bias`` decide).
    numerics : str, optional
    """

    def __init__(self, num_groups, num_channels, weight, bias, scale, zero_point, eps=1e-5,
                 affine=True, *, numerics=None):
        self.num_groups = int(num_groups)
        self.num_channels = int(num_channels)
        if self.num_groups <= 0 or self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups} must be positive and divide "
                             f"num_channels={num_channels}")
        self.weight = _f32(weight, "weight", "GroupNorm")
        self.bias = _f32(bias, "bias", "GroupNorm")
        self.scale = check_scale(scale)
        self.zero_point = int(zero_point)
        self.eps = float(eps)
        self.affine = bool(affine)
        self.numerics = _check_numerics(numerics)

    def forward(self, x):
        return _norm.group_norm(x, self.num_groups, self.weight, self.bias, self.eps, self.scale,
                                self.zero_point, numerics=self.numerics)

    @classmethod
    def from_float(cls, mod, *, scale=None, zero_point=None, numerics=None):
        """From a torch ``GroupNorm`` (float or quantized) or a mapping with
        ``num_groups``, ``num_channels``, ``weight``, ``bias`` and optionally ``eps``."""
        vals, s, z = _source(mod, ("num_groups", "num_channels", "weight", "bias"), cls.__name__)
        scale = s if scale is None else scale
        zero_point = z if zero_point is None else zero_point
        scale, zero_point = _output(scale, zero_point, cls.__name__)
        eps = mod.get("eps", 1e-5) if isinstance(mod, Mapping) else mod.eps
        return cls(vals["num_groups"], vals["num_channels"], vals["weight"], vals["bias"], scale,
                   zero_point, eps, vals["weight"] is not None, numerics=numerics)

    def __repr__(self):
        return (f"QuantizedGroupNorm({self.num_groups}, {self.num_channels}, eps={self.eps}, "
                f"affine={self.affine}, bias={self.bias is not None})")


# ------------------------------------------------------------------ instance norm
class _InstanceNorm(Module):
    _rank = 3

    def __init__(self, num_features, weight, bias, scale, zero_point, eps=1e-5, momentum=0.1,
                 affine=False, track_running_stats=False, *, numerics=None):
        if track_running_stats:
            raise NotImplementedError(
                f"{type(self).__name__}: track_running_stats=True is not supported (torch's "
                "quantized instance norm uses the input's statistics only)")
        self.num_features = int(num_features)
        self.weight = _f32(weight, "weight", type(self).__name__)
        self.bias = _f32(bias, "bias", type(self).__name__)
        self.scale = check_scale(scale)
        self.zero_point = int(zero_point)
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = False
        self.numerics = _check_numerics(numerics)

    def forward(self, x):
        if hasattr(x, "ndim") and x.ndim != self._rank:
            raise ValueError(f"{type(self).__name__} expects a {self._rank}-D input, got "
                             f"{x.ndim}-D")
        return _norm.instance_norm(x, None, None, self.weight, self.bias, True, self.momentum,
                                   self.eps, self.scale, self.zero_point, numerics=self.numerics)

    @classmethod
    def from_float(cls, mod, *, scale=None, zero_point=None, numerics=None):
        """From a torch ``InstanceNorm{1,2,3}d`` (float or quantized) or a mapping
        with ``num_features``, ``weight``, ``bias`` and optionally ``eps``."""
        vals, s, z = _source(mod, ("num_features", "weight", "bias"), cls.__name__)
        scale = s if scale is None else scale
        zero_point = z if zero_point is None else zero_point
        scale, zero_point = _output(scale, zero_point, cls.__name__)
        eps = mod.get("eps", 1e-5) if isinstance(mod, Mapping) else mod.eps
        return cls(vals["num_features"], vals["weight"], vals["bias"], scale, zero_point, eps,
                   affine=vals["weight"] is not None, numerics=numerics)

    def __repr__(self):
        return (f"Quantized{type(self).__name__}({self.num_features}, eps={self.eps}, "
                f"momentum={self.momentum}, affine={self.affine}, bias={self.bias is not None}, "
                "track_running_stats=False)")


class InstanceNorm1d(_InstanceNorm):
    """Quantized InstanceNorm1d (``torch.ao.nn.quantized.InstanceNorm1d``), ``(N, C, L)``."""

    _rank = 3


class InstanceNorm2d(_InstanceNorm):
    """Quantized InstanceNorm2d (``torch.ao.nn.quantized.InstanceNorm2d``), ``(N, C, H, W)``."""

    _rank = 4


class InstanceNorm3d(_InstanceNorm):
    """Quantized InstanceNorm3d (``torch.ao.nn.quantized.InstanceNorm3d``), ``(N, C, D, H, W)``."""

    _rank = 5
