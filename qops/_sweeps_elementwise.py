"""``qops report`` sweeps for :mod:`qops._elementwise` (registered on import by :mod:`qops.report`).

Binary cases are contiguous runs: the first 256 elements (on torch's 64-lane
vector path) pair every byte of ``a`` with random bytes of ``b``, and 63 more
elements run on torch's scalar lambda (319 in all); under qnnpack the quint8
adds run QNNPACK's q8vadd.  Peers:
torch 2.13 with the engine named like the profile (``torch.ops.quantized.*``).
"""

from __future__ import annotations

import numpy as np

from . import _elementwise as E
from ._ops import make_per_tensor_qtensor
from .dtypes import qint8, quint8
from .report import Case, Sweep, register

_TORCH = ("fbgemm", "qnnpack", "onednn")
_DTYPES = {"quint8": quint8, "qint8": qint8}
_ALL = ("fbgemm", "qnnpack", "onednn", "onnxruntime", "tflite", "tflite_single", "reference")


def _ints(dtype, seed, n=319):
    rng = np.random.default_rng(seed)
    b = np.concatenate([np.arange(256), rng.integers(0, 256, n - 256)]).astype(np.uint8)
    return b.view(dtype.storage)


def _binary_cases(data, n=319):
    out = []
    qps = [((0.05, 131), (0.02, 120), (0.04, 100)), ((0.3, 7), (0.0123, 250), (0.2, 3)),
           ((1.7e-3, 77), (2.5e-4, 200), (1e-3, 128))]
    for name, dtype in _DTYPES.items():
        d = 0 if dtype is quint8 else 128
        for (sa, za), (sb, zb), (so, zo) in qps[:1] if data.quick else qps:
            a, b = _ints(dtype, 1, n), np.roll(_ints(dtype, 2, n), 97)
            out.append(Case(f"{name} a=({sa}, {za - d}) b=({sb}, {zb - d}) out=({so}, {zo - d})",
                            {"a": a, "b": b, "sa": sa, "za": za - d, "sb": sb, "zb": zb - d,
                             "so": so, "zo": zo - d, "dtype": name}, inputs=a))
    return out


def _q(case, k):
    a = case.args
    return make_per_tensor_qtensor(a[k], a["s" + k], a["z" + k], _DTYPES[a["dtype"]])


def _torch_q(peer, case, k):
    a = case.args
    return peer._qtensor(a[k], a["s" + k], a["z" + k], None)


def _register_binary(name):
    fn = getattr(E, name)

    def run(case, profile):
        a = case.args
        return fn(_q(case, "a"), _q(case, "b"), a["so"], a["zo"], numerics=profile).int_repr()

    def torch_call(peer, case, profile):
        if profile not in _TORCH:
            return None
        a = case.args
        peer.engine(profile)
        op = getattr(peer.torch.ops.quantized, name)
        return op(_torch_q(peer, case, "a"), _torch_q(peer, case, "b"), a["so"], a["zo"]).int_repr().numpy()

    register(Sweep(name=name, cases=lambda data: _binary_cases(data, 319), run=run, peers={"torch": torch_call},
                   profiles=("fbgemm", "qnnpack", "onednn", "reference")))


for _n in ("add", "add_relu", "mul", "mul_relu"):
    _register_binary(_n)


def _scalar_cases(data):
    out = []
    for name, dtype in _DTYPES.items():
        d = 0 if dtype is quint8 else 128
        for s, z, c in [(0.05, 131, 1.3), (0.02, 20, -4.0), (0.1, 250, 0.0)][: 2 if data.quick else 3]:
            a = _ints(dtype, 3)
            out.append(Case(f"{name} s={s} zp={z - d} c={c}", {"a": a, "sa": s, "za": z - d, "c": c,
                                                                 "dtype": name}, inputs=a))
    return out


def _with_qparams(ints, scale, zero_point):
    """The integers and, element-aligned, the output scale and zero point (so
    the report compares the qparams too)."""
    return ints, np.full(ints.shape, float(scale)), np.full(ints.shape, int(zero_point), np.int64)


def _register_scalar(name, profiles):
    fn = getattr(E, name)

    def run(case, profile):
        r = fn(_q(case, "a"), case.args["c"], numerics=profile)
        return _with_qparams(r.int_repr(), r.q_scale(), r.q_zero_point())

    def torch_call(peer, case, profile):
        if profile not in _TORCH:
            return None
        peer.engine(profile)
        r = getattr(peer.torch.ops.quantized, name)(_torch_q(peer, case, "a"), case.args["c"])
        return _with_qparams(r.int_repr().numpy(), r.q_scale(), r.q_zero_point())

    def reference(case):
        return run(case, "reference")

    def distance(result, ref, case):
        return np.abs(result[0].astype(np.int64) - ref[0].astype(np.int64))

    register(Sweep(name=name, cases=_scalar_cases, run=run, peers={"torch": torch_call},
                   reference=reference, distance=distance, profiles=profiles))


_register_scalar("add_scalar", ("fbgemm", "qnnpack", "onednn", "reference"))
_register_scalar("mul_scalar", _ALL)


