"""``numerics="onnxruntime"`` convolution against onnxruntime 1.32 QLinearConv.

The peer is a one-node ``QLinearConv`` model (opset 21) run on the CPU
execution provider with graph optimisations off (``tests/oracles/conv.py``):
uint8 or int8 activations, int8 or uint8 weights, per-tensor or per-channel
weight parameters (any zero points), an int32 bias in the accumulator scale
or none, groups (depthwise with multipliers 1 and 2 included), strides,
symmetric pads and dilations, 1-D, 2-D and 3-D.  The weight is either a
graph input or an initializer (onnxruntime prepacks constant weights and may
pick other kernels, e.g. its symmetric and depthwise ones).

onnxruntime 1.32 refuses int8 activations with uint8 weights ("Could not find
an implementation for QLinearConv(10)") in every rank; every other
combination above runs.  The refused pair is checked against the exact
reference in ``tests/test_conv_tflite_reference.py``.
"""

import numpy as np
import pytest

import qops
from qops.functional import conv1d, conv1d_relu, conv2d, conv2d_relu, conv3d, conv3d_relu

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from tests.oracles import conv as oc  # noqa: E402

NUMERICS = "onnxruntime"
QDTYPE = {np.dtype(np.uint8): qops.quint8, np.dtype(np.int8): qops.qint8}
CONV = {(1, False): conv1d, (2, False): conv2d, (3, False): conv3d,
        (1, True): conv1d_relu, (2, True): conv2d_relu, (3, True): conv3d_relu}
#: (activation dtype, weight dtype) pairs onnxruntime 1.32 implements
PAIRS = [(np.uint8, np.int8), (np.uint8, np.uint8), (np.int8, np.int8)]
PAIR_IDS = ["u8s8", "u8u8", "s8s8"]
SWEEP = 600


def _dims(rng, nd, choices):
    if rng.random() < 0.6:
        return (int(rng.choice(choices)),) * nd
    return tuple(int(v) for v in rng.choice(choices, nd))


