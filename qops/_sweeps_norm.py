"""``qops report`` sweeps for :mod:`qops._norm` (registered on import by :mod:`qops.report`).

layer_norm, group_norm (NCHW and channels-last inputs: torch's two kernels),
instance_norm, batch_norm and batch_norm_relu, quint8 and qint8, under the
torch profiles (one ATen kernel for every engine) and ``reference``; the peer
is torch's ``quantized.*`` op with the engine named like the profile.
Row lengths straddle torch's 32/64-element vector boundaries.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._ops import make_per_tensor_qtensor
from .dtypes import qint8, quint8
from .functional import batch_norm, batch_norm_relu, group_norm, instance_norm, layer_norm
from .report import Case, Sweep, register

_PROFILES = ("fbgemm", "qnnpack", "onednn", "reference")
_TORCH = ("fbgemm", "qnnpack", "onednn")
_DT = {"quint8": (quint8, np.uint8), "qint8": (qint8, np.int8)}


def _input(data, key, dt, shape):
    rng = data.rng("norm", *key, dt)
    info = np.iinfo(_DT[dt][1])
    x = rng.integers(info.min, info.max, shape, endpoint=True).astype(_DT[dt][1])
    zx = int(rng.integers(info.min, info.max, endpoint=True)) | 1  # odd
    zo = int(rng.integers(info.min // 2, info.max // 2, endpoint=True))
    sx = float(rng.choice(data.scales))
    so = float(np.exp2(rng.uniform(-7, -3)))
    return rng, x, sx, zx, so, zo


def _affine(rng, c, with_affine):
    if not with_affine:
        return None, None
    return (rng.normal(1.0, 0.5, c).astype(np.float32), rng.normal(0.0, 0.5, c).astype(np.float32))


def _qx(a, channels_last=False):
    x = a["x"]
    if channels_last:
        x = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    return make_per_tensor_qtensor(x, a["sx"], a["zx"], _DT[a["dt"]][0])


def _tq(peer, profile, a, channels_last=False):
    peer.engine(profile)
    t = peer.torch
    q = t._make_per_tensor_quantized_tensor(t.from_numpy(np.ascontiguousarray(a["x"])), a["sx"],
                                            a["zx"])
    return q.contiguous(memory_format=t.channels_last) if channels_last else q


def _t(peer, v):
    return None if v is None else peer.torch.from_numpy(v)


def _quiet(fn):
    def wrapped(*args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args)
    return wrapped


# ------------------------------------------------------------------ layer norm
_LN_SHAPES = ((4, 33), (3, 2, 97), (5, 64), (2, 200), (1, 1), (6, 127))


def _ln_cases(data):
    shapes = _LN_SHAPES[:3] if data.quick else _LN_SHAPES
    out = []
    for shape in shapes:
        for dt in ("quint8", "qint8"):
            for with_affine in ((True,) if data.quick else (True, False)):
                rng, x, sx, zx, so, zo = _input(data, ("ln", shape, with_affine), dt, shape)
                w, b = _affine(rng, shape[-1], with_affine)
                args = {"x": x, "dt": dt, "sx": sx, "zx": zx, "so": so, "zo": zo, "w": w, "b": b,
                        "ns": [shape[-1]]}
                out.append(Case(f"{dt} x{list(shape)}{' affine' if with_affine else ''}", args))
    return out


def _ln_run(case, profile):
    a = case.args
    return layer_norm(_qx(a), a["ns"], a["w"], a["b"], 1e-5, a["so"], a["zo"],
                      numerics=profile).int_repr()


@_quiet
def _ln_torch(peer, case, profile):
    a = case.args
    return peer.torch.ops.quantized.layer_norm(
        _tq(peer, profile, a), a["ns"], _t(peer, a["w"]), _t(peer, a["b"]), 1e-5, a["so"],
        a["zo"]).int_repr().numpy()


register(Sweep(name="layer_norm", cases=_ln_cases, run=_ln_run, peers={"torch": _ln_torch},
               profiles=_PROFILES))


# ------------------------------------------------------------------ group / instance norm
_GN_CASES = (((2, 8, 5, 7), 4, False), ((2, 8, 5, 7), 4, True), ((1, 100, 3, 3), 2, True),
             ((2, 12, 33), 3, False), ((1, 6, 2, 3, 4), 2, False), ((1, 16, 24, 24), 4, True),
             # NCHW planes of 340: the per-channel table path on VBMI hosts
             ((1, 8, 17, 20), 2, False))


def _gn_cases(data, instance):
    cases = _GN_CASES[:3] if data.quick else _GN_CASES
    out = []
    for shape, groups, cl in cases:
        for dt in ("quint8", "qint8"):
            rng, x, sx, zx, so, zo = _input(data, ("gn", shape, groups, cl, instance), dt, shape)
            w, b = _affine(rng, shape[1], True)
            g = shape[1] if instance else groups
            args = {"x": x, "dt": dt, "sx": sx, "zx": zx, "so": so, "zo": zo, "w": w, "b": b,
                    "groups": g, "cl": cl}
            out.append(Case(f"{dt} x{list(shape)} groups={g}{' channels_last' if cl else ''}",
                            args))
    return out


def _gn_run(case, profile):
    a = case.args
    return group_norm(_qx(a, a["cl"]), a["groups"], a["w"], a["b"], 1e-5, a["so"], a["zo"],
                      numerics=profile, torch_threads=_torch_threads()).int_repr()


def _in_run(case, profile):
    a = case.args
    return instance_norm(_qx(a, a["cl"]), None, None, a["w"], a["b"], True, 0.1, 1e-5, a["so"],
                         a["zo"], numerics=profile, torch_threads=_torch_threads()).int_repr()


def _torch_threads():
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:  # pragma: no cover - the report without torch
        return None


@_quiet
def _gn_torch(peer, case, profile):
    a = case.args
    return peer.torch.ops.quantized.group_norm(
        _tq(peer, profile, a, a["cl"]), a["groups"], _t(peer, a["w"]), _t(peer, a["b"]), 1e-5,
        a["so"], a["zo"]).int_repr().numpy()


@_quiet
def _in_torch(peer, case, profile):
    a = case.args
    return peer.torch.ops.quantized.instance_norm(
        _tq(peer, profile, a, a["cl"]), _t(peer, a["w"]), _t(peer, a["b"]), 1e-5, a["so"],
        a["zo"]).int_repr().numpy()


register(Sweep(name="group_norm", cases=lambda data: _gn_cases(data, False), run=_gn_run,
               peers={"torch": _gn_torch}, profiles=_PROFILES))
register(Sweep(name="instance_norm", cases=lambda data: _gn_cases(data, True), run=_in_run,
               peers={"torch": _in_torch}, profiles=_PROFILES))


# ------------------------------------------------------------------ batch norm
_BN_SHAPES = ((2, 70, 3, 4), (4, 33), (1, 130, 2, 3, 2), (3, 64, 5), (2, 1, 4, 4))


def _bn_cases(data, relu):
    shapes = _BN_SHAPES[:2] if data.quick else _BN_SHAPES
    out = []
    for shape in shapes:
        for dt in ("quint8", "qint8"):
            rng, x, sx, zx, so, zo = _input(data, ("bn", shape, relu), dt, shape)
            c = shape[1]
            w, b = _affine(rng, c, True)
            mean = rng.normal(0.0, 40.0 * sx, c).astype(np.float32)
            var = (rng.uniform(0.2, 2.0, c) * (40.0 * sx) ** 2).astype(np.float32)
            args = {"x": x, "dt": dt, "sx": sx, "zx": zx, "so": so, "zo": zo, "w": w, "b": b,
                    "mean": mean, "var": var, "relu": relu}
            out.append(Case(f"{dt} x{list(shape)}", args))
    return out


def _bn_run(case, profile):
    a = case.args
    f = batch_norm_relu if a["relu"] else batch_norm
    return f(_qx(a), a["w"], a["b"], a["mean"], a["var"], 1e-5, a["so"], a["zo"],
             numerics=profile).int_repr()


@_quiet
def _bn_torch(peer, case, profile):
    a = case.args
    op = peer.torch.ops.quantized.batch_norm_relu if a["relu"] else peer.torch.ops.quantized.batch_norm
    return op(_tq(peer, profile, a), *(_t(peer, a[k]) for k in ("w", "b", "mean", "var")), 1e-5,
              a["so"], a["zo"]).int_repr().numpy()


for _name, _relu in (("batch_norm", False), ("batch_norm_relu", True)):
    register(Sweep(name=_name, cases=(lambda r: lambda data: _bn_cases(data, r))(_relu),
                   run=_bn_run, peers={"torch": _bn_torch}, profiles=_PROFILES))
