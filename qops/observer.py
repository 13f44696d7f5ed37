"""Observers: calibration statistics and quantization parameters, as torch 2.13.

The classes, constructor arguments, defaults and default instances follow
``torch.ao.quantization.observer``.  Calling an observer on an array updates
its statistics and returns the array unchanged; :meth:`calculate_qparams`
returns ``(scales, zero_points)`` as NumPy arrays with torch's float32 scale
bits, zero points and dtypes (int32 for affine schemes, int64 for symmetric
ones and for the defaults, float32 for ``per_channel_affine_float_qparams``).

Inputs are NumPy arrays (or anything :func:`numpy.asarray` accepts, torch CPU
tensors included) and CUDA device arrays; the min/max and histogram updates
run in parallel Numba kernels (or CUDA kernels), the statistics stay on the
host.  See ``docs/observers.md`` for what matches torch bit for bit and where
qops refuses input torch accepts.
"""

from __future__ import annotations

import functools
import numbers
import warnings
from fractions import Fraction

import numpy as np

from . import _dispatch
from ._device import device_of, is_cuda_array
from ._ops import _empty, _flat
from ._validate import as_float_input, check_int
from .dtypes import (
    _SCHEMES,
    QDType,
    QScheme,
    as_qdtype,
    per_channel_affine,
    per_channel_affine_float_qparams,
    per_channel_symmetric,
    per_tensor_affine,
    per_tensor_symmetric,
    qint8,
    qint32,
    quint2x4,
    quint4x2,
    quint8,
)
from .numerics import resolve_numerics

__all__ = [
    "ObserverBase",
    "UniformQuantizationObserverBase",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "PerChannelMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver",
    "HistogramObserver",
    "FixedQParamsObserver",
    "PlaceholderObserver",
    "RecordingObserver",
    "NoopObserver",
    "ReuseInputObserver",
    "default_observer",
    "default_placeholder_observer",
    "default_debug_observer",
    "default_weight_observer",
    "weight_observer_range_neg_127_to_127",
    "default_histogram_observer",
    "default_per_channel_weight_observer",
    "per_channel_weight_observer_range_neg_127_to_127",
    "default_dynamic_quant_observer",
    "default_float_qparams_observer",
    "default_float_qparams_observer_4bit",
    "default_fixed_qparams_range_neg1to1_observer",
    "default_fixed_qparams_range_0to1_observer",
    "default_symmetric_fixed_qparams_observer",
    "default_affine_fixed_qparams_observer",
    "default_reuse_input_observer",
]

#: ``torch.finfo(torch.float32).eps``, the default ``eps`` of every observer.
FLOAT32_EPS = float(np.finfo(np.float32).eps)

_F32 = np.float32
_INT32_MIN = -(2**31)

_PER_TENSOR = (per_tensor_affine, per_tensor_symmetric)
_PER_CHANNEL = (per_channel_affine, per_channel_symmetric, per_channel_affine_float_qparams)
_SYMMETRIC = (per_tensor_symmetric, per_channel_symmetric)


# ----------------------------------------------------------------- factories
class _PartialWrapper:
    """A constructor with bound keyword arguments (torch's ``_PartialWrapper``).

    Calling it builds a new instance; ``callable_args`` are evaluated at each
    call, so every instance gets fresh values.
    """

    def __init__(self, p):
        self.p = p
        self.callable_args = {}

    def __call__(self, *args, **keywords):
        for name, fn in self.callable_args.items():
            if name not in keywords:
                keywords = {**keywords, name: fn()}
        return self.p(*args, **keywords)

    def __repr__(self):
        return self.p.__repr__() + self.callable_args.__repr__()

    def with_args(self, **kwargs):
        """A new factory with more bound keyword arguments."""
        return _with_args(self, **kwargs)

    def with_callable_args(self, **kwargs):
        """A new factory whose ``kwargs`` values are called at construction."""
        result = _PartialWrapper(p=self.p)
        result.callable_args = {**self.callable_args, **kwargs}
        return result


def _with_args(cls_or_self, **kwargs):
    """Class factory with bound keyword arguments (``Foo.with_args(a=1)()``)."""
    return _PartialWrapper(functools.partial(cls_or_self, **kwargs))


def _with_callable_args(cls_or_self, **kwargs):
    return _PartialWrapper(functools.partial(cls_or_self)).with_callable_args(**kwargs)


# ----------------------------------------------------------------- helpers
def _as_qscheme(qscheme) -> QScheme:
    if isinstance(qscheme, QScheme):
        return qscheme
    name = str(qscheme).removeprefix("torch.").removeprefix("qops.")
    try:
        return _SCHEMES[name]
    except KeyError:
        known = ", ".join(f"qops.{n}" for n in _SCHEMES)
        raise ValueError(f"{qscheme!r} is not a quantization scheme; use one of {known}") from None


def _as_dtype(dtype):
    """A QDType for quantized dtypes, else a NumPy float dtype (float16, float32)."""
    if isinstance(dtype, QDType):
        return dtype
    if isinstance(dtype, type) and issubclass(dtype, np.generic) or isinstance(dtype, np.dtype):
        name = np.dtype(dtype).name
    else:
        name = (dtype if isinstance(dtype, str) else str(dtype)).removeprefix("torch.").removeprefix("qops.")
    if name in ("quint8", "qint8", "qint32", "quint4x2", "quint2x4"):
        return as_qdtype(name)
    try:
        dt = np.dtype(name if name != "float" else "float32")
    except TypeError:
        raise TypeError(f"{dtype!r} is neither a quantized dtype nor a float dtype") from None
    if dt.kind != "f":
        raise TypeError(f"{dtype!r} is neither a quantized dtype nor a float dtype")
    return dt


