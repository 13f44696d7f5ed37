"""Weights packed once for the GEMM kernel, and the epilogue parameters per profile.

:class:`PackedLinearWeight` holds everything about a linear (or, reshaped,
convolution) weight that does not depend on the call: the 32-column panels of
:func:`qops.kernels.cpu.gemm.pack_weight`, column sums, zero points, scales
and the bias.  What depends on the numerics profile and on the input and
output quantization parameters (``shared NUMERICS.md`` section 3) is computed
by :meth:`PackedLinearWeight.epilogue` and cached per parameter set, so a
module that calls the same weight repeatedly pays for it once.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._device import is_cuda_array
from ._recipes import mantissa_exponent, tflite_multipliers
from ._validate import check_scale, check_zero_point
from .dtypes import (
    per_channel_affine,
    per_channel_symmetric,
    qint8,
    qint32,
    quint8,
)
from .kernels import modes as M
from .kernels.cpu.gemm import NR, pack_weight
from .kernels.cpu.requant import NF, NI
from .qtensor import QTensor

__all__ = ["PackedLinearWeight", "Epilogue", "output_qparams", "wrap32"]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
_CACHE_SIZE = 16

#: profiles that take an int32 bias in the accumulator scale as is
INT_BIAS_PROFILES = ("onnxruntime", "tflite", "tflite_single", "reference")


def wrap32(v):
    """Two's-complement reduction of an int64 array to int32."""
    return np.asarray(v, np.int64).astype(np.int32)  # NumPy casts wrap


def _f32(a):
    return np.asarray(a, np.float64).astype(np.float32)


def output_qparams(x, scale, zero_point, out_dtype):
    """Output scale and zero point, checked: the input's where ``None`` (torch).

    A zero point outside ``out_dtype`` is a ValueError (torch silently gives
    all 255 for quint8).
    """
    so = x.q_scale() if scale is None else check_scale(scale, "scale")
    zo = x.q_zero_point() if zero_point is None else zero_point
    zo = check_zero_point(zo, out_dtype, "zero_point")
    return so, zo


class Epilogue:
    """The arguments of :func:`qops.kernels.cpu.requant.requantize_accumulators`
    that depend on the profile and quantization parameters (one call's worth),
    plus the output's checked scale ``so`` and dtype."""

    __slots__ = ("mode", "zw", "cc", "ip", "fp", "cf0", "cf1", "ci0", "zo", "lo", "hi", "so", "dtype")

    def __init__(self, mode, zw, cc, ip, fp, cf0, cf1, ci0, zo, lo, hi, so, dtype):
        self.so = so
        self.dtype = dtype
        self.mode = mode
        self.zw = zw
        self.cc = cc
        self.ip = ip
        self.fp = fp
        self.cf0 = np.float32(cf0)
        self.cf1 = np.float32(cf1)
        self.ci0 = int(ci0)
        self.zo = int(zo)
        self.lo = int(lo)
        self.hi = int(hi)


