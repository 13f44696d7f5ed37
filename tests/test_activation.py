"""qops.functional activations against torch 2.13 (every byte, both of torch's paths)."""

import warnings

import numpy as np
import pytest

import qops
import qops.functional as F
import qops.nn as qnn

torch = pytest.importorskip("torch")
qF = pytest.importorskip("torch.ao.nn.quantized.functional")
warnings.filterwarnings("ignore", message=".*quantized tensor creation.*")

DTYPES = {"quint8": (qops.quint8, torch.quint8, np.uint8),
          "qint8": (qops.qint8, torch.qint8, np.int8)}


def _oq(dt, zq):
    """An output zero point of the input's dtype."""
    return zq if dt == "quint8" else zq - 128


# name -> (qops call, torch call); both take (x, dtype name)
OPS = {
    "relu": (lambda x, d, **k: F.relu(x, **k), lambda x, d: torch.relu(x)),
    "relu6": (lambda x, d, **k: F.relu6(x, **k), lambda x, d: torch.ops.quantized.relu6(x)),
    "hardtanh": (lambda x, d, **k: F.hardtanh(x, -0.7, 0.9, **k), lambda x, d: qF.hardtanh(x, -0.7, 0.9)),
    "clamp": (lambda x, d, **k: F.clamp(x, -0.5, 0.25, **k), lambda x, d: qF.clamp(x, -0.5, 0.25)),
    "threshold": (lambda x, d, **k: F.threshold(x, 0.1, -0.3, **k), lambda x, d: qF.threshold(x, 0.1, -0.3)),
    "leaky_relu": (lambda x, d, **k: F.leaky_relu(x, 0.013, **k), lambda x, d: qF.leaky_relu(x, 0.013)),
    "leaky_relu_qp": (lambda x, d, **k: F.leaky_relu(x, 0.3, 0.04, _oq(d, 7), **k),
                      lambda x, d: qF.leaky_relu(x, 0.3, scale=0.04, zero_point=_oq(d, 7))),
    "hardswish": (lambda x, d, **k: F.hardswish(x, 0.05, _oq(d, 125), **k),
                  lambda x, d: qF.hardswish(x, 0.05, _oq(d, 125))),
    "elu": (lambda x, d, **k: F.elu(x, 0.03, _oq(d, 98), 1.3, **k), lambda x, d: qF.elu(x, 0.03, _oq(d, 98), 1.3)),
    "celu": (lambda x, d, **k: F.celu(x, 0.03, _oq(d, 98), 1.7, **k), lambda x, d: qF.celu(x, 0.03, _oq(d, 98), 1.7)),
    "hardsigmoid": (lambda x, d, **k: F.hardsigmoid(x, **k), lambda x, d: qF.hardsigmoid(x)),
    "sigmoid": (lambda x, d, **k: F.sigmoid(x, **k), lambda x, d: torch.sigmoid(x)),
    "tanh": (lambda x, d, **k: F.tanh(x, **k), lambda x, d: torch.tanh(x)),
    "sigmoid_qp": (lambda x, d, **k: qnn.Sigmoid(0.0173, _oq(d, 200), **k)(x),
                   lambda x, d: torch.ops.quantized.sigmoid(x, 0.0173, _oq(d, 200))),
    "gelu": (lambda x, d, **k: F.gelu(x, **k), lambda x, d: torch.nn.functional.gelu(x)),
    "gelu_tanh": (lambda x, d, **k: F.gelu(x, "tanh", **k),
                  lambda x, d: torch.nn.functional.gelu(x, approximate="tanh")),
}




def _qparams(rng, dt, n):
    """``n`` input (scale, zero point) pairs: random, extreme scales, edge zero points."""
    lo = 0 if dt == "quint8" else -128
    out = [(1e-4, lo), (1e-4, lo + 255), (30.0, lo + 1), (1.0, lo + 128), (0.5, lo + 255), (2.5, lo),
           (0.05, lo), (0.025, lo + 3), (0.1, lo + 128), (0.2, lo + 77)]  # exact ties
    while len(out) < n:
        out.append((float(np.float32(10 ** rng.uniform(-3.5, 0.7))), int(rng.integers(lo, lo + 256))))
    return out


