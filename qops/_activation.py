"""Quantized activations: relu, relu6, hardtanh, clamp, threshold, leaky_relu,
hardswish, elu, celu, hardsigmoid, sigmoid, tanh, gelu, prelu.

Every op but prelu maps each input byte to one output byte, so each call
builds a 256-entry table with the chosen profile's exact arithmetic (NumPy
float32 emulation of torch 2.13's ATen kernels, or the ideal value for
``reference``) and the kernels (:mod:`qops.kernels.cpu.activation`, CUDA
twins) look every element up.  torch evaluates most of these ops with two
formulas: a vectorised one (``Vectorized<float>``, 16 lanes; dequantize as
``fma(s, q, -s*zp)``; quantize as ``rne(fl(y*inv)) + zp``) on whole 64-byte
vectors of a contiguous run, and a scalar one (``dequantize_val``,
``quantize_val``: ``rne(fl(fl(y*inv) + zp))``) on the run's last ``n % 64``
elements and on inputs whose innermost dimension is strided.  The table has a
row for each and the kernel picks the row by position, as torch does.

validate -> canonicalise (torch's loop geometry, a flat run layout) -> build
the table -> kernel -> wrap.  ``docs/ops_activation.md`` has the details.
"""

from __future__ import annotations

import functools
import math
import numbers
import threading
from collections import OrderedDict
from fractions import Fraction

import numpy as np

from . import _dispatch, _threading
from ._device import is_cuda_array, params_to_device
from ._validate import check_scale, check_zero_point
from .dtypes import per_tensor_affine, per_tensor_symmetric, qint8, qint32, quint8
from .numerics import _current as _numerics_var
from .numerics import resolve_numerics
from .qtensor import QTensor

__all__ = [
    "relu",
    "relu6",
    "hardtanh",
    "clamp",
    "threshold",
    "leaky_relu",
    "hardswish",
    "elu",
    "celu",
    "hardsigmoid",
    "sigmoid",
    "tanh",
    "gelu",
    "prelu",
]

f32 = np.float32
_TORCH = ("fbgemm", "qnnpack", "onednn")
_INT32_FLOAT_MAX = f32(2147483520.0)
#: C's M_SQRT1_2, M_SQRT2, M_2_SQRTPI (double)
_SQRT1_2 = 0.70710678118654752440
_SQRT2 = 1.41421356237309504880
_2_SQRTPI = 1.12837916709551257390
_erf64 = np.vectorize(math.erf, otypes=[np.float64])


# ------------------------------------------------------------------ checks
def _check_input(x, op, qint32_ok=False):
    """A per-tensor quint8 / qint8 QTensor (also qint32 for the integer
    selections, ``qint32_ok``: relu, relu6, hardtanh, clamp)."""
    if not isinstance(x, QTensor):
        raise TypeError(
            f"{op} expects a quantized input (a QTensor), got {type(x).__name__}; "
            "quantize it first with qops.quantize_per_tensor"
        )
    if x._dtype is qint32 and not qint32_ok:
        raise NotImplementedError(
            f"{op}: qint32 inputs are not supported (torch 2.13 takes them, through float "
            "arithmetic qops does not reproduce for 32-bit integers; relu, relu6, hardtanh and "
            "clamp do take qint32); requantize to quint8 or qint8 with qops.requantize"
        )
    if x._dtype not in (quint8, qint8, qint32):
        raise TypeError(f"{op} expects a quint8 or qint8 input, got {x.dtype.name}")
    if x._axis is not None or x._qscheme not in (per_tensor_affine, per_tensor_symmetric):
        raise ValueError(
            f"{op} expects a per-tensor quantized input, got {x.qscheme().name}; requantize "
            "it to one scale with qops.requantize"
        )
    if not isinstance(x._data, np.ndarray) and not is_cuda_array(x._data):
        raise TypeError(f"{op}: the input's data is neither a NumPy nor a CUDA device array")
    return x


def _real(v, what, op, allow_inf=False):
    if type(v) is not float:  # the common case skips the slow abstract-class test
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{op}: {what} must be a real number, got {type(v).__name__}")
        v = float(v)
    if v != v or (not allow_inf and not math.isfinite(v)):
        raise ValueError(f"{op}: {what} must be a finite number, got {v!r}")
    return v


#: the default profile now (``resolve_numerics(None)``, briefly)
_current_numerics = _numerics_var.get


def _profile(numerics, op, selection=False):
    """The profile; non-torch peers only for pure integer selections."""
    p = resolve_numerics(numerics)
    if p in _TORCH or p == "reference" or selection:
        return p
    raise NotImplementedError(
        f"{op} under numerics '{p}' is not implemented: qops reproduces torch 2.13's "
        f"arithmetic and the ideal result only; use numerics='fbgemm' or 'reference'"
    )


def _out_qparams(x, scale, zero_point, op):
    s = check_scale(scale, "scale")
    z = check_zero_point(zero_point, x._dtype, "zero_point")
    return s, z


# ------------------------------------------------- torch's float arithmetic
def _values(dtype):
    """The integer value of each byte 0..255 of ``dtype``'s storage (int64)."""
    return np.arange(256, dtype=np.uint8).view(dtype.storage).astype(np.int64)


def _dq_scalar(q, zp, s):
    """torch ``dequantize_val``: ``fl((q - zp) * s)``."""
    return (q - zp).astype(f32) * f32(s)