def _check_bool(value, what):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be a bool, got {value!r}")
    return bool(value)


def _check_eps(eps):
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a real number, got {eps!r}")
    e = float(eps)
    if not (e > 0 and np.isfinite(e)):
        raise ValueError(f"eps must be a finite number > 0, got {e!r}")
    return np.array([e], dtype=np.float32)


def _check_averaging_constant(c):
    if isinstance(c, (bool, np.bool_)) or not isinstance(c, numbers.Real):
        raise TypeError(f"averaging_constant must be a real number, got {c!r}")
    c = float(c)
    if not 0.0 < c <= 1.0:
        raise ValueError(
            f"averaging_constant must lie in (0, 1], got {c!r} (1 keeps only the last batch)"
        )
    return c


_PER_TENSOR_NAMES = "per_tensor_symmetric and per_tensor_affine"
_PER_CHANNEL_NAMES = "per_channel_symmetric, per_channel_affine and per_channel_affine_float_qparams"


def _require_scheme(cls_name, qscheme, per_channel):
    """torch's NotImplementedError for a scheme of the wrong granularity."""
    qs = _as_qscheme(qscheme)
    allowed, names = (_PER_CHANNEL, _PER_CHANNEL_NAMES) if per_channel else (_PER_TENSOR, _PER_TENSOR_NAMES)
    if qs not in allowed:
        raise NotImplementedError(f"{cls_name}'s qscheme only supports {names}, got {qs!r}")


def _no_extra_kwargs(cls_name, kwargs):
    if kwargs:
        names = ", ".join(sorted(kwargs))
        raise TypeError(f"{cls_name} got unexpected keyword arguments: {names}")


def _no_factory_kwargs(cls_name, factory_kwargs):
    if factory_kwargs is not None:
        raise NotImplementedError(
            f"{cls_name}: factory_kwargs is not supported; qops keeps observer "
            "statistics on the host whatever the input's device"
        )


def _default_range(dtype, reduce_range):
    """torch's ``calculate_qmin_qmax`` without a custom range."""
    if dtype is qint8:
        return (-64, 63) if reduce_range else (-128, 127)
    if dtype is quint8:
        return (0, 127) if reduce_range else (0, 255)
    if dtype is qint32:
        return -(2**31), 2**31 - 1
    if dtype is quint2x4:  # torch refuses quint2x4; its own range
        return 0, 3
    return 0, 15  # quint4x2 (torch ignores reduce_range here)


def _custom_range(quant_min, quant_max, dtype, reduce_range):
    lo = check_int(quant_min, "quant_min")
    hi = check_int(quant_max, "quant_max")
    if not lo <= 0 <= hi:
        raise ValueError(f"the quantization range [{lo}, {hi}] must include 0")
    if lo >= hi:
        raise ValueError(f"quant_min ({lo}) must be strictly less than quant_max ({hi})")
    span = 2 ** dtype.bits
    if hi - lo + 1 > span:
        raise ValueError(
            f"the quantization range [{lo}, {hi}] holds {hi - lo + 1} values, more than "
            f"{dtype!r} can ({span})"
        )
    if reduce_range:
        lo, hi = lo // 2, hi // 2
    return lo, hi


def _input(x, op):
    """Float32 host or CUDA array of ``x`` (torch tensors and lists accepted)."""
    return as_float_input(x, op)


def _host(a):
    return a.copy_to_host() if is_cuda_array(a) else a


def _copy(a):
    """A copy of a host or CUDA array (torch's ``clone``), on the same device."""
    if is_cuda_array(a):
        from numba import cuda

        out = cuda.device_array_like(a)
        out.copy_to_device(a)
        return out
    if hasattr(a, "detach") and hasattr(a, "clone"):  # a torch tensor
        return a.detach().clone()
    return np.array(a, copy=True)


def _aminmax(x, skip_inf=False):
    """``(min, max)`` float32 of a non-empty float32 array; NaN propagates."""
    device = device_of(x)
    out = _empty(2, np.float32, device)
    _dispatch.run("minmax", device, _flat(x), bool(skip_inf), out)
    out = _host(out)
    return out[0], out[1]


def _aminmax_axis(x, axis):
    """Per-channel ``(mins, maxs)`` float32 arrays along ``axis``."""
    shape = x.shape
    nch = int(shape[axis])
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    device = device_of(x)
    mins = _empty(nch, np.float32, device)
    maxs = _empty(nch, np.float32, device)
    _dispatch.run("minmax_axis", device, _flat(x), outer, nch, inner, mins, maxs)
    return _host(mins), _host(maxs)


def _histc_counts(x, left, right, bins, exact):
    device = device_of(x)
    counts = _empty(bins, np.int64, device)
    _dispatch.run("histc", device, _flat(x), float(left), float(right), bool(exact), counts)
    return _host(counts)


def _nan_warning(name):
    warnings.warn(
        f"{name} observed NaN: its min/max statistics are NaN from now on (as in torch "
        "2.13) and calculate_qparams() will return a NaN scale; reset the observer",
        RuntimeWarning,
        stacklevel=3,
    )


def _f32_to_int32(r):
    """C's float-to-int32 conversion on x86 (NaN or out of range: INT32_MIN)."""
    r = np.asarray(r, dtype=np.float64)
    ok = np.isfinite(r) & (r >= -(2.0**31)) & (r < 2.0**31)
    out = np.full(r.shape, _INT32_MIN, dtype=np.int64)
    out[ok] = r[ok].astype(np.int64)
    return out


