"""The conformance sweep behind ``qops report``.

Every registered op runs under every numerics profile on built-in,
deterministic data; each result is compared element by element with the
profile's peer (torch 2.13 for ``fbgemm`` / ``qnnpack`` / ``onednn``,
onnxruntime for ``onnxruntime``; TFLite is not installable here, so the
``tflite`` profiles have none) and measured against the ``reference``
profile, the ideal result.

Besides quantize, dequantize, requantize and fake quantization, the report
covers ``linear`` / ``linear_relu`` and ``conv1d`` / ``conv2d`` / ``conv3d`` /
``conv2d_relu`` on small full-range cases (per-tensor and per-channel
weights, symmetric or not, bias or not; grouped, depthwise, strided and
dilated convolutions, and fbgemm's int16-saturating depthwise kernel).  Each
case names the profiles it applies to (:attr:`Case.profiles`): uint8
activations run under the torch profiles, onnxruntime and reference, int8
activations under onnxruntime, tflite, tflite_single and reference, and
weights with nonzero zero points skip onednn and the tflite profiles, which
need symmetric weights.  Their peers are torch's ``quantized.linear`` /
``conv{n}d`` with the engine named like the profile and onnxruntime's
QLinearMatMul, QGemm (with a bias) and QLinearConv; the reference column is
in LSB of the output.

Adding an op takes one :func:`register` call with a :class:`Sweep`: a name, a
function that builds the list of :class:`Case` objects from
:class:`SweepData`, the qops call (case, profile) -> result, the peer calls
(one per peer, taking the peer adapter from :mod:`qops._peers`, the case and
the profile, and returning ``None`` where the peer has no such operation) and,
if the ``reference`` profile is not the right ideal, a reference call.  For
example::

    register(Sweep(
        name="relu",
        cases=lambda data: [Case("quint8", {"q": ...})],
        run=lambda case, profile: qops.relu(case.args["q"], numerics=profile).int_repr(),
        peers={"torch": lambda torch_peer, case, profile: torch_peer.relu(profile, ...)},
    ))

Results are arrays, or tuples of same-shaped arrays (e.g. fake quantization's
output and gradient mask).  Integers are compared exactly, floats bit for bit
(any NaN equals any NaN), dtypes and shapes too.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
import zlib
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from . import _peers
from ._ops import (
    dequantize,
    fake_quantize_per_channel_affine,
    fake_quantize_per_tensor_affine,
    make_per_channel_qtensor,
    make_per_tensor_qtensor,
    quantize_per_channel,
    quantize_per_tensor,
    requantize,
)
from .dtypes import QDType, qint8, qint32, quint4x2, quint8
from .functional import conv1d, conv2d, conv2d_relu, conv3d, linear, linear_relu
from .numerics import TORCH_PROFILES, available_numerics

__all__ = [
    "Case",
    "Sweep",
    "SweepData",
    "Row",
    "register",
    "sweeps",
    "profile_peer",
    "run_report",
    "format_table",
    "lsb_distance",
    "ulp_distance",
]

#: The peer each profile is compared with; profiles not listed have none.
PROFILE_PEER = {
    "fbgemm": "torch",
    "qnnpack": "torch",
    "onednn": "torch",
    "onnxruntime": "onnxruntime",
}


def profile_peer(profile: str) -> Optional[str]:
    """The peer of ``profile`` (``None`` for tflite, tflite_single, reference)."""
    return PROFILE_PEER.get(profile)


# ------------------------------------------------------------------ distances
def lsb_distance(out, ref, case) -> np.ndarray:
    """``|out - ref|`` of integer results, in LSB."""
    return np.abs(_first(out).astype(np.int64) - _first(ref).astype(np.int64))


def _ordered(f32) -> np.ndarray:
    """float32 bit patterns mapped to integers that count ULPs monotonically."""
    i = np.ascontiguousarray(f32, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFF), i)


def ulp_distance(out, ref, case) -> np.ndarray:
    """Distance of float32 results in float32 ULPs (``0.0`` and ``-0.0`` are 0 apart)."""
    return np.abs(_ordered(_first(out)) - _ordered(_first(ref)))


def _first(result):
    return result[0] if isinstance(result, tuple) else result


# ---------------------------------------------------------------- registry
@dataclasses.dataclass(frozen=True)
class Case:
    """One input configuration of an op.

    Attributes
    ----------
    label : str
        Short description shown in mismatch details, e.g. ``"qint8 s=0.1 zp=-5"``.
    args : dict
        Whatever the op's calls need.
    inputs : ndarray, optional
        The input values aligned with the result's elements (for examples).
    counted : ndarray of bool, optional
        Elements that count in the reference column (``None``: all).
    profiles : tuple of str, optional
        The profiles the case runs under (``None``: every profile of its
        sweep), e.g. int8 activations only where a profile takes them.
    """

    label: str
    args: Mapping[str, Any]
    inputs: Optional[np.ndarray] = None
    counted: Optional[np.ndarray] = None
    profiles: Optional[tuple] = None

    def applies(self, profile: str) -> bool:
        """Whether the case runs under ``profile``."""
        return self.profiles is None or profile in self.profiles


@dataclasses.dataclass(frozen=True)
class Sweep:
    """How ``qops report`` exercises one op.

    Attributes
    ----------
    name : str
        The op's name (what ``--op`` selects).
    cases : callable
        ``cases(data: SweepData) -> list[Case]``.
    run : callable
        ``run(case, profile) -> result``: the qops call under ``profile``.
    peers : mapping
        Peer name (``"torch"``, ``"onnxruntime"``) -> ``call(adapter, case,
        profile) -> result or None``.  A profile whose peer is missing here
        has no peer for this op.
    reference : callable, optional
        ``reference(case) -> result``; default: ``run(case, "reference")``.
    distance : callable
        ``distance(result, reference, case) -> array`` (default
        :func:`lsb_distance`).
    unit : str
        Unit of ``distance`` (``"LSB"`` or ``"ulp"``).
    profiles : tuple of str
        Profiles the op exists under (default: all).
    """

    name: str
    cases: Callable[["SweepData"], Sequence[Case]]
    run: Callable[[Case, str], Any]
    peers: Mapping[str, Callable] = dataclasses.field(default_factory=dict)
    reference: Optional[Callable[[Case], Any]] = None
    distance: Callable = lsb_distance
    unit: str = "LSB"
    profiles: tuple = dataclasses.field(default_factory=available_numerics)

    def reference_result(self, case):
        if self.reference is not None:
            return self.reference(case)
        return self.run(case, "reference")


_SWEEPS: dict[str, Sweep] = {}


def register(sweep: Sweep) -> Sweep:
    """Add ``sweep`` to the report (a later registration of a name replaces it)."""
    unknown = set(sweep.profiles) - set(available_numerics())
    if unknown:
        raise ValueError(f"sweep {sweep.name!r} names unknown profiles {sorted(unknown)}")
    unknown = set(sweep.peers) - set(_peers.PEERS)
    if unknown:
        raise ValueError(f"sweep {sweep.name!r} names unknown peers {sorted(unknown)}")
    _SWEEPS[sweep.name] = sweep
    return sweep


def sweeps() -> dict[str, Sweep]:
    """The registered sweeps by name, in registration order."""
    return dict(_SWEEPS)


# --------------------------------------------------------------------- data
_F32_MAX = float(np.finfo(np.float32).max)


class SweepData:
    """Deterministic sweep inputs.

    Random draws come from ``numpy.random.default_rng`` seeded by ``seed``
    and a stable hash of what is drawn, so a case's data does not depend on
    which other ops or profiles run.

    Parameters
    ----------
    seed : int
    quick : bool
        A small sweep (fewer scales, zero points and random values), for tests
        and CI.
    """

    def __init__(self, seed=0, quick=False):
        self.seed = int(seed)
        self.quick = bool(quick)
        # scales as users pass them (float64); 0.1 and 0.0123 are not float32
        # values, so every peer's narrowing to float32 is exercised
        if quick:
            self.scales = (1.0, 0.1, 0.0123)
        else:
            self.scales = (1.0, 0.5, 2.0**-7, 0.1, 0.0123, 3.7, 0.3, 2.5e-4)
        self.n_random = 128 if quick else 8192
        self.n_channel_sets = 1 if quick else 4

    def zero_points(self, dtype: QDType):
        """Odd and even zero points (and, in the full sweep, the range's ends)."""
        z = {
            "quint8": (3, 128, 0, 255),
            "qint8": (-5, 0, -128, 127),
            "qint32": (7, 0, -1000, 65536),
            "quint4x2": (3, 8, 0, 15),
        }[dtype.name]
        return z[:2] if self.quick else z

    def rng(self, *key):
        h = zlib.crc32(repr(key).encode())
        return np.random.default_rng([self.seed, h])

    def floats(self, scale, zp, dtype: QDType) -> np.ndarray:
        """float32 values around the grid of ``(scale, zp, dtype)``.

        Random normals at three spreads (under 1 LSB, about 12 LSB, half the
        range), exact and near ties ``(k + 0.5) * scale`` and grid points
        ``k * scale`` over the whole range, and edge values: NaN, +-inf, +-0,
        the largest float32, huge values, subnormals and the qmin/qmax
        boundaries.
        """
        rng = self.rng("floats", scale, zp, dtype.name)
        s = float(np.float32(scale))
        lo, hi = dtype.qmin - zp, dtype.qmax - zp  # offsets of the range from zp
        parts = [rng.standard_normal(self.n_random) * sigma * s
                 for sigma in (0.7, 12.0, 0.45 * (hi - lo))]
        if hi - lo <= 1024:
            k = np.arange(lo - 3, hi + 4, dtype=np.float64)
        else:
            k = np.concatenate([
                np.arange(-300, 300),
                rng.integers(lo, hi, self.n_random, endpoint=True),
                lo + np.arange(-3, 4), hi + np.arange(-3, 4),
            ]).astype(np.float64)
        with np.errstate(over="ignore"):
            ties = ((k + 0.5) * s).astype(np.float32)
            parts += [ties, (k * s).astype(np.float32),
                      np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))]
            edges = [np.nan, np.inf, -np.inf, 0.0, -0.0, _F32_MAX, -_F32_MAX, 1e20, -1e20,
                     1e-45, -1e-45, 2.0**31 * s, -(2.0**31) * s, 2.0**31, -(2.0**31),
                     lo * s, hi * s, (lo - 0.5) * s, (hi + 0.5) * s, (lo - 1) * s, (hi + 1) * s]
            parts.append(np.array(edges))
            x = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]).astype(np.float32)
        return x

    def ints(self, dtype: QDType) -> np.ndarray:
        """Every value of an 8-bit (or smaller) type; boundaries and random values for qint32."""
        if dtype.qmax - dtype.qmin <= 1024:
            return np.arange(dtype.qmin, dtype.qmax + 1).astype(dtype.storage)
        rng = self.rng("ints", dtype.name)
        i32 = np.iinfo(np.int32)
        v = np.concatenate([
            [i32.min, i32.min + 1, -1, 0, 1, i32.max - 1, i32.max],
            np.arange(-300, 300),
            rng.integers(i32.min, i32.max, self.n_random, endpoint=True),
            np.rint(rng.standard_normal(self.n_random) * 3000),
        ])
        return v.astype(np.int32)

    def channel_sets(self, dtype: QDType):
        """Per-channel (scales, zero points) for three channels, mixing odd and even."""
        S, Z = self.scales, self.zero_points(dtype)
        for j in range(self.n_channel_sets):
            yield ([S[(j + c) % len(S)] for c in range(3)],
                   [Z[(j + c) % len(Z)] for c in range(3)])


