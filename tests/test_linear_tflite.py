"""``numerics="tflite"`` / ``"tflite_single"`` linear against the big-integer oracle.

TFLite is not a test dependency.  The peer is TFLite's reference integer
fully-connected kernel (int8 activations, symmetric int8 weights per tensor or
per channel, int32 bias, int8 output) read from source and written on Python
integers in ``tests/oracles/fixedpoint.py``: the multiplier from
``double(sx) * double(sw_j) / double(so)`` (``quantize_multiplier``), then
``clamp(MultiplyByQuantizedMultiplier(acc + bias) + zo)``.  Plus the published
vector ``A = 7984, M = 1583594044, shift = -9`` (12 with double rounding, 11
with single rounding), through the epilogue kernel and through the API.
"""

import itertools

import numpy as np
import pytest

import qops
from qops.functional import linear, linear_relu
from qops.kernels import modes as M
from qops.kernels.cpu.requant import NF, NI, requantize_accumulators
from tests.oracles import exact
from tests.oracles import fixedpoint as fx

PROFILES = ["tflite", "tflite_single"]

#: scales of the published vector: double(sx) * double(sw) / double(so) gives
#: QuantizeMultiplier -> (1583594044, -9) in both rounding modes
VECTOR_SX = 1.0000709295272827
VECTOR_SW = 0.001440168241970241


def _oracle_acc(acc, sx, sw, bias, so, zo, relu, single):
    n = acc.shape[-1]
    sws = np.broadcast_to(np.asarray(sw, np.float32), (n,))
    pairs = [
        fx.quantize_multiplier(float(np.float32(sx)) * float(s) / float(np.float32(so)),
                               single_rounding=single)
        for s in sws
    ]
    mult = np.array([p[0] for p in pairs], np.int64)
    shift = np.array([p[1] for p in pairs], np.int64)
    b = np.zeros(n, np.int64) if bias is None else bias
    lo = zo if relu else -128
    return fx.fully_connected(acc, b, mult, shift, zo, lo, 127, single_rounding=single)


def _qops(profile, x, zx, w, sx, sw, bias, so, zo, relu):
    xq = qops.make_per_tensor_qtensor(x, float(sx), zx, qops.qint8)
    if np.ndim(sw):
        wq = qops.make_per_channel_qtensor(w, sw, np.zeros(w.shape[0], np.int64), 0, qops.qint8)
    else:
        wq = qops.make_per_tensor_qtensor(w, float(sw), 0, qops.qint8)
    f = linear_relu if relu else linear
    return f(xq, wq, bias, float(so), zo, numerics=profile).int_repr()


@pytest.mark.parametrize("profile", PROFILES)
def test_linear_matches_fixedpoint_oracle(rng, profile):
    """Shape sweep x per-tensor/per-channel x bias x relu, multipliers from
    2**-34 (M = 0) to 2**20 (left shifts): ~60,000 outputs, 0 mismatches."""
    single = profile == "tflite_single"
    compared = 0
    for i, (m, k, n) in enumerate(itertools.product((1, 3, 17, 64), (1, 4, 31, 257), (1, 5, 33, 100))):
        for per_channel, has_bias, relu in itertools.product((False, True), repeat=3):
            x = rng.integers(-128, 128, (m, k), dtype=np.int8)
            w = rng.integers(-127, 128, (n, k), dtype=np.int8)
            zx = int(rng.integers(-128, 128))
            sx = np.float32(np.exp2(rng.uniform(-8, 0)))
            sw = np.exp2(rng.uniform(-14, -4, n if per_channel else None)).astype(np.float32)
            ratio = np.exp2(rng.uniform(-19, 34)) if i % 7 == 0 else 1.0 / (9000.0 * np.sqrt(k) / 60.0)
            so = np.float32(float(sx) * float(np.mean(sw)) * ratio * np.exp2(rng.uniform(-1.5, 1.5)))
            bias = rng.integers(-(2**20), 2**20, n).astype(np.int32) if has_bias else None
            zo = (-128, 127, int(rng.integers(-128, 128)))[i % 3]
            acc = exact.accumulate(x, zx, w, 0)
            want = _oracle_acc(acc, sx, sw, None if bias is None else bias.astype(np.int64),
                               so, zo, relu, single)
            got = _qops(profile, x, zx, w, sx, sw, bias, so, zo, relu)
            assert got.dtype == np.int8
            np.testing.assert_array_equal(got, want.astype(np.int8), err_msg=f"M={m} K={k} N={n}")
            compared += got.size
    assert compared == 8 * 4 * (1 + 3 + 17 + 64) * (1 + 5 + 33 + 100)