def _wrap32(v):
    return ((np.asarray(v, dtype=np.int64) + 2**31) % 2**32 - 2**31).astype(np.int64)


def _fraction_to_f32(fr):
    """The float32 nearest to the rational ``fr`` (ties to even), overflow to inf."""
    approx = np.float32(float(fr)) if abs(fr) < 2**129 else np.float32(np.copysign(np.inf, float(fr)))
    if not np.isfinite(approx):
        return approx
    best = approx
    for cand in (np.nextafter(approx, np.float32(-np.inf)), np.nextafter(approx, np.float32(np.inf))):
        if not np.isfinite(cand):
            continue
        d_best = abs(Fraction(float(best)) - fr)
        d_cand = abs(Fraction(float(cand)) - fr)
        if d_cand < d_best or (d_cand == d_best and int(cand.view(np.uint32)) % 2 == 0):
            best = cand
    return np.float32(best)


def _round_half_even(fr):
    k = fr.numerator // fr.denominator
    rem = fr - k
    return k + 1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and k % 2) else k


def _exact_qparams(min_val, max_val, qmin, qmax, eps, kind):
    """Reference-profile parameters of one channel, in exact rational arithmetic.

    ``kind`` is ``"affine"``, ``"symmetric"`` (scale only) or ``"float"``
    (float zero point).  Returns ``(scale float32, zero point)``; non-finite
    ranges give NaN or infinite scales as the float formula would.
    """
    mn, mx = float(min_val), float(max_val)
    if not (np.isfinite(mn) and np.isfinite(mx)):
        with np.errstate(all="ignore"):
            span = np.float64(max(mx, 0.0)) - np.float64(min(mn, 0.0))
        return np.float32(span), qmin
    e = Fraction(eps)
    if kind == "float":
        s = Fraction(mx) - Fraction(mn)
        s = s / (qmax - qmin)
        scale = _fraction_to_f32(s) if s > e else np.float32(1.0)
        return scale, _fraction_to_f32(-Fraction(mn) / Fraction(float(scale)))
    lo, hi = min(Fraction(mn), 0), max(Fraction(mx), 0)
    if kind == "symmetric":
        s = max(-lo, hi) / Fraction(qmax - qmin, 2)
    else:
        s = (hi - lo) / (qmax - qmin)
    scale = _fraction_to_f32(max(s, e))
    if kind == "symmetric":
        return scale, 0
    zp = qmin - _round_half_even(lo / Fraction(float(scale)))
    return scale, min(max(zp, qmin), qmax)


def _default_qparams():
    return np.array([1.0], dtype=np.float32), np.array([0], dtype=np.int64)


