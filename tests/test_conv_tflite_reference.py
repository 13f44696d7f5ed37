"""Convolution under ``tflite`` / ``tflite_single`` and ``reference``, against oracles.

The accumulator comes from the naive convolution in ``tests/oracles/conv.py``
(pad with the input zero point, sum ``(x - zx)(w - zw)`` exactly, wrap to
int32); the requantization from the independent oracles the linear tests use:

* ``tflite`` / ``tflite_single``: TFLite's reference ``ConvPerChannel`` on
  Python integers (``tests/oracles/fixedpoint.py``): int8 activations,
  symmetric int8 weights in [-127, 127] per channel (and per tensor), int32
  bias added to the accumulator, multiplier ``QuantizeMultiplier(double(sx)
  * double(sw_j) / double(so))``, int8 output.
* ``reference``: ``clamp(rne((A*sx*sw_j + b_j) / so) + zo)`` on exact
  rationals (``tests/oracles/exact.py``), every dtype pair, float and int32
  bias, with exact ties constructed on purpose (short-significand scales,
  biases on half steps, a bias that makes one output an exact tie, nudged by
  one ulp either way).
"""

import itertools
from fractions import Fraction

import numpy as np
import pytest

import qops
from qops.functional import conv1d, conv1d_relu, conv2d, conv2d_relu, conv3d, conv3d_relu
from tests.oracles import conv as oc
from tests.oracles import exact
from tests.oracles import fixedpoint as fx

QDTYPE = {np.dtype(np.uint8): qops.quint8, np.dtype(np.int8): qops.qint8}
CONV = {(1, False): conv1d, (2, False): conv2d, (3, False): conv3d,
        (1, True): conv1d_relu, (2, True): conv2d_relu, (3, True): conv3d_relu}


def _geometry(rng, nd, depthwise_share=0.3):
    """(groups, cg, og, kernel, stride, padding, dilation, spatial), small."""
    kernel = tuple(int(v) for v in rng.integers(1, 6 if nd < 3 else 4, nd))
    stride = tuple(int(v) for v in rng.integers(1, 3, nd))
    padding = tuple(int(v) for v in rng.integers(0, 3, nd))
    dilation = tuple(int(v) for v in rng.integers(1, 3, nd))
    r = rng.random()
    if r < depthwise_share:
        groups, cg, og = int(rng.integers(2, 9)), 1, int(rng.integers(1, 3))
    elif r < 0.6:
        groups, cg, og = int(rng.integers(2, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 5))
    else:
        groups, cg, og = 1, int(rng.integers(1, 12)), int(rng.integers(1, 9))
    omax = (8, 4, 2)[nd - 1]
    spatial = []
    for k, s, p, d in zip(kernel, stride, padding, dilation):
        o = int(rng.integers(1, omax + 1))
        spatial.append(max(1, (o - 1) * s + d * (k - 1) + 1 - 2 * p + int(rng.integers(0, s))))
    if any(v < 1 for v in oc.output_size(spatial, kernel, stride, padding, dilation)):
        spatial = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    return groups, cg, og, kernel, stride, padding, dilation, tuple(spatial)


def _qops(x, sx, zx, w, sw, zw, bias, so, zo, stride, padding, dilation, groups, relu, numerics):
    xq = qops.make_per_tensor_qtensor(x, float(sx), zx, QDTYPE[x.dtype])
    if np.ndim(sw):
        wq = qops.make_per_channel_qtensor(w, sw, zw, 0, QDTYPE[w.dtype])
    else:
        wq = qops.make_per_tensor_qtensor(w, float(sw), zw, QDTYPE[w.dtype])
    f = CONV[x.ndim - 2, relu]
    return f(xq, wq, bias, stride, padding, dilation, groups, scale=float(so), zero_point=zo,
             numerics=numerics).int_repr()