def _dq_vec(q, zp, s):
    """``Vectorized::dequantize(scale, zp, premul)``: ``fma(s, q, fl(s * -zp))``.

    ``s*q + pre`` is exact in float64 (a 24-bit by 9-bit product and a float32
    of the same magnitude), so the one float32 rounding below is the FMA's.
    """
    s = f32(s)
    pre = f32(s * f32(-zp))
    return (np.float64(s) * q.astype(np.float64) + np.float64(pre)).astype(f32)


def _q_vec(y, inv, zp, qmin, qmax):
    """``Vectorized::quantize``: ``rne(min(fl(y*inv), 2147483520)) + zp``, clamped."""
    t = np.asarray(y, f32) * f32(inv)
    t = np.where(np.isnan(t), _INT32_FLOAT_MAX, np.minimum(t, _INT32_FLOAT_MAX))
    r = np.where(t < -2147483648.0, -(2**31), np.rint(np.maximum(t, f32(-2147483648.0))))
    return np.clip(r.astype(np.int64) + zp, qmin, qmax)


def _q_scalar(y, scale, zp, qmin, qmax):
    """torch ``quantize_val``: ``rne(fl(fl(y * fl(1/fl(s))) + zp))`` (two roundings), clamped.

    fbgemm's scalar ``Quantize`` rounds the product, adds the zero point in
    float32, then rounds to an integer (measured against torch 2.13.0: the
    fused form and "round, then add zp" each miss exact ties).
    """
    inv = f32(1.0) / f32(scale)
    t = (np.asarray(y, f32) * inv + f32(zp)).astype(f32)
    t = np.where(np.isnan(t), f32(qmax), t)
    return np.clip(np.rint(t), qmin, qmax).astype(np.int64)


@functools.lru_cache(maxsize=1024)
def _q_scalar1(v, scale, zp, qmin, qmax):
    """:func:`_q_scalar` of one value, as a Python int (memoised: a model
    clamps with the same bounds and qparams call after call)."""
    with np.errstate(all="ignore"):
        t = f32(f32(f32(v) * (f32(1.0) / f32(scale))) + f32(zp))
    if t != t:
        return qmax
    return int(min(max(float(np.rint(t)), qmin), qmax))


@functools.lru_cache(maxsize=1024)
def _torch_bounds(mn, mx, scale, zp, qmin, qmax):
    """The integer bounds of torch's clamp of ``[mn, mx]`` (either None: no
    bound), as ``(lo, hi)`` for ``min(max(q, lo), hi)`` (one memoised call
    per clamp call)."""
    a = qmin if mn is None else _q_scalar1(mn, scale, zp, qmin, qmax)
    b = qmax if mx is None else _q_scalar1(mx, scale, zp, qmin, qmax)
    # max(q, a) then min(., b): a > b gives b everywhere, as torch
    return min(a, b), b


def _inv_f64(s):
    """``static_cast<float>(1.0 / s)`` of the float32 scale."""
    return f32(1.0 / np.float64(f32(s)))


def _erf_vec(u):
    """torch's vectorised erf (Abramowitz-Stegun with FMAs, kernels/cpu/activation.py)."""
    from .kernels.cpu.activation import erf_vec

    u = np.ascontiguousarray(u, f32)
    return erf_vec(u, _f(np.exp, -(u * u)))


def _f(fn, x):
    """A float32 transcendental: the float64 value rounded once to float32."""
    return fn(np.asarray(x, f32).astype(np.float64)).astype(f32)


_LIBM: dict = {}
_LIBM_SINGLE = ("tanhf", "expf", "expm1f")


def _libm(name, x):
    """The C library's ``name`` (``tanhf``, ``expf``, ``expm1f``: float32;
    ``erf``, ``tanh``: double) on each element of ``x``.

    torch's scalar lambdas call ``std::tanh``/``std::exp``/``std::expm1``/``std::erf``,
    that is the process's libm (glibc's ``tanhf`` and ``expm1f`` are not
    correctly rounded); qops calls the same functions.  Without a loadable
    libm it falls back to the correctly rounded value.
    """
    fn = _LIBM.get(name)
    if fn is None:
        import ctypes
        import ctypes.util

        single = name in _LIBM_SINGLE
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
            fn = getattr(lib, name)
            c = ctypes.c_float if single else ctypes.c_double
            fn.restype, fn.argtypes = c, [c]
        except (OSError, AttributeError):  # pragma: no cover - no C libm
            base = {"tanhf": np.tanh, "expf": np.exp, "expm1f": np.expm1,
                    "tanh": np.tanh, "erf": _erf64}[name]
            fn = (lambda v, base=base: float(base(np.float64(v))))
        _LIBM[name] = fn
    dt = f32 if name in _LIBM_SINGLE else np.float64
    xs = np.asarray(x, dt)
    return np.array([fn(float(v)) for v in xs.reshape(-1)], dt).reshape(xs.shape)


def _expm1_vec(x):
    """Sleef's vectorised float32 expm1 (``Sleef_expm1f16_u10``, ported)."""
    from .kernels.cpu.activation import sleef_expm1f

    return sleef_expm1f(np.ascontiguousarray(x, f32))


# ------------------------------------------------------------- the reference
def _ref_round(y, so, zo, qmin, qmax):
    """``clamp(rne(y / so) + zo)`` of exact values ``y`` (Fractions or floats)."""
    d = Fraction(float(so))
    out = np.empty(len(y), np.int64)
    for i, v in enumerate(y):
        if isinstance(v, float) and not math.isfinite(v):
            out[i] = qmax if v > 0 else qmin
            continue
        r = Fraction(v) / d
        n = round(r)  # Python rounds a Fraction half to even
        out[i] = min(max(n + zo, qmin), qmax)
    return out