# ----------------------------------------------------------------- bases
class ObserverBase:
    """Base of every observer: ``dtype``, ``is_dynamic``, ``with_args``.

    Subclasses implement :meth:`forward` (update the statistics, return the
    input) and :meth:`calculate_qparams`.
    """

    with_args = classmethod(_with_args)
    with_callable_args = classmethod(_with_callable_args)

    def __init__(self, dtype, is_dynamic=False):
        self.dtype = _as_dtype(dtype)
        self.is_dynamic = _check_bool(is_dynamic, "is_dynamic")

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def calculate_qparams(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


class UniformQuantizationObserverBase(ObserverBase):
    """Common base of the observers that compute uniform (affine or symmetric)
    quantization parameters from a range.

    Parameters
    ----------
    dtype : QDType
        ``qops.quint8`` (default), ``qint8``, ``qint32``, ``quint4x2`` or
        ``quint2x4`` (torch refuses the last).  Torch dtype objects and names
        are accepted.
    qscheme : QScheme
        Default ``per_tensor_affine``.
    reduce_range : bool
        Halve the integer range (floor division of the bounds).
    quant_min, quant_max : int, optional
        A custom range, used only when both are given.  It must contain 0 and
        hold at most ``2**bits`` values of ``dtype`` (torch checks the length
        for qint8 and qint32 only).
    factory_kwargs : None
        Not supported (statistics stay on the host); anything but None raises.
    eps : float
        Smallest scale (default float32 eps).
    is_dynamic : bool
    numerics : str, optional
        ``"reference"`` computes the parameters in float64 and rounds the
        scale once (and makes HistogramObserver a float64 histogram); any
        other profile reproduces torch 2.13.  Default: the profile active
        when the observer is built.

    Raises
    ------
    TypeError
        Unknown dtype, non-integer range bounds, unknown keyword arguments.
    ValueError
        Unknown scheme, a custom range without 0 or longer than the dtype,
        ``eps <= 0``.
    """

    def __init__(
        self,
        dtype=quint8,
        qscheme=per_tensor_affine,
        reduce_range=False,
        quant_min=None,
        quant_max=None,
        factory_kwargs=None,
        eps=FLOAT32_EPS,
        is_dynamic=False,
        numerics=None,
        **kwargs,
    ):
        _no_extra_kwargs(type(self).__name__, kwargs)
        _no_factory_kwargs(type(self).__name__, factory_kwargs)
        super().__init__(dtype=dtype, is_dynamic=is_dynamic)
        if not isinstance(self.dtype, QDType):
            raise TypeError(f"{type(self).__name__} needs a quantized dtype, got {self.dtype}")
        self.qscheme = _as_qscheme(qscheme)
        self.reduce_range = _check_bool(reduce_range, "reduce_range")
        self.eps = _check_eps(eps)
        self.has_customized_qrange = quant_min is not None and quant_max is not None
        if self.has_customized_qrange:
            self.quant_min, self.quant_max = _custom_range(quant_min, quant_max, self.dtype, self.reduce_range)
        else:
            self.quant_min, self.quant_max = _default_range(self.dtype, self.reduce_range)
        self.numerics = resolve_numerics(numerics)

    @property
    def _reference(self) -> bool:
        return self.numerics == "reference"

    def _check_symmetric_reduce_range(self):
        if self.qscheme in _SYMMETRIC and self.reduce_range and self.dtype is quint8:
            raise NotImplementedError("Cannot reduce range for symmetric quantization for quint8")

    def _calculate_qparams(self, min_val, max_val):
        """Scales and zero points from float32 ``min_val`` / ``max_val`` arrays.

        torch's ``_calculate_qparams``, operation by operation in float32 (or
        in float64 with one final rounding under the reference profile).
        """
        min_val = np.asarray(min_val, dtype=np.float32)
        max_val = np.asarray(max_val, dtype=np.float32)
        name = type(self).__name__
        if min_val.size == 0 or max_val.size == 0 or (
            min_val.ndim == 0 and min_val == np.inf and max_val == -np.inf
        ):
            warnings.warn(
                f"{name} has not observed any data: calculate_qparams() returns "
                "the default scale 1.0 and zero point 0",
                UserWarning,
                stacklevel=3,
            )
            return _default_qparams()
        if np.any(min_val > max_val):
            raise ValueError(f"{name}: min {min_val} should not exceed max {max_val}")
        qmin, qmax = self.quant_min, self.quant_max
        if self._reference:
            scale, zp = self._qparams_exact(min_val, max_val, qmin, qmax)
        else:
            scale, zp = self._qparams_torch(min_val, max_val, qmin, qmax)
        if scale.ndim == 0:
            scale = scale.reshape(1)
        if zp.ndim == 0:
            zp = zp.reshape(1)
        return scale, zp

    def _symmetric_zero_point(self, shape):
        if self.dtype is quint8:
            z = (self.quant_min + self.quant_max) // 2 if self.has_customized_qrange else 128
        else:
            z = 0
        return np.full(shape, z, dtype=np.int64)

    def _qparams_torch(self, min_val, max_val, qmin, qmax):
        zero = np.float32(0)
        eps = self.eps[0]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            min_neg = np.minimum(min_val, zero)
            max_pos = np.maximum(max_val, zero)
            if self.qscheme in _SYMMETRIC:
                max_pos = np.maximum(-min_neg, max_pos)
                scale = (max_pos / np.float32((qmax - qmin) / 2)).astype(np.float32)
                scale = np.maximum(scale, eps)
                return scale, self._symmetric_zero_point(scale.shape)
            if self.qscheme is per_channel_affine_float_qparams:
                scale = ((max_val - min_val) / np.float32(qmax - qmin)).astype(np.float32)
                scale = np.where(scale > eps, scale, np.float32(1.0)).astype(np.float32)
                zp = ((np.float32(-1) * min_val) / scale).astype(np.float32)
                return scale, zp
            scale = ((max_pos - min_neg) / np.float32(qmax - qmin)).astype(np.float32)
            scale = np.maximum(scale, eps)
            r = np.rint((min_neg / scale).astype(np.float32))
        zp = _wrap32(qmin - _f32_to_int32(r))
        zp = np.clip(zp, qmin, qmax).astype(np.int32)
        return scale.astype(np.float32), zp

    def _qparams_exact(self, min_val, max_val, qmin, qmax):
        eps = float(self.eps[0])
        if self.qscheme in _SYMMETRIC:
            kind = "symmetric"
        elif self.qscheme is per_channel_affine_float_qparams:
            kind = "float"
        else:
            kind = "affine"
        pairs = [_exact_qparams(a, b, qmin, qmax, eps, kind) for a, b in zip(min_val.ravel(), max_val.ravel())]
        scale = np.array([p[0] for p in pairs], dtype=np.float32).reshape(min_val.shape)
        if kind == "symmetric":
            return scale, self._symmetric_zero_point(scale.shape)
        if kind == "float":
            return scale, np.array([p[1] for p in pairs], dtype=np.float32).reshape(min_val.shape)
        return scale, np.array([p[1] for p in pairs], dtype=np.int32).reshape(min_val.shape)

    def reset_min_max_vals(self):
        raise NotImplementedError(f"Cannot reset min/max values in {type(self).__name__}.")

    def extra_repr(self):
        return (
            f"dtype={self.dtype!r}, qscheme={self.qscheme!r}, quant_min={self.quant_min}, "
            f"quant_max={self.quant_max}, min_val={getattr(self, 'min_val', None)}, "
            f"max_val={getattr(self, 'max_val', None)}"
        )


# ----------------------------------------------------------------- min/max
class MinMaxObserver(UniformQuantizationObserverBase):
    """Running minimum and maximum; per-tensor parameters.

    Parameters are those of :class:`UniformQuantizationObserverBase`;
    ``qscheme`` must be per-tensor.

    Notes
    -----
    NaN in the data makes ``min_val``/``max_val`` NaN for good, as in torch
    (with a RuntimeWarning); ``calculate_qparams`` then returns torch's NaN
    scale and zero point.  Infinities enter the range as they do in torch.

    Examples
    --------
    >>> import numpy as np, qops
    >>> obs = qops.observer.MinMaxObserver()
    >>> _ = obs(np.float32([-1.0, 0.5, 2.0]))
    >>> scale, zp = obs.calculate_qparams()
    >>> float(scale[0]), int(zp[0])
    (0.0117647061124444, 85)
    """

    def __init__(
        self,
        dtype=quint8,
        qscheme=per_tensor_affine,
        reduce_range=False,
        quant_min=None,
        quant_max=None,
        factory_kwargs=None,
        eps=FLOAT32_EPS,
        is_dynamic=False,
        numerics=None,
        **kwargs,
    ):
        _require_scheme(type(self).__name__, qscheme, per_channel=False)
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs,
                         eps, is_dynamic, numerics, **kwargs)
        self.min_val = np.array(np.inf, dtype=np.float32)
        self.max_val = np.array(-np.inf, dtype=np.float32)
        self._check_symmetric_reduce_range()

    def _observe(self, x_orig):
        x = _input(x_orig, type(self).__name__)
        if x.size == 0:
            return None
        mn, mx = _aminmax(x)
        if mn != mn or mx != mx:
            _nan_warning(type(self).__name__)
        return np.float32(mn), np.float32(mx)

    def forward(self, x_orig):
        """Update the running min/max with ``x_orig``; return ``x_orig``."""
        cur = self._observe(x_orig)
        if cur is not None:
            with np.errstate(invalid="ignore"):
                self.min_val = np.minimum(cur[0], self.min_val).astype(np.float32)
                self.max_val = np.maximum(cur[1], self.max_val).astype(np.float32)
        return x_orig

    def calculate_qparams(self):
        """``(scale, zero_point)``: float32 and int32/int64 arrays of length 1."""
        return self._calculate_qparams(self.min_val, self.max_val)

    def reset_min_max_vals(self):
        """Forget the observed range."""
        self.min_val = np.array(np.inf, dtype=np.float32)
        self.max_val = np.array(-np.inf, dtype=np.float32)