def _cat_cases(data):
    out = []
    for name, dtype in _DTYPES.items():
        d = 0 if dtype is quint8 else 128
        a = _ints(dtype, 4).reshape(11, 29)
        b = _ints(dtype, 5)[:11 * 13].reshape(11, 13)
        out.append(Case(f"{name} requantized", {"a": a, "b": b, "sa": 0.05, "za": 130 - d, "sb": 0.02,
                                                "zb": 90 - d, "so": 0.04, "zo": 100 - d, "dtype": name},
                        profiles=("fbgemm", "qnnpack", "onednn", "reference")))
        out.append(Case(f"{name} same qparams", {"a": a, "b": b, "sa": 0.05, "za": 130 - d, "sb": 0.05,
                                                 "zb": 130 - d, "so": 0.05, "zo": 130 - d, "dtype": name}))
    return out


def _cat_run(case, profile):
    a = case.args
    return E.cat([_q(case, "a"), _q(case, "b")], 1, a["so"], a["zo"], numerics=profile).int_repr()


def _cat_torch(peer, case, profile):
    if profile not in _TORCH:
        return None
    peer.engine(profile)
    a = case.args
    return peer.torch.ops.quantized.cat([_torch_q(peer, case, "a"), _torch_q(peer, case, "b")], 1,
                                        a["so"], a["zo"]).int_repr().numpy()


register(Sweep(name="cat", cases=_cat_cases, run=_cat_run, peers={"torch": _cat_torch}, profiles=_ALL))


#: matmul shapes ``(batch, M, K, N)``, one per path of torch's float32 sums
#: (``kernels/cpu/elementwise.py``), run with torch on ``_MM_THREADS`` threads.
_MM_SHAPES = (
    ((3,), 7, 19, 5),  # batches: one small-path sgemm each, leading columns by batch offset
    ((), 9, 300, 24),  # blocked FMA with K in halves; 2 threads: 8 rows + 1 small row
    ((), 6, 40, 10),  # small path, 2 leading columns on odd rows
    ((), 7, 45, 1),  # dot kernels: a group of 4 rows and 3 rows after it
    ((2,), 3, 20, 6),  # batches under 400 multiply-adds: torch's own loop
)
_MM_THREADS = 2


def _mm_cases(data):
    out = []
    for name, dtype in _DTYPES.items():
        d = 0 if dtype is quint8 else 128
        rng = np.random.default_rng(6)
        for batch, m, k, n in _MM_SHAPES:
            a = rng.integers(0, 256, batch + (m, k)).astype(np.uint8).view(dtype.storage)
            b = rng.integers(0, 256, batch + (k, n)).astype(np.uint8).view(dtype.storage)
            so = float(np.float32(0.02 * 0.01 * k ** 0.5 * 8))
            shape = "x".join(map(str, batch + (m, k))) + "@" + "x".join(map(str, batch + (k, n)))
            out.append(Case(f"{name} {shape}", {"a": a, "b": b, "sa": 0.02, "za": 120 - d, "sb": 0.01,
                                                "zb": 130 - d, "so": so, "zo": 128 - d, "dtype": name,
                                                "threads": _MM_THREADS}))
    return out


def _mm_run(case, profile):
    a = case.args
    return E.matmul(_q(case, "a"), _q(case, "b"), a["so"], a["zo"], numerics=profile,
                    torch_threads=a["threads"]).int_repr()


def _mm_torch(peer, case, profile):
    if profile not in _TORCH:
        return None
    peer.engine(profile)
    a = case.args
    torch = peer.torch
    old = torch.get_num_threads()
    torch.set_num_threads(a["threads"])
    try:
        return torch.ops.quantized.matmul(_torch_q(peer, case, "a"), _torch_q(peer, case, "b"),
                                          a["so"], a["zo"]).int_repr().numpy()
    finally:
        torch.set_num_threads(old)


register(Sweep(name="matmul", cases=_mm_cases, run=_mm_run, peers={"torch": _mm_torch},
               profiles=("fbgemm", "qnnpack", "onednn", "reference")))


#: torch's intra-op threads for the softmax sweep: over dim 0 of (7, 45) two
#: threads split the 45 columns into 23 + 22, so both of torch's column paths
#: (16-column vector blocks and the scalar rest) occur.
_SOFTMAX_THREADS = 2


def _sm_cases(data):
    out = []
    for name, dtype in _DTYPES.items():
        d = 0 if dtype is quint8 else 128
        a = _ints(dtype, 7)[:7 * 45].reshape(7, 45)
        for dim in (1, 0):
            out.append(Case(f"{name} dim={dim}", {"a": a, "sa": 0.05, "za": 128 - d, "dim": dim,
                                                  "so": 1e-3, "zo": -d, "dtype": name,
                                                  "threads": _SOFTMAX_THREADS}))
    return out


def _sm_run(case, profile):
    a = case.args
    return E.softmax(_q(case, "a"), a["dim"], a["so"], a["zo"], numerics=profile,
                     torch_threads=a["threads"]).int_repr()


def _sm_torch(peer, case, profile):
    if profile not in _TORCH:
        return None
    peer.engine(profile)
    a = case.args
    torch = peer.torch
    old = torch.get_num_threads()
    torch.set_num_threads(a["threads"])
    try:
        return torch.ops.quantized.softmax(_torch_q(peer, case, "a"), a["dim"], a["so"],
                                           a["zo"]).int_repr().numpy()
    finally:
        torch.set_num_threads(old)


register(Sweep(name="softmax", cases=_sm_cases, run=_sm_run, peers={"torch": _sm_torch},
               profiles=("fbgemm", "qnnpack", "onednn", "reference")))
