"""Fake quantization modules (quantization-aware training), as torch 2.13.

Each module has ``forward(x)`` (observe, then quantize and dequantize in
float32) and ``backward(x, grad_out)``, which returns what torch's autograd
gives the input: the straight-through estimator, ``grad_out`` times the mask
of elements whose unclamped quantized value lies in ``[quant_min,
quant_max]``.  :class:`LearnableFakeQuantize` (torch's
``_LearnableFakeQuantize``, LSQ) also returns the scale and zero-point
gradients.  ``backward`` uses the module's current parameters, i.e. those of
the last ``forward``.

The arithmetic is torch's (measured against torch 2.13.0): the fake
quantization kernels of :func:`qops.fake_quantize_per_tensor_affine` /
:func:`qops.fake_quantize_per_channel_affine`, fbgemm's
``ChooseQuantizationParams`` in :class:`FusedMovingAvgObsFakeQuantize`, and
torch's float32 sums for the learnable gradients.
"""

from __future__ import annotations

import os

import numpy as np

from . import _dispatch
from ._ops import fake_quantize_per_channel_affine, fake_quantize_per_tensor_affine
from ._validate import as_float_input, check_int
from .dtypes import (
    per_channel_affine,
    per_channel_affine_float_qparams,
    per_channel_symmetric,
    per_tensor_affine,
    per_tensor_symmetric,
    qint8,
    quint4x2,
    quint8,
)
from .observer import (
    FLOAT32_EPS,
    FixedQParamsObserver,
    HistogramObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    _aminmax,
    _aminmax_axis,
    _as_dtype,
    _copy,
    _with_args,
    default_fixed_qparams_range_0to1_observer,
    default_fixed_qparams_range_neg1to1_observer,
)

__all__ = [
    "FakeQuantizeBase",
    "FakeQuantize",
    "FixedQParamsFakeQuantize",
    "FusedMovingAvgObsFakeQuantize",
    "LearnableFakeQuantize",
    "choose_qparams_fbgemm",
    "disable_fake_quant",
    "disable_observer",
    "enable_fake_quant",
    "enable_observer",
    "default_fake_quant",
    "default_weight_fake_quant",
    "default_dynamic_fake_quant",
    "default_fixed_qparams_range_neg1to1_fake_quant",
    "default_fixed_qparams_range_0to1_fake_quant",
    "default_symmetric_fixed_qparams_fake_quant",
    "default_affine_fixed_qparams_fake_quant",
    "default_per_channel_weight_fake_quant",
    "default_embedding_fake_quant",
    "default_embedding_fake_quant_4bit",
    "default_histogram_fake_quant",
    "default_fused_act_fake_quant",
    "default_fused_wt_fake_quant",
    "default_fused_per_channel_wt_fake_quant",
    "fused_wt_fake_quant_range_neg_127_to_127",
    "fused_per_channel_wt_fake_quant_range_neg_127_to_127",
]

_PER_CHANNEL = (per_channel_affine, per_channel_symmetric, per_channel_affine_float_qparams)
_PER_TENSOR = (per_tensor_affine, per_tensor_symmetric)
_SYMMETRIC = (per_tensor_symmetric, per_channel_symmetric)

#: fbgemm's smallest scale (``SMALL_SCALE_THRESHOLD``, the float16 minimum).
_SMALL_SCALE = np.float32(6.1e-5)