def _moving_average(obs, cur):
    """``old + c * (new - old)`` in float32 for the running min and max (torch's update)."""
    c = np.float32(obs.averaging_constant)
    with np.errstate(invalid="ignore", over="ignore"):
        mn = np.asarray(obs.min_val + c * (cur[0] - obs.min_val), dtype=np.float32)
        mx = np.asarray(obs.max_val + c * (cur[1] - obs.max_val), dtype=np.float32)
    return mn, mx


class MovingAverageMinMaxObserver(MinMaxObserver):
    """Moving average of the per-batch min and max (the first batch sets them).

    ``min = min + c * (batch_min - min)`` in float32 with ``c`` the
    ``averaging_constant`` (default 0.01), which must lie in (0, 1].
    """

    def __init__(
        self,
        averaging_constant=0.01,
        dtype=quint8,
        qscheme=per_tensor_affine,
        reduce_range=False,
        quant_min=None,
        quant_max=None,
        eps=FLOAT32_EPS,
        is_dynamic=False,
        numerics=None,
        **kwargs,
    ):
        _require_scheme(type(self).__name__, qscheme, per_channel=False)
        self.averaging_constant = _check_averaging_constant(averaging_constant)
        if is_dynamic and self.averaging_constant != 1:
            raise NotImplementedError(
                "MovingAverageMinMaxObserver doesn't support dynamic quantization for "
                f"averaging constant of {self.averaging_constant}"
            )
        super().__init__(dtype=dtype, qscheme=qscheme, reduce_range=reduce_range, quant_min=quant_min,
                         quant_max=quant_max, eps=eps, is_dynamic=is_dynamic, numerics=numerics, **kwargs)

    def forward(self, x_orig):
        cur = self._observe(x_orig)
        if cur is None:
            return x_orig
        if self.min_val == np.inf and self.max_val == -np.inf:
            self.min_val = np.array(cur[0], dtype=np.float32)
            self.max_val = np.array(cur[1], dtype=np.float32)
        else:
            self.min_val, self.max_val = _moving_average(self, cur)
        return x_orig


class PerChannelMinMaxObserver(UniformQuantizationObserverBase):
    """Running min and max per slice along ``ch_axis``; per-channel parameters.

    ``ch_axis`` may be negative (counted from the end, as Python indexing in
    torch).  Every call must have the same number of channels.
    """

    def __init__(
        self,
        ch_axis=0,
        dtype=quint8,
        qscheme=per_channel_affine,
        reduce_range=False,
        quant_min=None,
        quant_max=None,
        factory_kwargs=None,
        eps=FLOAT32_EPS,
        is_dynamic=False,
        numerics=None,
        **kwargs,
    ):
        _require_scheme(type(self).__name__, qscheme, per_channel=True)
        if is_dynamic:
            raise NotImplementedError(f"{type(self).__name__} doesn't support dynamic quantization")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs,
                         eps, is_dynamic, numerics, **kwargs)
        self.ch_axis = check_int(ch_axis, "ch_axis")
        self.min_val = np.empty(0, dtype=np.float32)
        self.max_val = np.empty(0, dtype=np.float32)
        self._check_symmetric_reduce_range()

    def _observe(self, x_orig):
        name = type(self).__name__
        x = _input(x_orig, name)
        if x.size == 0:
            return None
        if x.ndim == 0:
            raise ValueError(f"{name} needs at least a 1-D input (it has a channel axis)")
        if not -x.ndim <= self.ch_axis < x.ndim:
            raise ValueError(
                f"{name}: ch_axis={self.ch_axis} is out of range for a {x.ndim}-D input "
                f"of shape {tuple(x.shape)}"
            )
        axis = self.ch_axis % x.ndim
        nch = int(x.shape[axis])
        if self.min_val.size and self.min_val.size != nch:
            raise ValueError(
                f"{name}: axis {self.ch_axis} of the input has {nch} channels but the observer has "
                f"seen {self.min_val.size}; use one observer per tensor or reset_min_max_vals()"
            )
        mins, maxs = _aminmax_axis(x, axis)
        if np.isnan(mins).any() or np.isnan(maxs).any():
            _nan_warning(name)
        return mins, maxs

    def forward(self, x_orig):
        """Update the per-channel running min/max with ``x_orig``; return it."""
        cur = self._observe(x_orig)
        if cur is not None:
            if self.min_val.size == 0:
                self.min_val, self.max_val = cur[0].copy(), cur[1].copy()
            else:
                with np.errstate(invalid="ignore"):
                    self.min_val = np.minimum(cur[0], self.min_val).astype(np.float32)
                    self.max_val = np.maximum(cur[1], self.max_val).astype(np.float32)
        return x_orig

    def calculate_qparams(self):
        """Per-channel ``(scales, zero_points)``."""
        return self._calculate_qparams(self.min_val, self.max_val)

    def reset_min_max_vals(self):
        """Forget the observed ranges (and the number of channels)."""
        self.min_val = np.empty(0, dtype=np.float32)
        self.max_val = np.empty(0, dtype=np.float32)