def _channel_layout(rows, axis):
    """``rows`` (C, m) arranged so that channel c lies at index c of ``axis`` (0 or 1)."""
    if axis == 0:
        return np.ascontiguousarray(rows)
    c, m = rows.shape
    m2 = m // 2
    return np.ascontiguousarray(rows[:, : 2 * m2].reshape(c, 2, m2).transpose(1, 0, 2))


def _per_channel_floats(data, scales, zps, dtype, axis):
    rows = [data.floats(s, z, dtype) for s, z in zip(scales, zps)]
    m = min(r.size for r in rows)
    return _channel_layout(np.stack([r[:m] for r in rows]), axis)


def _fmt(v):
    return f"{v:g}"


def _label(dtype, scale, zp, axis=None):
    if axis is None:
        return f"{dtype.name} s={_fmt(scale)} zp={zp}"
    s = ",".join(_fmt(v) for v in scale)
    z = ",".join(str(v) for v in zp)
    return f"{dtype.name} axis={axis} s=[{s}] zp=[{z}]"


# ------------------------------------------------------------- qops helpers
def _int_values(q, shape):
    """Unpacked integers of a QTensor (sub-byte types unpacked from int_repr)."""
    r = q.int_repr()
    if q.dtype.is_subbyte:
        n = int(np.prod(shape, dtype=np.int64))
        return _peers.unpack_subbyte(r, q.dtype.bits, n).reshape(shape)
    return r


