"""``qops report`` sweeps for :mod:`qops._activation` (registered on import by :mod:`qops.report`).

Each case is every input byte on both of torch's paths: a contiguous run of
319 elements whose first 256 (vectorised in torch) are the bytes 0..255 and
whose last 63 (torch's scalar tail) spread over the range.  relu, relu6,
hardtanh and clamp also run qint32 cases: int32 values over the whole range
and near the zero point.  Peers: torch 2.13 with the engine named like the
profile.
"""

from __future__ import annotations

import numpy as np

from . import _activation as A
from ._ops import make_per_tensor_qtensor
from .dtypes import qint8, qint32, quint8
from .report import Case, Sweep, register

_TORCH = ("fbgemm", "qnnpack", "onednn")
_DTYPES = {"quint8": quint8, "qint8": qint8}
#: the integer selections that take qint32 too
_INT32_OPS = ("relu", "relu6", "hardtanh", "clamp")


def _bytes(dtype):
    b = np.concatenate([np.arange(256), np.arange(63) * 4 + 1]).astype(np.uint8)
    return b.view(dtype.storage)


def _cases(data):
    out = []
    for name, dtype in _DTYPES.items():
        qp = [(0.05, 0), (0.0123, 131), (0.3, 255), (1.7e-3, 77)]
        for s, z in qp[:1] if data.quick else qp:
            z = z if dtype is quint8 else z - 128
            ints = _bytes(dtype)
            out.append(Case(f"{name} s={s} zp={z}", {"ints": ints, "s": s, "z": z, "dtype": name},
                            inputs=ints))
    return out


def _cases_int32(data):
    """:func:`_cases` and qint32 inputs: 512 int32 values spread over the whole
    range and 512 near the zero point, under a fine and a coarse scale."""
    out = _cases(data)
    rng = np.random.default_rng(11)
    for s, z in [(1e-5, -70001), (0.37, 2**30)][: 1 if data.quick else 2]:
        ints = np.concatenate([rng.integers(-2**31, 2**31, 512, dtype=np.int64),
                               z + rng.integers(-3000, 3000, 512)]).clip(-2**31, 2**31 - 1).astype(np.int32)
        out.append(Case(f"qint32 s={s} zp={z}", {"ints": ints, "s": s, "z": z, "dtype": "qint32"},
                        inputs=ints))
    return out


def _oq(case, zq):
    return zq if case.args["dtype"] == "quint8" else zq - 128


# name -> (qops call (x, case, profile), torch call (torch, xt, case))
_OPS = {
    "relu": (lambda x, c, p: A.relu(x, numerics=p), lambda t, xt, c: t.relu(xt)),
    "relu6": (lambda x, c, p: A.relu6(x, numerics=p), lambda t, xt, c: t.ops.quantized.relu6(xt)),
    "hardtanh": (lambda x, c, p: A.hardtanh(x, -0.6, 0.8, numerics=p),
                 lambda t, xt, c: t.nn.functional.hardtanh(xt, -0.6, 0.8)),
    "clamp": (lambda x, c, p: A.clamp(x, -0.45, 0.3, numerics=p), lambda t, xt, c: t.clamp(xt, -0.45, 0.3)),
    "threshold": (lambda x, c, p: A.threshold(x, 0.1, -0.25, numerics=p),
                  lambda t, xt, c: t.ops.quantized.threshold(xt, 0.1, -0.25)),
    "leaky_relu": (lambda x, c, p: A.leaky_relu(x, 0.2, 0.02, _oq(c, 100), numerics=p),
                   lambda t, xt, c: _leaky(t, xt, 0.2, 0.02, _oq(c, 100))),
    "hardswish": (lambda x, c, p: A.hardswish(x, 0.02, _oq(c, 60), numerics=p),
                  lambda t, xt, c: t.ops.quantized.hardswish(xt, 0.02, _oq(c, 60))),
    "elu": (lambda x, c, p: A.elu(x, 0.02, _oq(c, 128), 1.1, numerics=p),
            lambda t, xt, c: t.ops.quantized.elu(xt, 0.02, _oq(c, 128), 1.1)),
    "celu": (lambda x, c, p: A.celu(x, 0.02, _oq(c, 128), 0.6, numerics=p),
             lambda t, xt, c: t.ops.quantized.celu(xt, 0.02, _oq(c, 128), 0.6)),
    "hardsigmoid": (lambda x, c, p: A.hardsigmoid(x, numerics=p),
                    lambda t, xt, c: t.nn.functional.hardsigmoid(xt)),
    "sigmoid": (lambda x, c, p: A.sigmoid(x, numerics=p), lambda t, xt, c: t.sigmoid(xt)),
    "tanh": (lambda x, c, p: A.tanh(x, numerics=p), lambda t, xt, c: t.tanh(xt)),
    "gelu": (lambda x, c, p: A.gelu(x, numerics=p), lambda t, xt, c: t.nn.functional.gelu(xt)),
    "gelu_tanh": (lambda x, c, p: A.gelu(x, "tanh", numerics=p),
                  lambda t, xt, c: t.nn.functional.gelu(xt, approximate="tanh")),
}