class MovingAveragePerChannelMinMaxObserver(PerChannelMinMaxObserver):
    """Per-channel moving average of min and max (see
    :class:`MovingAverageMinMaxObserver`); the first batch sets them."""

    def __init__(
        self,
        averaging_constant=0.01,
        ch_axis=0,
        dtype=quint8,
        qscheme=per_channel_affine,
        reduce_range=False,
        quant_min=None,
        quant_max=None,
        eps=FLOAT32_EPS,
        is_dynamic=False,
        numerics=None,
        **kwargs,
    ):
        _require_scheme(type(self).__name__, qscheme, per_channel=True)
        self.averaging_constant = _check_averaging_constant(averaging_constant)
        super().__init__(ch_axis=ch_axis, dtype=dtype, qscheme=qscheme, reduce_range=reduce_range,
                         quant_min=quant_min, quant_max=quant_max, eps=eps, is_dynamic=is_dynamic,
                         numerics=numerics, **kwargs)

    def forward(self, x_orig):
        cur = self._observe(x_orig)
        if cur is None:
            return x_orig
        if self.min_val.size == 0:
            self.min_val, self.max_val = cur[0].copy(), cur[1].copy()
        else:
            self.min_val, self.max_val = _moving_average(self, cur)
        return x_orig


# ----------------------------------------------------------------- histogram
class HistogramObserver(UniformQuantizationObserverBase):
    """Running histogram; parameters from torch's L2 range search.

    Each batch is counted into ``bins`` equal bins over the running range
    (the old histogram is re-binned when the range grows: every bin split in
    ``upsample_rate`` = 16 parts); :meth:`calculate_qparams` searches the
    ``[min, max]`` that minimises the L2 quantization error over
    ``dst_nbins = 2**bits`` levels and converts it like :class:`MinMaxObserver`.

    Parameters
    ----------
    bins : int
        Number of histogram bins (default 2048).
    dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs, eps, is_dynamic
        As :class:`UniformQuantizationObserverBase`; per-tensor schemes only.
    numerics : str, optional
        Any profile but ``"reference"`` reproduces torch 2.13 bit for bit: the
        histogram is float32 and every step of the search rounds where torch's
        float32 tensor operations round.  ``"reference"`` keeps a float64
        histogram and searches in float64 (see ``docs/observers.md``).

    Raises
    ------
    ValueError
        From :meth:`forward` when the data holds NaN (torch raises a
        RuntimeError from ``histc``, after corrupting its range); the
        observer is left unchanged.

    Warns
    -----
    UserWarning
        When the data holds infinities: they are ignored, as in torch.
    """

    def __init__(
        self,
        bins=2048,
        dtype=quint8,
        qscheme=per_tensor_affine,
        reduce_range=False,
        quant_min=None,
        quant_max=None,
        factory_kwargs=None,
        eps=FLOAT32_EPS,
        is_dynamic=False,
        numerics=None,
        **kwargs,
    ):
        _require_scheme("HistogramObserver", qscheme, per_channel=False)
        if is_dynamic:
            raise NotImplementedError("HistogramObserver doesn't support dynamic quantization")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs,
                         eps, is_dynamic, numerics, **kwargs)
        self.bins = check_int(bins, "bins")
        if self.bins < 1:
            raise ValueError(f"bins must be a positive integer, got {self.bins}")
        self._hist_dtype = np.float64 if self._reference else np.float32
        self.histogram = np.zeros(self.bins, dtype=self._hist_dtype)
        self.min_val = np.array(np.inf, dtype=np.float32)
        self.max_val = np.array(-np.inf, dtype=np.float32)
        # torch.iinfo(dtype).bits: 8 for every byte-stored type (quint4x2 too)
        self.dst_nbins = 2 ** (32 if self.dtype is qint32 else 8)
        self.upsample_rate = 16

    # -- histogram updates -------------------------------------------------
    def _histc(self, x, lo, hi):
        """torch.histc(x, bins, min=lo, max=hi) as a histogram of this observer's dtype."""
        left, right = float(lo), float(hi)
        if left == right:
            # torch widens an empty range by one float32 step or 1, whichever is more
            left = min(float(np.nextafter(np.float32(left), np.float32(-np.inf))), left - 1.0)
            right = max(float(np.nextafter(np.float32(right), np.float32(np.inf))), right + 1.0)
        if not (np.isfinite(left) and np.isfinite(right)):
            raise ValueError(f"HistogramObserver: the range [{left}, {right}] is not finite")
        if not self._reference:
            # torch's edges are linspace's ends, start + step*0 and end - step*0:
            # NaN when the float32 step overflows, and then nothing is counted
            with np.errstate(over="ignore"):
                step = (np.float32(right) - np.float32(left)) / np.float32(self.bins)
            if not np.isfinite(step):
                left = right = float("nan")
        counts = _histc_counts(x, left, right, self.bins, self._reference)
        return counts.astype(self._hist_dtype)

    def _combine(self, upd, new_min, new_max):
        orig_min, orig_max = self.min_val, self.max_val
        if orig_min == orig_max:
            total = self._sum(self.histogram)
            one = self._histc(np.array([orig_min], dtype=np.float32), new_min, new_max)
            return (one * self._hist_dtype(total) + upd).astype(self._hist_dtype)
        moved = np.empty(self.bins, dtype=self._hist_dtype)
        op = "histogram_upscale_f64" if self._reference else "histogram_upscale"
        _dispatch.run(op, "cpu", self.histogram, np.float32(orig_min), np.float32(orig_max),
                      np.float32(new_min), np.float32(new_max), self.upsample_rate, moved)
        return (upd + moved).astype(self._hist_dtype)

    def _sum(self, a):
        if self._reference:
            return float(np.sum(a, dtype=np.float64))
        return float(_dispatch.run("cascade_sum", "cpu", np.ascontiguousarray(a, dtype=np.float32)))

    def forward(self, x_orig):
        """Add ``x_orig`` to the histogram (growing its range if needed); return it."""
        x = _input(x_orig, "HistogramObserver")
        if x.size == 0:
            return x_orig
        x_min, x_max = _aminmax(x)
        if x_min != x_min or x_max != x_max:
            raise ValueError(
                "HistogramObserver: the data holds NaN; a histogram has no bin for it "
                "(torch raises from histc); the observer is unchanged"
            )
        if x_min == -np.inf or x_max == np.inf:
            warnings.warn("inf detected in input tensor, ignoring input", UserWarning, stacklevel=2)
            x_min, x_max = _aminmax(x, skip_inf=True)
            if x_min == np.inf and x_max == -np.inf:  # nothing but infinities
                return x_orig
        if self.min_val == np.inf or self.max_val == -np.inf:
            self.histogram = self._histc(x, x_min, x_max)
            self.min_val = np.array(x_min, dtype=np.float32)
            self.max_val = np.array(x_max, dtype=np.float32)
            return x_orig
        new_min = np.float32(min(self.min_val, x_min))
        new_max = np.float32(max(self.max_val, x_max))
        upd = self._histc(x, new_min, new_max)
        if new_min == self.min_val and new_max == self.max_val:
            self.histogram = (self.histogram + upd).astype(self._hist_dtype)
        else:
            self.histogram = self._combine(upd, new_min, new_max)
            self.min_val = np.array(new_min, dtype=np.float32)
            self.max_val = np.array(new_max, dtype=np.float32)
        return x_orig

    # -- parameters ----------------------------------------------------------
    def _non_linear_param_search(self):
        """The ``(new_min, new_max)`` chosen by torch's L2 search."""
        hist = np.ascontiguousarray(self.histogram, dtype=self._hist_dtype)
        if self._reference:
            out = np.empty(2, np.float64)
            _dispatch.run("histogram_search_f64", "cpu", hist, np.float32(self.min_val),
                          np.float32(self.max_val), self.dst_nbins, out)
        else:
            out = np.empty(2, np.float32)
            _dispatch.run("histogram_search", "cpu", hist, np.float32(self.min_val),
                          np.float32(self.max_val), self.dst_nbins, out)
        return out[0], out[1]

    def calculate_qparams(self):
        """``(scale, zero_point)`` of the searched range."""
        if self.min_val == np.inf and self.max_val == -np.inf:
            warnings.warn(
                "HistogramObserver has not observed any data: calculate_qparams() returns "
                "the default scale 1.0 and zero point 0",
                UserWarning,
                stacklevel=2,
            )
            return _default_qparams()
        if self.histogram.size != self.bins:
            raise ValueError(
                f"the histogram has {self.histogram.size} bins but the observer was built with {self.bins}"
            )
        new_min, new_max = self._non_linear_param_search()
        if self._reference:
            return self._calculate_qparams_f64(new_min, new_max)
        return self._calculate_qparams(np.float32(new_min), np.float32(new_max))

    def _calculate_qparams_f64(self, new_min, new_max):
        """The reference formula on the float64 range (no float32 step in between)."""
        kind = "symmetric" if self.qscheme in _SYMMETRIC else "affine"
        scale, zp = _exact_qparams(new_min, new_max, self.quant_min, self.quant_max, float(self.eps[0]), kind)
        scale = np.array([scale], dtype=np.float32)
        if kind == "symmetric":
            return scale, self._symmetric_zero_point((1,))
        return scale, np.array([zp], dtype=np.int32)

    def extra_repr(self):
        return f"bins={self.bins}, " + super().extra_repr()