# ------------------------------------------------------------------ tflite
def _tflite_oracle(acc, sx, sw, bias, so, zo, relu, single):
    """TFLite's ConvPerChannel output stage on the ``(N, O, *out)`` accumulators."""
    o = acc.shape[1]
    sws = np.broadcast_to(np.asarray(sw, np.float32), (o,))
    pairs = [fx.quantize_multiplier(float(np.float32(sx)) * float(s) / float(np.float32(so)),
                                    single_rounding=single) for s in sws]
    mult = np.array([p[0] for p in pairs], np.int64)
    shift = np.array([p[1] for p in pairs], np.int64)
    b = np.zeros(o, np.int64) if bias is None else np.asarray(bias, np.int64)
    y = fx.fully_connected(oc.channels_last(acc), b, mult, shift, zo, zo if relu else -128, 127,
                           single_rounding=single)
    return oc.channels_first(y).astype(np.int8)


@pytest.mark.parametrize("profile", ["tflite", "tflite_single"])
def test_conv_matches_fixedpoint_oracle(rng, profile):
    """400 sampled configurations (1-D, 2-D, 3-D, groups, depthwise), per-channel
    and per-tensor symmetric weights, int32 bias or none, relu, multipliers
    from 2**-34 (M = 0) to 2**20 (left shifts): 0 mismatches."""
    single = profile == "tflite_single"
    compared = 0
    for i in range(400):
        nd = 1 + i % 3
        groups, cg, og, kernel, stride, padding, dilation, spatial = _geometry(rng, nd)
        c, o = groups * cg, groups * og
        x = rng.integers(-128, 128, (int(rng.integers(1, 3)), c) + spatial).astype(np.int8)
        w = rng.integers(-127, 128, (o, cg) + kernel).astype(np.int8)
        zx = int(rng.integers(-128, 128))
        sx = np.float32(np.exp2(rng.uniform(-8, 0)))
        per_channel = i % 2 == 0
        sw = np.exp2(rng.uniform(-14, -4, o if per_channel else None)).astype(np.float32)
        zw = np.zeros(o, np.int64) if per_channel else 0
        k = cg * int(np.prod(kernel))
        ratio = np.exp2(rng.uniform(-19, 34)) if i % 7 == 0 else 60.0 / (9000.0 * np.sqrt(k))
        so = np.float32(float(sx) * float(np.mean(sw)) * ratio * np.exp2(rng.uniform(-1.5, 1.5)))
        bias = rng.integers(-(2**20), 2**20, o).astype(np.int32) if i % 4 < 2 else None
        zo = (-128, 127, int(rng.integers(-128, 128)))[i % 3]
        relu = i % 5 < 2
        acc = oc.accumulate(x, zx, w, 0, stride, padding, dilation, groups)
        want = _tflite_oracle(acc, sx, sw, bias, so, zo, relu, single)
        got = _qops(x, sx, zx, w, sw, zw, bias, so, zo, stride, padding, dilation, groups, relu, profile)
        assert got.dtype == np.int8
        np.testing.assert_array_equal(got, want, err_msg=f"case {i}: x{x.shape} w{w.shape} groups={groups}")
        compared += got.size
    print(f"{profile}: {compared} outputs compared")
    assert compared > 20_000


@pytest.mark.filterwarnings("ignore:.*int32 accumulator can overflow:RuntimeWarning")
@pytest.mark.parametrize("profile", ["tflite", "tflite_single"])
def test_conv_wrapping_accumulator_matches_fixedpoint_oracle(profile):
    """K = 70,000 products of (-128 - 127) * 127 pass -2**31 and wrap; the
    oracle wraps ``A + bias`` the same way."""
    kernel = (3, 3)
    c = 70000 // 9 + 1
    x = np.full((1, c, 3, 3), -128, np.int8)
    w = np.full((2, c) + kernel, 127, np.int8)
    w[1] = -127
    bias = np.int32([5, -5])
    acc = oc.accumulate(x, 127, w, 0)
    assert acc[0, 0, 0, 0] > 0  # wrapped: the exact value is -2.3e9
    want = _tflite_oracle(acc, 0.01, np.float32([0.001, 0.001]), bias, 1e-3, 3, False, profile == "tflite_single")
    got = _qops(x, 0.01, 127, w, np.float32([0.001, 0.001]), np.zeros(2, np.int64), bias, 1e-3, 3,
                1, 0, 1, 1, False, profile)
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ reference
#: scales with short significands: A * sx * sw / so lands on half steps often
TIE_SX = 0.5
TIE_SW = np.float32([0.25, 0.125, 0.375, 0.0625, 0.75, 0.1875])
TIE_SO = (1.0, 0.75, 3.0)
DTYPE_PAIRS = [(np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8)]


