"""``qops report`` sweeps for :mod:`qops._pool` (registered on import by :mod:`qops.report`).

Each pooling op runs on small full-range quint8 / qint8 / qint32 inputs in
both memory formats (torch's NCHW and NHWC kernels round differently), with
channel counts across the 8- and 16-channel vector boundaries of torch's NHWC
kernels.  The peer is torch 2.13 with the engine named like the profile.
Cases torch sends to QNNPACK under ``qnnpack`` (quint8 max/avg_pool2d without
ceil_mode, quint8 adaptive_avg_pool2d with divisible sizes) compare QNNPACK's
arithmetic; those torch refuses there (3-D input, 1x1 windows: RuntimeError,
ValueError in qops) skip that profile.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import functional as F
from ._ops import make_per_tensor_qtensor
from .dtypes import qint8, qint32, quint8
from .report import Case, Sweep, register

_AVG_PROFILES = ("fbgemm", "qnnpack", "onednn", "reference")
_ALL = ("fbgemm", "qnnpack", "onednn", "onnxruntime", "tflite", "tflite_single", "reference")
_DTYPES = (quint8, qint8, qint32)

# (shape, op kwargs) per op; spatial sizes > 1 where the output is larger
# than 1x1 (torch permutes the integers of 1x1-spatial inputs, see the docs)
_GEOMETRIES = {
    "max_pool1d": [((2, 17, 9), dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
                   ((5, 8), dict(kernel_size=2))],
    "max_pool2d": [((2, 17, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
                   ((1, 33, 5, 5), dict(kernel_size=(2, 3), stride=1, dilation=(2, 1))),
                   ((4, 6, 5), dict(kernel_size=2)),
                   ((2, 9, 7, 6), dict(kernel_size=3, stride=1, padding=1, dilation=2))],
    "avg_pool2d": [((2, 17, 7, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
                   ((1, 33, 5, 6), dict(kernel_size=(2, 3), stride=1, padding=(1, 1),
                                        count_include_pad=False)),
                   ((2, 16, 4, 4), dict(kernel_size=2, stride=1, divisor_override=3)),
                   ((6, 5, 7), dict(kernel_size=3, stride=2, ceil_mode=True))],
    "avg_pool3d": [((1, 17, 3, 5, 4), dict(kernel_size=2, stride=1, padding=1, ceil_mode=True)),
                   ((2, 9, 4, 4, 3), dict(kernel_size=(3, 2, 1), count_include_pad=False, padding=(1, 1, 0)))],
    "adaptive_avg_pool2d": [((2, 17, 7, 6), dict(output_size=(3, 4))),
                            ((1, 33, 5, 6), dict(output_size=(7, 9))),
                            ((2, 9, 6, 4), dict(output_size=(3, 2))),
                            ((6, 5, 7), dict(output_size=(None, 3)))],
    "adaptive_avg_pool3d": [((1, 17, 3, 5, 4), dict(output_size=(2, 3, 3))),
                            ((2, 9, 4, 4, 3), dict(output_size=(3, 5, 2)))],
}

def _qnnpack_refused(op, dtype, shape, kw):
    """Cases torch sends to QNNPACK under engine qnnpack and then refuses."""
    if dtype is not quint8:
        return False
    if op in ("max_pool1d", "max_pool2d", "avg_pool2d"):
        k = kw["kernel_size"]
        area = k * k if isinstance(k, int) else k[0] * k[1]
        rank = len(shape) + (op == "max_pool1d")
        return not kw.get("ceil_mode", False) and (rank != 4 or area == 1)
    if op == "adaptive_avg_pool2d":
        sp = shape[-2:]
        o = tuple(i if e is None else e for e, i in zip(kw["output_size"], sp))
        return o != tuple(sp) and sp[0] % o[0] == 0 and sp[1] % o[1] == 0 and len(shape) != 4
    return False


def _cases(op):
    def build(data):
        cases = []
        for dtype in _DTYPES:
            for zp in data.zero_points(dtype):
                geometries = _GEOMETRIES[op][:2] if data.quick else _GEOMETRIES[op]
                for g, (shape, kw) in enumerate(geometries):
                    for cl in (False, True) if len(shape) >= 4 else (False,):
                        rng = data.rng("pool", op, dtype.name, zp, g)
                        lo, hi = (dtype.qmin, dtype.qmax) if dtype is not qint32 else (-70000, 70000)
                        ints = rng.integers(lo, hi + 1, shape).astype(dtype.storage)
                        profiles = _ALL if op.startswith("max") else _AVG_PROFILES
                        if _qnnpack_refused(op, dtype, shape, kw):
                            profiles = tuple(p for p in profiles if p != "qnnpack")
                        label = f"{dtype.name} zp={zp} {shape}{' channels_last' if cl else ''} {kw}"
                        cases.append(Case(label, {"op": op, "ints": ints, "zp": zp, "dtype": dtype,
                                                  "cl": cl, "kw": kw}, profiles=profiles))
        return cases
    return build


def _perms(nd):
    return (0,) + tuple(range(2, nd)) + (1,), (0, nd - 1) + tuple(range(1, nd - 1))


def _run(case, profile):
    a = case.args
    ints = a["ints"]
    if a["cl"]:
        perm, inv = _perms(ints.ndim)
        q = make_per_tensor_qtensor(np.ascontiguousarray(ints.transpose(perm)), 0.05, a["zp"], a["dtype"])
        q = q.permute(inv)
    else:
        q = make_per_tensor_qtensor(ints, 0.05, a["zp"], a["dtype"])
    y = getattr(F, a["op"])(q, **a["kw"], numerics=profile)
    return np.ascontiguousarray(y.int_repr())


def _torch(peer, case, profile):
    peer.engine(profile)
    torch = peer.torch
    a = case.args
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's quantized-dtype deprecation
        t = torch._make_per_tensor_quantized_tensor(torch.from_numpy(a["ints"].copy()), 0.05, a["zp"])
        if a["cl"]:
            t = t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)
        y = getattr(torch.nn.functional, a["op"])(t, **a["kw"])
    return np.ascontiguousarray(y.int_repr().numpy())


for _op in _GEOMETRIES:
    register(Sweep(
        name=_op,
        cases=_cases(_op),
        run=_run,
        peers={"torch": _torch},
        profiles=_ALL if _op.startswith("max") else _AVG_PROFILES,
    ))