def _input_qtensor(a):
    if a["axis"] is None:
        return make_per_tensor_qtensor(a["ints"], a["scale"], a["zp"], a["dtype"])
    return make_per_channel_qtensor(a["ints"], a["scale"], a["zp"], a["axis"], a["dtype"])


# ------------------------------------------------------------------ quantize
_QUANT_DTYPES = (quint8, qint8, qint32, quint4x2)


def _quantize_per_tensor_cases(data):
    out = []
    for dt in _QUANT_DTYPES:
        for s in data.scales:
            for z in data.zero_points(dt):
                x = data.floats(s, z, dt)
                out.append(Case(_label(dt, s, z), {"x": x, "dtype": dt, "scale": s, "zp": z, "axis": None},
                                inputs=x, counted=~np.isnan(x)))
    return out


def _quantize_per_channel_cases(data):
    out = []
    for dt in _QUANT_DTYPES:
        for scales, zps in data.channel_sets(dt):
            for axis in (0, 1):
                x = _per_channel_floats(data, scales, zps, dt, axis)
                out.append(Case(_label(dt, scales, zps, axis),
                                {"x": x, "dtype": dt, "scale": scales, "zp": zps, "axis": axis},
                                inputs=x, counted=~np.isnan(x)))
    return out


def _quantize_run(case, profile):
    a = case.args
    if a["axis"] is None:
        q = quantize_per_tensor(a["x"], a["scale"], a["zp"], a["dtype"], numerics=profile)
    else:
        q = quantize_per_channel(a["x"], a["scale"], a["zp"], a["axis"], a["dtype"], numerics=profile)
    return _int_values(q, a["x"].shape)


def _quantize_torch(peer, case, profile):
    a = case.args
    if a["axis"] is None:
        return peer.quantize_per_tensor(profile, a["x"], a["scale"], a["zp"], a["dtype"].name)
    return peer.quantize_per_channel(profile, a["x"], a["scale"], a["zp"], a["axis"], a["dtype"].name)


def _quantize_ort(peer, case, profile):
    a = case.args
    return peer.quantize(a["x"], a["scale"], a["zp"], a["axis"], a["dtype"].name)


register(Sweep(
    name="quantize_per_tensor",
    cases=_quantize_per_tensor_cases,
    run=_quantize_run,
    peers={"torch": _quantize_torch, "onnxruntime": _quantize_ort},
))

register(Sweep(
    name="quantize_per_channel",
    cases=_quantize_per_channel_cases,
    run=_quantize_run,
    peers={"torch": _quantize_torch, "onnxruntime": _quantize_ort},
))


# ---------------------------------------------------------------- dequantize
_DEQUANT_DTYPES = (quint8, qint8, qint32)


def _dequantize_cases(data):
    out = []
    for dt in _DEQUANT_DTYPES:
        ints = data.ints(dt)
        for s in data.scales:
            for z in data.zero_points(dt):
                out.append(Case(_label(dt, s, z), {"ints": ints, "dtype": dt, "scale": s, "zp": z, "axis": None},
                                inputs=ints))
        for scales, zps in data.channel_sets(dt):
            for axis in (0, 1):
                q = _channel_layout(np.stack([ints] * 3), axis)
                out.append(Case(_label(dt, scales, zps, axis),
                                {"ints": q, "dtype": dt, "scale": scales, "zp": zps, "axis": axis},
                                inputs=q))
    return out