def _ties(acc, sx, sw, fb, ib, so):
    """How many outputs are exact ties (``2 * value`` an odd integer)."""
    o = acc.shape[1]
    sws = np.broadcast_to(np.asarray(sw, np.float32), (o,))
    n = 0
    for idx, a in np.ndenumerate(acc):
        j = idx[1]
        v = Fraction(int(a) + (0 if ib is None else int(ib[j]))) * Fraction(float(np.float32(sx)))
        v *= Fraction(float(sws[j]))
        if fb is not None:
            v += Fraction(float(fb[j]))
        n += (v / Fraction(float(np.float32(so)))).denominator == 2
    return n


@pytest.mark.parametrize(("x_dtype", "w_dtype"), DTYPE_PAIRS, ids=["u8s8", "s8s8", "u8u8", "s8u8"])
def test_conv_matches_exact_oracle_with_ties(rng, x_dtype, w_dtype):
    """Tie-heavy scales and biases, per-tensor and per-channel weights with
    any zero points, float bias, int32 bias and none, relu, every rank,
    groups and depthwise: thousands of exact ties, 0 mismatches."""
    # the ids u8s8 and s8u8 seed the fixture alike: tell the pairs apart
    rng = np.random.default_rng([int(rng.integers(2**31)), DTYPE_PAIRS.index((x_dtype, w_dtype))])
    xi, wi = np.iinfo(x_dtype), np.iinfo(w_dtype)
    compared = ties = 0
    for t, (per_channel, bias_kind, relu, _) in enumerate(
        itertools.product((False, True), ("none", "float", "int"), (False, True), range(8))
    ):
        nd = 1 + t % 3
        groups, cg, og, kernel, stride, padding, dilation, spatial = _geometry(rng, nd)
        c, o = groups * cg, groups * og
        zx = int(rng.integers(xi.min, xi.max + 1))
        if per_channel:
            sw = rng.choice(TIE_SW, o)
            zw = rng.integers(wi.min, wi.max + 1, o)
        else:
            sw, zw = np.float32(TIE_SW[t % TIE_SW.size]), int(rng.integers(wi.min, wi.max + 1))
        # values near the zero points keep most results unsaturated, where ties matter
        x = np.clip(zx + rng.integers(-6, 7, (3, c) + spatial), xi.min, xi.max).astype(x_dtype)
        w = np.clip(np.reshape(zw, (-1,) + (1,) * (nd + 1)) + rng.integers(-6, 7, (o, cg) + kernel),
                    wi.min, wi.max).astype(w_dtype)
        so = TIE_SO[t % 3] / 8.0
        zo = int(rng.integers(xi.min, xi.max + 1))
        fb = ib = None
        if bias_kind == "float":
            fb = (rng.integers(-400, 400, o) / 16.0).astype(np.float32)
        elif bias_kind == "int":
            ib = rng.integers(-300, 300, o).astype(np.int32)
        acc = oc.accumulate(x, zx, w, zw, stride, padding, dilation, groups)
        want = exact.linear(oc.channels_last(acc), TIE_SX, sw, so, zo, xi.min, xi.max, bias=fb, int_bias=ib,
                            relu=relu)
        got = _qops(x, TIE_SX, zx, w, sw, zw, fb if ib is None else ib, so, zo, stride, padding, dilation,
                    groups, relu, "reference")
        assert got.dtype == x_dtype
        np.testing.assert_array_equal(got, oc.channels_first(want).astype(x_dtype), err_msg=f"case {t}")
        compared += got.size
        ties += _ties(acc, TIE_SX, sw, fb, ib, so)
    print(f"reference {np.dtype(x_dtype).name}/{np.dtype(w_dtype).name}: {compared} outputs, {ties} exact ties")
    assert ties > compared // 25