class PackedLinearWeight:
    """A ``(N, K)`` weight QTensor and its bias, packed once for the GEMM kernel.

    Parameters
    ----------
    weight : QTensor
        qint8 or quint8, 2-D ``(out_features, in_features)``, per-tensor or
        per-channel along axis 0.
    bias : array_like, optional
        ``N`` float values (torch convention; kept as float32) or an int32
        array already in the accumulator scale ``sx * sw_j`` (ONNX / TFLite
        convention).
    op : str
        The op name used in error messages.
    conv : bool
        The weight of a convolution (reshaped to 2-D): torch's onednn
        convolution multiplies by the float32 weight scales ``fl(sw_j)``,
        where its linear uses reciprocal forms (measured against torch 2.13.0).

    Notes
    -----
    quint8 weights are stored as ``w ^ 0x80`` viewed as int8 with zero point
    ``zw - 128``: the accumulator ``sum (x - zx)(w - zw)`` is unchanged.
    Which profile accepts which weight dtype, zero points and bias convention
    is checked per call (:meth:`check_profile`): the packing itself is
    profile independent.
    """

    __slots__ = (
        "weight", "bias", "n", "k", "per_channel", "dtype", "zw", "zw32", "any_zw",
        "sw64", "sw32", "panels", "np_", "colsum", "wmax", "bias_kind", "_cache", "_checked", "conv",
    )

    def __init__(self, weight, bias=None, *, op="linear", conv=False):
        if isinstance(weight, PackedLinearWeight):
            raise TypeError(f"{op}: the weight is already packed")
        if not isinstance(weight, QTensor):
            raise TypeError(
                f"{op} expects the weight as a qint8 QTensor of shape (out_features, in_features), "
                f"got {type(weight).__name__}; quantize it with qops.quantize_per_tensor or "
                "qops.quantize_per_channel(..., axis=0)"
            )
        if weight.dtype not in (qint8, quint8):
            raise TypeError(
                f"{op} expects a qint8 weight (quint8 for numerics='onnxruntime' or 'reference'), "
                f"got {weight.dtype!r}"
            )
        if weight.ndim != 2:
            raise ValueError(
                f"{op} expects a 2-D weight (out_features, in_features), got shape {weight.shape}"
            )
        if is_cuda_array(weight._data):
            raise NotImplementedError(f"{op}: CUDA weights are not supported yet; use weight.cpu()")
        scheme = weight.qscheme()
        if weight.is_per_channel:
            if scheme not in (per_channel_affine, per_channel_symmetric):
                raise NotImplementedError(
                    f"{op}: weights with {scheme.name} (float zero points) are not supported; "
                    "use integer zero points"
                )
            if weight.q_per_channel_axis() != 0:
                raise ValueError(
                    f"{op}: a per-channel weight must be quantized along axis 0 (output "
                    f"channels), got axis {weight.q_per_channel_axis()}"
                )
        n, k = weight.shape
        self.weight = weight
        self.n = n
        self.k = k
        self.dtype = weight.dtype
        self.per_channel = weight.is_per_channel
        if self.per_channel:
            sw = np.asarray(weight._scales, np.float64)
            zw = np.asarray(weight._zero_points, np.int64)
        else:
            sw = np.full(n, weight.q_scale(), np.float64)
            zw = np.full(n, weight.q_zero_point(), np.int64)
        data = np.ascontiguousarray(weight._data)
        if weight.dtype is quint8:
            ws = (data ^ np.uint8(0x80)).view(np.int8)
            zw = zw - 128
        else:
            ws = data
        self.sw64 = sw
        self.sw32 = _f32(sw)
        self.zw = zw
        self.zw32 = zw.astype(np.int32)
        self.any_zw = bool(np.any(zw != 0))
        self.panels = pack_weight(ws)
        self.np_ = -(-max(n, 1) // NR) * NR
        self.colsum = ws.sum(axis=1, dtype=np.int64)
        if n and k:
            w64 = ws.astype(np.int64)
            self.wmax = int(np.max(np.maximum(w64.max(axis=1) - zw, zw - w64.min(axis=1))))
        else:
            self.wmax = 0
        self.bias, self.bias_kind = _check_bias(bias, n, op)
        self._cache = {}
        self.conv = bool(conv)
        self._checked = set()

    # ------------------------------------------------------------ checks
    def check_profile(self, profile, op="linear"):
        """Raise if ``profile`` cannot take this weight or bias."""
        if profile in self._checked:
            return
        if self.bias_kind == "int" and profile not in INT_BIAS_PROFILES:
            raise TypeError(
                f"{op}: an int32 bias (accumulator scale sx*sw, zero point 0) is taken by "
                f"numerics {', '.join(repr(p) for p in INT_BIAS_PROFILES)}; numerics={profile!r} "
                "takes a float32 bias, as torch does"
            )
        if self.dtype is quint8 and profile not in ("onnxruntime", "reference"):
            raise TypeError(
                f"{op}: numerics={profile!r} takes qint8 weights only; quint8 weights are "
                "supported by numerics='onnxruntime' and 'reference'"
            )
        if profile in ("onednn", "tflite", "tflite_single"):
            zw = self.weight._zero_points if self.per_channel else [self.weight.q_zero_point()]
            if np.any(np.asarray(zw) != 0):
                raise ValueError(
                    f"{op}: numerics={profile!r} needs symmetric weights (every weight zero "
                    f"point 0), got zero points {np.unique(np.asarray(zw)).tolist()}"
                )
        self._checked.add(profile)

    # ---------------------------------------------------------- epilogue
    def epilogue(self, profile, sx, zx, so, zo, relu, out_dtype, x_signed) -> Epilogue:
        """Kernel parameters for one (profile, input qparams, checked output qparams).

        ``sx``/``so`` are the scales as given (Python floats), ``zx`` the input
        zero point in its own dtype, ``x_signed`` whether the input is int8
        (its bytes are flipped to uint8 by the caller and its zero point moves
        by 128).  Cached per parameter set.
        """
        key = (profile, sx, zx, so, zo, bool(relu), out_dtype.name, bool(x_signed))
        ep = self._cache.get(key)
        if ep is None:
            ep = self._build_epilogue(profile, sx, zx, so, zo, relu, out_dtype, x_signed)
            self._remember(key, ep)
        return ep

    def epilogue_for(self, profile, x, scale, zero_point, relu, out_dtype) -> Epilogue:
        """:meth:`epilogue` from the user's arguments, checked on a cache miss.

        ``x`` is the input QTensor; ``scale``/``zero_point`` the output
        parameters as given (``None``: the input's).  The cache key holds
        them as given (with their types), so a repeated call skips the checks.
        """
        key = (profile, x._scale, x._zero_point, x._dtype.name, scale, type(scale), zero_point,
               type(zero_point), bool(relu), out_dtype.name)
        try:
            ep = self._cache.get(key)
        except TypeError:  # an unhashable scale or zero point: checked below
            key, ep = None, None
        if ep is None:
            so, zo = output_qparams(x, scale, zero_point, out_dtype)
            ep = self.epilogue(profile, x._scale, x._zero_point, so, zo, relu, out_dtype,
                               x._dtype is qint8)
            if key is not None:
                self._remember(key, ep)
        return ep

    def _remember(self, key, ep):
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = ep

    def _build_epilogue(self, profile, sx, zx, so, zo, relu, out_dtype, x_signed):
        n = self.n
        zxu = zx + 128 if x_signed else zx
        cc = wrap32(self.k * zxu * self.zw - zxu * self.colsum)
        ip = np.zeros((NI, max(n, 1)), np.int64)
        fp = np.zeros((NF, max(n, 1)), np.float32)
        cf0 = cf1 = 0.0
        ci0 = 0
        lo = zo if relu else out_dtype.qmin
        hi = out_dtype.qmax
        sx32 = np.float32(sx)
        so32 = np.float32(so)
        sw32 = self.sw32
        b = self.bias
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            if profile == "fbgemm":
                mode = M.EP_FBGEMM
                atw = sx32 * sw32  # float32
                fp[2, :n] = atw / so32
                if b is not None:
                    if self.per_channel:
                        fp[0, :n] = b / atw  # true float32 division
                        fp[1, :n] = 1.0
                    else:
                        fp[0, :n] = b
                        fp[1, :n] = np.float32(1.0 / np.float64(atw[0]))
            elif profile == "qnnpack":
                mode = M.EP_QNNPACK
                rs = (sw32 * sx32) * np.float32(np.float32(1.0) / so32)
                bad = ~((rs > 0) & np.isfinite(rs) & (rs >= np.finfo(np.float32).tiny))
                if bad.any():
                    raise ValueError(
                        f"numerics='qnnpack': the requantization scale fl(fl(sw*sx) * fl(1/so)) = "
                        f"{rs[bad][0]!r} (sx={sx!r}, so={so!r}) is not a positive normal float32 "
                        "number; qnnpack refuses it (torch 2.13 raises 'requantization scale "
                        "must be finite and positive')"
                    )
                fp[0, :n] = rs
                if b is not None:
                    ip[0, :n] = _torch_quantize_bias(b, self.sw64 * np.float64(sx32))
            elif profile == "onednn":
                mode = M.EP_ONEDNN
                # oneDNN holds reciprocal scales (float32) that torch computes in double
                cf0 = np.float32(1.0) / np.float32(1.0 / float(sx))
                cf1 = np.float32(1.0) / (np.float32(1.0) / np.float32(1.0 / float(so)))
                ci0 = zo if relu else hi  # NaN (measured against torch 2.13.0)
                if self.conv:
                    fp[0, :n] = sw32
                elif self.per_channel:
                    fp[0, :n] = np.float32(1.0) / (np.float32(1.0) / sw32)
                else:
                    fp[0, :n] = np.float32(1.0) / _f32(1.0 / self.sw64)
                if b is not None:
                    fp[1, :n] = b
            elif profile == "onnxruntime":
                mode = M.EP_ONNXRUNTIME
                fp[0, :n] = (sx32 * sw32) / so32
                if b is not None:
                    ip[0, :n] = self._int_bias(sx32, profile)
            elif profile in ("tflite", "tflite_single"):
                single = profile == "tflite_single"
                mode = M.EP_TFLITE_SINGLE if single else M.EP_TFLITE
                d = np.float64(sx32) * sw32.astype(np.float64) / np.float64(so32)
                ip[1, :n], ip[2, :n] = tflite_multipliers(d, single)
                if b is not None:
                    ip[0, :n] = self._int_bias(sx32, profile)
            else:  # reference
                mode = M.EP_REFERENCE
                (mx,), (ex,) = mantissa_exponent(np.array([sx32]))
                (mo,), (eo,) = mantissa_exponent(np.array([so32]))
                mw, ew = mantissa_exponent(sw32)
                ci0 = int(mx)
                ip[1, :n] = mw
                ip[2, :n] = ex + ew - eo
                ip[6, :] = mo
                if self.bias_kind == "int":
                    ip[0, :n] = b
                elif b is not None:
                    mb, eb, cls = _split_float32(b)
                    ip[3, :n] = mb
                    ip[4, :n] = np.where(mb != 0, eb - eo, 0)
                    ip[5, :n] = cls
        return Epilogue(mode, self.zw32, cc, ip, fp, cf0, cf1, ci0, zo, lo, hi, so, out_dtype)

    def _int_bias(self, sx32, profile):
        """The bias in the accumulator scale: as given (int32), or a float bias
        quantized as converters do: ``rne(b / (double(sx) * double(sw_j)))``."""
        b = self.bias
        if self.bias_kind == "int":
            return b.astype(np.int64)
        if not np.all(np.isfinite(b)):
            raise ValueError(
                f"numerics={profile!r} quantizes a float bias to int32, but the bias holds NaN "
                "or infinity"
            )
        q = np.rint(b.astype(np.float64) / (np.float64(sx32) * self.sw32.astype(np.float64)))
        return np.clip(q, INT32_MIN, INT32_MAX).astype(np.int64)


# ---------------------------------------------------------------- helpers
def _check_bias(bias, n, op):
    """``(array, kind)`` with kind ``None``, ``"float"`` (float32) or ``"int"`` (int32)."""
    if bias is None:
        return None, None
    if is_cuda_array(bias):
        bias = bias.copy_to_host()
    elif hasattr(bias, "detach") and hasattr(bias, "numpy"):  # a torch tensor
        bias = bias.detach().cpu().numpy()
    if isinstance(bias, QTensor):
        raise TypeError(
            f"{op}: the bias must be a float32 array or an int32 array in the accumulator "
            "scale, not a QTensor; use bias.int_repr() for a qint32 bias with zero point 0"
        )
    if isinstance(bias, numbers.Number):
        raise TypeError(f"{op}: the bias must be an array of {n} values, got a scalar")
    a = np.asarray(bias)
    if a.dtype.kind == "f":
        kind = "float"
        a = a.astype(np.float32)
    elif a.dtype == np.int32:
        kind = "int"
    elif a.dtype.kind in "iu":
        raise TypeError(
            f"{op}: an integer bias must be int32 (accumulator scale sx*sw, zero point 0), got "
            f"{a.dtype}; convert it with .astype(np.int32) after checking its range"
        )
    else:
        raise TypeError(f"{op}: the bias must be float32 or int32, got {a.dtype}")
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{op}: the bias must have shape ({n},), one value per output channel, got {a.shape}")
    return np.ascontiguousarray(a), kind


def _torch_quantize_bias(b, scales64):
    """torch's qint32 quantize of a float32 bias with per-channel float64 scales
    (fbgemm recipe, as qnnpack uses it)."""
    from ._ops import _quantize_into

    out = _quantize_into(b, qint32, 0, scales64, np.zeros(b.size, np.int64), False, "fbgemm", "cpu")
    return out.astype(np.int64)


def _split_float32(b):
    """float32 values as ``mb * 2**eb`` (``|mb| < 2**24``) plus a class:
    0 finite, 1 +inf, -1 -inf, 2 NaN."""
    b64 = b.astype(np.float64)
    finite = np.isfinite(b64)
    fr, ex = np.frexp(np.where(finite, b64, 0.0))
    mb = (fr * (1 << 24)).astype(np.int64)
    eb = ex.astype(np.int64) - 24
    cls = np.where(finite, 0, np.where(np.isnan(b64), 2, np.where(b64 > 0, 1, -1))).astype(np.int64)
    return mb, eb, cls