def _leaky(torch, xt, slope, so, zo):
    out = torch._empty_affine_quantized(xt.shape, scale=so, zero_point=zo, dtype=xt.dtype)
    torch._C._nn.leaky_relu(xt, slope, out=out)
    return out


def _qx(case):
    a = case.args
    return make_per_tensor_qtensor(a["ints"], a["s"], a["z"], {**_DTYPES, "qint32": qint32}[a["dtype"]])


def _register(name, ours, theirs):
    def run(case, profile):
        return ours(_qx(case), case, profile).int_repr()

    def torch_call(peer, case, profile):
        if profile not in _TORCH:
            return None
        peer.engine(profile)
        a = case.args
        xt = peer._qtensor(a["ints"], a["s"], a["z"], None)
        return theirs(peer.torch, xt, case).int_repr().numpy()

    profiles = ("fbgemm", "qnnpack", "onednn", "reference")
    if name == "relu":
        profiles = ("fbgemm", "qnnpack", "onednn", "onnxruntime", "tflite", "tflite_single", "reference")
    register(Sweep(
        name=name,
        cases=_cases_int32 if name in _INT32_OPS else _cases,
        run=run,
        peers={"torch": torch_call},
        profiles=profiles,
    ))


for _name, (_ours, _theirs) in _OPS.items():
    _register(_name, _ours, _theirs)


def _prelu_cases(data):
    out = []
    rng = np.random.default_rng(5)
    for name, dtype in _DTYPES.items():
        for s, z, sw, zw, c in [(0.05, 131, 0.01, 120, 3), (0.2, 7, 0.003, 255, 1)][: 1 if data.quick else 2]:
            d = 0 if dtype is quint8 else 128
            x = np.concatenate([np.arange(256), rng.integers(0, 256, 3 * 100 - 256)]).astype(np.uint8)
            x = x[: 3 * 100].reshape(1, 3, 100).view(dtype.storage)
            if c == 1:
                x = x.reshape(-1)
            w = rng.integers(0, 256, c).astype(np.uint8).view(dtype.storage)
            out.append(Case(f"{name} s={s} zp={z - d} w=({sw}, {zw - d})",
                            {"x": x, "s": s, "z": z - d, "w": w, "sw": sw, "zw": zw - d,
                             "so": 0.04, "zo": 100 - d, "dtype": name}, inputs=x))
    return out


def _prelu_run(case, profile):
    a = case.args
    dt = _DTYPES[a["dtype"]]
    return A.prelu(make_per_tensor_qtensor(a["x"], a["s"], a["z"], dt),
                   make_per_tensor_qtensor(a["w"], a["sw"], a["zw"], dt), a["so"], a["zo"],
                   numerics=profile).int_repr()


def _prelu_torch(peer, case, profile):
    if profile not in _TORCH:
        return None
    peer.engine(profile)
    a = case.args
    xt = peer._qtensor(a["x"], a["s"], a["z"], None)
    wt = peer._qtensor(a["w"], a["sw"], a["zw"], None)
    return peer.torch.ops.quantized.prelu(xt, wt, a["so"], a["zo"]).int_repr().numpy()


register(Sweep(name="prelu", cases=_prelu_cases, run=_prelu_run, peers={"torch": _prelu_torch},
               profiles=("fbgemm", "qnnpack", "onednn", "reference")))