def _dequantize_run(case, profile):
    return dequantize(_input_qtensor(case.args), numerics=profile)


def _dequantize_torch(peer, case, profile):
    a = case.args
    return peer.dequantize(profile, a["ints"], a["scale"], a["zp"], a["axis"], a["dtype"].name)


def _dequantize_ort(peer, case, profile):
    a = case.args
    return peer.dequantize(a["ints"], a["scale"], a["zp"], a["axis"], a["dtype"].name)


register(Sweep(
    name="dequantize",
    cases=_dequantize_cases,
    run=_dequantize_run,
    peers={"torch": _dequantize_torch, "onnxruntime": _dequantize_ort},
    distance=ulp_distance,
    unit="ulp",
))


# ---------------------------------------------------------------- requantize
_REQUANT_PAIRS = (  # (input dtype, output dtype)
    (quint8, quint8), (qint8, qint8), (quint8, qint8), (qint8, quint8),
    (qint32, quint8), (qint32, qint8), (qint32, qint32),
)
# (input scale, output scale): the ratio 0.5 puts every odd q - zp on an exact tie;
# 0.1, 0.0123 and 3.7 are not float32 values (every peer narrows them)
_REQUANT_SCALES = ((0.5, 1.0), (0.1, 0.0123), (1.0, 0.75), (0.0123, 0.1), (2.0**-10, 0.05), (3.7, 1.0))


def _requantize_cases(data):
    out = []
    scale_pairs = _REQUANT_SCALES[:3] if data.quick else _REQUANT_SCALES
    for din, dout in _REQUANT_PAIRS:
        ints = data.ints(din)
        zin, zout = data.zero_points(din), data.zero_points(dout)
        for j, (s1, s2) in enumerate(scale_pairs):
            for k in range(1 if data.quick else 2):
                z1 = zin[(j + k) % len(zin)]
                z2 = zout[(j + k + 1) % len(zout)]
                out.append(Case(
                    f"{_label(din, s1, z1)} -> {_label(dout, s2, z2)}",
                    {"ints": ints, "dtype": din, "scale": s1, "zp": z1, "axis": None,
                     "out_dtype": dout, "out_scale": s2, "out_zp": z2},
                    inputs=ints,
                ))
    for din, dout in ((quint8, quint8), (qint8, qint8), (qint32, quint8)):
        ints = data.ints(din)
        for scales, zps in data.channel_sets(din):
            q = _channel_layout(np.stack([ints] * 3), 0)
            z2 = data.zero_points(dout)[0]
            out.append(Case(
                f"{_label(din, scales, zps, 0)} -> {_label(dout, 0.1, z2)}",
                {"ints": q, "dtype": din, "scale": scales, "zp": zps, "axis": 0,
                 "out_dtype": dout, "out_scale": 0.1, "out_zp": z2},
                inputs=q,
            ))
    return out


def _requantize_run(case, profile):
    a = case.args
    q = requantize(_input_qtensor(a), a["out_scale"], a["out_zp"], a["out_dtype"], numerics=profile)
    return _int_values(q, a["ints"].shape)


def _requantize_torch(peer, case, profile):
    a = case.args
    return peer.requantize(profile, a["ints"], a["scale"], a["zp"], a["axis"], a["dtype"].name,
                           a["out_scale"], a["out_zp"], a["out_dtype"].name)


def _requantize_ort(peer, case, profile):
    a = case.args
    return peer.requantize(a["ints"], a["scale"], a["zp"], a["axis"], a["dtype"].name,
                           a["out_scale"], a["out_zp"], a["out_dtype"].name)


register(Sweep(
    name="requantize",
    cases=_requantize_cases,
    run=_requantize_run,
    peers={"torch": _requantize_torch, "onnxruntime": _requantize_ort},
))


# ------------------------------------------------------------ fake quantize
_FAKE_RANGES = (quint8, qint8, quint4x2)  # quant_min/quant_max taken from these types


def _fake_cases(data, per_channel):
    out = []
    for dt in _FAKE_RANGES:
        if per_channel:
            configs = [(scales, zps, axis) for scales, zps in data.channel_sets(dt) for axis in (0, 1)]
        else:
            configs = [(s, z, None) for s in data.scales for z in data.zero_points(dt)]
        for scale, zp, axis in configs:
            if axis is None:
                x = data.floats(scale, zp, dt)
                lsb = np.float64(np.float32(scale))
            else:
                x = _per_channel_floats(data, scale, zp, dt, axis)
                shape = [1] * x.ndim
                shape[axis] = 3
                lsb = np.asarray(scale, np.float64).astype(np.float32).astype(np.float64).reshape(shape)
            label = _label(dt, scale, zp, axis).replace(dt.name, f"[{dt.qmin},{dt.qmax}]", 1)
            out.append(Case(label, {"x": x, "dtype": dt, "scale": scale, "zp": zp, "axis": axis, "lsb": lsb},
                            inputs=x, counted=~np.isnan(x)))
    return out


def _fake_run(case, profile):
    a, dt = case.args, case.args["dtype"]
    if a["axis"] is None:
        return fake_quantize_per_tensor_affine(a["x"], a["scale"], a["zp"], dt.qmin, dt.qmax, return_mask=True)
    return fake_quantize_per_channel_affine(a["x"], a["scale"], a["zp"], a["axis"], dt.qmin, dt.qmax,
                                            return_mask=True)


def _fake_reference(case):
    """The ideal: the reference profile's quantize, then ``(q - zp) * scale`` exactly."""
    a = case.args
    q = _quantize_run(case, "reference").astype(np.float64)
    zp = np.asarray(a["zp"], np.float64).reshape(np.shape(a["lsb"]))
    return (q - zp) * a["lsb"]