def _both_paths(dt):
    """A strided (8, 100) view of an (8, 128) array: torch runs positions 0..63 of each row
    vectorised and 64..99 on its scalar path; every byte appears in both."""
    sd = DTYPES[dt][2]
    base = np.zeros((8, 128), np.uint8)
    perm = np.random.default_rng(7).permutation(256).astype(np.uint8)
    base[:, :64] = np.concatenate([perm, perm]).reshape(8, 64)
    tail = np.concatenate([perm[::-1], perm[:32]])
    base[:, 64:100] = tail.reshape(8, 36)
    return base.view(sd)


@pytest.mark.parametrize("dt", ["quint8", "qint8"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_byte_both_paths_fbgemm(name, dt, rng):
    """Every input byte on both torch paths, 40 input qparams (random, extreme, exact
    ties): identical integers and qparams.  Ops through exp / expm1 / tanh / erf are
    exact too (docs/ops_activation.md: 0 differences in 21.6M values)."""
    ours, theirs = OPS[name]
    base = _both_paths(dt)
    torch.backends.quantized.engine = "fbgemm"
    qd, td, sd = DTYPES[dt]
    compared = 0
    for s, z in _qparams(rng, dt, 40):
        xq = qops.make_per_tensor_qtensor(base, s, z, qd)[:, :100]
        xt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(base.copy()), s, z)[:, :100]
        yq, yt = ours(xq, dt), theirs(xt, dt)
        assert (yq.q_scale(), yq.q_zero_point()) == (yt.q_scale(), yt.q_zero_point())
        got = yq.int_repr()
        assert got.dtype == sd
        np.testing.assert_array_equal(got, yt.int_repr().numpy(), err_msg=f"{name} s={s} z={z}")
        compared += got.size
    assert compared == 40 * 800


def _torch_view(base, s, z, dt, view):
    xt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(base.copy()), s, z)
    return view(xt)


GEOMETRIES = {
    "contiguous_sizes": [((n,), lambda a: a) for n in (0, 1, 63, 64, 65, 127, 128, 1000, 4099)],
    "strided": [
        ((40, 70), lambda a: a.transpose(0, 1) if hasattr(a, "transpose") and not isinstance(a, np.ndarray) else a.T),
        ((30, 131), lambda a: a[:, ::2]),
        ((6, 1, 200), lambda a: a[1:5, :, 3:140]),
        ((9, 3, 150), lambda a: a[::2]),
        ((2, 3, 5, 7), lambda a: a.permute(0, 2, 3, 1) if not isinstance(a, np.ndarray) else a.transpose(0, 2, 3, 1)),
    ],
}


@pytest.mark.parametrize("name", ["hardswish", "tanh", "gelu_tanh", "relu6"])
def test_geometry(name, rng):
    """torch's vector / tail positions for odd sizes, size-1 dims, strided views,
    and a channels-last 4-D input (torch keeps that memory format)."""
    ours, theirs = OPS[name]
    qd, td, sd = DTYPES["quint8"]
    # qparams where torch's two paths disagree on some byte (found by search)
    for s, z in [(0.18758000433444977, 117), (0.009313634596765041, 185), (0.0406, 135)]:
        for shape, view in GEOMETRIES["contiguous_sizes"] + GEOMETRIES["strided"]:
            base = rng.integers(0, 256, shape).astype(sd)
            if base.size:
                base.reshape(-1)[: 256] = np.arange(min(256, base.size))
            xt = _torch_view(base, s, z, "quint8", view)
            xq = view(qops.make_per_tensor_qtensor(base, s, z, qd)) if False else None
            xq = _qview(base, s, z, view)
            np.testing.assert_array_equal(ours(xq, "quint8").int_repr(), theirs(xt, "quint8").int_repr().numpy())


def _qview(base, s, z, view):
    """A qops QTensor over ``view(base)`` (the same strides as torch's view)."""
    from qops.qtensor import QTensor

    return QTensor._per_tensor(view(base), qops.quint8, s, z)