def _x_exact(q, zp, s):
    """Exact real inputs ``(q - zp) * s`` (float64 holds them exactly)."""
    return (q - zp).astype(np.float64) * np.float64(f32(s))


# ------------------------------------------------------------------ running
def _geometry(data):
    """torch's loop over ``data``: ``(array in loop order, run, inverse perm)``.

    A dense array whose memory order is C order (or channels-last for 4-D and
    5-D arrays, where torch keeps that format) is one run of ``size``; with a
    contiguous innermost dimension the runs are the trailing dense block; a
    strided innermost dimension runs torch's scalar path only (run ``None``).
    """
    nd = data.ndim
    perm = None
    if isinstance(data, np.ndarray) and not data.flags.c_contiguous and nd in (4, 5):
        p = (0,) + tuple(range(2, nd)) + (1,)
        if data.transpose(p).flags.c_contiguous:
            perm = p
    if perm is not None:
        return data.transpose(perm), data.size, tuple(np.argsort(perm))
    if is_cuda_array(data):
        if not data.is_c_contiguous():
            raise NotImplementedError(
                "strided CUDA inputs are not supported; make the array contiguous first"
            )
        return data, data.size, None
    if data.flags.c_contiguous:
        return data, data.size, None
    item = data.itemsize
    dims = [(n, st) for n, st in zip(data.shape, data.strides) if n != 1]
    if not dims or dims[-1][1] != item:
        return data, None, None
    run, expect = dims[-1][0], dims[-1][0] * item
    for n, st in reversed(dims[:-1]):
        if st != expect:
            break
        run *= n
        expect *= n
    return data, run, None


def _launch(x, kernel, args, so, zo):
    """Run ``activation.<kernel>(x_flat, out_flat, *args)`` in torch's loop order
    (:func:`_geometry`) and wrap the result with ``(so, zo)``.  ``args`` is a
    callable ``run -> tuple`` (the table layout can depend on the run)."""
    dtype = x._dtype
    store = dtype.storage
    data = x._data
    if type(data) is np.ndarray and data.flags.c_contiguous and kernel != "clamp_apply":
        # the common case, briefly (the clamps have their own: _clamp_run)
        out = np.empty(data.shape, store)
        n = data.size
        if n:
            _dispatch.run(f"activation.{kernel}", "cpu", data.ravel().view(np.uint8),
                          out.ravel().view(np.uint8), *args(n))
        return QTensor._per_tensor(out, dtype, so, zo)
    data, run, inv = _geometry(data)
    shape = data.shape
    n = math.prod(shape)  # Python ints: np.prod costs microseconds a call
    view = np.uint8 if kernel != "clamp_apply" else store
    if is_cuda_array(data):
        from numba import cuda

        out = cuda.device_array(n, store)
        if n:
            dev = tuple(params_to_device(a)[0] if isinstance(a, np.ndarray) else a for a in args(run))
            _dispatch.run(f"activation.{kernel}", "cuda", data.reshape(n).view(view),
                          out.view(view), *dev)
        return QTensor._per_tensor(out.reshape(shape), dtype, so, zo)
    flat = np.ascontiguousarray(data).reshape(n)
    out = np.empty(n, store)
    if n:
        if view is store:
            _dispatch.run(f"activation.{kernel}", "cpu", flat, out, *args(run))
        else:
            _dispatch.run(f"activation.{kernel}", "cpu", flat.view(view), out.view(view), *args(run))
    out = out.reshape(shape)
    if inv is not None:
        out = out.transpose(inv)
    return QTensor._per_tensor(out, dtype, so, zo)


def _apply(x, lut_vec, lut_scalar, so, zo):
    """Look every element of ``x`` up; the output QTensor has ``(so, zo)``."""
    store = x._dtype.storage

    def args(run):
        if run is None:  # torch's scalar path only
            return np.stack([lut_scalar, lut_scalar]).astype(store).view(np.uint8), 0
        return np.stack([lut_vec, lut_scalar]).astype(store).view(np.uint8), run

    return _launch(x, "lut_apply", args, so, zo)


@functools.lru_cache(maxsize=256)
def _bounds(st, lo, hi):
    """``(lo, hi)`` as NumPy scalars of the storage type ``st`` (made once)."""
    return st(lo), st(hi)


#: the clamps' CPU kernel, resolved once for their short path
_clamp_apply = _dispatch.kernel("activation.clamp_apply", "cpu")


def _clamp_short(x, lo, hi):
    """The clamp of a C-contiguous NumPy input to the bounds ``lo``, ``hi``
    (storage scalars), or None for any other input: :func:`_launch`'s
    common case, shorter.

    It runs without the process-wide kernel lock (after the layer choice it
    guards): the clamp runs no ``prange`` loop, and hands its parts to the
    pool only when it takes the pool atomically, running them on its own
    thread otherwise (``docs/threading.md``).  The lock's acquire and
    release took about 0.7 us of a 1M-byte relu's 15."""
    data = x._data
    if type(data) is not np.ndarray or not data.flags.c_contiguous:
        return None
    out = np.empty(data.shape, data.dtype)
    if not _threading._configured:
        _threading.kernel_lock()  # chooses the layer before the pool's first thread count
    _clamp_apply(data.ravel(), out.ravel(), lo, hi)  # (views: C-contiguous)
    return x._affine_like(out)


