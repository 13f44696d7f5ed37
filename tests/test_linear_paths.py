"""Kernel paths of linear: VNNI vs portable GEMM, serial vs parallel epilogue,
the epilogue's strided output (what grouped convolution uses), packed weights,
and the errors of bad input.

``QOPS_DISABLE_VNNI=1`` forces the portable GEMM loop (``vnni_available()``
reads it on every call); both paths must give identical integers.  The
portable loop is slow, so its shapes are small.
"""

import numpy as np
import pytest

import qops
from qops._packed import PackedLinearWeight
from qops.functional import linear, linear_relu
from qops.kernels.cpu import gemm
from qops.kernels.cpu.requant import PARALLEL_MIN, requantize_accumulators
from qops.numerics import available_numerics
from tests.oracles import exact

PROFILE_DTYPES = {
    "fbgemm": (np.uint8, np.int8), "qnnpack": (np.uint8, np.int8), "onednn": (np.uint8, np.int8),
    "onnxruntime": (np.int8, np.uint8), "tflite": (np.int8, np.int8),
    "tflite_single": (np.int8, np.int8), "reference": (np.int8, np.uint8),
}
QDTYPE = {np.dtype(np.uint8): qops.quint8, np.dtype(np.int8): qops.qint8}
SYMMETRIC = ("onednn", "tflite", "tflite_single")


def _inputs(rng, profile, m, k, n, per_channel=True):
    xd, wd = PROFILE_DTYPES[profile]
    xi, wi = np.iinfo(xd), np.iinfo(wd)
    x = rng.integers(xi.min, xi.max + 1, (m, k)).astype(xd)
    w = rng.integers(wi.min, wi.max + 1, (n, k)).astype(wd)
    sym = profile in SYMMETRIC
    zw = np.zeros(n, np.int64) if sym else rng.integers(wi.min, wi.max + 1, n)
    if wd == np.int8 and not sym:
        zw = rng.integers(-5, 6, n)
    sw = np.exp2(rng.uniform(-10, -6, n))
    if per_channel:
        wq = qops.make_per_channel_qtensor(w, sw, zw, 0, QDTYPE[w.dtype])
    else:
        wq = qops.make_per_tensor_qtensor(w, float(sw[0]), int(zw[0]), QDTYPE[w.dtype])
    xq = qops.make_per_tensor_qtensor(x, 0.05, int(rng.integers(xi.min, xi.max + 1)), QDTYPE[x.dtype])
    bias = (rng.normal(0, 2, n)).astype(np.float32)
    so = 0.05 * float(np.mean(sw)) * 80 * np.sqrt(k) / 4
    return xq, wq, bias, so


@pytest.mark.parametrize("profile", available_numerics())
def test_vnni_and_portable_give_identical_integers(rng, monkeypatch, profile):
    if not gemm._HOST_VNNI:
        pytest.skip("this CPU has no AVX512-VNNI: only the portable path exists")
    for m, k, n in ((1, 1, 1), (3, 5, 33), (7, 64, 40), (13, 131, 70)):
        xq, wq, bias, so = _inputs(rng, profile, m, k, n)
        monkeypatch.delenv("QOPS_DISABLE_VNNI", raising=False)
        assert gemm.vnni_available()
        fast = linear_relu(xq, wq, bias, so, 3, numerics=profile).int_repr()
        monkeypatch.setenv("QOPS_DISABLE_VNNI", "1")
        assert not gemm.vnni_available()
        portable = linear_relu(xq, wq, bias, so, 3, numerics=profile).int_repr()
        np.testing.assert_array_equal(fast, portable)


