"""``numerics="onnxruntime"`` linear against onnxruntime 1.32 (CPU, MLAS).

Peers, built as tiny models (``tests/oracles/onnx_models.py``):

* ``QLinearMatMul`` (opset 21): uint8 or int8 activations, int8 or uint8
  weights, per-tensor or per-column (per output channel, ``b_scale`` and
  ``b_zero_point`` of shape ``[N]``) weight parameters.  It has no bias input.
* ``com.microsoft.QGemm`` (``transB=1``): the same plus an int32 bias ``C`` in
  the accumulator scale, added to the int32 accumulator before requantizing.

onnxruntime 1.32 implements neither op for int8 activations with uint8
weights (no kernel is registered), so that combination is only checked
against the exact reference elsewhere.
"""

import itertools

import numpy as np
import pytest

import qops
from qops.functional import linear, linear_relu

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from tests.oracles import onnx_models as onnx_peer  # noqa: E402

NUMERICS = "onnxruntime"
QDTYPE = {np.dtype(np.uint8): qops.quint8, np.dtype(np.int8): qops.qint8}
#: (activation dtype, weight dtype) pairs onnxruntime 1.32 implements
PAIRS = [(np.uint8, np.int8), (np.uint8, np.uint8), (np.int8, np.int8)]
PAIR_IDS = ["u8s8", "u8u8", "s8s8"]
MS = (1, 3, 17, 64)
KS = (1, 3, 4, 31, 64, 257)
NS = (1, 5, 32, 33, 100)


def _case(rng, x_dtype, w_dtype, m, k, n, per_column):
    xi, wi = np.iinfo(x_dtype), np.iinfo(w_dtype)
    x = rng.integers(xi.min, xi.max + 1, (m, k)).astype(x_dtype)
    w = rng.integers(wi.min, wi.max + 1, (n, k)).astype(w_dtype)
    sx = np.float32(np.exp2(rng.uniform(-8, 0)))
    zx = int(rng.integers(xi.min, xi.max + 1))
    if per_column:
        sw = np.exp2(rng.uniform(-14, -4, n)).astype(np.float32)
        zw = rng.integers(wi.min, wi.max + 1, n)
    else:
        sw = np.float32(np.exp2(rng.uniform(-14, -4)))
        zw = int(rng.integers(wi.min, wi.max + 1))
    # spread of A: |x - zx| and |w - zw| reach 255 with extreme zero points
    typical = float(sx) * float(np.mean(sw)) * 9000.0 * np.sqrt(k)
    so = np.float32(typical / 60.0 * np.exp2(rng.uniform(-1.5, 1.5)))
    return x, w, sx, zx, sw, zw, so


def _qops(x, sx, zx, w, sw, zw, bias, so, zo, relu=False):
    xq = qops.make_per_tensor_qtensor(x, float(sx), zx, QDTYPE[x.dtype])
    if np.ndim(sw):
        wq = qops.make_per_channel_qtensor(w, sw, zw, 0, QDTYPE[w.dtype])
    else:
        wq = qops.make_per_tensor_qtensor(w, float(sw), zw, QDTYPE[w.dtype])
    f = linear_relu if relu else linear
    return f(xq, wq, bias, float(so), zo, numerics=NUMERICS).int_repr()


def _zo(rng, i, dtype):
    info = np.iinfo(dtype)
    return (info.min, info.max, int(rng.integers(info.min, info.max + 1)))[i % 3]


@pytest.mark.parametrize(("x_dtype", "w_dtype"), PAIRS, ids=PAIR_IDS)
def test_linear_matches_qlinearmatmul(rng, x_dtype, w_dtype):
    """The full shape sweep, per-tensor and per-column: ~29,000 outputs each."""
    compared = 0
    for i, (m, k, n) in enumerate(itertools.product(MS, KS, NS)):
        for per_column in (False, True):
            x, w, sx, zx, sw, zw, so = _case(rng, x_dtype, w_dtype, m, k, n, per_column)
            zo = _zo(rng, i + per_column, x_dtype)
            want = onnx_peer.qlinear_matmul(x, sx, zx, w, sw, zw, so, zo)
            got = _qops(x, sx, zx, w, sw, zw, None, so, zo)
            assert got.dtype == want.dtype == x_dtype
            np.testing.assert_array_equal(got, want, err_msg=f"M={m} K={k} N={n} per_column={per_column}")
            compared += got.size
    assert compared == 2 * len(KS) * sum(MS) * sum(NS)