def _default_threads():
    """torch's default intra-op thread count: the CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _dtype_bounds(dtype):
    dt = _as_dtype(dtype)
    return dt.qmin, dt.qmax


def _observer_dtype(observer, observer_kwargs):
    dtype = observer_kwargs.get("dtype", quint8)
    keywords = getattr(getattr(observer, "p", None), "keywords", {})
    return keywords.get("dtype", dtype)


def _mask_grad(grad_out, mask):
    """``grad_out * mask`` in float32, as torch multiplies by the bool mask
    (so a masked -x gives -0.0 and a masked inf or NaN gives NaN)."""
    with np.errstate(invalid="ignore"):
        return (grad_out * mask.astype(np.float32)).astype(np.float32)


def _grad_input(grad_out, shape, op):
    g = as_float_input(grad_out, op)
    if hasattr(g, "copy_to_host"):
        g = g.copy_to_host()
    if tuple(g.shape) != tuple(shape):
        raise ValueError(f"{op}: grad_out has shape {tuple(g.shape)} but the input has {tuple(shape)}")
    return np.ascontiguousarray(g, dtype=np.float32)


def _host_input(x, op):
    x = as_float_input(x, op)
    return x.copy_to_host() if hasattr(x, "copy_to_host") else x


# ------------------------------------------------------------------ fbgemm
def choose_qparams_fbgemm(min_val, max_val, quant_min, quant_max, preserve_sparsity):
    """fbgemm's ``ChooseQuantizationParams`` (float32 scale), elementwise.

    What ``torch.fused_moving_avg_obs_fake_quant`` uses (torch 2.13 built with
    fbgemm): ``preserve_sparsity`` (the symmetric schemes) makes a range that
    straddles 0 symmetric, ``max(|min| / ((qmax-qmin)//2 + 1), max / ((qmax-qmin)//2))``;
    the scale ``(max - min) / (qmax - qmin)`` is computed in float64 and
    rounded to float32; 0 (or a scale whose reciprocal overflows) becomes 0.1;
    scales below 6.1e-5 are raised to it (and the range stretched); the zero
    point is the rounded one of the end with the smaller error, or the middle
    of the range for symmetric ranges.

    Parameters
    ----------
    min_val, max_val : array_like of float32
    quant_min, quant_max : int
    preserve_sparsity : bool

    Returns
    -------
    (ndarray of float32, ndarray of int32)
    """
    f32 = np.float32
    mn = np.array(min_val, dtype=np.float32, ndmin=1)
    mx = np.array(max_val, dtype=np.float32, ndmin=1)
    qmin, qmax = int(quant_min), int(quant_max)
    with np.errstate(all="ignore"):
        if preserve_sparsity:
            sym = (mn < 0) & (mx > 0)
            sqmin = -((qmax - qmin) // 2 + 1)
            sqmax = (qmax - qmin) // 2
            max_scale = np.maximum(np.abs(mn / f32(sqmin)), np.abs(mx / f32(sqmax))).astype(np.float64)
            mn = np.where(sym, (max_scale * sqmin).astype(np.float32), mn)
            mx = np.where(sym, (max_scale * sqmax).astype(np.float32), mx)
        mn = np.minimum(mn, f32(0))
        mx = np.maximum(mx, f32(0))
        scale = ((mx.astype(np.float64) - mn.astype(np.float64)) / (qmax - qmin)).astype(np.float32)
        scale = np.where((scale == 0) | np.isinf(f32(1) / scale), f32(0.1), scale).astype(np.float32)
        small = scale < _SMALL_SCALE
        if np.any(small):
            org = scale
            scale = np.where(small, _SMALL_SCALE, scale).astype(np.float32)
            span = f32(qmax - qmin)
            amp = (_SMALL_SCALE / org).astype(np.float32)
            new_mn = np.where(mx == 0, -_SMALL_SCALE * span, mn * amp).astype(np.float32)
            new_mx = np.where(mn == 0, _SMALL_SCALE * span, mx * amp).astype(np.float32)
            new_mn = np.where(mn == 0, mn, new_mn)
            new_mx = np.where((mn != 0) & (mx == 0), mx, new_mx)
            mn = np.where(small, new_mn, mn)
            mx = np.where(small, new_mx, mx)
        s64 = scale.astype(np.float64)
        m64 = mn.astype(np.float64)
        x64 = mx.astype(np.float64)
        from_min = qmin - m64 / s64
        from_max = qmax - x64 / s64
        err_min = abs(qmin) + np.abs(m64 / s64)
        err_max = abs(qmax) + np.abs(x64 / s64)
        initial = np.where(err_min < err_max, from_min, from_max)
        if preserve_sparsity:
            initial = np.where((mn < 0) & (mx > 0), (qmin + qmax) / 2, initial)
        zp = np.where(initial < qmin, qmin, np.where(initial > qmax, qmax, np.rint(initial)))
    return scale, zp.astype(np.int32)


# ------------------------------------------------------------------ float zero points
# ------------------------------------------------------------------ modules
class FakeQuantizeBase:
    """Base of the fake quantization modules: the enable flags and ``with_args``."""

    def __init__(self):
        self.fake_quant_enabled = np.array([1], dtype=np.uint8)
        self.observer_enabled = np.array([1], dtype=np.uint8)

    with_args = classmethod(_with_args)

    def __call__(self, x):
        return self.forward(x)

    def enable_fake_quant(self, enabled=True):
        self.fake_quant_enabled[0] = 1 if enabled else 0

    def disable_fake_quant(self):
        self.enable_fake_quant(False)

    def enable_observer(self, enabled=True):
        self.observer_enabled[0] = 1 if enabled else 0

    def disable_observer(self):
        self.enable_observer(False)

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def calculate_qparams(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        return ""


class FakeQuantize(FakeQuantizeBase):
    """Observer + fake quantization: ``(clamp(round(x/s) + z) - z) * s``.

    Parameters
    ----------
    observer : observer class or factory
        Default :class:`~qops.observer.MovingAverageMinMaxObserver`.
    quant_min, quant_max : int, optional
        Passed to the observer when both are given; must lie in the dtype.
    is_dynamic : bool
    **observer_kwargs
        The observer's constructor arguments.

    Notes
    -----
    ``forward`` observes ``x`` (when the observer is enabled), stores the
    observer's parameters in ``scale``/``zero_point`` and fake-quantizes with
    them (when fake quantization is enabled) exactly as torch 2.13.
    """

    def __init__(self, observer=MovingAverageMinMaxObserver, quant_min=None, quant_max=None,
                 is_dynamic=False, **observer_kwargs):
        super().__init__()
        if quant_min is not None and quant_max is not None:
            lo, hi = check_int(quant_min, "quant_min"), check_int(quant_max, "quant_max")
            if lo > hi:
                raise ValueError(f"quant_min ({lo}) must be less than or equal to quant_max ({hi})")
            dmin, dmax = _dtype_bounds(_observer_dtype(observer, observer_kwargs))
            if lo < dmin or hi > dmax:
                raise ValueError(f"[quant_min, quant_max] = [{lo}, {hi}] is outside the dtype's range [{dmin}, {dmax}]")
            observer_kwargs.update({"quant_min": lo, "quant_max": hi})
        observer_kwargs["is_dynamic"] = is_dynamic
        self.activation_post_process = observer(**observer_kwargs)
        app = self.activation_post_process
        self.quant_min = app.quant_min
        self.quant_max = app.quant_max
        self.is_dynamic = app.is_dynamic
        self.dtype = app.dtype
        self.qscheme = app.qscheme
        float_zp = self.qscheme is per_channel_affine_float_qparams
        self.scale = np.array([1.0], dtype=np.float32)
        self.zero_point = np.array([0], dtype=np.float32 if float_zp else np.int32)
        self.ch_axis = getattr(app, "ch_axis", -1)
        if self.qscheme not in _PER_CHANNEL + _PER_TENSOR:
            raise ValueError(f"fake quantization supports per-channel and per-tensor schemes, got {self.qscheme!r}")
        self.is_per_channel = self.qscheme in _PER_CHANNEL

    def calculate_qparams(self):
        """The observer's ``(scale, zero_point)``."""
        return self.activation_post_process.calculate_qparams()

    def _update_qparams(self, x):
        self.activation_post_process(x)
        s, z = self.calculate_qparams()
        self.scale = np.array(s, dtype=np.float32).reshape(-1)
        self.zero_point = np.array(z).reshape(-1).astype(self.zero_point.dtype)

    def _fake_quant(self, x):
        """``(y, mask)`` with the current parameters."""
        qmin, qmax = self.activation_post_process.quant_min, self.activation_post_process.quant_max
        if self.is_per_channel:
            # float zero points (float qparams) take torch's float-zero-point recipe
            return fake_quantize_per_channel_affine(x, self.scale, self.zero_point, self.ch_axis,
                                                    qmin, qmax, return_mask=True)
        return fake_quantize_per_tensor_affine(x, float(self.scale[0]), int(self.zero_point[0]),
                                               qmin, qmax, return_mask=True)

    def forward(self, x):
        """Observe ``x`` and return its fake-quantized float32 values."""
        if self.observer_enabled[0] == 1:
            self._update_qparams(x)
        if self.fake_quant_enabled[0] == 1:
            return self._fake_quant(x)[0]
        return x

    def backward(self, x, grad_out):
        """The input gradient for ``grad_out`` (straight-through estimator).

        ``grad_out * mask`` with the parameters of the last forward; the
        identity when fake quantization is disabled.
        """
        name = type(self).__name__
        g = _grad_input(grad_out, np.shape(x), name)
        if self.fake_quant_enabled[0] != 1:
            return g.copy()
        _, mask = self._fake_quant(x)
        mask = mask.copy_to_host() if hasattr(mask, "copy_to_host") else mask
        return _mask_grad(g, mask)

    def extra_repr(self):
        return (
            f"fake_quant_enabled={self.fake_quant_enabled}, observer_enabled={self.observer_enabled}, "
            f"quant_min={self.quant_min}, quant_max={self.quant_max}, dtype={self.dtype!r}, "
            f"qscheme={self.qscheme!r}, ch_axis={self.ch_axis}, scale={self.scale}, zero_point={self.zero_point}"
        )


class FixedQParamsFakeQuantize(FakeQuantize):
    """Fake quantization with the fixed parameters of a FixedQParamsObserver."""

    def __init__(self, observer):
        super().__init__(observer=observer)
        if type(self.activation_post_process) is not FixedQParamsObserver:
            raise TypeError(f"{type(self).__name__}'s observer must be a FixedQParamsObserver")
        self.scale = self.activation_post_process.scale
        self.zero_point = self.activation_post_process.zero_point
        if self.qscheme not in _PER_TENSOR:
            raise ValueError(f"{type(self).__name__} supports per-tensor schemes only, got {self.qscheme!r}")

    def calculate_qparams(self):
        return self.scale.copy(), self.zero_point.copy()


class FusedMovingAvgObsFakeQuantize(FakeQuantize):
    """Moving-average min/max observer and fake quantization in one step
    (``torch.fused_moving_avg_obs_fake_quant``).

    The running min/max update is ``isinf(r) ? batch : r + c * (batch - r)``
    in float32 (per channel: a channel starts when its running value is
    infinite); the parameters used by ``forward`` come from fbgemm's
    ``ChooseQuantizationParams`` (:func:`choose_qparams_fbgemm`), not from
    the observer's formula that :meth:`calculate_qparams` returns.
    Per-channel observation works on ``ch_axis == 0`` only, as in torch.
    """

    def __init__(self, observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, **observer_kwargs):
        super().__init__(observer, quant_min, quant_max, **observer_kwargs)
        if not isinstance(self.activation_post_process,
                          (MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver)):
            raise TypeError(
                "FusedMovingAvgObsFakeQuantize works with MovingAverageMinMaxObserver and "
                "MovingAveragePerChannelMinMaxObserver only"
            )
        self.fake_quant_enabled = np.array([1], dtype=np.int64)
        self.observer_enabled = np.array([1], dtype=np.int64)
        self.is_symmetric_quant = self.qscheme in _SYMMETRIC

    def calculate_qparams(self):
        return self.activation_post_process.calculate_qparams()

    def _observe(self, x):
        app = self.activation_post_process
        c = np.float32(app.averaging_constant)
        if self.is_per_channel:
            if self.ch_axis != 0:
                raise NotImplementedError(
                    "Per-channel FakeQuant in fused_moving_avg_obs_fake_quant is only supported on axis == 0"
                )
            cur_min, cur_max = _aminmax_axis(x, 0)
        else:
            mn, mx = _aminmax(x)
            cur_min = np.array(mn, dtype=np.float32)
            cur_max = np.array(mx, dtype=np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            run_min = np.where(np.isinf(app.min_val), cur_min, app.min_val + c * (cur_min - app.min_val))
            run_max = np.where(np.isinf(app.max_val), cur_max, app.max_val + c * (cur_max - app.max_val))
        app.min_val = np.asarray(run_min, dtype=np.float32).reshape(np.shape(cur_min))
        app.max_val = np.asarray(run_max, dtype=np.float32).reshape(np.shape(cur_max))

    def forward(self, x):
        """Update the running range, then fake-quantize with fbgemm's parameters."""
        xa = as_float_input(x, type(self).__name__)
        if xa.size == 0:
            return _copy(xa)
        app = self.activation_post_process
        if self.is_per_channel:
            if xa.ndim == 0:
                raise ValueError("per-channel fake quantization needs at least a 1-D input")
            nch = xa.shape[self.ch_axis]
            if app.min_val.size == 0:
                app.min_val = np.full(nch, np.inf, dtype=np.float32)
                app.max_val = np.full(nch, -np.inf, dtype=np.float32)
                self.scale = np.ones(nch, dtype=np.float32)
                self.zero_point = np.zeros(nch, dtype=np.int32)
            elif app.min_val.size != nch:
                raise ValueError(
                    f"the input has {nch} channels on axis {self.ch_axis} but the running range has {app.min_val.size}"
                )
        if self.observer_enabled[0] != 0:
            self._observe(xa)
        if self.fake_quant_enabled[0] == 0:
            return _copy(xa)
        s, z = choose_qparams_fbgemm(app.min_val, app.max_val, app.quant_min, app.quant_max,
                                     self.is_symmetric_quant)
        self.scale = s
        self.zero_point = z
        return self._fake_quant(xa)[0]

    def backward(self, x, grad_out):
        """``grad_out * mask`` (the mask is all ones when fake quantization is off)."""
        g = _grad_input(grad_out, np.shape(x), type(self).__name__)
        if self.fake_quant_enabled[0] == 0:
            return _mask_grad(g, np.ones(g.shape, dtype=bool))
        _, mask = self._fake_quant(x)
        mask = mask.copy_to_host() if hasattr(mask, "copy_to_host") else mask
        return _mask_grad(g, mask)


# ------------------------------------------------------------------ learnable

def _fma32(a, b, c):
    """``fl(a*b + c)`` with ONE rounding, elementwise on float32 arrays.

    torch's CPU kernels are compiled with floating-point contraction, so
    ``c + a*b`` is a fused multiply-add in them.  ``a*b`` is exact in float64;
    an error-free sum keeps the rest, and a float64 sum that lands exactly on
    a float32 midpoint is moved by the error's sign.
    """
    f64 = np.float64
    with np.errstate(all="ignore"):
        p = np.asarray(a, f64) * np.asarray(b, f64)
        c64 = np.asarray(c, f64)
        s = p + c64
        bb = s - p
        e = (p - (s - bb)) + (c64 - bb)
        f = s.astype(np.float32)
        fd = f.astype(f64)
        tied = np.isfinite(s) & np.isfinite(fd) & (e != 0) & (fd != s)
        if np.any(tied):
            up = s > fd
            g = np.nextafter(f, np.where(up, np.float32(np.inf), np.float32(-np.inf)).astype(np.float32))
            mid = tied & ((fd + g.astype(f64)) * 0.5 == s)
            # on a midpoint the error decides: above it rounds away from f toward g when e points there
            take_g = mid & ((e > 0) == (g.astype(f64) > fd))
            f = np.where(take_g, g, f)
    return np.asarray(f, dtype=np.float32)

def _torch_sum(v, threads):
    return np.float32(_dispatch.run("cascade_sum_threads", "cpu", np.ascontiguousarray(v).reshape(-1), threads))


def _learnable_grads(x, dy, s, zp, qmin, qmax, grad_factor, float_zp):
    """torch's learnable fake quantization gradient kernels on CPU, elementwise.

    ``s`` and ``zp`` are float32 and broadcast against ``x`` (``zp`` holds
    integers).  Returns ``(dx, dscale, dzero)`` before the sums:
    ``q = nearbyint(fma(x, 1/s, zp))`` (torch's kernels are compiled with
    contraction); inside ``[qmin, qmax]`` ``dscale = dy * fma(clamp(q) - zp,
    s, -x) / s``, outside ``dy * (qmin or qmax - zp)`` and ``dzero = -dy * s``;
    every product rounded to float32, times ``grad_factor``.  The per-tensor
    kernel subtracts the zero point in int64 (``float_zp=False``); the
    per-channel one in float32 after converting the integer (``True``): they
    differ beyond 2**24.
    """
    f32 = np.float32
    gf = f32(grad_factor)

    def minus_zp(q):
        if float_zp:
            return (np.asarray(q, f32) - zp).astype(f32)
        return (np.asarray(q, np.float64) - zp).astype(f32)  # exact difference, one rounding

    with np.errstate(all="ignore"):
        inv = (f32(1) / s).astype(f32)
        v = np.rint(_fma32(x, inv, zp)).astype(np.float64)
        ok = np.isfinite(v) & (np.abs(v) < 9.2e18)  # else the int64 cast gives INT64_MIN
        xq = np.where(ok, np.where(ok, v, 0), -(2.0**63))
        inside = (xq >= qmin) & (xq <= qmax)
        dx = (dy * inside.astype(f32)).astype(f32)
        diff = _fma32(minus_zp(np.clip(xq, qmin, qmax)), s, -x)
        d_in = (((dy * diff).astype(f32) * inv).astype(f32) * gf).astype(f32)
        edge = np.where(xq < qmin, minus_zp(qmin), minus_zp(qmax))
        d_out = ((dy * edge).astype(f32) * gf).astype(f32)
        dscale = np.where(inside, d_in, d_out).astype(f32)
        dzero = np.where(inside, f32(0), (((dy * f32(-1)).astype(f32) * s).astype(f32) * gf).astype(f32))
    return dx, dscale, dzero.astype(f32)


def _learnable_grads_per_tensor(x, dy, scale, zero_point, qmin, qmax, grad_factor, threads):
    """torch's ``_fake_quantize_learnable_per_tensor_affine_backward`` on CPU:
    the zero point is ``int(clamp(zp + 0.5))``; the sums are torch's."""
    f32 = np.float32
    zp = f32(int(min(max(f32(f32(zero_point) + f32(0.5)), f32(qmin)), f32(qmax))))  # C++ truncation
    dx, dscale, dzero = _learnable_grads(x, dy, f32(scale), zp, qmin, qmax, grad_factor, False)
    return dx, np.array([_torch_sum(dscale, threads)], f32), np.array([_torch_sum(dzero, threads)], f32)


def _learnable_grads_per_channel(x, dy, scale, zero_point, axis, qmin, qmax, grad_factor, threads):
    """torch's ``_fake_quantize_learnable_per_channel_affine_backward`` on CPU:
    zero points rounded half to even and clamped; per-channel sums are torch's."""
    f32 = np.float32
    shape = [1] * x.ndim
    shape[axis] = -1
    s = np.asarray(scale, f32).reshape(shape)
    zr = np.clip(np.rint(np.asarray(zero_point, f32)), f32(qmin), f32(qmax)).astype(f32).reshape(shape)
    dx, dscale, dzero = _learnable_grads(x, dy, s, zr, qmin, qmax, grad_factor, True)
    nch = x.shape[axis]
    if nch == 1:  # one output: torch reduces the whole tensor (thread split included)
        return dx, np.array([_torch_sum(dscale, threads)], f32), np.array([_torch_sum(dzero, threads)], f32)
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    gs = np.empty(nch, f32)
    gz = np.empty(nch, f32)
    _dispatch.run("cascade_sum_axis", "cpu", np.ascontiguousarray(dscale).reshape(-1), outer, nch, inner, gs)
    _dispatch.run("cascade_sum_axis", "cpu", np.ascontiguousarray(dzero).reshape(-1), outer, nch, inner, gz)
    return dx, gs, gz


class LearnableFakeQuantize(FakeQuantizeBase):
    """Fake quantization with learnable scale and zero point (LSQ), as torch's
    ``_LearnableFakeQuantize``.

    Parameters
    ----------
    observer : observer class or factory
        Gives static estimates of the parameters while ``static_enabled``.
    quant_min, quant_max : int
        Default 0 and 255; ``quant_min < quant_max``, inside the dtype.
    scale, zero_point : float
        Initial values (float32 parameters; ``zero_point`` is a float).
    channel_len : int
        -1 for per-tensor parameters, else the number of channels.
    use_grad_scaling : bool
        Scale the parameter gradients by ``1 / sqrt(x.size * quant_max)``.
    **observer_kwargs

    Notes
    -----
    ``forward`` rounds the zero point half to even; ``backward`` uses
    ``int(zero_point + 0.5)`` and adds the zero point BEFORE rounding
    ``x / scale`` (torch's kernels differ there).  The parameter gradients are
    torch's float32 sums, whose order depends on torch's thread count for
    32768 elements or more (per-tensor); see :meth:`backward`.
    """

    def __init__(self, observer, quant_min=0, quant_max=255, scale=1.0, zero_point=0.0,
                 channel_len=-1, use_grad_scaling=False, **observer_kwargs):
        super().__init__()
        lo, hi = check_int(quant_min, "quant_min"), check_int(quant_max, "quant_max")
        if lo >= hi:
            raise ValueError(f"quant_min ({lo}) must be strictly less than quant_max ({hi})")
        self.quant_min, self.quant_max = lo, hi
        observer_kwargs["quant_min"] = lo
        observer_kwargs["quant_max"] = hi
        self.use_grad_scaling = bool(use_grad_scaling)
        channel_len = check_int(channel_len, "channel_len")
        if channel_len == -1:
            n = 1
        elif channel_len > 0:
            n = channel_len
        else:
            raise ValueError(f"channel_len must be -1 (per-tensor) or a positive integer, got {channel_len}")
        self.scale = np.full(n, scale, dtype=np.float32)
        self.zero_point = np.full(n, zero_point, dtype=np.float32)
        self.activation_post_process = observer(**observer_kwargs)
        app = self.activation_post_process
        dmin, dmax = _dtype_bounds(app.dtype)
        if lo < dmin or hi > dmax:
            raise ValueError(f"[quant_min, quant_max] = [{lo}, {hi}] is outside the dtype's range [{dmin}, {dmax}]")
        self.dtype = app.dtype
        self.qscheme = app.qscheme
        if self.qscheme is per_channel_affine_float_qparams:
            raise NotImplementedError("LearnableFakeQuantize supports integer zero points only")
        self.ch_axis = getattr(app, "ch_axis", -1)
        self.fake_quant_enabled = np.array([1], dtype=np.uint8)
        self.static_enabled = np.array([1], dtype=np.uint8)
        self.learning_enabled = np.array([0], dtype=np.uint8)
        self.bitwidth = int(np.log2(float(hi - lo + 1)))
        self.eps = np.array([FLOAT32_EPS], dtype=np.float32)

    # -- flags, as torch ------------------------------------------------------
    def enable_param_learning(self):
        """Learn the parameters; no observer updates."""
        self.toggle_qparam_learning(enabled=True).toggle_fake_quant(enabled=True).toggle_observer_update(enabled=False)
        return self

    def enable_static_estimate(self):
        """Take the parameters from the observer."""
        self.toggle_qparam_learning(enabled=False).toggle_fake_quant(enabled=True).toggle_observer_update(enabled=True)

    def enable_static_observation(self):
        """Observe only; forward returns the input."""
        self.toggle_qparam_learning(enabled=False).toggle_fake_quant(enabled=False).toggle_observer_update(enabled=True)

    def toggle_observer_update(self, enabled=True):
        self.static_enabled[0] = int(enabled)
        return self

    def enable_observer(self, enabled=True):
        self.toggle_observer_update(enabled)

    def disable_observer(self):
        self.toggle_observer_update(False)

    def toggle_qparam_learning(self, enabled=True):
        self.learning_enabled[0] = int(enabled)
        return self

    def toggle_fake_quant(self, enabled=True):
        self.fake_quant_enabled[0] = int(enabled)
        return self

    def calculate_qparams(self):
        """``(scale, zero_point)``: the scale clamped to eps (in place, as torch)
        and the zero point rounded half to even, clamped, as int64."""
        self.scale = np.maximum(self.scale, self.eps[0]).astype(np.float32)
        zp = np.clip(np.rint(self.zero_point), self.quant_min, self.quant_max).astype(np.int64)
        return self.scale.copy(), zp

    # -- computation ------------------------------------------------------------
    def _per_channel(self):
        return self.qscheme in (per_channel_symmetric, per_channel_affine)

    def _grad_factor(self, n):
        return 1.0 / (n * self.quant_max) ** 0.5 if self.use_grad_scaling else 1.0

    def forward(self, x):
        """Observe (while static estimates are on) and fake-quantize ``x``."""
        if self.static_enabled[0] == 1:
            self.activation_post_process(x)
            s, z = self.activation_post_process.calculate_qparams()
            self.scale = np.broadcast_to(np.asarray(s, np.float32), self.scale.shape).copy()
            self.zero_point = np.broadcast_to(np.asarray(z).astype(np.float32), self.zero_point.shape).copy()
        else:
            self.scale = np.maximum(self.scale, self.eps[0]).astype(np.float32)
        if self.fake_quant_enabled[0] != 1:
            return x
        if self.qscheme in (per_channel_symmetric, per_tensor_symmetric):
            self.zero_point = np.zeros_like(self.zero_point)
        qmin, qmax = self.quant_min, self.quant_max
        if self._per_channel():
            zp = np.clip(np.rint(self.zero_point), qmin, qmax).astype(np.int64)
            return fake_quantize_per_channel_affine(x, self.scale, zp, self.ch_axis, qmin, qmax)
        zp = int(min(max(np.rint(self.zero_point[0]), np.float32(qmin)), np.float32(qmax)))
        return fake_quantize_per_tensor_affine(x, float(self.scale[0]), zp, qmin, qmax)

    def backward(self, x, grad_out, *, threads=None):
        """``(grad_x, grad_scale, grad_zero_point)`` as torch's autograd gives them.

        Parameters
        ----------
        x : array_like
            The input of the forward pass.
        grad_out : array_like
            The gradient of the output, shaped like ``x``.
        threads : int, optional
            torch's intra-op thread count, which decides the order of its
            float32 sum over 32768 or more elements (per-tensor parameters,
            or a single channel).  Default: the CPUs this process may use,
            torch's default.

        Returns
        -------
        tuple
            ``grad_x`` (float32, shaped like ``x``) and the float32 scale and
            zero-point gradients (one per channel); both are None while fake
            quantization is disabled (the parameters take no part).
        """
        name = type(self).__name__
        xh = np.ascontiguousarray(_host_input(x, name), dtype=np.float32)
        g = _grad_input(grad_out, xh.shape, name)
        if self.fake_quant_enabled[0] != 1:
            return g.copy(), None, None
        qmin, qmax = self.quant_min, self.quant_max
        if not qmin <= 0 <= qmax:
            raise ValueError("the learnable fake quantization backward needs quant_min <= 0 <= quant_max")
        nthreads = _default_threads() if threads is None else check_int(threads, "threads")
        gf = self._grad_factor(xh.size)
        if xh.size == 0:
            return g.copy(), np.zeros_like(self.scale), np.zeros_like(self.zero_point)
        if self._per_channel():
            axis = self.ch_axis % xh.ndim
            return _learnable_grads_per_channel(xh, g, self.scale, self.zero_point, axis, qmin, qmax, gf, nthreads)
        return _learnable_grads_per_tensor(xh, g, self.scale[0], self.zero_point[0], qmin, qmax, gf, nthreads)

    def extra_repr(self):
        return (
            f"fake_quant_enabled={self.fake_quant_enabled}, static_enabled={self.static_enabled}, "
            f"learning_enabled={self.learning_enabled}, quant_min={self.quant_min}, "
            f"quant_max={self.quant_max}, scale={self.scale}, zero_point={self.zero_point}"
        )


#: torch's private name for the learnable module.
_LearnableFakeQuantize = LearnableFakeQuantize


# ------------------------------------------------------------------ helpers on modules
def disable_fake_quant(mod):
    """Disable fake quantization of ``mod`` if it is a fake quantization module."""
    if isinstance(mod, FakeQuantizeBase):
        mod.disable_fake_quant()


def enable_fake_quant(mod):
    """Enable fake quantization of ``mod`` if it is a fake quantization module."""
    if isinstance(mod, FakeQuantizeBase):
        mod.enable_fake_quant()


def disable_observer(mod):
    """Disable observation of ``mod`` if it is a fake quantization module."""
    if isinstance(mod, FakeQuantizeBase):
        mod.disable_observer()


def enable_observer(mod):
    """Enable observation of ``mod`` if it is a fake quantization module."""
    if isinstance(mod, FakeQuantizeBase):
        mod.enable_observer()


# ------------------------------------------------------------------ defaults
default_fake_quant = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=quint8,
    qscheme=per_tensor_affine, reduce_range=True,
)
"""Default fake quantization of activations."""
default_weight_fake_quant = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=qint8,
    qscheme=per_tensor_symmetric, reduce_range=False,
)
"""Default fake quantization of weights."""
default_dynamic_fake_quant = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, is_dynamic=True,
    dtype=quint8, averaging_constant=1,
)
default_fixed_qparams_range_neg1to1_fake_quant = FixedQParamsFakeQuantize.with_args(
    observer=default_fixed_qparams_range_neg1to1_observer
)
default_fixed_qparams_range_0to1_fake_quant = FixedQParamsFakeQuantize.with_args(
    observer=default_fixed_qparams_range_0to1_observer
)
default_symmetric_fixed_qparams_fake_quant = default_fixed_qparams_range_neg1to1_fake_quant
default_affine_fixed_qparams_fake_quant = default_fixed_qparams_range_0to1_fake_quant
default_per_channel_weight_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127, dtype=qint8,
    qscheme=per_channel_symmetric, reduce_range=False, ch_axis=0,
)
default_embedding_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, qscheme=per_channel_affine_float_qparams,
    dtype=quint8, quant_min=0, quant_max=255, ch_axis=0, averaging_constant=1,
)
default_embedding_fake_quant_4bit = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, qscheme=per_channel_affine_float_qparams,
    ch_axis=0, dtype=quint4x2, averaging_constant=1,
)
default_histogram_fake_quant = FakeQuantize.with_args(
    observer=HistogramObserver, quant_min=0, quant_max=255, dtype=quint8,
    qscheme=per_tensor_affine, reduce_range=True,
)
default_fused_act_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=quint8,
)
default_fused_wt_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=qint8,
    qscheme=per_tensor_symmetric,
)
default_fused_per_channel_wt_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127, dtype=qint8,
    qscheme=per_channel_symmetric,
)
fused_wt_fake_quant_range_neg_127_to_127 = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=-127, quant_max=127, dtype=qint8,
    qscheme=per_tensor_symmetric, eps=2**-12,
)
fused_per_channel_wt_fake_quant_range_neg_127_to_127 = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-127, quant_max=127, dtype=qint8,
    qscheme=per_channel_symmetric, eps=2**-12,
)
