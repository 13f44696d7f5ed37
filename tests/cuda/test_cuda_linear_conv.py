"""CUDA linear and convolution against the CPU kernels, bit for bit.

``qops.functional.linear`` / ``conv*d`` on QTensors whose data are CUDA
device arrays run the CUDA twins of the CPU kernels (``qops.kernels.cuda``:
``gemm_raw``, ``row_sums``, ``requantize_accumulators``, ``im2col``,
``depthwise``); every result must equal the same call on NumPy arrays:
equal integers, equal dtypes, equal shapes.  The CPU path is the oracle here;
its conformance to the peers is tested in ``tests/``.

Runs on a GPU or under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), where
each thread is a Python thread: every case has at most a few hundred outputs,
and in the simulator both the launch blocks and the GEMM tiles are shrunk so
that these small shapes cross several tiles and blocks and the threads loop in
their grid strides.  (On a GPU the tile sizes are compile-time constants and
keep their defaults; the ``gpu``-marked tests use shapes larger than a tile.)
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

import qops
from qops._packed import PackedLinearWeight
from qops.kernels.cpu import conv as cpu_conv
from qops.kernels.cpu import gemm as cpu_gemm
from qops.kernels.cpu import requant as cpu_requant
from qops.kernels.cuda import config
from qops.kernels.cuda import conv as cuda_conv
from qops.kernels.cuda import gemm as cuda_gemm
from qops.kernels.cuda import requant as cuda_requant
from qops.kernels.cuda.scalar import SIMULATOR

# the simulator evaluates with NumPy scalars, which warn on int32 wraparound
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

F = qops.functional
PROFILES = ("fbgemm", "qnnpack", "onednn", "onnxruntime", "tflite", "tflite_single", "reference")
#: activation dtype of the first and second case of each profile
X_DTYPES = {
    "fbgemm": (qops.quint8, qops.quint8),
    "qnnpack": (qops.quint8, qops.quint8),
    "onednn": (qops.quint8, qops.quint8),
    "onnxruntime": (qops.qint8, qops.quint8),
    "tflite": (qops.qint8, qops.qint8),
    "tflite_single": (qops.qint8, qops.qint8),
    "reference": (qops.quint8, qops.qint8),
}
SYMMETRIC = ("onednn", "tflite", "tflite_single")
INT_BIAS = ("onnxruntime", "tflite", "tflite_single", "reference")

SMALL_TPB = 8
SMALL_BLOCKS = 3

gpu_only = pytest.mark.skipif(SIMULATOR, reason="needs a real GPU (too slow in the CUDA simulator)")


@pytest.fixture(autouse=True)
def small_launches(monkeypatch):
    """Small blocks (and, in the simulator, small GEMM tiles): tiny shapes
    span several of them."""
    monkeypatch.setattr(config, "threads_per_block", SMALL_TPB)
    monkeypatch.setattr(config, "max_blocks", SMALL_BLOCKS)
    if SIMULATOR:  # on a GPU the tiles are fixed when the kernel compiles
        monkeypatch.setattr(cuda_gemm, "TILE_M", 8)
        monkeypatch.setattr(cuda_gemm, "TILE_N", 8)
        monkeypatch.setattr(cuda_gemm, "TILE_K", 2)


# ------------------------------------------------------------------ helpers
def host(a):
    return a.copy_to_host() if hasattr(a, "copy_to_host") else a


def assert_same(y_cpu, y_gpu):
    """The CUDA QTensor equals the CPU one: integers, dtype, shape, qparams."""
    assert y_gpu.device == "cuda"
    a, b = y_cpu.int_repr(), host(y_gpu.int_repr())
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(b, a)
    assert (y_gpu.q_scale(), y_gpu.q_zero_point()) == (y_cpu.q_scale(), y_cpu.q_zero_point())
    return a.size


def activations(rng, shape, dtype):
    """Full-range activations (every byte value likely), zero point inside."""
    lo, hi = (0, 256) if dtype is qops.quint8 else (-128, 128)
    q = rng.integers(lo, hi, size=shape)
    zx = int(rng.integers(lo + 20, hi - 20))
    return qops.make_per_tensor_qtensor(q.astype(dtype.storage), 0.03, zx, dtype)


def weights(rng, shape, profile, per_channel, wdtype=qops.qint8):
    o = shape[0]
    wf = rng.normal(size=shape).astype(np.float32)
    symmetric = profile in SYMMETRIC
    if wdtype is qops.quint8:
        zw = rng.integers(120, 136, o)
    else:
        zw = np.zeros(o, np.int64) if symmetric else rng.integers(-5, 6, o)
    if per_channel:
        return qops.quantize_per_channel(wf, rng.uniform(0.004, 0.02, o), zw, 0, wdtype)
    return qops.quantize_per_tensor(wf, 0.011, int(zw[0]), wdtype)


def bias(rng, profile, n, kind):
    if kind is None:
        return None
    if kind == "int":
        return rng.integers(-3000, 3000, n).astype(np.int32)
    return rng.normal(scale=0.5, size=n).astype(np.float32)


def cases(profile):
    """Two cases per profile: (x dtype, per-channel, bias kind, relu, weight dtype)."""
    second_bias = "int" if profile in INT_BIAS else None
    wd2 = qops.quint8 if profile == "onnxruntime" else qops.qint8
    d1, d2 = X_DTYPES[profile]
    return [(d1, True, "float", True, qops.qint8), (d2, False, second_bias, False, wd2)]


# ------------------------------------------------------------------ kernels
def test_gemm_raw_and_row_sums_match_cpu(rng):
    """Raw products and row sums over a shape crossing tiles in every direction,
    with full-range bytes (the packed layouts of the CPU kernels)."""
    m, k, n = 11, 23, 37
    x = rng.integers(0, 256, (m, k)).astype(np.uint8)
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    a, mp, kp = cpu_gemm.pack_activations(x)
    panels = cpu_gemm.pack_weight(w)
    np_ = -(-n // cpu_gemm.NR) * cpu_gemm.NR
    want = cpu_gemm.gemm_raw(a, mp, kp, panels, np_)
    got = cuda_gemm.gemm_raw(cuda.to_device(a), mp, kp, cuda.to_device(panels), np_)
    np.testing.assert_array_equal(host(got), want)
    exact = x.astype(np.int64) @ w.T.astype(np.int64)  # no wrap at this size
    np.testing.assert_array_equal(want.reshape(mp, np_)[:m, :n], exact)
    rs_cpu = np.zeros(m, np.int32)
    cpu_gemm.row_sums(x, rs_cpu)
    rs_gpu = cuda.to_device(np.zeros(m, np.int32))
    cuda_gemm.row_sums(cuda.to_device(x), rs_gpu)
    np.testing.assert_array_equal(host(rs_gpu), rs_cpu)


@pytest.mark.parametrize("profile", PROFILES)
def test_requantize_accumulators_match_cpu(rng, profile):
    """The fused epilogue on full-range int32 accumulators (corrections that
    wrap, saturation, relu), on a block inside larger strided buffers: the
    elements outside the block must stay as they were."""
    c_total, k = 24, 40
    wdt = qops.quint8 if profile == "onnxruntime" else qops.qint8
    w = weights(rng, (c_total, k), profile, True, wdt)
    b = bias(rng, profile, c_total, "float")
    if profile in ("fbgemm", "onednn", "reference"):  # float specials in the bias
        b[:3] = [np.nan, np.inf, -np.inf]
    packed = PackedLinearWeight(w, b)
    signed = X_DTYPES[profile][0] is qops.qint8
    out_dtype = X_DTYPES[profile][0]
    m, n, pcol = 9, 10, 2
    raw_off, raw_stride, out_off, out_stride = 5, 13, 3, 12
    raw = rng.integers(-2**31, 2**31, raw_off + m * raw_stride).astype(np.int32)
    raw[::2] //= 1 << 15  # half of them small enough to land inside the output range
    rowsum = rng.integers(0, 255 * k, m).astype(np.int32)
    for relu in (False, True):
        ep = packed.epilogue(profile, 0.03, 3 if signed else 131, 0.07, 2, relu, out_dtype, signed)
        fill = rng.integers(0, 100, out_off + m * out_stride).astype(out_dtype.storage)
        want = fill.copy()
        cpu_requant.requantize_accumulators(ep.mode, raw, raw_off, raw_stride, m, n, rowsum,
                                            ep.zw, ep.cc, ep.ip, ep.fp, ep.cf0, ep.cf1, ep.ci0,
                                            ep.zo, ep.lo, ep.hi, want, out_off, out_stride, pcol)
        got = cuda.to_device(fill)
        d = cuda.to_device
        cuda_requant.requantize_accumulators(ep.mode, d(raw), raw_off, raw_stride, m, n,
                                             d(rowsum), d(ep.zw), d(ep.cc), d(ep.ip), d(ep.fp),
                                             ep.cf0, ep.cf1, ep.ci0, ep.zo, ep.lo, ep.hi, got,
                                             out_off, out_stride, pcol)
        got = host(got)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        inner = want[out_off:].reshape(m, out_stride)[:, :n]
        assert len(np.unique(inner)) > 5  # not all saturated


def _fma32(a, b, c):
    """One rounding of ``a*b + c`` for float32 arrays (the float64 product is exact)."""
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


@pytest.mark.parametrize("profile", ["fbgemm", "onednn"])
def test_requantize_rounding_traps(rng, profile):
    """(bias, accumulator) pairs on which fusing or splitting one float32
    multiply-add of the epilogue changes the output integer: fbgemm's bias
    term is ONE fused operation, oneDNN's steps are all separately rounded.
    NVVM contracts a plain ``a*b + c`` and the simulator rounds every NumPy
    operation, so either mistake fails here; each trap is checked to be one."""
    f32 = np.float32
    sx, zx, so, zo = 0.03, 120, 0.00066, 100  # M = sx*sw/so about 0.5: one ulp matters
    w = qops.quantize_per_tensor(rng.normal(size=(1, 16)).astype(np.float32), 0.011, 0, qops.qint8)
    ep0 = PackedLinearWeight(w, np.zeros(1, np.float32)).epilogue(
        profile, sx, zx, so, zo, False, qops.quint8, False)
    zof, lof, hif = f32(ep0.zo), f32(ep0.lo), f32(ep0.hi)
    cands = 1 << 20

    def store(v):  # fbgemm's output stage (finite v)
        return np.clip(np.rint(v) + zof, lof, hif).astype(np.int64)

    def onednn_store(v):
        return np.rint(np.clip(v, lof, hif)).astype(np.int64)

    def recipes(a, b):
        """The correct output and each wrong one, for accumulators ``a`` and biases ``b``."""
        af = a.astype(np.float32)
        full = np.full_like
        if profile == "fbgemm":
            q, mm = ep0.fp[1, 0], ep0.fp[2, 0]
            assert q != 1  # per-tensor bias: b * fl(1/atw), an inexact product
            return store(_fma32(b, full(b, q), af) * mm), {
                "split bias term": store(((b * q) + af) * mm)}
        sw, s_src, inv = ep0.fp[0, 0], ep0.cf0, ep0.cf1
        t1 = af * s_src
        t = (t1 * sw) + b
        return onednn_store((t * inv) + zof), {
            "fused bias": onednn_store((_fma32(t1, full(t1, sw), b) * inv) + zof),
            "fused zero point": onednn_store(_fma32(t, full(t, inv), full(t, zof))),
        }

    found = {}
    for _ in range(64):  # traps are rare (~1 in 10**6 for fbgemm): search in chunks
        a = rng.integers(-400, 400, cands)
        b = rng.normal(scale=0.06, size=cands).astype(np.float32)
        correct, wrongs = recipes(a, b)
        for name, wrong in wrongs.items():
            sel = np.flatnonzero(wrong != correct)
            have = found.setdefault(name, (a[:0], b[:0]))
            found[name] = (np.concatenate([have[0], a[sel]])[:8],
                           np.concatenate([have[1], b[sel]])[:8])
        if all(v[0].size == 8 for v in found.values()):
            break
    assert all(v[0].size == 8 for v in found.values()), "too few rounding traps found"
    a_t = np.concatenate([v[0] for v in found.values()])
    b_t = np.concatenate([v[1] for v in found.values()])
    correct, wrongs = recipes(a_t, b_t)
    n = a_t.size
    packed = PackedLinearWeight(
        qops.quantize_per_tensor(np.repeat(w.dequantize(), n, axis=0), 0.011, 0, qops.qint8), b_t)
    ep = packed.epilogue(profile, sx, zx, so, zo, False, qops.quint8, False)
    acc = np.stack([a_t, rng.integers(-400, 400, n)])  # (2, n): the traps on row 0
    m = acc.shape[0]
    raw = ((acc - ep.cc[None, :].astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32).ravel()
    rowsum = np.zeros(m, np.int32)
    args = (ep.cf0, ep.cf1, ep.ci0, ep.zo, ep.lo, ep.hi)
    want = np.zeros(m * n, np.uint8)
    cpu_requant.requantize_accumulators(ep.mode, raw, 0, n, m, n, rowsum, ep.zw, ep.cc, ep.ip,
                                        ep.fp, *args, want, 0, n, 0)
    d = cuda.to_device
    got = d(np.zeros(m * n, np.uint8))
    cuda_requant.requantize_accumulators(ep.mode, d(raw), 0, n, m, n, d(rowsum), d(ep.zw),
                                         d(ep.cc), d(ep.ip), d(ep.fp), *args, got, 0, n, 0)
    np.testing.assert_array_equal(host(got), want)
    # the CPU kernel follows the correct recipe, and every trap is one
    np.testing.assert_array_equal(want[:n], correct)
    for k, (name, wrong) in enumerate(wrongs.items()):
        assert np.all(wrong[8 * k:8 * (k + 1)] != want[8 * k:8 * (k + 1)]), name


def test_depthwise_kernel_fbgemm_pairs(rng):
    """The fbgemm pair quirk in the kernels directly, with multiplier 2 and
    padded taps, on inputs where int16 saturation happens."""
    n_, h_, w_, c_, mult = 1, 4, 5, 3, 2
    x = rng.integers(200, 256, (n_, 1, h_, w_, c_)).astype(np.uint8)
    wt = rng.choice(np.int8([-128, -127, 126, 127]), size=(9, c_ * mult)).astype(np.int8)
    zw = rng.integers(-3, 4, c_ * mult).astype(np.int32)
    geom = (1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, h_, w_)
    results = {}
    for pairs in (False, True):
        want = np.empty(n_ * h_ * w_ * c_ * mult, np.int32)
        cpu_conv.depthwise(x, 140, wt, zw, mult, *geom, pairs, want)
        got = cuda.to_device(np.empty_like(want))
        cuda_conv.depthwise(cuda.to_device(x), 140, cuda.to_device(wt), cuda.to_device(zw), mult,
                            *geom, pairs, got)
        np.testing.assert_array_equal(host(got), want)
        results[pairs] = want
    assert np.any(results[True] != results[False])  # the quirk was triggered


# ------------------------------------------------------------------ functional
@pytest.mark.parametrize("profile", PROFILES)
def test_linear_matches_cpu(rng, profile):
    compared = 0
    for xdt, per_channel, bkind, relu, wdt in cases(profile):
        x = activations(rng, (2, 4, 13), xdt)  # M = 8 rows, K = 13: padded in both
        w = weights(rng, (19, 13), profile, per_channel, wdt)
        b = bias(rng, profile, 19, bkind)
        fn = F.linear_relu if relu else F.linear
        y_cpu = fn(x, w, b, 0.05, 7, numerics=profile)
        y_gpu = fn(x.to("cuda"), w, b, 0.05, 7, numerics=profile)
        compared += assert_same(y_cpu, y_gpu)
    assert compared == 2 * 8 * 19


@pytest.mark.parametrize("profile", PROFILES)
def test_conv2d_matches_cpu(rng, profile):
    """Grouped and plain 2-D convolutions with stride, padding and dilation."""
    for i, (xdt, per_channel, bkind, relu, wdt) in enumerate(cases(profile)):
        if i == 0:
            x = activations(rng, (2, 4, 5, 4), xdt)
            w = weights(rng, (6, 2, 3, 2), profile, per_channel, wdt)
            kw = dict(stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2)
        else:
            x = activations(rng, (1, 3, 4, 5), xdt)
            w = weights(rng, (5, 3, 2, 2), profile, per_channel, wdt)
            kw = dict(padding=1)
        b = bias(rng, profile, w.shape[0], bkind)
        fn = F.conv2d_relu if relu else F.conv2d
        y_cpu = fn(x, w, b, scale=0.09, zero_point=3, numerics=profile, **kw)
        y_gpu = fn(x.to("cuda"), w, b, scale=0.09, zero_point=3, numerics=profile, **kw)
        assert assert_same(y_cpu, y_gpu) > 0


def test_conv1d_and_conv3d_match_cpu(rng):
    x = activations(rng, (2, 3, 9), qops.qint8)
    w = weights(rng, (4, 3, 3), "onnxruntime", True)
    b = bias(rng, "onnxruntime", 4, "int")
    y_cpu = F.conv1d(x, w, b, stride=2, padding=2, scale=0.1, zero_point=-4, numerics="onnxruntime")
    y_gpu = F.conv1d(x.to("cuda"), w, b, stride=2, padding=2, scale=0.1, zero_point=-4,
                     numerics="onnxruntime")
    assert_same(y_cpu, y_gpu)
    x = activations(rng, (1, 2, 3, 4, 3), qops.quint8)
    w = weights(rng, (3, 2, 2, 2, 2), "fbgemm", False)
    b = bias(rng, "fbgemm", 3, "float")
    kw = dict(padding=(1, 0, 1), dilation=(1, 2, 1), scale=0.08, zero_point=100, numerics="fbgemm")
    assert_same(F.conv3d_relu(x, w, b, **kw), F.conv3d_relu(x.to("cuda"), w, b, **kw))


def test_depthwise_conv2d_fbgemm_quirk(rng):
    """fbgemm's depthwise kernel (8 channels, 3x3, same padding) with
    activations and weights at the extremes: int16 saturation happens (the
    reference profile differs), and CUDA reproduces it."""
    c = 8
    q = rng.integers(230, 256, (1, c, 4, 4)).astype(np.uint8)
    x = qops.make_per_tensor_qtensor(q, 0.02, 10, qops.quint8)
    wq = rng.choice(np.int8([-128, 127]), size=(c, 1, 3, 3)).astype(np.int8)
    w = qops.make_per_tensor_qtensor(wq, 0.01, 0, qops.qint8)
    b = bias(rng, "fbgemm", c, "float")
    kw = dict(padding=1, groups=c, scale=2.0, zero_point=128)
    y_cpu = F.conv2d(x, w, b, numerics="fbgemm", **kw)
    assert_same(y_cpu, F.conv2d(x.to("cuda"), w, b, numerics="fbgemm", **kw))
    y_ref = F.conv2d(x, w, b, numerics="reference", **kw)
    assert np.any(y_cpu.int_repr() != y_ref.int_repr())  # the quirk mattered
    # and without the quirk's conditions (stride 1, padding 0): the plain path
    y_cpu = F.conv2d(x, w, b, numerics="onnxruntime", **kw)
    assert_same(y_cpu, F.conv2d(x.to("cuda"), w, b, numerics="onnxruntime", **kw))


def test_cuda_conv_output_feeds_the_next_conv(rng):
    """A CUDA conv output (contiguous NCHW on the device) is a valid input."""
    x = activations(rng, (1, 2, 4, 4), qops.quint8)
    w1 = weights(rng, (3, 2, 1, 1), "fbgemm", True)
    w2 = weights(rng, (2, 3, 2, 2), "fbgemm", False)
    y = F.conv2d(F.conv2d(x, w1, None, scale=0.05, zero_point=60), w2, None, scale=0.1,
                 zero_point=5)
    yd = F.conv2d(F.conv2d(x.to("cuda"), w1, None, scale=0.05, zero_point=60), w2, None,
                  scale=0.1, zero_point=5)
    assert_same(y, yd)


def test_cuda_padding_modes_other_than_zeros_refused(rng):
    x = activations(rng, (1, 2, 4, 4), qops.quint8).to("cuda")
    w = weights(rng, (2, 2, 3, 3), "fbgemm", False)
    with pytest.raises(NotImplementedError, match="padding_mode='reflect'"):
        F.conv2d(x, w, padding=1, padding_mode="reflect")


# ------------------------------------------------------------------ GPU only
@gpu_only
@pytest.mark.gpu
@pytest.mark.parametrize("profile", ["fbgemm", "onnxruntime", "tflite", "reference"])
def test_linear_large_matches_cpu(rng, monkeypatch, profile):
    """Several default-size tiles in every direction, default launch shape."""
    monkeypatch.setattr(config, "threads_per_block", 256)
    monkeypatch.setattr(config, "max_blocks", 8192)
    xdt = X_DTYPES[profile][0]
    x = activations(rng, (130, 200), xdt)
    w = weights(rng, (97, 200), profile, True)
    b = bias(rng, profile, 97, "float")
    assert_same(F.linear(x, w, b, 0.3, 5, numerics=profile),
                F.linear(x.to("cuda"), w, b, 0.3, 5, numerics=profile))


@gpu_only
@pytest.mark.gpu
def test_linear_accumulator_wraps_like_cpu(rng, monkeypatch):
    """K large enough for the int32 accumulator to wrap: the same wrapped result."""
    monkeypatch.setattr(config, "threads_per_block", 256)
    k = 70000
    x = qops.make_per_tensor_qtensor(np.full((4, k), 255, np.uint8), 0.01, 0, qops.quint8)
    w = qops.make_per_tensor_qtensor(np.full((3, k), -128, np.int8), 0.01, 0, qops.qint8)
    with pytest.warns(RuntimeWarning, match="overflow"):
        y_cpu = F.linear(x, w, None, 1e-3, 128, numerics="reference")
    with pytest.warns(RuntimeWarning, match="overflow"):
        y_gpu = F.linear(x.to("cuda"), w, None, 1e-3, 128, numerics="reference")
    assert_same(y_cpu, y_gpu)