# ----------------------------------------------------------------- others
class FixedQParamsObserver(ObserverBase):
    """Fixed scale and zero point (for outputs of sigmoid, tanh, softmax...)."""

    def __init__(
        self,
        scale,
        zero_point,
        dtype=quint8,
        qscheme=per_tensor_affine,
        quant_min=0,
        quant_max=255,
        is_dynamic=False,
        **kwargs,
    ):
        if is_dynamic:
            raise NotImplementedError("FixedQParamsObserver doesn't support dynamic quantization")
        _no_extra_kwargs("FixedQParamsObserver", kwargs)
        super().__init__(dtype=dtype, is_dynamic=is_dynamic)
        self.quant_min = check_int(quant_min, "quant_min")
        self.quant_max = check_int(quant_max, "quant_max")
        if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
            raise TypeError(f"scale must be a real number, got {scale!r}")
        self.scale = np.array([scale], dtype=np.float32)
        self.zero_point = np.array([check_int(zero_point, "zero_point")], dtype=np.int32)
        self.qscheme = _as_qscheme(qscheme)

    def forward(self, x):
        return x

    def calculate_qparams(self):
        """The fixed ``(scale, zero_point)``."""
        return self.scale.copy(), self.zero_point.copy()

    def extra_repr(self):
        return f"scale={self.scale}, zero_point={self.zero_point}, dtype={self.dtype!r}"