def _clamp_run(x, lo, hi):
    """Integer clamp ``min(max(q, lo), hi)`` with the input's qparams."""
    b = _bounds(x._dtype.storage.type, lo, hi)
    out = _clamp_short(x, *b)
    if out is not None:
        return out
    return _launch(x, "clamp_apply", lambda run: b, x._scale, x._zero_point)


#: relu's bounds ``(zero point, qmax)`` as storage scalars, per checked
#: ``(dtype, zero point)`` of a per-tensor input: a call that finds them
#: skips the checks (at most ``_KNOWN_MAX`` kept)
_RELU_BOUNDS: dict = {}
#: hardtanh's bounds likewise, per checked ``(dtype, scale, zero point,
#: min_val, max_val)`` with float bounds under a torch profile
_HARDTANH_BOUNDS: dict = {}
_KNOWN_MAX = 1024


_TABLES: "OrderedDict[tuple, tuple]" = OrderedDict()
_TABLES_MAX = 512
_TABLES_LOCK = threading.Lock()


def _pointwise(x, profile, so, zo, torch_luts, reference, key):
    """Build (or reuse) the tables for ``profile`` and apply them.

    Tables are cached per (op ``key``, profile, dtype, input and output
    qparams): a model calls an activation with the same qparams every time.
    """
    full = (key, profile, x._dtype.name, x._scale, x._zero_point, so, zo)
    with _TABLES_LOCK:
        hit = _TABLES.get(full)
        if hit is not None:
            _TABLES.move_to_end(full)
    if hit is None:
        q = _values(x._dtype)
        lo, hi = x._dtype.qmin, x._dtype.qmax
        with np.errstate(all="ignore"):  # exp/expm1 of masked-out lanes may overflow
            if profile == "reference":
                hit = (reference(q, lo, hi),) * 2
            else:
                hit = torch_luts(q, lo, hi)
        with _TABLES_LOCK:
            _TABLES[full] = hit
            if len(_TABLES) > _TABLES_MAX:
                _TABLES.popitem(last=False)
    return _apply(x, hit[0], hit[1], so, zo)


# ------------------------------------------------------------- selections
def relu(input, *, numerics=None) -> QTensor:
    """Quantized ReLU: ``max(q, zero_point)``; the input's scale and zero point carry over.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8, qint8 or qint32, any shape and strides, CPU or CUDA.
    numerics : str, optional
        Every profile gives the same result (a pure integer selection).

    Returns
    -------
    QTensor

    Raises
    ------
    TypeError
        A non-QTensor input.

    Examples
    --------
    >>> import numpy as np, qops
    >>> q = qops.quantize_per_tensor(np.float32([-1, 0.5, 2]), 0.5, 3, qops.quint8)
    >>> qops.functional.relu(q).int_repr()
    array([3, 4, 7], dtype=uint8)
    """
    if numerics is None and type(input) is QTensor:  # a known dtype and zero point: briefly
        b = _RELU_BOUNDS.get((input._dtype, input._zero_point))
        if b is not None:
            # _clamp_short's steps, written out: calling it took 0.4 us of
            # the 15 us of a relu of 1M bytes (as did passing ``*b``)
            data = input._data
            if type(data) is np.ndarray and data.flags.c_contiguous:
                out = np.empty(data.shape, data.dtype)
                lo, hi = b
                _clamp_apply(data.ravel(), out.ravel(), lo, hi)
                return input._affine_like(out)
    x = _check_input(input, "relu", qint32_ok=True)
    if numerics is not None:  # (any profile: only a name to check)
        _profile(numerics, "relu", selection=True)
    dtype, zp = x._dtype, x._zero_point
    if len(_RELU_BOUNDS) < _KNOWN_MAX:
        _threading.kernel_lock()  # (chooses the layer: the short path above does not look)
        _RELU_BOUNDS[dtype, zp] = _bounds(dtype.storage.type, zp, dtype.qmax)
    return _clamp_run(x, zp, dtype.qmax)


def _clamp_impl(x, mn, mx, profile):
    s, z = x._scale, x._zero_point
    lo, hi = x._dtype.qmin, x._dtype.qmax
    if profile != "reference":
        return _clamp_run(x, *_torch_bounds(mn, mx, s, z, lo, hi))
    if x._dtype is qint32:
        # too many levels for tables; clamping the exact value and rounding
        # once is clamping the integers to the exactly rounded bounds
        a = lo if mn is None else int(_ref_round([mn], s, z, lo, hi)[0])
        b = hi if mx is None else int(_ref_round([mx], s, z, lo, hi)[0])
        return _clamp_run(x, min(a, b), b)

    def reference(q, lo, hi):
        y = []
        for v in _x_exact(q, z, s):
            if mn is not None and v < mn:
                v = mn
            if mx is not None and v > mx:
                v = mx
            y.append(v)
        return _ref_round(y, s, z, lo, hi)

    return _pointwise(x, profile, s, z, None, reference, ("clamp", mn, mx))


def relu6(input, *, numerics=None) -> QTensor:
    """Quantized ReLU6: ``clamp(q, quantize(0), quantize(6))``; the input's qparams carry over.

    torch 2.13 quantizes the bounds with ``quantize_val`` and clamps the
    integers; ``reference`` rounds ``clamp(x, 0, 6)`` exactly instead.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8, qint8 or qint32.
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference.

    Returns
    -------
    QTensor
    """
    x = _check_input(input, "relu6", qint32_ok=True)
    p = _profile(numerics, "relu6")
    return _clamp_impl(x, 0.0, 6.0, p)