def _fake_distance(out, ref, case):
    """``|y - y_ref|`` in units of the scale (a step of the quantization grid)."""
    with np.errstate(invalid="ignore"):
        return np.abs(_first(out).astype(np.float64) - ref) / case.args["lsb"]


def _fake_torch(peer, case, profile):
    a, dt = case.args, case.args["dtype"]
    return peer.fake_quantize(profile, a["x"], a["scale"], a["zp"], a["axis"], dt.qmin, dt.qmax)


for _name, _per_channel in (("fake_quantize_per_tensor_affine", False), ("fake_quantize_per_channel_affine", True)):
    register(Sweep(
        name=_name,
        cases=(lambda pc: lambda data: _fake_cases(data, pc))(_per_channel),
        run=_fake_run,
        peers={"torch": _fake_torch},
        reference=_fake_reference,
        distance=_fake_distance,
        unit="LSB",
        profiles=TORCH_PROFILES,
    ))


# ------------------------------------------------------- linear and conv
#: Profiles that take uint8 (quint8) and int8 (qint8) activations; weights
#: with nonzero zero points are left out of onednn and the tflite profiles,
#: which need symmetric weights.
_U8_PROFILES = ("fbgemm", "qnnpack", "onednn", "onnxruntime", "reference")
_S8_PROFILES = ("onnxruntime", "tflite", "tflite_single", "reference")
_SYMMETRIC_ONLY = ("onednn", "tflite", "tflite_single")


def _f32(v):
    """Scales as float32 values (so every peer's narrowing agrees)."""
    return np.asarray(v, np.float64).astype(np.float32).astype(np.float64)


def _weighted_case(data, key, op, act, x_shape, w_shape, k, per_channel, symmetric, with_bias, relu,
                   geometry=None):
    """One linear / conv case: full-range integers, qparams that spread the output.

    ``k`` is the number of products in one accumulator (``K`` or
    ``C/groups * prod(kernel)``); the output scale is drawn around the
    accumulator's spread so outputs cover the range and also saturate.
    """
    rng = data.rng(op, *key, act, per_channel, symmetric, with_bias)
    xdt = np.uint8 if act == "u8" else np.int8
    info = np.iinfo(xdt)
    x = rng.integers(info.min, info.max, x_shape, endpoint=True).astype(xdt)
    w = rng.integers(-128, 127, w_shape, endpoint=True).astype(np.int8)
    i = zlib.crc32(repr(key).encode())
    zx = (info.min, info.max, int(rng.integers(info.min, info.max, endpoint=True)))[i % 3]
    zo = (info.max, int(rng.integers(info.min, info.max, endpoint=True)), info.min)[i % 3]
    o = w_shape[0]
    sx = float(_f32(np.exp2(rng.uniform(-8, -2))))
    if per_channel:
        sw = _f32(np.exp2(rng.uniform(-10, -4, o)))
        zw = np.zeros(o, np.int64) if symmetric else rng.integers(-5, 5, o, endpoint=True)
        sw_typ = float(np.mean(sw))
    else:
        sw = float(_f32(np.exp2(rng.uniform(-10, -4))))
        zw = 0 if symmetric else int(rng.choice([-5, -3, 2, 4, 5]))
        sw_typ = sw
    spread = sx * sw_typ * 110.0 * 74.0 * np.sqrt(k)
    so = float(_f32(spread / 40.0 * np.exp2(rng.uniform(-1.5, 1.5))))
    bias = (rng.normal(0.0, 30.0, o) * so).astype(np.float32) if with_bias else None
    profiles = _U8_PROFILES if act == "u8" else _S8_PROFILES
    if not symmetric:
        profiles = tuple(p for p in profiles if p not in _SYMMETRIC_ONLY)
    desc = (f"{'uint8' if act == 'u8' else 'int8'} x{list(x_shape)} w{list(w_shape)}"
            f"{' per-channel' if per_channel else ''} zw={'0' if symmetric else 'mixed'}"
            f"{' bias' if with_bias else ''}")
    if geometry is not None:
        stride, padding, dilation, groups = geometry
        desc += f" stride={stride} padding={padding} dilation={dilation} groups={groups}"
    args = {"x": x, "sx": sx, "zx": zx, "w": w, "sw": sw, "zw": zw, "bias": bias, "so": so, "zo": zo,
            "relu": relu, "geometry": geometry}
    return Case(desc, args, profiles=profiles)


def _weighted_qtensors(a):
    xq = make_per_tensor_qtensor(a["x"], a["sx"], a["zx"], quint8 if a["x"].dtype == np.uint8 else qint8)
    if np.ndim(a["sw"]):
        wq = make_per_channel_qtensor(a["w"], a["sw"], a["zw"], 0, qint8)
    else:
        wq = make_per_tensor_qtensor(a["w"], a["sw"], a["zw"], qint8)
    return xq, wq


#: (M, K, N) of the linear sweep; the quick sweep takes the first two.
_LINEAR_SHAPES = ((3, 31, 5), (17, 64, 33), (1, 1, 1), (40, 257, 48), (64, 1000, 7))


def _linear_cases(data, relu):
    shapes = _LINEAR_SHAPES[:2] if data.quick else _LINEAR_SHAPES
    variants = ((False, False), (True, True)) if data.quick else \
        ((False, False), (True, False), (False, True), (True, True))
    out = []
    for m, k, n in shapes:
        for per_channel, with_bias in variants:
            for act in ("u8", "s8"):
                for symmetric in (True, False):
                    out.append(_weighted_case(data, (m, k, n), "linear", act, (m, k), (n, k), k,
                                              per_channel, symmetric, with_bias, relu))
    return out