class PlaceholderObserver(ObserverBase):
    """Observes nothing; carries ``dtype`` (e.g. float16) and the dynamic flag."""

    def __init__(
        self,
        dtype=np.float32,
        custom_op_name="",
        compute_dtype=None,
        quant_min=None,
        quant_max=None,
        qscheme=None,
        eps=None,
        is_dynamic=False,
    ):
        if compute_dtype:
            warnings.warn("use is_dynamic instead of compute_dtype", FutureWarning, stacklevel=2)
            is_dynamic = True
        super().__init__(dtype=dtype, is_dynamic=is_dynamic)
        self.qscheme = per_tensor_affine if qscheme is None else _as_qscheme(qscheme)
        self.eps = FLOAT32_EPS if eps is None else float(eps)
        self.quant_min = None if quant_min is None else check_int(quant_min, "quant_min")
        self.quant_max = None if quant_max is None else check_int(quant_max, "quant_max")
        self.custom_op = str(custom_op_name)

    def forward(self, x):
        return x

    def calculate_qparams(self):
        raise RuntimeError("calculate_qparams should not be called for PlaceholderObserver")

    def extra_repr(self):
        return f"dtype={self.dtype!r}, is_dynamic={self.is_dynamic}"


class RecordingObserver(ObserverBase):
    """Records a copy of every observed array (for debugging)."""

    def __init__(self, dtype=quint8):
        super().__init__(dtype=dtype, is_dynamic=False)
        self.tensor_val = []

    def forward(self, x):
        self.tensor_val.append(_copy(x))
        return x

    def calculate_qparams(self):
        raise RuntimeError("calculate_qparams should not be called for RecordingObserver")

    def get_tensor_value(self):
        """The recorded arrays, in call order."""
        return self.tensor_val


class NoopObserver(ObserverBase):
    """Observes nothing; carries ``dtype`` (float16 by default)."""

    def __init__(self, dtype=np.float16, custom_op_name=""):
        super().__init__(dtype=dtype, is_dynamic=False)
        self.custom_op = str(custom_op_name)

    def forward(self, x):
        return x

    def calculate_qparams(self):
        raise RuntimeError("calculate_qparams should not be called for NoopObserver")


class ReuseInputObserver(ObserverBase):
    """Marks an op whose output reuses its input's observer (e.g. reshape)."""

    def __init__(self):
        super().__init__(quint8, is_dynamic=False)

    def forward(self, x):
        return x

    def calculate_qparams(self):
        raise RuntimeError("calculate_qparams should not be called for ReuseInputObserver")


# ----------------------------------------------------------------- defaults
default_observer = MinMaxObserver.with_args(quant_min=0, quant_max=127)
"""Default observer for static quantization (quint8 in [0, 127])."""

default_placeholder_observer = PlaceholderObserver
default_debug_observer = RecordingObserver

default_weight_observer = MinMaxObserver.with_args(dtype=qint8, qscheme=per_tensor_symmetric)
"""Default weight observer (qint8, symmetric)."""

weight_observer_range_neg_127_to_127 = MinMaxObserver.with_args(
    dtype=qint8, qscheme=per_tensor_symmetric, quant_min=-127, quant_max=127, eps=2**-12
)
default_histogram_observer = HistogramObserver.with_args(quant_min=0, quant_max=127)
default_per_channel_weight_observer = PerChannelMinMaxObserver.with_args(
    dtype=qint8, qscheme=per_channel_symmetric
)
per_channel_weight_observer_range_neg_127_to_127 = PerChannelMinMaxObserver.with_args(
    dtype=qint8, qscheme=per_channel_symmetric, quant_min=-127, quant_max=127, eps=2**-12
)
default_dynamic_quant_observer = PlaceholderObserver.with_args(
    dtype=quint8, quant_min=0, quant_max=255, is_dynamic=True
)
default_float_qparams_observer = PerChannelMinMaxObserver.with_args(
    dtype=quint8, qscheme=per_channel_affine_float_qparams, ch_axis=0
)
default_float_qparams_observer_4bit = PerChannelMinMaxObserver.with_args(
    dtype=quint4x2, qscheme=per_channel_affine_float_qparams, ch_axis=0
)
default_fixed_qparams_range_neg1to1_observer = FixedQParamsObserver.with_args(
    scale=2.0 / 256.0, zero_point=128, dtype=quint8, quant_min=0, quant_max=255
)
default_fixed_qparams_range_0to1_observer = FixedQParamsObserver.with_args(
    scale=1.0 / 256.0, zero_point=0, dtype=quint8, quant_min=0, quant_max=255
)
default_symmetric_fixed_qparams_observer = default_fixed_qparams_range_neg1to1_observer
default_affine_fixed_qparams_observer = default_fixed_qparams_range_0to1_observer
default_reuse_input_observer = ReuseInputObserver