def sample_case(rng, x_dtype, w_dtype, i):
    """A random configuration (dict of QLinearConv arguments)."""
    nd = int(rng.choice([1, 2, 3], p=[0.25, 0.45, 0.3]))
    kind = rng.choice(["dense", "grouped", "depthwise"], p=[0.4, 0.3, 0.3])
    kernel = _dims(rng, nd, range(1, 6 if nd < 3 else 4))
    stride, padding, dilation = _dims(rng, nd, (1, 2)), _dims(rng, nd, (0, 1, 2)), _dims(rng, nd, (1, 2))
    big = 24 if nd < 3 else 8
    if kind == "dense":
        groups, cg, og = 1, int(rng.integers(1, big + 1)), int(rng.integers(1, big + 1))
    elif kind == "grouped":
        groups, cg, og = int(rng.integers(2, 5)), int(rng.integers(1, big // 2 + 1)), int(rng.integers(1, 9))
    else:
        groups, cg, og = int(rng.choice([3, 8, 16])), 1, int(rng.integers(1, 3))
        if rng.random() < 0.5:  # "same" 3x3 / 5x5, onnxruntime's depthwise kernels
            k = int(rng.choice([3, 5]))
            kernel, padding, dilation = (k,) * nd, ((k - 1) // 2,) * nd, (1,) * nd
    omax = (10, 5, 3)[nd - 1]
    spatial = []
    for k, s, p, d in zip(kernel, stride, padding, dilation):
        o = int(rng.integers(1, omax + 1))
        spatial.append(max(1, (o - 1) * s + d * (k - 1) + 1 - 2 * p + int(rng.integers(0, s))))
    if any(v < 1 for v in oc.output_size(spatial, kernel, stride, padding, dilation)):
        spatial = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    xi, wi = np.iinfo(x_dtype), np.iinfo(w_dtype)
    c, o = groups * cg, groups * og
    x = rng.integers(xi.min, xi.max + 1, (int(rng.integers(1, 4)), c) + tuple(spatial)).astype(x_dtype)
    w = rng.integers(wi.min, wi.max + 1, (o, cg) + kernel).astype(w_dtype)
    sx = np.float32(np.exp2(rng.uniform(-8, 0)))
    zx = int(rng.integers(xi.min, xi.max + 1))
    if rng.random() < 0.5:
        sw = np.exp2(rng.uniform(-14, -4, o)).astype(np.float32)
        zw = rng.integers(wi.min, wi.max + 1, o)
        if rng.random() < 0.3:
            zw[:] = 0 if w_dtype == np.int8 else 128  # symmetric weights: onnxruntime's symmetric kernels
    else:
        sw = np.float32(np.exp2(rng.uniform(-14, -4)))
        zw = int(rng.integers(wi.min, wi.max + 1)) if rng.random() < 0.7 else (0 if w_dtype == np.int8 else 128)
    typical = float(sx) * float(np.mean(sw)) * 9000.0 * np.sqrt(cg * np.prod(kernel))
    so = np.float32(typical / 60.0 * np.exp2(rng.uniform(-1.5, 1.5)))
    bias = None
    if rng.random() < 0.6:
        scale = float(so) / (float(sx) * float(np.mean(sw)))
        bias = np.rint(rng.normal(0.0, 40.0, o) * scale).clip(-(2**31), 2**31 - 1).astype(np.int32)
    zo = (xi.min, xi.max, int(rng.integers(xi.min, xi.max + 1)))[i % 3]
    return dict(x=x, sx=sx, zx=zx, w=w, sw=sw, zw=zw, bias=bias, so=so, zo=zo, stride=stride, padding=padding,
                dilation=dilation, groups=groups)


def qops_conv(case, relu=False):
    xq = qops.make_per_tensor_qtensor(case["x"], float(case["sx"]), case["zx"], QDTYPE[case["x"].dtype])
    wdt = QDTYPE[case["w"].dtype]
    if np.ndim(case["sw"]):
        wq = qops.make_per_channel_qtensor(case["w"], case["sw"], case["zw"], 0, wdt)
    else:
        wq = qops.make_per_tensor_qtensor(case["w"], float(case["sw"]), case["zw"], wdt)
    f = CONV[case["x"].ndim - 2, relu]
    return f(xq, wq, case["bias"], case["stride"], case["padding"], case["dilation"], case["groups"],
             scale=float(case["so"]), zero_point=case["zo"], numerics=NUMERICS).int_repr()


def ort_conv(case, constant_weight=False):
    return oc.qlinear_conv(case["x"], case["sx"], case["zx"], case["w"], case["sw"], case["zw"], case["bias"],
                           case["so"], case["zo"], stride=case["stride"], padding=case["padding"],
                           dilation=case["dilation"], groups=case["groups"], constant_weight=constant_weight)


def _describe(case):
    return {k: (v.shape if isinstance(v, np.ndarray) and v.ndim > 1 else v) for k, v in case.items()}


@pytest.mark.parametrize(("x_dtype", "w_dtype"), PAIRS, ids=PAIR_IDS)
def test_conv_matches_qlinearconv_sampled_sweep(rng, x_dtype, w_dtype):
    """600 sampled configurations per dtype pair, each against the weight as
    a graph input and (every fourth) as an initializer: ~170,000 outputs per
    pair, 0 mismatches."""
    compared = 0
    for i in range(SWEEP):
        case = sample_case(rng, x_dtype, w_dtype, i)
        got = qops_conv(case)
        for constant in (False, True) if i % 4 == 0 else (False,):
            want = ort_conv(case, constant)
            assert got.dtype == want.dtype == x_dtype
            np.testing.assert_array_equal(got, want, err_msg=f"constant weight={constant} {_describe(case)}")
            compared += got.size
    print(f"{np.dtype(x_dtype).name}/{np.dtype(w_dtype).name}: {compared} outputs compared")
    assert compared > 100_000


def test_float_bias_is_quantized_as_converters_do(rng):
    """A float bias becomes ``rne(b / (double(sx) * double(sw_j)))`` (int32),
    then runs as QLinearConv's int32 bias."""
    case = sample_case(rng, np.uint8, np.int8, 2)
    o = case["w"].shape[0]
    sw = np.broadcast_to(np.asarray(case["sw"], np.float32), (o,))
    fb = (rng.normal(0.0, 30.0, o) * float(case["so"])).astype(np.float32)
    ib = np.rint(fb.astype(np.float64) / (np.float64(case["sx"]) * sw.astype(np.float64))).astype(np.int32)
    want = ort_conv(dict(case, bias=ib))
    np.testing.assert_array_equal(qops_conv(dict(case, bias=fb)), want)


@pytest.mark.parametrize(("x_dtype", "w_dtype"), PAIRS, ids=PAIR_IDS)
def test_relu_clamps_at_the_zero_point(rng, x_dtype, w_dtype):
    """QLinearConv has no fused relu; ``conv*_relu`` equals its output
    clamped at the output zero point (a following Relu on the integers)."""
    for i in range(6):
        case = sample_case(rng, x_dtype, w_dtype, i)
        want = np.maximum(ort_conv(case), np.asarray(case["zo"]).astype(x_dtype))
        np.testing.assert_array_equal(qops_conv(case, relu=True), want, err_msg=str(_describe(case)))


def test_int32_bias_at_the_limits_wraps(rng):
    """Biases of +-(2**31 - 1) added to the int32 accumulator wrap as in
    onnxruntime."""
    case = sample_case(rng, np.int8, np.int8, 0)
    o = case["w"].shape[0]
    bias = np.resize(np.int32([2**31 - 1, -(2**31), 2**30, -(2**30)]), o)
    case = dict(case, bias=bias)
    np.testing.assert_array_equal(qops_conv(case), ort_conv(case))


def test_int8_activations_with_uint8_weights_are_refused_by_onnxruntime():
    """onnxruntime 1.32 has no QLinearConv kernel for int8 activations with
    uint8 weights (any rank); qops computes it (checked against the exact
    reference in ``tests/test_conv_tflite_reference.py``)."""
    from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as OrtNotImplemented

    for nd in (1, 2, 3):
        x = np.zeros((1, 3) + (4,) * nd, np.int8)
        w = np.full((2, 3) + (3,) * nd, 130, np.uint8)
        with pytest.raises(OrtNotImplemented, match="QLinearConv"):
            oc.qlinear_conv(x, 0.1, 0, w, 0.1, 128, None, 0.1, 0)
        case = dict(x=x, sx=0.1, zx=0, w=w, sw=0.1, zw=128, bias=None, so=0.1, zo=0, stride=1, padding=1,
                    dilation=1, groups=1)
        got = qops_conv(case)
        assert got.dtype == np.int8 and got.shape == (1, 2) + (4,) * nd