@pytest.mark.parametrize(("x_dtype", "w_dtype"), PAIRS, ids=PAIR_IDS)
def test_linear_int32_bias_matches_qgemm(rng, x_dtype, w_dtype):
    """int32 bias in the accumulator scale (QGemm's ``C``), including biases
    that push the sum past int32 (it wraps), with and without bias."""
    compared = 0
    for i, (m, k, n) in enumerate(itertools.product((1, 17, 64), (3, 64, 257), (5, 33, 100))):
        for per_column in (False, True):
            x, w, sx, zx, sw, zw, so = _case(rng, x_dtype, w_dtype, m, k, n, per_column)
            scale = float(so) / (float(sx) * float(np.mean(sw)))
            bias = np.rint(rng.normal(0.0, 40.0, n) * scale).clip(-(2**31), 2**31 - 1).astype(np.int32)
            if i % 4 == 0:
                bias[:2] = [2**31 - 1, -(2**31)]
            zo = _zo(rng, i, x_dtype)
            for b in (bias, None):
                want = onnx_peer.qgemm(x, sx, zx, w, sw, zw, b, so, zo)
                got = _qops(x, sx, zx, w, sw, zw, b, so, zo)
                np.testing.assert_array_equal(got, want, err_msg=f"M={m} K={k} N={n}")
                compared += got.size
    assert compared > 40000


def test_float_bias_is_quantized_as_converters_do(rng):
    """A float bias becomes ``rne(b / (double(sx) * double(sw_j)))`` (int32),
    then runs as QGemm's ``C``."""
    x, w, sx, zx, sw, zw, so = _case(rng, np.uint8, np.int8, 17, 64, 33, True)
    fb = (rng.normal(0.0, 30.0, 33) * float(so)).astype(np.float32)
    ib = np.rint(fb.astype(np.float64) / (np.float64(sx) * sw.astype(np.float64))).astype(np.int32)
    want = onnx_peer.qgemm(x, sx, zx, w, sw, zw, ib, so, 11)
    np.testing.assert_array_equal(_qops(x, sx, zx, w, sw, zw, fb, so, 11), want)
    np.testing.assert_array_equal(_qops(x, sx, zx, w, sw, zw, ib, so, 11), want)
    fb[3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        _qops(x, sx, zx, w, sw, zw, fb, so, 11)


def test_relu_clamps_at_the_zero_point(rng):
    """onnxruntime has no fused relu in QLinearMatMul; ``linear_relu`` is the
    same result clamped at the output zero point (a following Relu)."""
    x, w, sx, zx, sw, zw, so = _case(rng, np.int8, np.int8, 64, 31, 32, True)
    want = np.maximum(onnx_peer.qlinear_matmul(x, sx, zx, w, sw, zw, so, -20), np.int8(-20))
    np.testing.assert_array_equal(_qops(x, sx, zx, w, sw, zw, None, so, -20, relu=True), want)


def test_output_dtype_and_zero_point_checks(rng):
    x, w, sx, zx, sw, zw, so = _case(rng, np.int8, np.int8, 2, 8, 3, False)
    with pytest.raises(ValueError, match="outside the range"):
        _qops(x, sx, zx, w, sw, zw, None, so, 128)  # int8 output
    xu, wu, *_ = _case(rng, np.uint8, np.uint8, 2, 8, 3, False)
    with pytest.raises(ValueError, match="outside the range"):
        _qops(xu, sx, 0, wu, sw, 0, None, so, -1)