def hardtanh(input, min_val=-1.0, max_val=1.0, *, numerics=None) -> QTensor:
    """Quantized hardtanh: the integers clamped to ``[quantize(min_val), quantize(max_val)]``.

    The input's scale and zero point carry over; the bounds are rounded to
    float32 and quantized with torch's ``quantize_val``.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8, qint8 or qint32.
    min_val, max_val : float
        ``min_val <= max_val``.
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference.

    Returns
    -------
    QTensor

    Raises
    ------
    ValueError
        ``min_val > max_val`` or NaN bounds.
    """
    if numerics is None and type(input) is QTensor and type(min_val) is float and type(max_val) is float:
        key = (input._dtype, input._scale, input._zero_point, min_val, max_val)
        b = _HARDTANH_BOUNDS.get(key)  # known bounds of a checked call: briefly
        if b is not None and _current_numerics() in _TORCH:
            lo, hi = b
            out = _clamp_short(input, lo, hi)
            if out is not None:
                return out
    x = _check_input(input, "hardtanh", qint32_ok=True)
    p = _profile(numerics, "hardtanh")
    mn = _real(min_val, "min_val", "hardtanh", allow_inf=True)
    mx = _real(max_val, "max_val", "hardtanh", allow_inf=True)
    if mn > mx:
        raise ValueError(f"hardtanh: min_val ({mn}) must not exceed max_val ({mx})")
    if p in _TORCH and type(min_val) is float and type(max_val) is float and len(_HARDTANH_BOUNDS) < _KNOWN_MAX:
        dtype = x._dtype
        lo, hi = _torch_bounds(mn, mx, x._scale, x._zero_point, dtype.qmin, dtype.qmax)
        _HARDTANH_BOUNDS[dtype, x._scale, x._zero_point, min_val, max_val] = _bounds(dtype.storage.type, lo, hi)
    return _clamp_impl(x, mn, mx, p)


def clamp(input, min_, max_, *, numerics=None) -> QTensor:
    """Quantized clamp: the integers clamped to ``[quantize(min_), quantize(max_)]``.

    As torch: ``max(q, quantize(min_))`` then ``min(., quantize(max_))``, so
    ``min_ > max_`` gives ``quantize(max_)`` everywhere.  Either bound may be
    ``None`` (not both).  The input's scale and zero point carry over.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8, qint8 or qint32.
    min_, max_ : float or None
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference.

    Returns
    -------
    QTensor
    """
    x = _check_input(input, "clamp", qint32_ok=True)
    p = _profile(numerics, "clamp")
    if min_ is None and max_ is None:
        raise ValueError("clamp: at least one of min_ and max_ must be given")
    mn = None if min_ is None else _real(min_, "min_", "clamp", allow_inf=True)
    mx = None if max_ is None else _real(max_, "max_", "clamp", allow_inf=True)
    return _clamp_impl(x, mn, mx, p)


# ------------------------------------------------------- float activations
def threshold(input, threshold, value, *, numerics=None) -> QTensor:
    """Quantized threshold: ``x if x > threshold else value``, requantized to the input's qparams.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8 or qint8.
    threshold, value : float
        Rounded to float32 as torch does.
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference.

    Returns
    -------
    QTensor
    """
    x = _check_input(input, "threshold")
    p = _profile(numerics, "threshold")
    th = _real(threshold, "threshold", "threshold", allow_inf=True)
    va = _real(value, "value", "threshold")
    s, z = x._scale, x._zero_point

    def luts(q, lo, hi):
        t, v = f32(th), f32(va)
        xv = _dq_vec(q, z, s)
        yv = np.where(xv > t, xv, v)
        xs = _dq_scalar(q, z, s)
        ys = np.where(xs > t, xs, v)
        return _q_vec(yv, _inv_f64(s), z, lo, hi), _q_scalar(ys, s, z, lo, hi)

    def reference(q, lo, hi):
        xe = _x_exact(q, z, s)
        return _ref_round([a if a > th else va for a in xe], s, z, lo, hi)

    return _pointwise(x, p, s, z, luts, reference, ("threshold", th, va))


def leaky_relu(input, negative_slope=0.01, scale=None, zero_point=None, *, numerics=None) -> QTensor:
    """Quantized leaky ReLU: ``x if x > 0 else negative_slope * x``.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8 or qint8.
    negative_slope : float
        Rounded to float32.
    scale, zero_point : float, int, optional
        Output qparams; both ``None`` (default) means the input's.
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference.

    Returns
    -------
    QTensor
    """
    x = _check_input(input, "leaky_relu")
    p = _profile(numerics, "leaky_relu")
    a = _real(negative_slope, "negative_slope", "leaky_relu")
    if (scale is None) != (zero_point is None):
        raise ValueError("leaky_relu: give both scale and zero_point, or neither")
    if scale is None:
        so, zo = x._scale, x._zero_point
    else:
        so, zo = _out_qparams(x, scale, zero_point, "leaky_relu")
    s, z = x._scale, x._zero_point

    def luts(q, lo, hi):
        neg = f32(a)
        xv = _dq_vec(q, z, s)
        yv = xv * np.where(xv > 0, f32(1), neg)
        xs = _dq_scalar(q, z, s)
        ys = np.where(xs > 0, xs, xs * neg)
        return _q_vec(yv, f32(1) / f32(so), zo, lo, hi), _q_scalar(ys, so, zo, lo, hi)

    def reference(q, lo, hi):
        fa = Fraction(a)
        return _ref_round([Fraction(v) if v > 0 else Fraction(v) * fa for v in _x_exact(q, z, s)],
                          so, zo, lo, hi)

    return _pointwise(x, p, so, zo, luts, reference, ("leaky_relu", a))


