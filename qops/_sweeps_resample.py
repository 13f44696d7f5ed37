"""``qops report`` sweeps for :mod:`qops._resample` (registered on import by :mod:`qops.report`).

``interpolate``: bilinear (torch profiles and reference) and nearest /
nearest-exact (every profile: the integers only move) on full-range quint8
and qint8 inputs, NCHW and channels-last, with channel counts on both sides
of torch's vector widths, sizes and scale factors, both ``align_corners``.
``channel_shuffle``: quint8 (torch's only dtype) in both layouts and qint8
(every profile).  Peer: torch 2.13 with the engine named like the profile.
"""

from __future__ import annotations

import numpy as np

from . import _resample as R
from ._ops import make_per_tensor_qtensor
from .dtypes import qint8, quint8
from .report import Case, Sweep, register

_TORCH = ("fbgemm", "qnnpack", "onednn")
_BILINEAR = _TORCH + ("reference",)
_DTYPES = {"quint8": quint8, "qint8": qint8}


def _ints(data, dtype, shape, *key):
    rng = data.rng("resample", dtype.name, shape, *key)
    a = rng.integers(dtype.qmin, dtype.qmax + 1, size=shape)
    a.flat[:2] = (dtype.qmin, dtype.qmax)
    return a.astype(dtype.storage)


def _qtensor(a):
    ints, dtype = a["ints"], _DTYPES[a["dtype"]]
    if a["layout"] == "nhwc":
        nd = ints.ndim
        buf = np.ascontiguousarray(ints.transpose((0,) + tuple(range(2, nd)) + (1,)))
        return make_per_tensor_qtensor(buf, a["s"], a["z"], dtype).permute((0, nd - 1) + tuple(range(1, nd - 1)))
    return make_per_tensor_qtensor(ints, a["s"], a["z"], dtype)


def _torch_tensor(peer, a):
    ints = a["ints"]
    if a["layout"] == "nhwc":
        nd = ints.ndim
        buf = np.ascontiguousarray(ints.transpose((0,) + tuple(range(2, nd)) + (1,)))
        return peer._qtensor(buf, a["s"], a["z"], None).permute((0, nd - 1) + tuple(range(1, nd - 1)))
    return peer._qtensor(ints, a["s"], a["z"], None)


# ------------------------------------------------------------------ interpolate
_GEOMETRY = [  # (input shape, kwargs); channels 7, 8, 17, 24, 33 straddle torch's 8 / 16 lanes
    ((2, 17, 7, 9), dict(size=(13, 16))),
    ((1, 24, 8, 6), dict(scale_factor=(1.75, 2.5))),
    ((1, 33, 5, 5), dict(scale_factor=0.6)),
    ((2, 7, 9, 4), dict(size=(4, 11))),
    ((1, 8, 3, 3), dict(scale_factor=(1.1, 1.0))),
]


_MODES = [("bilinear", False), ("bilinear", True), ("nearest", None), ("nearest-exact", None)]


def _interpolate_cases(data):
    out = []
    geometry = _GEOMETRY[:2] if data.quick else _GEOMETRY
    qparams = [(0.05, 131), (0.3, 255)][: 1 if data.quick else 2]
    for name, dtype in list(_DTYPES.items())[: 1 if data.quick else 2]:
        for gi, (shape, kw) in enumerate(geometry):
            ints = _ints(data, dtype, shape, gi)
            for s, z in qparams:
                z = z if dtype is quint8 else z - 128
                for layout in ("nchw", "nhwc"):
                    for mode, ac in _MODES:
                        kwm = dict(kw, mode=mode)
                        if ac is not None:
                            kwm["align_corners"] = ac
                        label = f"{name} s={s} zp={z} {layout} {shape} {kwm}"
                        args = {"ints": ints, "s": s, "z": z, "dtype": name, "layout": layout, "kw": kwm}
                        out.append(Case(label, args, profiles=_BILINEAR if mode == "bilinear" else None))
    return out


def _interpolate_run(case, profile):
    a = case.args
    return np.ascontiguousarray(R.interpolate(_qtensor(a), numerics=profile, **a["kw"]).int_repr())


def _interpolate_torch(peer, case, profile):
    if profile not in _TORCH:
        return None
    peer.engine(profile)
    a = case.args
    y = peer.torch.nn.functional.interpolate(_torch_tensor(peer, a), **a["kw"])
    return np.ascontiguousarray(y.int_repr().numpy())


register(Sweep(name="interpolate", cases=_interpolate_cases, run=_interpolate_run,
               peers={"torch": _interpolate_torch}))


# ------------------------------------------------------------------ channel_shuffle
def _shuffle_cases(data):
    out = []
    for name, dtype in _DTYPES.items():
        for gi, (shape, g) in enumerate([((2, 12, 5, 7), 3), ((1, 64, 4, 4), 8)][: 1 if data.quick else 2]):
            ints = _ints(data, dtype, shape, "shuffle", gi)
            for layout in ("nchw", "nhwc"):
                args = {"ints": ints, "s": 0.1, "z": 3, "dtype": name, "layout": layout, "g": g}
                out.append(Case(f"{name} {layout} {shape} groups={g}", args))
    return out


def _shuffle_run(case, profile):
    a = case.args
    return np.ascontiguousarray(R.channel_shuffle(_qtensor(a), a["g"], numerics=profile).int_repr())


def _shuffle_torch(peer, case, profile):
    a = case.args
    if profile not in _TORCH or a["dtype"] != "quint8":  # torch's kernel takes quint8 only
        return None
    peer.engine(profile)
    y = peer.torch.nn.functional.channel_shuffle(_torch_tensor(peer, a), a["g"])
    return np.ascontiguousarray(y.int_repr().numpy())


register(Sweep(name="channel_shuffle", cases=_shuffle_cases, run=_shuffle_run, peers={"torch": _shuffle_torch}))