def test_conv_matches_exact_oracle_random_scales(rng):
    """Full-significand scales over a wide range, full-range integers, and a
    bias that makes output (0, 0, ...) an exact tie, nudged by one ulp up and
    down on the next two channels."""
    compared = 0
    for t in range(9):
        nd = 1 + t % 3
        _, cg, og, kernel, stride, padding, dilation, spatial = _geometry(rng, nd, 0.0)
        groups, o = 1, max(og, 3)
        x = rng.integers(0, 256, (2, cg) + spatial, dtype=np.uint8)
        w = rng.integers(-128, 128, (o, cg) + kernel, dtype=np.int8)
        w[1:3] = w[0]  # channels 0-2 share their accumulators
        zx = int(rng.integers(0, 256))
        sx = np.float32(np.exp2(rng.uniform(-20, 5)))
        sw = np.exp2(rng.uniform(-20, 0, o)).astype(np.float32)
        sw[:3] = sw[0]
        zw = rng.integers(-5, 6, o)
        zw[:3] = zw[0]
        acc = oc.accumulate(x, zx, w, zw, stride, padding, dilation, groups)
        so = np.float32(float(sx) * float(np.mean(sw)) * (np.std(acc) + 1.0) / 50.0)
        a0 = int(acc.reshape(acc.shape[0], o, -1)[0, 0, 0])
        tie = (Fraction(1, 2) + 7) * Fraction(float(so)) - Fraction(a0) * Fraction(float(sx)) * Fraction(float(sw[0]))
        fb = (rng.normal(0, 30, o) * float(so)).astype(np.float32)
        fb[0] = np.float32(float(tie))
        fb[1] = np.nextafter(fb[0], np.float32(np.inf))
        fb[2] = np.nextafter(fb[0], np.float32(-np.inf))
        relu = t % 2 == 1
        want = exact.linear(oc.channels_last(acc), sx, sw, so, 100, 0, 255, bias=fb, relu=relu)
        got = _qops(x, sx, zx, w, sw, zw, fb, so, 100, stride, padding, dilation, groups, relu, "reference")
        np.testing.assert_array_equal(got, oc.channels_first(want).astype(np.uint8), err_msg=f"case {t}")
        compared += got.size
    assert compared > 500


def test_reference_shows_the_fbgemm_depthwise_error(rng):
    """The ``reference`` profile computes the exact depthwise convolution
    where ``fbgemm`` reproduces its int16 pair saturation: with full-range
    activations the two differ, with activations below 128 they agree within
    the usual one step."""
    c = 16
    w = rng.choice(np.int8([-128, -127, 120, 127]), (c, 1, 3, 3))
    for lo, hi, differ in ((0, 256, True), (0, 128, False)):
        x = rng.integers(lo, hi, (1, c, 8, 8), dtype=np.uint8)
        args = (x, 0.02, 3, w, np.float32(0.01), 0, None, 0.02 * 0.01 * 400.0, 128, 1, 1, 1, c, False)
        fbgemm = _qops(*args, "fbgemm").astype(int)
        ref = _qops(*args, "reference").astype(int)
        want = exact.linear(oc.channels_last(oc.accumulate(x, 3, w, 0, 1, 1, 1, c)), 0.02, np.float32(0.01),
                            0.02 * 0.01 * 400.0, 128, 0, 255)
        np.testing.assert_array_equal(ref, oc.channels_first(want))
        if differ:
            assert np.abs(fbgemm - ref).max() > 1
        else:
            assert np.abs(fbgemm - ref).max() <= 1