def test_channels_last_output_keeps_layout():
    base = np.arange(2 * 3 * 5 * 7, dtype=np.uint8).reshape(2, 5, 7, 3)
    x = _qview(base, 0.1, 3, lambda a: a.transpose(0, 3, 1, 2))
    y = F.sigmoid(x)
    assert y.shape == (2, 3, 5, 7)
    assert y.int_repr().transpose(0, 2, 3, 1).flags.c_contiguous


@pytest.mark.parametrize("engine", ["qnnpack", "onednn"])
def test_engines_equal_fbgemm(engine, rng):
    """onednn runs torch's ATen kernels; qnnpack too, except quint8 sigmoid, tanh and
    hardswish, which torch routes to QNNPACK's own tables (reproduced).  quint8 sigmoid
    into output qparams other than (1/256, 0) is refused under qnnpack, as torch does."""
    base = _both_paths("quint8")
    prev = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        for name in sorted(OPS):
            ours, theirs = OPS[name]
            for dt in ("quint8", "qint8"):
                qd, td, sd = DTYPES[dt]
                b = base.view(sd)
                for s, z in _qparams(rng, dt, 8):
                    xq = _qview_dt(b, s, z, qd)[:, :100]
                    xt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(b.copy()), s, z)[:, :100]
                    if engine == "qnnpack" and name == "sigmoid_qp" and dt == "quint8":
                        with pytest.raises(NotImplementedError, match="qnnpack"):
                            ours(xq, dt, numerics=engine)
                        continue
                    np.testing.assert_array_equal(ours(xq, dt, numerics=engine).int_repr(),
                                                  theirs(xt, dt).int_repr().numpy(), err_msg=name)
    finally:
        torch.backends.quantized.engine = prev


def _qview_dt(b, s, z, qd):
    return qops.make_per_tensor_qtensor(b, s, z, qd)


@pytest.mark.parametrize("simd", [True, False], ids=["avx512", "portable"])
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("dt", ["quint8", "qint8"])
def test_prelu_every_byte_and_layout(dt, parallel, simd, rng, monkeypatch):
    """The vector-arithmetic prelu against torch on every input byte in each
    channel, channel runs of 1, 3, 64 and 70 elements, extreme output scales
    (clamping at both ends), on both drivers, through qprelu64 (a factor
    period of 64 and of 960 values; runs of 64 and 70) and portable."""
    from qops.kernels.cpu import _avx512
    from qops.kernels.cpu import activation as A

    if simd and not _avx512.avx512bw_available():
        pytest.skip("no AVX512-BW on this host (or QOPS_DISABLE_AVX512 set)")
    if not simd:
        monkeypatch.setenv("QOPS_DISABLE_AVX512", "1")
    monkeypatch.setattr(A, "PRELU_PARALLEL_MIN", 0 if parallel else 1 << 62)
    monkeypatch.setattr(A, "PRELU_PARTS_MIN", 0 if parallel else 1 << 62)
    qd, td, sd = DTYPES[dt]
    lo = qd.qmin
    byte = np.arange(lo, lo + 256).astype(sd)
    for shape in ((256, 64), (256, 5, 3), (256, 2, 64), (4, 3, 70)):
        c = shape[1]
        xr = np.ascontiguousarray(np.broadcast_to(byte.reshape((256,) + (1,) * (len(shape) - 1)),
                                                  (256,) + shape[1:])) if shape[0] == 256 else \
            rng.integers(lo, lo + 256, shape).astype(sd)
        wr = rng.integers(lo, lo + 256, c).astype(sd)
        for s, z, sw, zw, so, zo in ((0.05, lo + 128, 0.01, lo + 100, 0.07, lo + 3),
                                     (0.9, lo + 7, 0.3, lo + 250, 1e-4, lo + 128),
                                     (1e-3, lo + 255, 0.02, lo, 30.0, lo + 200)):
            xt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(xr), s, z)
            wt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(wr), sw, zw)
            yt = torch.ops.quantized.prelu(xt, wt, so, zo)
            yq = F.prelu(qops.make_per_tensor_qtensor(xr, s, z, qd),
                         qops.make_per_tensor_qtensor(wr, sw, zw, qd), so, zo)
            np.testing.assert_array_equal(yq.int_repr(), yt.int_repr().numpy())