@pytest.mark.parametrize(("profile", "expected"), [("tflite", 12), ("tflite_single", 11)])
def test_published_vector_through_the_epilogue(profile, expected):
    """A = 7984 with M = 1583594044, shift = -9 (exact value 11.499...)."""
    mode = M.EP_TFLITE if profile == "tflite" else M.EP_TFLITE_SINGLE
    ip = np.zeros((NI, 1), np.int64)
    ip[1, 0], ip[2, 0] = 1583594044, -9
    fp = np.zeros((NF, 1), np.float32)
    raw = np.array([7984], np.int32)
    out = np.zeros(1, np.int8)
    zeros = np.zeros(1, np.int32)
    requantize_accumulators(mode, raw, 0, 1, 1, 1, zeros, zeros, zeros, ip, fp, 0.0, 0.0, 0,
                            0, -128, 127, out, 0, 1, 0)
    assert out[0] == expected
    assert fx.multiply_by_quantized_multiplier(7984, 1583594044, -9) == 12
    assert fx.multiply_by_quantized_multiplier_single(7984, 1583594044, -9) == 11


@pytest.mark.parametrize(("profile", "expected"), [("tflite", 12), ("tflite_single", 11)])
def test_published_vector_through_linear(profile, expected):
    """The same vector from scales whose multiplier is (1583594044, -9) and an
    int32 bias of 7984 (the accumulator itself is 0)."""
    single = profile == "tflite_single"
    assert fx.quantize_multiplier(VECTOR_SX * VECTOR_SW / 1.0, single_rounding=single) == (1583594044, -9)
    x = np.zeros((1, 2), np.int8)
    w = np.array([[5, -7]], np.int8)
    got = _qops(profile, x, 0, w, VECTOR_SX, VECTOR_SW, np.array([7984], np.int32), 1.0, 0, False)
    assert got.tolist() == [[expected]]
    # and from the accumulator: 100 * 79 + 84 * 1 = 7984
    x = np.array([[100, 84]], np.int8)
    w = np.array([[79, 1]], np.int8)
    got = _qops(profile, x, 0, w, VECTOR_SX, VECTOR_SW, None, 1.0, 0, False)
    assert got.tolist() == [[expected]]


def test_double_and_single_rounding_differ_on_some_outputs(rng):
    """The two modes are different recipes: with a multiplier near 2**-5 a few
    percent of outputs differ, by 1."""
    x = rng.integers(-30, 31, (64, 8), dtype=np.int8)
    w = rng.integers(-30, 31, (64, 8), dtype=np.int8)
    args = (x, 0, w, 0.02, np.float32(0.003), None, 0.02 * 0.003 * 40, 0, False)
    double = _qops("tflite", *args)
    single = _qops("tflite_single", *args)
    assert np.abs(double.astype(int)).max() < 127  # nothing saturates
    diff = np.abs(double.astype(int) - single.astype(int))
    assert diff.max() == 1 and 0.005 < np.mean(diff) < 0.2


@pytest.mark.parametrize("profile", PROFILES)
def test_tflite_input_checks(rng, profile):
    x = qops.make_per_tensor_qtensor(np.zeros((2, 4), np.int8), 0.1, 0, qops.qint8)
    w = qops.make_per_tensor_qtensor(np.ones((3, 4), np.int8), 0.1, 2, qops.qint8)
    with pytest.raises(ValueError, match="symmetric weights"):
        linear(x, w, numerics=profile)
    wc = qops.make_per_channel_qtensor(np.ones((3, 4), np.int8), [0.1] * 3, [0, 1, 0], 0, qops.qint8)
    with pytest.raises(ValueError, match="symmetric weights"):
        linear(x, wc, numerics=profile)
    xu = qops.make_per_tensor_qtensor(np.zeros((2, 4), np.uint8), 0.1, 0, qops.quint8)
    w0 = qops.make_per_tensor_qtensor(np.ones((3, 4), np.int8), 0.1, 0, qops.qint8)
    with pytest.raises(TypeError, match="expects a qint8 input"):
        linear(xu, w0, numerics=profile)
    with pytest.raises(ValueError, match="outside the range"):
        linear(x, w0, None, 0.1, 200, numerics=profile)