def _linear_run(case, profile):
    a = case.args
    xq, wq = _weighted_qtensors(a)
    f = linear_relu if a["relu"] else linear
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # accumulator-overflow notice
        return f(xq, wq, a["bias"], a["so"], a["zo"], numerics=profile).int_repr()


def _linear_torch(peer, case, profile):
    a = case.args
    return peer.linear(profile, a["x"], a["sx"], a["zx"], a["w"], a["sw"], a["zw"], a["bias"],
                       a["so"], a["zo"], relu=a["relu"])


def _linear_ort(peer, case, profile):
    a = case.args
    return peer.linear(a["x"], a["sx"], a["zx"], a["w"], a["sw"], a["zw"], a["bias"], a["so"], a["zo"],
                       relu=a["relu"])


for _name, _relu in (("linear", False), ("linear_relu", True)):
    register(Sweep(
        name=_name,
        cases=(lambda r: lambda data: _linear_cases(data, r))(_relu),
        run=_linear_run,
        peers={"torch": _linear_torch, "onnxruntime": _linear_ort},
    ))


#: Convolution geometries: (batch, in_channels, spatial, out_channels, kernel,
#: stride, padding, dilation, groups); the quick sweep takes those marked.
_CONV_GEOMETRIES = {
    1: [
        (2, 4, (11,), 6, (3,), (1,), (1,), (1,), 1, True),
        (1, 8, (16,), 8, (5,), (2,), (2,), (1,), 8, False),  # depthwise
        (1, 6, (13,), 4, (2,), (1,), (0,), (2,), 2, False),
    ],
    2: [
        (1, 3, (9, 9), 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),
        # fbgemm's depthwise kernel: 16 channels, 3x3, "same": its int16
        # pair sums saturate on full-range activations
        (1, 16, (8, 8), 16, (3, 3), (1, 1), (1, 1), (1, 1), 16, True),
        (2, 8, (7, 6), 6, (3, 2), (2, 1), (0, 1), (1, 1), 1, False),
        (1, 8, (10, 10), 16, (3, 3), (2, 2), (1, 1), (1, 1), 8, False),  # depthwise x2, stride 2
        (1, 4, (6, 7), 6, (1, 1), (1, 1), (0, 0), (1, 1), 2, False),  # grouped 1x1
        (1, 6, (9, 8), 4, (3, 3), (1, 1), (2, 2), (2, 2), 1, False),  # dilation 2
        (1, 8, (7, 7), 8, (5, 5), (1, 1), (2, 2), (1, 1), 8, False),  # depthwise 5x5
    ],
    3: [
        (1, 3, (4, 5, 5), 4, (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1, True),
        (1, 8, (4, 4, 4), 8, (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 8, False),  # depthwise
        (1, 4, (3, 6, 5), 4, (1, 2, 3), (1, 2, 1), (0, 1, 1), (1, 1, 1), 2, False),
    ],
}


def _conv_cases(data, nd, relu):
    out = []
    for n, c, spatial, o, kernel, stride, padding, dilation, groups, in_quick in _CONV_GEOMETRIES[nd]:
        if data.quick and not in_quick:
            continue
        key = (nd, n, c, spatial, o, kernel, stride, padding, dilation, groups)
        variants = ((True, True),) if data.quick else ((False, False), (True, True), (False, True))
        k = c // groups * int(np.prod(kernel))
        for per_channel, with_bias in variants:
            for act in ("u8", "s8"):
                for symmetric in (True, False):
                    out.append(_weighted_case(data, key, f"conv{nd}d", act, (n, c) + spatial,
                                              (o, c // groups) + kernel, k, per_channel, symmetric,
                                              with_bias, relu, (stride, padding, dilation, groups)))
    return out


def _conv_run(case, profile):
    a = case.args
    xq, wq = _weighted_qtensors(a)
    stride, padding, dilation, groups = a["geometry"]
    nd = a["x"].ndim - 2
    f = _CONV_FUNCTIONS[(nd, a["relu"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = f(xq, wq, a["bias"], stride, padding, dilation, groups, scale=a["so"], zero_point=a["zo"],
              numerics=profile)
    return y.int_repr()


def _conv_torch(peer, case, profile):
    a = case.args
    return peer.conv(profile, a["x"], a["sx"], a["zx"], a["w"], a["sw"], a["zw"], a["bias"], a["so"],
                     a["zo"], *a["geometry"], relu=a["relu"])


def _conv_ort(peer, case, profile):
    a = case.args
    return peer.conv(a["x"], a["sx"], a["zx"], a["w"], a["sw"], a["zw"], a["bias"], a["so"], a["zo"],
                     *a["geometry"], relu=a["relu"])


_CONV_FUNCTIONS = {(1, False): conv1d, (2, False): conv2d, (3, False): conv3d, (2, True): conv2d_relu}

for (_nd, _relu) in _CONV_FUNCTIONS:
    register(Sweep(
        name=f"conv{_nd}d" + ("_relu" if _relu else ""),
        cases=(lambda nd, r: lambda data: _conv_cases(data, nd, r))(_nd, _relu),
        run=_conv_run,
        peers={"torch": _conv_torch, "onnxruntime": _conv_ort},
    ))


# -------------------------------------------------------------------- engine
@dataclasses.dataclass
class Row:
    """The result of one (op, profile)."""

    op: str
    profile: str
    peer: Optional[str]  # the peer's name, None if the profile has none for this op
    peer_status: str  # "ok", "none", "not installed" or "unavailable: ..."
    peer_version: Optional[str] = None
    unit: str = "LSB"
    cases: int = 0
    cases_compared: int = 0
    values: int = 0
    values_compared: int = 0
    mismatches: int = 0
    max_diff_vs_reference: float = 0.0
    worst_vs_reference: Optional[dict] = None
    mismatch_cases: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def compared(self) -> bool:
        return self.peer_status == "ok"

    @property
    def failed(self) -> bool:
        return bool(self.errors) or (self.compared and self.mismatches > 0)

    def peer_text(self) -> str:
        if self.peer is None:
            return "—"
        if self.peer_status == "ok":
            return f"{self.peer} {self.peer_version}"
        return f"{self.peer}: {self.peer_status}"

    def as_dict(self) -> dict:
        """A JSON-ready dict (a NaN distance becomes the string ``"nan"``)."""
        d = dataclasses.asdict(self)
        d["max_diff_vs_reference"] = _json_number(float(self.max_diff_vs_reference))
        d["failed"] = self.failed
        return d


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def _differences(ours, theirs):
    """Boolean mask of differing elements, or a string when dtypes/shapes differ."""
    ours, theirs = _as_tuple(ours), _as_tuple(theirs)
    if len(ours) != len(theirs):
        return f"qops returned {len(ours)} outputs, the peer {len(theirs)}"
    diff = None
    for a, b in zip(ours, theirs):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"qops gave {a.dtype}{list(a.shape)}, the peer {b.dtype}{list(b.shape)}"
        if a.dtype.kind == "f":
            bits = np.dtype(f"u{a.dtype.itemsize}")
            d = (a.view(bits) != b.view(bits)) & ~(np.isnan(a) & np.isnan(b))
        else:
            d = a != b
        diff = d if diff is None else diff | d
    return diff


def _scalar(v):
    v = np.asarray(v)
    return v.item() if v.dtype.kind in "biuf" else str(v)


def _example(case, ours, theirs, where, other="peer"):
    """The first element flagged in ``where``: its index, input and both results."""
    i = np.unravel_index(int(np.flatnonzero(where)[0]), where.shape)
    ex = {"index": [int(k) for k in i]}
    if case.inputs is not None and np.shape(case.inputs) == where.shape:
        ex["input"] = _json_number(_scalar(case.inputs[i]))
    ex["qops"] = [_json_number(_scalar(o[i])) for o in _as_tuple(ours)]
    ex[other] = [_json_number(_scalar(t[i])) for t in _as_tuple(theirs)]
    if len(ex["qops"]) == 1 and len(ex[other]) == 1:
        ex["qops"], ex[other] = ex["qops"][0], ex[other][0]
    else:  # the reference has one output: compare it with qops' first
        ex["qops"] = ex["qops"] if len(ex[other]) > 1 else ex["qops"][0]
        ex[other] = ex[other] if len(ex[other]) > 1 else ex[other][0]
    return ex


def _json_number(v):
    if isinstance(v, float) and not np.isfinite(v):
        return repr(v)  # "nan", "inf": JSON has no literal for them
    return v


def _selection(ops, profiles):
    """``[(sweep, profile), ...]`` in table order (ops as registered, profiles as listed)."""
    chosen = []
    for sweep in _SWEEPS.values():
        if ops is not None and sweep.name not in ops:
            continue
        for profile in available_numerics():
            if profiles is not None and profile not in profiles:
                continue
            if profile in sweep.profiles:
                chosen.append((sweep, profile))
    return chosen


def run_report(ops=None, profiles=None, *, quick=False, seed=0, progress=None) -> list[Row]:
    """Run the sweep and return one :class:`Row` per (op, profile).

    Parameters
    ----------
    ops, profiles : collection of str, optional
        Restrict the sweep (default: every registered op, every profile).
    quick : bool
        The small sweep.
    seed : int
        Seed of the random inputs.
    progress : qops._progress.Progress, optional
        Advanced once per case; its ``total`` is set here.

    Raises
    ------
    ValueError
        An unknown op or profile name.
    """
    if ops is not None:
        unknown = [o for o in ops if o not in _SWEEPS]
        if unknown:
            raise ValueError(f"unknown op {unknown[0]!r}; known ops: {', '.join(_SWEEPS)}")
    if profiles is not None:
        unknown = [p for p in profiles if p not in available_numerics()]
        if unknown:
            raise ValueError(f"unknown numerics profile {unknown[0]!r}; known profiles: "
                             f"{', '.join(available_numerics())}")
    selection = _selection(ops, profiles)
    data = SweepData(seed=seed, quick=quick)
    cases = {}
    for sweep, _ in selection:
        if sweep.name not in cases:
            cases[sweep.name] = list(sweep.cases(data))
    if progress is not None:
        progress.total = sum(sum(c.applies(p) for c in cases[s.name]) for s, p in selection)
    references: dict = {}
    rows = []
    for sweep, profile in selection:
        rows.append(_run_row(sweep, profile, cases[sweep.name], references, progress))
    return rows


def _run_row(sweep, profile, cases, references, progress):
    t0 = time.perf_counter()
    peer_name = profile_peer(profile)
    if peer_name not in sweep.peers:
        peer_name = None
    row = Row(op=sweep.name, profile=profile, peer=peer_name, peer_status="none", unit=sweep.unit)
    adapter = None
    if peer_name is not None:
        try:
            adapter = _peers.load(peer_name)
            row.peer_status, row.peer_version = "ok", adapter.version
        except _peers.PeerUnavailable as e:
            row.peer_status = e.status
    peer_call = sweep.peers.get(peer_name)
    for idx, case in enumerate(cases):
        if not case.applies(profile):
            continue
        if progress is not None:
            progress.set_label(f"{sweep.name} {profile} {case.label}")
        row.cases += 1
        try:
            ours = sweep.run(case, profile)
        except Exception as e:  # a qops failure is a result to report, not a crash
            row.errors.append({"case": case.label, "side": "qops", "error": f"{type(e).__name__}: {e}"})
            if progress is not None:
                progress.advance()
            continue
        n = _first(ours).size
        row.values += n
        # reference column
        key = (sweep.name, idx)
        try:
            if key not in references:
                references[key] = sweep.reference_result(case)
            ref = references[key]
            dist = np.asarray(sweep.distance(ours, ref, case), dtype=np.float64)
            if case.counted is not None:
                dist = np.where(np.broadcast_to(case.counted, dist.shape), dist, 0.0)
            worst = float(np.max(dist)) if dist.size else 0.0
            if worst > row.max_diff_vs_reference or np.isnan(worst):
                row.max_diff_vs_reference = worst
                row.worst_vs_reference = _example(case, ours, ref, dist == worst, other="reference")
                row.worst_vs_reference["case"] = case.label
        except Exception as e:
            row.errors.append({"case": case.label, "side": "reference", "error": f"{type(e).__name__}: {e}"})
        # peer column
        if adapter is not None and row.peer_status == "ok":
            try:
                theirs = peer_call(adapter, case, profile)
            except _peers.PeerUnavailable as e:
                row.peer_status = e.status
                theirs = None
            except Exception as e:
                row.errors.append({"case": case.label, "side": peer_name, "error": f"{type(e).__name__}: {e}"})
                theirs = None
            if theirs is not None:
                row.cases_compared += 1
                row.values_compared += n
                diff = _differences(ours, theirs)
                if isinstance(diff, str):
                    row.mismatches += n
                    row.mismatch_cases.append({"case": case.label, "mismatches": n, "note": diff})
                elif diff.any():
                    count = int(diff.sum())
                    row.mismatches += count
                    row.mismatch_cases.append({"case": case.label, "mismatches": count,
                                               "example": _example(case, ours, theirs, diff)})
        if progress is not None:
            progress.advance()
    if not row.compared:
        row.cases_compared = row.values_compared = row.mismatches = 0
    row.seconds = time.perf_counter() - t0
    return row


# --------------------------------------------------------------------- table
COLUMNS = ("op", "profile", "peer", "cases", "compared", "mismatches", "max |diff| vs reference")


def _cells(row: Row):
    if row.errors:
        mism = f"ERROR ({len(row.errors)})"
    elif row.compared:
        mism = str(row.mismatches)
    else:
        mism = "—"
    compared = f"{row.values_compared}" if row.compared else "—"
    ref = f"{row.max_diff_vs_reference:.3g} {row.unit}"
    return (row.op, row.profile, row.peer_text(), str(row.cases), compared, mism, ref)


def format_table(rows: Sequence[Row]) -> str:
    """The report table as text (fixed-width columns, numbers right-aligned)."""
    body = [_cells(r) for r in rows]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(COLUMNS)]
    right = {3, 4, 5}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(COLUMNS), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    return "\n".join(out)


def format_details(rows: Sequence[Row], limit=5) -> str:
    """Mismatching cases and errors, a few per row."""
    out = []
    for r in rows:
        if not (r.errors or (r.compared and r.mismatch_cases)):
            continue
        out.append(f"{r.op} / {r.profile} vs {r.peer_text()}:")
        items = r.errors + (r.mismatch_cases if r.compared else [])
        for item in items[:limit]:
            if "error" in item:
                out.append(f"  error ({item['side']}) in {item['case']}: {item['error']}")
            elif "note" in item:
                out.append(f"  {item['case']}: {item['note']}")
            else:
                ex = item["example"]
                where = f" input {ex['input']!r}" if "input" in ex else ""
                out.append(f"  {item['case']}: {item['mismatches']} differ; e.g. at {tuple(ex['index'])}{where}: "
                           f"qops {ex['qops']!r}, peer {ex['peer']!r}")
        if len(items) > limit:
            out.append(f"  ... and {len(items) - limit} more (see --json)")
    return "\n".join(out)


def format_reference_notes(rows: Sequence[Row], threshold=1.0) -> str:
    """Where rows are farthest from the reference profile (those beyond ``threshold``).

    Rows of one op with the same worst case (e.g. the three torch profiles)
    share a line.
    """
    groups: dict = {}
    for r in rows:
        ex = r.worst_vs_reference
        if ex is None or not r.max_diff_vs_reference > threshold:
            continue
        where = f"input {ex['input']!r}: " if "input" in ex else ""
        text = (f"{r.max_diff_vs_reference:.3g} {r.unit} in {ex['case']}, "
                f"{where}qops {ex['qops']!r}, reference {ex['reference']!r}")
        groups.setdefault((r.op, text), []).append(r.profile)
    return "\n".join(f"  {op} / {', '.join(profiles)}: {text}" for (op, text), profiles in groups.items())


# the sweeps of the other op families, each in its own module
from . import (  # noqa: E402,F401
    _sweeps_activation,
    _sweeps_conv_transpose,
    _sweeps_elementwise,
    _sweeps_embedding,
    _sweeps_norm,
    _sweeps_pool,
    _sweeps_resample,
)