@pytest.mark.parametrize("dt", ["quint8", "qint8"])
def test_prelu_torch(dt, rng):
    qd, td, sd = DTYPES[dt]
    lo = qd.qmin
    total = 0
    for engine in ("fbgemm", "qnnpack", "onednn"):
        torch.backends.quantized.engine = engine
        for _ in range(12):
            s = float(np.float32(10 ** rng.uniform(-3, 0.5)))
            z = int(rng.integers(lo, lo + 256))
            c = int(rng.integers(1, 6))
            sw, zw = float(np.float32(10 ** rng.uniform(-3, 0))), int(rng.integers(lo, lo + 256))
            so, zo = float(np.float32(10 ** rng.uniform(-3, 0.5))), int(rng.integers(lo, lo + 256))
            xr = rng.integers(lo, lo + 256, (2, c, 5, 29)).astype(sd)
            wr = rng.integers(lo, lo + 256, c).astype(sd)
            if c == 1 and rng.integers(2):
                xr = xr.reshape(-1)
            xt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(xr), s, z)
            wt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(wr), sw, zw)
            yt = torch.ops.quantized.prelu(xt, wt, so, zo)
            yq = F.prelu(qops.make_per_tensor_qtensor(xr, s, z, qd), qops.make_per_tensor_qtensor(wr, sw, zw, qd),
                         so, zo, numerics=engine)
            assert (yq.q_scale(), yq.q_zero_point()) == (yt.q_scale(), yt.q_zero_point())
            np.testing.assert_array_equal(yq.int_repr(), yt.int_repr().numpy())
            total += xr.size
    torch.backends.quantized.engine = "fbgemm"
    assert total > 0


@pytest.mark.parametrize("name", sorted(set(OPS) - {"threshold"}))
def test_reference_within_one_lsb_of_torch(name, rng):
    """The ideal result and torch's differ by at most 1 LSB on every byte (threshold is
    discontinuous: torch compares float32 values, the reference real ones; see
    test_reference_exact_cases)."""
    ours, _ = OPS[name]
    for dt in ("quint8", "qint8"):
        qd, td, sd = DTYPES[dt]
        allb = np.arange(256, dtype=np.uint8).view(sd)
        for s, z in _qparams(rng, dt, 6):
            x = qops.make_per_tensor_qtensor(allb, s, z, qd)
            a = ours(x, dt).int_repr().astype(int)
            r = ours(x, dt, numerics="reference").int_repr().astype(int)
            assert np.abs(a - r).max() <= 1, (name, s, z)


def test_reference_exact_cases():
    x = qops.make_per_tensor_qtensor(np.uint8([0, 10, 20, 30]), 0.1, 10, qops.quint8)
    # hardtanh(-0.5, 0.5): clamp the real values, then round exactly
    np.testing.assert_array_equal(F.hardtanh(x, -0.5, 0.5, numerics="reference").int_repr(), [5, 10, 15, 15])
    # 0.25 / 0.1 = 2.5 exactly in reals: ties to even -> 2 (+10)
    np.testing.assert_array_equal(F.clamp(x, -0.25, 0.25, numerics="reference").int_repr(), [8, 10, 12, 12])
    # threshold at 0.1 with x = 2 * fl(0.05) = 0.10000000149 > 0.1 in reals, == fl(0.1) in float32
    y = qops.make_per_tensor_qtensor(np.uint8([2]), 0.05, 0, qops.quint8)
    assert F.threshold(y, 0.1, -0.25).int_repr()[0] == 0
    assert F.threshold(y, 0.1, -0.25, numerics="reference").int_repr()[0] == 2
    # sigmoid(0) = 0.5 -> 128 (quint8, 1/256)
    assert F.sigmoid(x, numerics="reference").int_repr()[1] == 128
    np.testing.assert_array_equal(F.relu(x, numerics="onnxruntime").int_repr(), [10, 10, 20, 30])


