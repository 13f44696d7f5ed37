"""``qops report`` sweeps for :mod:`qops._conv_transpose` (registered on import by :mod:`qops.report`).

Small full-range cases per op (grouped, strided, dilated, padded, with output
padding, per-tensor and per-channel weights, bias or not).  Peers: torch 2.13
``torch.ops.quantized.conv_transpose{n}d`` with the engine named like the
profile.  Each case runs only under the profiles whose peer computes it
correctly (``docs/ops_conv_transpose.md``): per-channel weights only under
qnnpack (groups 1) and reference, output padding and nonzero weight zero
points not under onednn, output pixels that no input reaches ("holes") not
under onednn (torch leaves them uninitialized at times), 3-D not under
qnnpack.
"""

from __future__ import annotations

import numpy as np

from . import _conv_transpose as CT
from ._ops import make_per_channel_qtensor, make_per_tensor_qtensor
from .dtypes import qint8, quint8
from .report import Case, Sweep, register

_FUNCTIONS = {1: CT.conv_transpose1d, 2: CT.conv_transpose2d, 3: CT.conv_transpose3d}

#: (spatial, cin, og, kernel, stride, padding, output_padding, dilation, groups, per_channel, zw)
_GEOMETRIES = {
    1: [((7,), 4, 3, (3,), (2,), (1,), (1,), (1,), 1, False, 3),
        ((5,), 6, 2, (3,), (2,), (0,), (0,), (1,), 3, False, 0),
        ((5,), 2, 3, (2,), (3,), (0,), (2,), (2,), 1, False, 0),
        ((6,), 5, 4, (4,), (1,), (2,), (0,), (1,), 1, True, 0)],
    2: [((4, 5), 4, 3, (3, 3), (2, 2), (1, 1), (1, 0), (1, 1), 1, False, -2),
        ((3, 3), 4, 4, (5, 2), (3, 1), (2, 0), (0, 0), (1, 2), 2, False, 0),
        ((4, 4), 3, 5, (2, 3), (1, 1), (0, 1), (0, 0), (2, 1), 1, True, 0),
        ((3, 4), 6, 1, (3, 3), (1, 2), (1, 0), (0, 1), (1, 1), 6, False, 0)],
    3: [((2, 3, 3), 4, 2, (2, 3, 2), (2, 1, 2), (0, 1, 1), (1, 0, 0), (1, 1, 1), 2, False, 1),
        ((2, 2, 3), 3, 3, (2, 2, 2), (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 2), 1, False, 0)],
}


def _holes(spatial, kernel, stride, padding, output_padding, dilation):
    """Whether some output pixel receives no (input pixel, tap) pair."""
    for n, k, s, p, op, d in zip(spatial, kernel, stride, padding, output_padding, dilation):
        size = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        hit = np.zeros(size, bool)
        for i in range(n):
            for t in range(k):
                pos = i * s - p + t * d
                if 0 <= pos < size:
                    hit[pos] = True
        if not hit.all():
            return True
    return False


def _cases(data, nd):
    out = []
    geometries = _GEOMETRIES[nd][:2] if data.quick else _GEOMETRIES[nd]
    for gi, (spatial, cin, og, k, s, p, op, d, groups, per_channel, zw) in enumerate(geometries):
        for x_dtype in ("quint8", "qint8"):
            rng = data.rng("conv_transpose", nd, gi, x_dtype)
            lo, hi = (0, 256) if x_dtype == "quint8" else (-128, 128)
            x = rng.integers(lo, hi, (2, cin) + spatial).astype(np.uint8 if x_dtype == "quint8" else np.int8)
            w = rng.integers(-128, 128, (cin, og) + k).astype(np.int8)
            zx = int(rng.integers(lo + 10, hi - 10))
            sx = 0.0123
            sw = rng.uniform(0.004, 0.02, og) if per_channel else 0.011
            zws = np.zeros(og, np.int64) if per_channel else zw
            bias = rng.normal(0, 1, og * groups).astype(np.float32) if gi % 2 == 0 else None
            so = float(sx * 0.011 * 60 * np.sqrt(cin // groups * np.prod(k)) / 40)
            zo = 131 if x_dtype == "quint8" else 3
            if x_dtype == "qint8":
                profiles = ("reference",)
            else:
                profiles = ["reference", "fbgemm", "onednn", "qnnpack"]
                if per_channel:
                    profiles = ["reference"] + (["qnnpack"] if groups == 1 and nd < 3 else [])
                if "onednn" in profiles and (any(op) or zw != 0 or _holes(spatial, k, s, p, op, d)):
                    profiles.remove("onednn")
                if nd == 3 and "qnnpack" in profiles:
                    profiles.remove("qnnpack")
                profiles = tuple(profiles)
            label = (f"{x_dtype} in={cin} og={og} k={k} s={s} p={p} op={op} d={d} g={groups} "
                     f"{'per-channel' if per_channel else f'zw={zw}'} bias={bias is not None}")
            out.append(Case(label, {"x": x, "sx": sx, "zx": zx, "w": w, "sw": sw, "zw": zws,
                                    "bias": bias, "so": so, "zo": zo, "stride": s, "padding": p,
                                    "output_padding": op, "dilation": d, "groups": groups,
                                    "x_dtype": x_dtype, "nd": nd}, profiles=profiles))
    return out


def _run(case, profile):
    a = case.args
    xq = make_per_tensor_qtensor(a["x"], a["sx"], a["zx"], quint8 if a["x_dtype"] == "quint8" else qint8)
    if np.ndim(a["sw"]):
        wq = make_per_channel_qtensor(a["w"], a["sw"], a["zw"], 1, qint8)
    else:
        wq = make_per_tensor_qtensor(a["w"], a["sw"], a["zw"], qint8)
    y = _FUNCTIONS[a["nd"]](xq, wq, a["bias"], a["stride"], a["padding"], a["output_padding"],
                            a["groups"], a["dilation"], a["so"], a["zo"], numerics=profile)
    return y.int_repr()


def _torch(peer, case, profile):
    if profile not in ("fbgemm", "qnnpack", "onednn"):
        return None
    a = case.args
    peer.engine(profile)
    torch = peer.torch
    nd = a["nd"]
    xq = peer._qtensor(a["x"], a["sx"], a["zx"], None)
    wq = peer._qtensor(a["w"], a["sw"], a["zw"], 1 if np.ndim(a["sw"]) else None)
    b = None if a["bias"] is None else torch.from_numpy(np.asarray(a["bias"], np.float32))
    prepack = getattr(torch.ops.quantized, f"conv_transpose{nd}d_prepack")
    packed = prepack(wq, b, list(a["stride"]), list(a["padding"]), list(a["output_padding"]),
                     list(a["dilation"]), int(a["groups"]))
    op = getattr(torch.ops.quantized, f"conv_transpose{nd}d")
    return op(xq, packed, float(a["so"]), int(a["zo"])).int_repr().numpy()


for _nd in (1, 2, 3):
    register(Sweep(
        name=f"conv_transpose{_nd}d",
        cases=(lambda nd: lambda data: _cases(data, nd))(_nd),
        run=_run,
        peers={"torch": _torch},
        # torch's qnnpack conv_transpose3d is defective (qops refuses it)
        profiles=("fbgemm", "onednn", "reference") if _nd == 3 else ("fbgemm", "qnnpack", "onednn", "reference"),
    ))
