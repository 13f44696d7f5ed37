"""The benchmark set behind ``qops bench`` and the asv classes ``QLinear`` / ``QConv2d``.

One definition of the fixed shapes, the data and the three implementations,
so the command line and ``asv_benchmarks/benchmarks/bench_linear_conv.py``
never drift apart:

* ``qops``: :class:`qops.nn.Linear` / :class:`qops.nn.Conv2d` built with
  ``from_float`` (weights quantized and packed once), default profile
  ``fbgemm``;
* ``torch``: torch's quantized engine ``x86`` with the same integer weights
  prepacked once (``torch.ops.quantized.linear_prepack`` /
  ``conv2d_prepack``), called through ``torch.ops.quantized.linear`` /
  ``conv2d``;
* ``onnxruntime``: a one-node model (QLinearMatMul, or QLinearConv with the
  bias quantized to int32 as converters do), the weight a constant initializer
  (prepacked by onnxruntime when the session is created), default graph
  optimisations, CPU provider.

A peer listed in ``QOPS_REPORT_DISABLE_PEERS`` counts as not installed, as
in ``qops report``.  Every implementation runs on the same number of threads (``numba.set_num_threads``,
``torch.set_num_threads``, onnxruntime's ``intra_op_num_threads``).  Each
callable is called once when it is built (compilation and first-call set-up
are never timed).  Activations are uint8 (quint8, full range, zero point
128) in NCHW for convolutions; weights int8, symmetric per output channel.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Callable, Optional

import numpy as np

__all__ = [
    "BenchCase",
    "BenchRow",
    "LINEAR_CASES",
    "CONV2D_CASES",
    "QUICK_CASES",
    "IMPLS",
    "PeerMissing",
    "build",
    "time_cases",
    "format_table",
    "geometric_mean_ratio",
]

#: Implementations, in table order.
IMPLS = ("qops", "torch", "onnxruntime")

#: Activation quantization parameters (uint8, full range).
X_SCALE = 0.05
X_ZERO_POINT = 128


class PeerMissing(NotImplementedError):
    """A peer (torch, onnxruntime) is not installed; asv reports a skip."""


@dataclasses.dataclass(frozen=True)
class BenchCase:
    """One benchmark shape.

    ``kind`` is ``"linear"`` (``m, k, n``: input ``(m, k)``, weight ``(n, k)``)
    or ``"conv2d"`` (``c`` -> ``o`` channels, ``kernel`` x ``kernel``, input
    ``(1, c, size, size)``, ``stride``, ``groups``; padding ``kernel // 2``,
    "same" for the odd kernels used here).
    """

    name: str
    kind: str
    m: int = 0
    k: int = 0
    n: int = 0
    c: int = 0
    o: int = 0
    size: int = 0
    kernel: int = 1
    stride: int = 1
    groups: int = 1

    @property
    def padding(self) -> int:
        return self.kernel // 2

    @property
    def out_size(self) -> int:
        return (self.size + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def ops(self) -> int:
        """Integer operations of one call (a multiply-add counts 2)."""
        if self.kind == "linear":
            return 2 * self.m * self.k * self.n
        return 2 * self.o * self.out_size**2 * (self.c // self.groups) * self.kernel**2

    @property
    def accumulation(self) -> int:
        """Products per accumulator."""
        return self.k if self.kind == "linear" else (self.c // self.groups) * self.kernel**2


def _linear(m, k, n):
    return BenchCase(f"linear {m}x{k}x{n}", "linear", m=m, k=k, n=n)


def _conv(name, c, o, size, kernel, stride=1, groups=1):
    return BenchCase(name, "conv2d", c=c, o=o, size=size, kernel=kernel, stride=stride, groups=groups)


#: linear (M, K, N) of the fixed set.
LINEAR_CASES = (_linear(1, 768, 768), _linear(16, 768, 3072), _linear(128, 768, 768),
                _linear(512, 1024, 1024))

#: conv2d of the fixed set: batch 1, NCHW.
CONV2D_CASES = (
    _conv("conv 3x3 64->64 56x56", 64, 64, 56, 3),
    _conv("conv 3x3 128->128 28x28", 128, 128, 28, 3),
    _conv("conv 1x1 256->64 56x56", 256, 64, 56, 1),
    _conv("dwconv 3x3 32 112x112", 32, 32, 112, 3, groups=32),
    _conv("conv 3x3/2 64->128 56x56", 64, 128, 56, 3, stride=2),
)

#: Tiny shapes for ``qops bench --quick`` (a smoke test, not a measurement).
QUICK_CASES = (
    _linear(4, 64, 32),
    _conv("conv 3x3 8->8 10x10", 8, 8, 10, 3),
    _conv("dwconv 3x3 16 12x12", 16, 16, 12, 3, groups=16),
)


# ---------------------------------------------------------------- data
def _data(case: BenchCase, seed=0):
    """Deterministic ``(x, w_float, bias, out_scale)`` for ``case``."""
    rng = np.random.default_rng([seed, case.m, case.k, case.n, case.c, case.o, case.size, case.kernel,
                                 case.stride, case.groups])
    if case.kind == "linear":
        x_shape, w_shape, out = (case.m, case.k), (case.n, case.k), case.n
    else:
        x_shape = (1, case.c, case.size, case.size)
        w_shape = (case.o, case.c // case.groups, case.kernel, case.kernel)
        out = case.o
    x = rng.integers(0, 256, x_shape, dtype=np.int16).astype(np.uint8)
    w = (rng.standard_normal(w_shape) * 0.05).astype(np.float32)
    bias = (rng.standard_normal(out) * 0.5).astype(np.float32)
    # |x - zx| ~ 74 on average, |w| quantized ~ 0.05 / (0.2 / 127) ~ 32 LSB: spread the output
    so = X_SCALE * 0.05 * 74.0 * math.sqrt(case.accumulation) / 40.0
    return x, w, bias, float(np.float32(so))


# ---------------------------------------------------------- implementations
def _qops(case: BenchCase, threads: int) -> Callable:
    import numba

    import qops
    from qops import nn

    x, w, bias, so = _data(case)
    xq = qops.make_per_tensor_qtensor(x, X_SCALE, X_ZERO_POINT, qops.quint8)
    if case.kind == "linear":
        mod = nn.Linear.from_float(w, bias, scale=so, zero_point=128)
    else:
        mod = nn.Conv2d.from_float(w, bias, scale=so, zero_point=128, stride=case.stride,
                                   padding=case.padding, groups=case.groups)

    def fn():
        return mod(xq)

    fn()  # compile; qops chooses its threading layer before Numba starts threads
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    fn()
    return fn


def _qops_weight(case):
    """The qops module's integer weight: ``(ints, scales, zero points)`` and bias, so
    every implementation multiplies by the same integers."""
    from qops import nn

    x, w, bias, so = _data(case)
    if case.kind == "linear":
        qw = nn.Linear.from_float(w, bias, scale=so, zero_point=128).weight()
    else:
        qw = nn.Conv2d.from_float(w, bias, scale=so, zero_point=128, stride=case.stride,
                                  padding=case.padding, groups=case.groups).weight()
    return (x, np.ascontiguousarray(qw.int_repr()), np.asarray(qw.q_per_channel_scales(), np.float64),
            np.asarray(qw.q_per_channel_zero_points(), np.int64), bias, so)


def _check_enabled(peer):
    from . import _peers

    if peer in _peers.disabled():
        raise PeerMissing(f"{peer} is not installed (disabled by {_peers.DISABLE_ENV})")


def _torch(case: BenchCase, threads: int) -> Callable:
    _check_enabled("torch")
    try:
        import torch
    except ImportError:
        raise PeerMissing("torch is not installed") from None
    warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*", category=UserWarning)
    torch.set_num_threads(threads)
    if "x86" not in torch.backends.quantized.supported_engines:
        raise PeerMissing("torch was built without the x86 quantized engine")
    torch.backends.quantized.engine = "x86"
    x, wi, sw, zw, bias, so = _qops_weight(case)
    xq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(x), X_SCALE, X_ZERO_POINT)
    wq = torch._make_per_channel_quantized_tensor(torch.from_numpy(wi), torch.from_numpy(sw),
                                                  torch.from_numpy(zw), 0)
    b = torch.from_numpy(bias)
    if case.kind == "linear":
        packed = torch.ops.quantized.linear_prepack(wq, b)

        def fn():
            return torch.ops.quantized.linear(xq, packed, so, 128)
    else:
        p = case.padding
        packed = torch.ops.quantized.conv2d_prepack(wq, b, [case.stride] * 2, [p, p], [1, 1], case.groups)

        def fn():
            return torch.ops.quantized.conv2d(xq, packed, so, 128)

    fn()  # compile
    return fn


def _onnxruntime(case: BenchCase, threads: int) -> Callable:
    _check_enabled("onnxruntime")
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise PeerMissing("onnx and onnxruntime are not installed") from None
    x, wi, sw, zw, bias, so = _qops_weight(case)
    sw32 = sw.astype(np.float32)
    inits = {
        "x_scale": np.float32(X_SCALE), "x_zp": np.uint8(X_ZERO_POINT),
        "w_scale": sw32, "w_zp": zw.astype(np.int8),
        "y_scale": np.float32(so), "y_zp": np.uint8(128),
    }
    if case.kind == "linear":
        inits["w"] = np.ascontiguousarray(wi.T)  # B is (K, N)
        node = helper.make_node("QLinearMatMul", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp",
                                                  "y_scale", "y_zp"], ["y"])
    else:
        inits["w"] = wi
        # the bias as converters quantize it: rne(b / (double(sx) * double(sw_j)))
        inits["b"] = np.rint(bias.astype(np.float64) / (np.float64(np.float32(X_SCALE))
                                                        * sw32.astype(np.float64))).astype(np.int32)
        p = case.padding
        node = helper.make_node("QLinearConv", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp",
                                                "y_scale", "y_zp", "b"], ["y"],
                                kernel_shape=[case.kernel] * 2, strides=[case.stride] * 2,
                                pads=[p] * 4, group=case.groups)
    graph = helper.make_graph(
        [node], "qops_bench",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, _out_shape(case))],
        [numpy_helper.from_array(np.asarray(v), name=k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # onnxruntime's pool spins after each run by default, which would take the
    # cores from the implementation timed next
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts,
                                providers=["CPUExecutionProvider"])
    feed = {"x": x}

    def fn():
        return sess.run(None, feed)

    fn()  # compile
    return fn


def _out_shape(case):
    if case.kind == "linear":
        return [case.m, case.n]
    return [1, case.o, case.out_size, case.out_size]


_BUILDERS = {"qops": _qops, "torch": _torch, "onnxruntime": _onnxruntime}


def build(impl: str, case: BenchCase, threads: int = 2) -> Callable:
    """A zero-argument callable running ``case`` with ``impl``, already called once.

    Raises
    ------
    PeerMissing
        The peer is not installed (a ``NotImplementedError``, which asv
        reports as a skipped benchmark).
    KeyError
        An unknown ``impl``.
    """
    if impl not in _BUILDERS:
        raise KeyError(f"unknown implementation {impl!r}; known: {', '.join(IMPLS)}")
    return _BUILDERS[impl](case, threads)


# ------------------------------------------------------------------ timing
def _per_call(fn, number):
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def _calibrate(fn, target):
    """Warm ``fn`` up, then the calls per sample for samples of about ``target`` seconds.

    The warm-up runs at least 3 calls and ``2 * target`` seconds: torch's x86
    engine is slow on its first calls of a shape beyond the first one
    (measured with torch 2.13.0).
    """
    t0 = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - t0 < 2 * target:
        fn()
        calls += 1
    t = _per_call(fn, 1)
    return max(1, min(10000, int(target / max(t, 1e-7))))


@dataclasses.dataclass
class BenchRow:
    """Timings of one case: seconds per call per implementation (``None``: peer missing)."""

    case: BenchCase
    seconds: dict
    status: dict

    @property
    def ratio(self) -> Optional[float]:
        """torch time / qops time (qops/torch throughput)."""
        q, t = self.seconds.get("qops"), self.seconds.get("torch")
        return None if q is None or t is None else t / q

    @property
    def gops(self) -> Optional[float]:
        q = self.seconds.get("qops")
        return None if q is None else self.case.ops / q / 1e9

    def as_dict(self) -> dict:
        return {
            "case": self.case.name, "kind": self.case.kind, "ops": self.case.ops,
            "shape": {k: v for k, v in dataclasses.asdict(self.case).items() if k not in ("name", "kind")},
            "seconds": self.seconds, "status": self.status,
            "ratio_torch_over_qops": self.ratio, "qops_gops": self.gops,
        }


def time_cases(cases, threads=2, repeats=7, target=0.05, impls=IMPLS, progress=None) -> list:
    """Time every case with every implementation: min over ``repeats``
    interleaved samples (qops, torch, onnxruntime, qops, ...) of the mean call
    time within a sample of about ``target`` seconds."""
    rows = []
    for case in cases:
        fns, status = {}, {}
        for impl in impls:
            try:
                fns[impl] = build(impl, case, threads)
                status[impl] = "ok"
            except PeerMissing as e:
                status[impl] = "not installed" if "not installed" in str(e) else str(e)
        numbers = {impl: _calibrate(fn, target) for impl, fn in fns.items()}
        best = {impl: math.inf for impl in fns}
        for _ in range(repeats):
            for impl, fn in fns.items():
                best[impl] = min(best[impl], _per_call(fn, numbers[impl]))
        seconds = {impl: best.get(impl) for impl in impls}
        rows.append(BenchRow(case, seconds, status))
        if progress is not None:
            progress(rows[-1])
    return rows


def geometric_mean_ratio(rows) -> Optional[float]:
    """Geometric mean of the qops/torch throughput ratios (``None`` without torch)."""
    r = [row.ratio for row in rows if row.ratio is not None]
    return math.exp(sum(math.log(v) for v in r) / len(r)) if r else None


def format_table(rows) -> str:
    """The table ``qops bench`` prints."""
    head = ("case", "qops ms", "torch ms", "onnxruntime ms", "torch/qops", "qops GOPS")

    def ms(row, impl):
        s = row.seconds.get(impl)
        return f"{s * 1e3:.3f}" if s is not None else row.status.get(impl, "—")

    body = [(r.case.name, ms(r, "qops"), ms(r, "torch"), ms(r, "onnxruntime"),
             "—" if r.ratio is None else f"{r.ratio:.2f}",
             "—" if r.gops is None else f"{r.gops:.1f}") for r in rows]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(head)]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])