def _hsig(x):
    return np.minimum(np.maximum(x + f32(3), f32(0)), f32(6)) / f32(6)


def _hsig_exact(v):
    return min(max(Fraction(v) + 3, Fraction(0)), Fraction(6)) / 6


def hardswish(input, scale, zero_point, *, numerics=None) -> QTensor:
    """Quantized hardswish ``x * clamp(x + 3, 0, 6) / 6`` into the given qparams.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8 or qint8.
    scale, zero_point : float, int
        Output qparams.
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference.

    Returns
    -------
    QTensor
    """
    x = _check_input(input, "hardswish")
    p = _profile(numerics, "hardswish")
    so, zo = _out_qparams(x, scale, zero_point, "hardswish")
    s, z = x._scale, x._zero_point

    def luts(q, lo, hi):
        if p == "qnnpack" and x._dtype is quint8:  # torch runs QNNPACK's table
            xs = _dq_scalar(q, z, s)
            y = xs * np.minimum(np.maximum(xs + f32(3), f32(0)), f32(6)) / f32(6)
            t = y * (f32(1.0) / f32(so)) + f32(zo)
            r = np.rint(np.clip(t, f32(lo), f32(hi))).astype(np.int64)
            return r, r
        xv = _dq_vec(q, z, s)
        xs = _dq_scalar(q, z, s)
        inv = f32(1.0 / so)  # static_cast<float>(1.0 / o_scale), o_scale a double
        return (_q_vec(xv * np.minimum(np.maximum(xv + f32(3), f32(0)), f32(6)) / f32(6), inv, zo, lo, hi),
                _q_scalar(xs * np.minimum(np.maximum(xs + f32(3), f32(0)), f32(6)) / f32(6), so, zo, lo, hi))

    def reference(q, lo, hi):
        return _ref_round([Fraction(v) * _hsig_exact(v) for v in _x_exact(q, z, s)], so, zo, lo, hi)

    return _pointwise(x, p, so, zo, luts, reference, ("hardswish",))


def hardsigmoid(input, *, numerics=None) -> QTensor:
    """Quantized hardsigmoid ``clamp(x + 3, 0, 6) / 6``.

    Output qparams are fixed as torch's: quint8 ``(1/256, 0)``, qint8
    ``(1/256, -128)``.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8 or qint8.
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference.

    Returns
    -------
    QTensor
    """
    x = _check_input(input, "hardsigmoid")
    p = _profile(numerics, "hardsigmoid")
    s, z = x._scale, x._zero_point
    so, zo = 0.00390625, (-128 if x._dtype is qint8 else 0)

    def luts(q, lo, hi):
        return (_q_vec(_hsig(_dq_vec(q, z, s)), f32(256.0), zo, lo, hi),
                _q_scalar(_hsig(_dq_scalar(q, z, s)), so, zo, lo, hi))

    def reference(q, lo, hi):
        return _ref_round([_hsig_exact(v) for v in _x_exact(q, z, s)], so, zo, lo, hi)

    return _pointwise(x, p, so, zo, luts, reference, ("hardsigmoid",))


def sigmoid(input, *, numerics=None) -> QTensor:
    """Quantized sigmoid.

    Output qparams are fixed as torch's: quint8 ``(1/256, 0)``, qint8
    ``(1/256, -128)``.  torch's vectorised path computes
    ``1 / (1 + exp(-x))`` in float32 (Sleef ``expf``), the scalar path
    ``1.0f / (1.0 + expf(-x))`` in double; qops evaluates ``exp`` in float64
    and rounds it to float32 (see the docs for the measured agreement).

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8 or qint8.
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference.

    Returns
    -------
    QTensor
    """
    x = _check_input(input, "sigmoid")
    p = _profile(numerics, "sigmoid")
    so, zo = 0.00390625, (-128 if x._dtype is qint8 else 0)
    return _sigmoid(x, so, zo, p)


def _sigmoid(x, so, zo, p):
    """Sigmoid into ``(so, zo)`` (torch's ``quantized::sigmoid`` takes any output qparams)."""
    s, z = x._scale, x._zero_point

    def luts(q, lo, hi):
        if p == "qnnpack" and x._dtype is quint8:  # QNNPACK's table (scale 1/256 only)
            e = _libm("expf", -_dq_scalar(q, z, s))
            t = f32(1.0 / so) / (f32(1) + e)
            r = np.rint(np.clip(t, f32(lo), f32(hi))).astype(np.int64) + zo
            return r, r
        xd = _dq_scalar(q, z, s)  # the two-argument dequantize: same in both paths
        yv = f32(1) / (f32(1) + _f(np.exp, -xd))
        ys = (1.0 / (1.0 + _libm("expf", -xd).astype(np.float64))).astype(f32)
        return _q_vec(yv, f32(1.0 / so), zo, lo, hi), _q_scalar(ys, so, zo, lo, hi)

    def reference(q, lo, hi):
        xe = _x_exact(q, z, s)
        return _ref_round(list(1.0 / (1.0 + np.exp(-xe))), so, zo, lo, hi)

    return _pointwise(x, p, so, zo, luts, reference, ("sigmoid",))