@pytest.mark.parametrize("disable", ["1", ""], ids=["portable", "vnni"])
def test_gemm_raw_matches_integer_matmul(rng, monkeypatch, disable):
    """Raw products with int32 wraparound (K = 70,000 full-scale columns wrap)."""
    monkeypatch.setenv("QOPS_DISABLE_VNNI", disable)
    for m, k, n in ((1, 1, 1), (5, 7, 33), (9, 70000, 3)):
        x = rng.integers(0, 256, (m, k), dtype=np.uint8)
        w = rng.integers(-128, 128, (n, k), dtype=np.int8)
        if k == 70000:
            x[:] = 255
            w[:] = 127
        a, mp, kp = gemm.pack_activations(x)
        npad = -(-n // gemm.NR) * gemm.NR
        raw = gemm.gemm_raw(a, mp, kp, gemm.pack_weight(w), npad).reshape(mp, npad)[:m, :n]
        np.testing.assert_array_equal(raw, exact.accumulate(x, 0, w, 0).astype(np.int32))


@pytest.mark.parametrize("disable", ["", "1"], ids=["vnni", "portable"])
def test_gemm_raw_unpadded_rows(rng, monkeypatch, disable):
    """Rows used in place (``kp`` a multiple of 4, no padding to 4-row groups):
    the last 1-3 rows run on the 2-row and 1-row kernels, serial and parallel
    (the 3-row K = 70,000 case wraps int32 and is large enough to go parallel)."""
    monkeypatch.setenv("QOPS_DISABLE_VNNI", disable)
    for m, k, n in ((1, 4, 1), (2, 8, 33), (3, 64, 130), (5, 12, 64), (6, 768, 300), (7, 4, 7),
                    (3, 70000, 300)):
        x = rng.integers(0, 256, (m, k), dtype=np.uint8)
        w = rng.integers(-128, 128, (n, k), dtype=np.int8)
        if k == 70000:
            x[:] = 255
            w[:] = 127
        npad = -(-n // gemm.NR) * gemm.NR
        raw = gemm.gemm_raw(x.reshape(-1).view(np.int32), m, k, gemm.pack_weight(w), npad).reshape(m, npad)[:, :n]
        np.testing.assert_array_equal(raw, exact.accumulate(x, 0, w, 0).astype(np.int32))


@pytest.mark.parametrize("hand_over", ["compiled", "python"])
def test_gemm_raw_tiles_in_parts_both_hand_overs(rng, monkeypatch, hand_over):
    """The VNNI GEMM's tiles above SERIAL_MACS in parts, handed to the pool
    as a compiled job (checked: the job was posted) and as Python calls."""
    from qops.kernels import _split

    if not gemm.vnni_available():
        pytest.skip("this CPU has no AVX512-VNNI")
    if hand_over == "python":
        monkeypatch.setattr(gemm, "run_compiled", lambda *args: False)
    for m, k, n in ((64, 768, 96), (36, 1200, 64), (8, 70000, 64)):
        x = rng.integers(0, 256, (m, k), dtype=np.uint8)
        w = rng.integers(-128, 128, (n, k), dtype=np.int8)
        if k == 70000:  # int32 wraparound
            x[:] = 255
            w[:] = 127
        assert m * n * k > gemm.SERIAL_MACS
        a, mp, kp = gemm.pack_activations(x)
        raw = gemm.gemm_raw(a, mp, kp, gemm.pack_weight(w), n).reshape(mp, n)[:m]
        np.testing.assert_array_equal(raw, exact.accumulate(x, 0, w, 0).astype(np.int32), err_msg=str((m, k, n)))
        if hand_over == "compiled" and _split.parts() > 1:
            assert _split._pool.ctl[_split._HEADER + _split._FN] == gemm._TILES_VNNI_JOB.compile()


# ------------------------------------------------------------------ epilogue
def _epilogue_args(rng, profile, m, n):
    """A random raw block and the epilogue of a real packed weight."""
    k = 50
    xq, wq, bias, so = _inputs(rng, profile, m, k, n)
    packed = PackedLinearWeight(wq, bias)
    ep = packed.epilogue(profile, xq.q_scale(), xq.q_zero_point(), so, 7, True, xq.dtype,
                         xq.dtype is qops.qint8)
    raw = rng.integers(-(2**20), 2**20, m * n).astype(np.int32)
    rowsum = rng.integers(0, 255 * k, m).astype(np.int32)
    return ep, raw, rowsum, xq.dtype


@pytest.mark.parametrize("profile", available_numerics())
def test_epilogue_strided_output_and_parallel_blocks(rng, profile):
    """One parallel call over a large block equals row-by-row serial calls,
    and a block written at a column offset into a wider output (as grouped
    convolution does) equals the plain result."""
    m, n = 1100, 300  # 330,000 elements: the parallel driver
    assert m * n >= PARALLEL_MIN
    ep, raw, rowsum, qd = _epilogue_args(rng, profile, m, n)
    args = (rowsum, ep.zw, ep.cc, ep.ip, ep.fp, ep.cf0, ep.cf1, ep.ci0, ep.zo, ep.lo, ep.hi)
    whole = np.empty(m * n, qd.storage)
    requantize_accumulators(ep.mode, raw, 0, n, m, n, *args, whole, 0, n, 0)
    rows = np.empty(m * n, qd.storage)
    for i in range(m):  # each a tiny serial call on one row
        requantize_accumulators(ep.mode, raw, i * n, n, 1, n, rowsum[i:i + 1], *args[1:], rows,
                                i * n, n, 0)
    np.testing.assert_array_equal(whole, rows)
    # columns 100..219 of the block, written at column 5 of a 140-wide output
    # whose parameters start at column 100: pcol = 100, out_off = 5
    wide = np.full(m * 140, 99, qd.storage)
    requantize_accumulators(ep.mode, raw, 100, n, m, 120, rowsum, *args[1:], wide, 5, 140, 100)
    wide = wide.reshape(m, 140)
    np.testing.assert_array_equal(wide[:, 5:125], whole.reshape(m, n)[:, 100:220])
    assert (wide[:, :5] == 99).all() and (wide[:, 125:] == 99).all()


# ------------------------------------------------------------------ packing
def test_packed_weight_is_reused_across_calls_and_profiles(rng):
    xq, wq, bias, so = _inputs(rng, "fbgemm", 9, 40, 21)
    packed = PackedLinearWeight(wq, bias)
    for profile in ("fbgemm", "qnnpack", "reference", "fbgemm"):
        for zo in (0, 200):
            want = linear(xq, wq, bias, so, zo, numerics=profile).int_repr()
            got = linear(xq, packed, None, so, zo, numerics=profile).int_repr()
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="carries its own bias"):
        linear(xq, packed, bias, so, 0)


def test_quint8_weights_equal_shifted_qint8(rng):
    """A quint8 weight with zero point z is the qint8 weight w - 128 with
    zero point z - 128 (same accumulator), under every profile that takes it."""
    xq, _, bias, so = _inputs(rng, "onnxruntime", 5, 33, 17)
    w = rng.integers(0, 256, (17, 33), dtype=np.uint8)
    zw = rng.integers(0, 256, 17)
    sw = np.exp2(rng.uniform(-10, -6, 17))
    wu = qops.make_per_channel_qtensor(w, sw, zw, 0, qops.quint8)
    shifted = (w.astype(np.int16) - 128).astype(np.int8)
    ws = qops.make_per_channel_qtensor(shifted, sw, zw - 128, 0, qops.qint8)
    for profile in ("onnxruntime", "reference"):
        np.testing.assert_array_equal(
            linear(xq, wu, bias, so, 4, numerics=profile).int_repr(),
            linear(xq, ws, bias, so, 4, numerics=profile).int_repr(),
        )


# ------------------------------------------------------------------ bad input
def _q(a, dtype=qops.quint8, scale=0.1, zp=0):
    return qops.make_per_tensor_qtensor(np.asarray(a), scale, zp, dtype)


def test_bad_input_errors():
    x = _q(np.zeros((2, 4), np.uint8))
    w = _q(np.ones((3, 4), np.int8), qops.qint8)
    with pytest.raises(TypeError, match="quantize it first"):
        linear(np.zeros((2, 4), np.float32), w)
    with pytest.raises(TypeError, match="expects a quint8 input"):
        linear(_q(np.zeros((2, 4), np.int8), qops.qint8), w)
    with pytest.raises(ValueError, match="in_features=4"):
        linear(_q(np.zeros((2, 5), np.uint8)), w)
    with pytest.raises(ValueError, match=r"outside the range \[0, 255\]"):
        linear(x, w, None, 0.1, 256)
    with pytest.raises(ValueError, match=r"outside the range \[0, 255\]"):
        linear(x, w, None, 0.1, -1)
    with pytest.raises(ValueError, match="scale"):
        linear(x, w, None, 0.0, 0)
    with pytest.raises(ValueError, match="symmetric weights"):
        linear(x, _q(np.ones((3, 4), np.int8), qops.qint8, zp=1), numerics="onednn")
    with pytest.raises(TypeError, match="int32 bias"):
        linear(x, w, np.zeros(3, np.int32))
    with pytest.raises(TypeError, match="must be int32"):
        linear(x, w, np.zeros(3, np.int64), numerics="reference")
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        linear(x, w, np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="qint8 weight"):
        linear(x, _q(np.ones((3, 4), np.int32), qops.qint32))
    with pytest.raises(TypeError, match="qint8 weights only"):
        linear(x, _q(np.ones((3, 4), np.uint8)))
    with pytest.raises(ValueError, match="2-D weight"):
        linear(x, _q(np.ones((3, 4, 1), np.int8), qops.qint8))
    wc = qops.make_per_channel_qtensor(np.ones((3, 4), np.int8), [0.1] * 4, [0] * 4, 1, qops.qint8)
    with pytest.raises(ValueError, match="along axis 0"):
        linear(x, wc)
    with pytest.raises(TypeError, match="as a qint8 QTensor"):
        linear(x, np.ones((3, 4), np.int8))
    xc = qops.make_per_channel_qtensor(np.zeros((2, 4), np.uint8), [0.1, 0.2], [0, 0], 0, qops.quint8)
    with pytest.raises(ValueError, match="per-tensor quantized input"):
        linear(xc, w)


def test_degenerate_shapes():
    w0 = _q(np.ones((0, 4), np.int8), qops.qint8)
    assert linear(_q(np.zeros((2, 4), np.uint8)), w0).shape == (2, 0)
    wk = _q(np.ones((3, 0), np.int8), qops.qint8)
    y = linear(_q(np.zeros((2, 0), np.uint8), zp=5), wk, np.float32([0.0, 1.0, -1.0]), 0.5, 10)
    np.testing.assert_array_equal(y.int_repr(), [[10, 12, 8], [10, 12, 8]])
    y = linear(_q(np.zeros((4,), np.uint8)), _q(np.ones((3, 4), np.int8), qops.qint8))
    assert y.shape == (3,)