def test_prelu_reference():
    x = qops.make_per_tensor_qtensor(np.uint8([0, 10, 20, 30]).reshape(1, 4), 0.1, 10, qops.quint8)
    w = qops.make_per_tensor_qtensor(np.uint8([5]), 0.25, 0, qops.quint8)
    y = F.prelu(x, w, 0.05, 20, numerics="reference")
    # -1.0 * 1.25 / 0.05 = -25 -> 0 (saturates); 0 -> 20; 1.0/0.05 = 20 -> 40; 2 -> 60
    np.testing.assert_array_equal(y.int_repr(), [[0, 20, 40, 60]])


def test_qint32_selections_match_torch(rng):
    """relu, relu6, hardtanh and clamp on qint32 (torch clamps the integers to
    bounds quantized with ``quantize_val``): random int32 data over the whole
    range and near zero, scales 1e-6 to 10, zero points up to +-2**31, bounds
    past the int32 range, crossed bounds, a channels-last view."""
    compared = 0
    for it in range(60):
        shape = tuple(int(v) for v in rng.integers(1, 9, 4 if it % 5 == 0 else int(rng.integers(1, 4))))
        s = float(10 ** rng.uniform(-6, 1))
        z = int(rng.integers(-2**31, 2**31)) if it % 3 == 0 else int(rng.integers(-1000, 1000))
        ints = (rng.integers(-2**31, 2**31, shape, dtype=np.int64) if it % 2
                else rng.integers(-5000, 5000, shape)).astype(np.int32)
        q = qops.make_per_tensor_qtensor(ints, s, z, qops.qint32)
        t = torch._make_per_tensor_quantized_tensor(torch.from_numpy(ints), s, z)
        if len(shape) == 4:
            q = q.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
            t = t.contiguous(memory_format=torch.channels_last)
        mn, mx = sorted(float(v) for v in rng.normal(0, 10 ** rng.uniform(-3, 12), 2))
        for got, want in ((F.relu(q), torch.relu(t)), (F.relu6(q), torch.ops.quantized.relu6(t)),
                          (F.hardtanh(q, mn, mx), qF.hardtanh(t, mn, mx)),
                          (F.clamp(q, mn, mx), qF.clamp(t, mn, mx)), (F.clamp(q, mx, mn), qF.clamp(t, mx, mn)),
                          (F.clamp(q, None, mx), qF.clamp(t, None, mx))):
            np.testing.assert_array_equal(got.int_repr(), want.int_repr().numpy())
            assert got.int_repr().dtype == np.int32
            assert (got.q_scale(), got.q_zero_point()) == (want.q_scale(), want.q_zero_point())
            compared += want.numel()
    assert compared > 10_000


def test_qint32_selections_reference():
    """The reference profile clamps the exact value and rounds once: the
    integers clamped to the exactly rounded bounds."""
    from fractions import Fraction

    ints = np.int32([-2**31, -70001, -3, 0, 5, 49999, 50001, 2**31 - 1])
    q = qops.make_per_tensor_qtensor(ints, 2e-5, -7, qops.qint32)
    got = F.hardtanh(q, -1.4, 1.0, numerics="reference").int_repr()
    want = []
    for v in ints.tolist():
        x = (v + 7) * Fraction(2e-5)
        y = min(max(x, Fraction(-1.4)), Fraction(1.0))
        want.append(round(y / Fraction(2e-5)) - 7)
    np.testing.assert_array_equal(got, np.int32(want))