def tanh(input, *, numerics=None) -> QTensor:
    """Quantized tanh.

    Output qparams are fixed as torch's: quint8 ``(2/256, 128)``, qint8
    ``(2/256, 0)``.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8 or qint8.
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference.

    Returns
    -------
    QTensor
    """
    x = _check_input(input, "tanh")
    p = _profile(numerics, "tanh")
    s, z = x._scale, x._zero_point
    so, zo = 0.0078125, (128 if x._dtype is quint8 else 0)

    def luts(q, lo, hi):
        if p == "qnnpack" and x._dtype is quint8:  # torch runs QNNPACK's table
            t = f32(128.0) * _libm("tanhf", _dq_scalar(q, z, s)) + f32(128.0)
            r = np.rint(np.clip(t, f32(lo), f32(hi))).astype(np.int64)
            return r, r
        return (_q_vec(_f(np.tanh, _dq_vec(q, z, s)), f32(128.0), zo, lo, hi),
                _q_scalar(_libm("tanhf", _dq_scalar(q, z, s)), so, zo, lo, hi))

    def reference(q, lo, hi):
        return _ref_round(list(np.tanh(_x_exact(q, z, s))), so, zo, lo, hi)

    return _pointwise(x, p, so, zo, luts, reference, ("tanh",))


def _elu_impl(x, so, zo, alpha, isc, celu, profile):
    s, z = x._scale, x._zero_point

    def luts(q, lo, hi):
        a, c = f32(alpha), f32(isc)
        xv = _dq_vec(q, z, s)
        yv = np.where(xv > 0, xv, _expm1_vec(xv * c) * a)
        xs = _dq_scalar(q, z, s)
        ys = np.where(xs >= 0, xs, _libm("expm1f", xs * c) * a * f32(1))
        return _q_vec(yv, _inv_f64(so), zo, lo, hi), _q_scalar(ys, so, zo, lo, hi)

    def reference(q, lo, hi):
        xe = _x_exact(q, z, s)
        arg = xe / alpha if celu else xe
        return _ref_round(list(np.where(xe > 0, xe, alpha * np.expm1(arg))), so, zo, lo, hi)

    return _pointwise(x, profile, so, zo, luts, reference, ("elu", alpha, isc, celu))


def elu(input, scale, zero_point, alpha=1.0, *, numerics=None) -> QTensor:
    """Quantized ELU ``x if x > 0 else alpha * (exp(x) - 1)`` into the given qparams.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8 or qint8.
    scale, zero_point : float, int
        Output qparams.
    alpha : float
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference.

    Returns
    -------
    QTensor
    """
    x = _check_input(input, "elu")
    p = _profile(numerics, "elu")
    so, zo = _out_qparams(x, scale, zero_point, "elu")
    a = _real(alpha, "alpha", "elu")
    return _elu_impl(x, so, zo, a, 1.0, False, p)


def celu(input, scale, zero_point, alpha=1.0, *, numerics=None) -> QTensor:
    """Quantized CELU ``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``.

    As torch: ELU with ``alpha`` and input coefficient ``1 / alpha``.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8 or qint8.
    scale, zero_point : float, int
        Output qparams.
    alpha : float
        Nonzero.
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference.

    Returns
    -------
    QTensor
    """
    x = _check_input(input, "celu")
    p = _profile(numerics, "celu")
    so, zo = _out_qparams(x, scale, zero_point, "celu")
    a = _real(alpha, "alpha", "celu")
    if a == 0:
        raise ValueError("celu: alpha cannot be 0")
    return _elu_impl(x, so, zo, a, 1.0 / a, True, p)


def gelu(input, approximate="none", *, numerics=None) -> QTensor:
    """Quantized GELU (torch's ``gelu`` on a quantized tensor); the output
    has the input's zero point and its scale rounded to float32 (as torch).

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8 or qint8.
    approximate : {'none', 'tanh'}
        ``'none'``: ``x/2 * (1 + erf(x/sqrt(2)))``; ``'tanh'``: the tanh
        approximation.
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference.

    Returns
    -------
    QTensor
    """
    x = _check_input(input, "gelu")
    p = _profile(numerics, "gelu")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    s, z = x._scale, x._zero_point
    so, zo = float(f32(s)), z
    inv = _inv_f64(s)

    if approximate == "tanh":
        beta32, kappa32 = f32(_SQRT2 * _2_SQRTPI * 0.5), f32(0.044715)

        def luts(q, lo, hi):
            xv = _dq_vec(q, z, s)
            inner = beta32 * (xv + kappa32 * (xv * xv * xv))
            yv = f32(0.5) * xv * (f32(1) + _f(np.tanh, inner))
            xs = _dq_scalar(q, z, s)
            cube = (xs * xs * xs).astype(np.float64)
            xd = xs.astype(np.float64)
            inner_d = (_SQRT2 * _2_SQRTPI * 0.5) * (xd + 0.044715 * cube)
            ys = (0.5 * xd * (1.0 + _libm("tanh", inner_d))).astype(f32)
            return _q_vec(yv, inv, zo, lo, hi), _q_scalar(ys, so, zo, lo, hi)

        def reference(q, lo, hi):
            xe = _x_exact(q, z, s)
            y = 0.5 * xe * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (xe + 0.044715 * xe ** 3)))
            return _ref_round(list(y), so, zo, lo, hi)
    else:

        def luts(q, lo, hi):
            xv = _dq_vec(q, z, s)
            u = xv * f32(_SQRT1_2)
            yv = xv * f32(0.5) * (f32(1) + _erf_vec(u))
            xd = _dq_scalar(q, z, s).astype(np.float64)
            ys = (xd * 0.5 * (1.0 + _libm("erf", xd * _SQRT1_2))).astype(f32)
            return _q_vec(yv, inv, zo, lo, hi), _q_scalar(ys, so, zo, lo, hi)

        def reference(q, lo, hi):
            xe = _x_exact(q, z, s)
            return _ref_round(list(xe * 0.5 * (1.0 + _erf64(xe * _SQRT1_2))), so, zo, lo, hi)

    return _pointwise(x, p, so, zo, luts, reference, ("gelu", approximate))