def test_errors():
    x = qops.make_per_tensor_qtensor(np.uint8([1, 2, 3]), 0.1, 2, qops.quint8)
    with pytest.raises(TypeError, match="quantize it first"):
        F.sigmoid(np.float32([1, 2]))
    with pytest.raises(NotImplementedError, match="numerics 'onnxruntime'"):
        F.sigmoid(x, numerics="onnxruntime")
    with pytest.raises(NotImplementedError, match="numerics 'tflite'"):
        F.relu6(x, numerics="tflite")
    with pytest.raises(ValueError, match="unknown numerics"):
        F.relu(x, numerics="bogus")
    with pytest.raises(ValueError, match="min_val"):
        F.hardtanh(x, 1.0, -1.0)
    with pytest.raises(ValueError, match="at least one"):
        F.clamp(x, None, None)
    with pytest.raises(ValueError, match="both scale and zero_point"):
        F.leaky_relu(x, 0.1, 0.5)
    with pytest.raises(ValueError, match="zero_point"):
        F.hardswish(x, 0.1, 300)
    with pytest.raises(ValueError, match="scale"):
        F.elu(x, 0.0, 3)
    with pytest.raises(ValueError, match="alpha cannot be 0"):
        F.celu(x, 0.1, 3, 0.0)
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(x, "erf")
    with pytest.raises(ValueError, match="finite"):
        F.threshold(x, 0.5, float("nan"))
    q32 = qops.make_per_tensor_qtensor(np.int32([1, 2]), 0.1, 0, qops.qint32)
    for op in (F.tanh, F.sigmoid, F.hardsigmoid, lambda t: F.threshold(t, 0.1, 0.2),
               lambda t: F.leaky_relu(t, 0.1), lambda t: F.hardswish(t, 0.1, 0)):
        with pytest.raises(NotImplementedError, match="qint32"):
            op(q32)
    pc = qops.quantize_per_channel(np.zeros((2, 3), np.float32), [0.1, 0.2], [0, 0], 0, qops.quint8)
    with pytest.raises(ValueError, match="per-tensor"):
        F.tanh(pc)
    w = qops.make_per_tensor_qtensor(np.uint8([1, 2]), 0.1, 0, qops.quint8)
    with pytest.raises(ValueError, match="weight must be 1-D"):
        F.prelu(x.reshape(1, 3), w, 0.1, 0)
    with pytest.raises(TypeError, match="dtype"):
        F.prelu(x, qops.make_per_tensor_qtensor(np.int8([1]), 0.1, 0, qops.qint8), 0.1, 0)
    with pytest.raises(TypeError, match="quantized weight"):
        F.prelu(x, np.float32([0.1]), 0.1, 0)


def test_relu_short_path_keeps_the_checks():
    """relu remembers the bounds of each (dtype, zero point) it has checked
    and then skips the checks for C-contiguous NumPy inputs; every other
    input of that dtype and zero point still takes them (and the slow path),
    and the result is torch's per-tensor affine tensor either way."""
    from qops import _activation as A

    x = qops.make_per_tensor_qtensor(np.arange(24, dtype=np.uint8).reshape(4, 6), 0.1, 7, qops.quint8)
    want = np.maximum(x.int_repr(), 7)
    F.relu(x)
    assert A._RELU_BOUNDS[qops.quint8, 7] == (7, 255)
    for _ in range(2):
        y = F.relu(x)
        np.testing.assert_array_equal(y.int_repr(), want)
        assert (y.q_scale(), y.q_zero_point(), y.qscheme()) == (0.1, 7, qops.per_tensor_affine)
    np.testing.assert_array_equal(F.relu(x.transpose(0, 1)).int_repr(), want.T)
    np.testing.assert_array_equal(F.relu(x, numerics="qnnpack").int_repr(), want)
    sym = qops.make_per_tensor_qtensor(np.int8([-3, 0, 4]), 0.1, 0, qops.qint8)
    F.relu(sym)
    sym._qscheme = qops.per_tensor_symmetric  # as a symmetric observer's tensor
    y = F.relu(sym)
    np.testing.assert_array_equal(y.int_repr(), np.int8([0, 0, 4]))
    assert y.qscheme() == qops.per_tensor_affine  # as torch's quantized relu
    with pytest.raises(ValueError, match="unknown numerics"):
        F.relu(x, numerics="bogus")
    with pytest.raises(TypeError, match="quantize it first"):
        F.relu(x.int_repr())
    pc = qops.quantize_per_channel(np.zeros((2, 3), np.float32), [0.1, 0.2], [7, 7], 0, qops.quint8)
    with pytest.raises(ValueError, match="per-tensor"):
        F.relu(pc)