# ------------------------------------------------------------------- prelu
def prelu(input, weight, scale, zero_point, *, numerics=None) -> QTensor:
    """Quantized PReLU (``torch.ops.quantized.prelu``) into the given qparams.

    ``y = x if x > 0 else w_c * x`` with one weight per channel (axis 1) or
    a single weight.  torch 2.13 computes it in integers,
    ``acc = (max(q, zx) - zx) * (quantize_w(1.0) - zw) + (min(q, zx) - zx) * (w - zw)``,
    then ``zo + lrintf(fl(acc * M))`` with ``M = fl(fl(sx * sw) * fl(1/so))``.

    Parameters
    ----------
    input : QTensor
        Per-tensor quint8 or qint8, at least 1-D.
    weight : QTensor
        Per-tensor, the input's dtype, 1-D: one element, or ``input.shape[1]``.
    scale, zero_point : float, int
        Output qparams.
    numerics : str, optional
        fbgemm, qnnpack, onednn (identical) or reference (the exact
        ``x * w_real`` with the positive side exactly ``x``).

    Returns
    -------
    QTensor
    """
    x = _check_input(input, "prelu")
    p = _profile(numerics, "prelu")
    if not isinstance(weight, QTensor):
        raise TypeError(
            f"prelu expects a quantized weight (a QTensor, as torch), got {type(weight).__name__}; "
            "quantize it with qops.quantize_per_tensor"
        )
    if weight._dtype is not x._dtype:
        raise TypeError(
            f"prelu: the weight's dtype ({weight.dtype.name}) must equal the input's ({x.dtype.name})"
        )
    if weight._axis is not None:
        raise ValueError("prelu expects a per-tensor quantized weight")
    if x.ndim == 0:
        raise ValueError("prelu: a zero-dim input is not allowed (as torch)")
    nw = weight.size
    if weight.ndim > 1 or not (nw == 1 or (x.ndim > 1 and nw == x.shape[1])):
        raise ValueError(
            f"prelu: the weight must be 1-D with 1 or input.shape[1] elements (channels on "
            f"axis 1 of an (N, C, ...) input); got weight shape {weight.shape} for input "
            f"shape {x.shape}"
        )
    so, zo = _out_qparams(x, scale, zero_point, "prelu")
    lo, hi = x._dtype.qmin, x._dtype.qmax
    sx, zx = x._scale, x._zero_point
    sw, zw = weight._scale, weight._zero_point
    wq = weight.int_repr()
    wq = (wq.copy_to_host() if is_cuda_array(wq) else np.asarray(wq)).reshape(-1).astype(np.int64)
    inner = max(int(np.prod(x.shape[2:], dtype=np.int64)), 1) if nw > 1 else max(x.size, 1)
    q = _values(x._dtype)
    if p == "reference":
        tables = _prelu_reference_tables(q, wq, sx, zx, sw, zw, so, zo, lo, hi)
    else:
        one = _q_scalar1(1.0, sw, zw, lo, hi)
        mult = f32(f32(f32(sx) * f32(sw)) * (f32(1.0) / f32(so)))
        if not is_cuda_array(x._data) and np.isfinite(mult):
            # the CPU computes torch's arithmetic directly, in float32 vector
            # lanes (the tables below give the same bytes; the CUDA kernels
            # read them)
            xc = x.contiguous()
            data = xc._data.reshape(-1)
            out = np.empty(data.size, x._dtype.storage)
            if data.size:
                _dispatch.run("activation.prelu_apply", "cpu", data, out, (wq - zw).astype(f32),
                              float(one - zw), float(mult), zx, zo, lo, hi, inner)
            return QTensor._per_tensor(out.reshape(xc.shape), x._dtype, so, zo)
        d = (q - zx)[None, :]
        acc = np.where(d > 0, d * (one - zw), d * (wq - zw)[:, None])  # |acc| < 2**17: exact
        v = acc.astype(f32) * mult
        tables = np.clip(np.rint(v).astype(np.int64) + zo, lo, hi)
    tables = np.ascontiguousarray(tables.astype(x._dtype.storage).view(np.uint8))
    xc = x if is_cuda_array(x._data) else x.contiguous()
    if is_cuda_array(xc._data) and not xc._data.is_c_contiguous():
        raise NotImplementedError("prelu: strided CUDA inputs are not supported; make the array contiguous first")
    return _launch(xc, "lut_channels", lambda run: (tables, inner), so, zo)


def _prelu_reference_tables(q, wq, sx, zx, sw, zw, so, zo, lo, hi):
    """Exact ``rne(x * (x > 0 ? 1 : w) / so) + zo`` for each (channel, byte)."""
    xe = [Fraction(float(v)) for v in _x_exact(q, zx, sx)]
    tables = np.empty((wq.size, 256), np.int64)
    for c, w in enumerate(wq):
        wr = Fraction(int(w - zw)) * Fraction(float(f32(sw)))
        tables[c] = _ref_round([v if v > 0 else v * wr for v in xe], so, zo, lo, hi)
    return tables