def test_hardtanh_short_path_keeps_the_checks():
    """hardtanh remembers the bounds of each checked (dtype, scale, zero
    point, float bounds) under a torch profile; calls that differ in any of
    those, in the bounds' types or in the profile still take the checks."""
    from qops import _activation as A

    x = qops.make_per_tensor_qtensor(np.arange(24, dtype=np.uint8).reshape(4, 6), 0.5, 7, qops.quint8)
    want = np.clip(x.int_repr(), 7 - 2, 7 + 4)
    for _ in range(3):
        np.testing.assert_array_equal(F.hardtanh(x, -1.0, 2.0).int_repr(), want)
    assert A._HARDTANH_BOUNDS[qops.quint8, 0.5, 7, -1.0, 2.0] == (5, 11)
    np.testing.assert_array_equal(F.hardtanh(x.transpose(0, 1), -1.0, 2.0).int_repr(), want.T)
    with qops.numerics("onnxruntime"):
        with pytest.raises(NotImplementedError, match="numerics 'onnxruntime'"):
            F.hardtanh(x, -1.0, 2.0)
    with pytest.raises(ValueError, match="unknown numerics"):
        F.hardtanh(x, -1.0, 2.0, numerics="bogus")
    with pytest.raises(TypeError, match="min_val must be a real number"):
        F.hardtanh(x, True, 2.0)
    with pytest.raises(ValueError, match="must not exceed"):
        F.hardtanh(x, 2.0, -1.0)
    y = qops.make_per_tensor_qtensor(x.int_repr(), 0.25, 7, qops.quint8)  # another scale
    np.testing.assert_array_equal(F.hardtanh(y, -1.0, 2.0).int_repr(), np.clip(x.int_repr(), 3, 15))
    with qops.numerics("reference"):  # the reference profile's own path
        np.testing.assert_array_equal(F.hardtanh(x, -1.0, 2.0).int_repr(), want)
    assert len(A._HARDTANH_BOUNDS) <= A._KNOWN_MAX


@pytest.mark.parametrize("layout", ["odd", "even", "rows_even", "rows_odd"])
def test_large_parallel_single_thread_torch(layout):
    """The parallel CPU driver (>= 2**17 elements; two-byte lookups where runs start
    at even positions) against torch run on one thread (torch's multi-threaded
    split adds a tail per thread chunk: see the docs)."""
    s, z = 0.18758000433444977, 117  # torch's two hardswish paths differ on byte 109 here
    shape, view = {"odd": ((300_037,), lambda a: a), "even": ((300_000,), lambda a: a),
                   "rows_even": ((601, 512), lambda a: a[:, 6:506]),
                   "rows_odd": ((601, 512), lambda a: a[:, 3:336])}[layout]
    raw = np.random.default_rng(3).integers(0, 256, shape).astype(np.uint8)
    flat = raw.reshape(-1)
    flat[-600:] = 109
    flat[:600] = 109
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        xt = view(torch._make_per_tensor_quantized_tensor(torch.from_numpy(raw.copy()), s, z))
        want = qF.hardswish(xt, 0.05, 100).int_repr().numpy()
    finally:
        torch.set_num_threads(prev)
    got = F.hardswish(_qview(raw, s, z, view), 0.05, 100).int_repr()
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(got[np.asarray(view(raw)) == 109])) == 2  # both formulas occur


@pytest.mark.parametrize("dt", ["quint8", "qint8"])
def test_clamp_bounds_edges(dt):
    """Infinite, huge, reversed and one-sided bounds, as torch.clamp / hardtanh."""
    qd, td, sd = DTYPES[dt]
    raw = np.arange(256, dtype=np.uint8).view(sd)
    x = qops.make_per_tensor_qtensor(raw, 0.037, qd.qmin + 101, qd)
    xt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(raw.copy()), 0.037, qd.qmin + 101)
    for mn, mx in [(float("-inf"), float("inf")), (-1e30, 1e30), (0.5, -0.5), (None, 0.3), (-0.3, None),
                   (1.1e-3, 1.2e-3), (-5.0, 5.0)]:
        want = torch.clamp(xt, mn, mx).int_repr().numpy()
        np.testing.assert_array_equal(F.clamp(x, mn, mx).int_repr(), want, err_msg=f"{mn}, {mx}")
    np.testing.assert_array_equal(F.hardtanh(x, float("-inf"), 0.2).int_repr(),
                                  qF.hardtanh(xt, float("-inf"), 0.2).int_repr().numpy())
