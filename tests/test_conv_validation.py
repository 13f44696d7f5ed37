"""Convolution input checks, padding modes and degenerate shapes.

Every bad input raises a clear error (TypeError for wrong types and dtypes,
ValueError for bad values and shapes) that names the problem; degenerate but
valid shapes (batch 0, 1x1 inputs, kernel as large as the input, one
channel) run.  Padding modes reflect / replicate / circular (which torch's
quantized convolutions lack) are checked against qops's own zeros-mode
convolution of an input padded by ``np.pad`` (reflect, edge, wrap), and those
NumPy modes against torch's ``F.pad`` modes on a small integer tensor.
"""

import numpy as np
import pytest

import qops
from qops.functional import conv1d, conv2d, conv2d_relu, conv3d, conv3d_relu

PROFILES = ["fbgemm", "qnnpack", "onednn", "onnxruntime", "tflite", "tflite_single", "reference"]
#: activation dtype each profile takes (the first, where several)
X_DTYPE = {"fbgemm": qops.quint8, "qnnpack": qops.quint8, "onednn": qops.quint8, "onnxruntime": qops.qint8,
           "tflite": qops.qint8, "tflite_single": qops.qint8, "reference": qops.quint8}
NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def qx(shape, dtype=qops.quint8, zp=3, rng=None):
    storage = np.uint8 if dtype is qops.quint8 else np.int8
    if rng is None:
        data = np.zeros(shape, storage)
    else:
        info = np.iinfo(storage)
        data = rng.integers(info.min, info.max + 1, shape).astype(storage)
    return qops.make_per_tensor_qtensor(data, 0.1, zp, dtype)


def qw(shape, zp=0, dtype=qops.qint8, rng=None):
    storage = np.uint8 if dtype is qops.quint8 else np.int8
    data = np.ones(shape, storage) if rng is None else rng.integers(-127, 128, shape).astype(storage)
    return qops.make_per_tensor_qtensor(data, 0.05, zp, dtype)


X = qx((1, 4, 5, 5))
W = qw((6, 4, 3, 3))

BAD_INPUTS = [
    # (id, call, error type, message fragment)
    ("int8-input-fbgemm", lambda: conv2d(qx((1, 4, 5, 5), qops.qint8), W), TypeError, "expects a quint8 input"),
    ("uint8-input-tflite", lambda: conv2d(X, W, numerics="tflite"), TypeError, "expects a qint8 input"),
    ("qint32-input", lambda: conv2d(qops.make_per_tensor_qtensor(np.zeros((1, 4, 5, 5), np.int32), 0.1, 0,
                                                                qops.qint32), W), TypeError, "got qint32"),
    ("quint8-weight-fbgemm", lambda: conv2d(X, qw((6, 4, 3, 3), 128, qops.quint8)), TypeError, "qint8 weights"),
    ("quint8-weight-tflite", lambda: conv2d(qx((1, 4, 5, 5), qops.qint8), qw((6, 4, 3, 3), 128, qops.quint8),
                                            numerics="tflite"), TypeError, "qint8 weights"),
    ("ndarray-input", lambda: conv2d(np.zeros((1, 4, 5, 5), np.uint8), W), TypeError, "QTensor"),
    ("ndarray-weight", lambda: conv2d(X, np.ones((6, 4, 3, 3), np.int8)), TypeError, "weight as a qint8 QTensor"),
    ("per-channel-input", lambda: conv2d(qops.make_per_channel_qtensor(np.zeros((1, 4, 5, 5), np.uint8),
                                                                       [0.1] * 4, [0] * 4, 1, qops.quint8), W),
     ValueError, "per-tensor quantized input"),
    ("per-channel-weight-axis-1", lambda: conv2d(X, qops.make_per_channel_qtensor(
        np.ones((6, 4, 3, 3), np.int8), [0.1] * 4, [0] * 4, 1, qops.qint8)), ValueError, "along axis 0"),
    ("in-channels", lambda: conv2d(X, qw((6, 3, 3, 3))), ValueError, "the input has 4 channels"),
    ("groups-not-dividing-in", lambda: conv2d(X, qw((6, 1, 3, 3)), groups=3), ValueError,
     "the input has 4 channels"),
    ("groups-not-dividing-out", lambda: conv2d(X, qw((5, 2, 3, 3)), groups=2), ValueError,
     "out_channels=5 is not divisible by groups=2"),
    ("groups-zero", lambda: conv2d(X, W, groups=0), ValueError, "groups must be a positive integer"),
    ("groups-negative", lambda: conv2d(X, W, groups=-2), ValueError, "groups must be a positive integer"),
    ("kernel-larger", lambda: conv2d(X, qw((6, 4, 7, 7))), ValueError, "larger than the padded input"),
    ("kernel-larger-dilated", lambda: conv2d(X, W, dilation=3), ValueError, "larger than the padded input"),
    ("kernel-larger-one-dim", lambda: conv3d(qx((1, 4, 5, 5, 2)), qw((6, 4, 3, 3, 3))), ValueError,
     "larger than the padded input"),
    ("stride-zero", lambda: conv2d(X, W, stride=0), ValueError, "stride must be positive"),
    ("stride-negative", lambda: conv2d(X, W, stride=(1, -1)), ValueError, "stride must be positive"),
    ("dilation-zero", lambda: conv2d(X, W, dilation=0), ValueError, "dilation must be positive"),
    ("dilation-negative", lambda: conv2d(X, W, dilation=(-1, 1)), ValueError, "dilation must be positive"),
    ("padding-negative", lambda: conv2d(X, W, padding=-1), ValueError, "padding must be non-negative"),
    ("stride-tuple-length", lambda: conv2d(X, W, stride=(1, 1, 1)), TypeError, "tuple of 2 ints"),
    ("stride-float", lambda: conv2d(X, W, stride=1.5), TypeError, "stride must be an int"),
    ("padding-bool", lambda: conv2d(X, W, padding=True), TypeError, "padding must be an int"),
    ("bias-length", lambda: conv2d(X, W, np.zeros(5, np.float32)), ValueError, "shape (6,)"),
    ("bias-2d", lambda: conv2d(X, W, np.zeros((6, 1), np.float32)), ValueError, "shape (6,)"),
    ("bias-int64", lambda: conv2d(X, W, np.zeros(6, np.int64)), TypeError, "must be int32"),
    ("bias-int32-torch-profile", lambda: conv2d(X, W, np.zeros(6, np.int32)), TypeError,
     "numerics='fbgemm' takes a float32 bias"),
    ("bias-string", lambda: conv2d(X, W, np.array(["a"] * 6)), TypeError, "float32 or int32"),
    ("bias-scalar", lambda: conv2d(X, W, 1.0), TypeError, "array of 6 values"),
    ("bias-qtensor", lambda: conv2d(X, W, qops.make_per_tensor_qtensor(np.zeros(6, np.int32), 0.1, 0,
                                                                       qops.qint32)), TypeError, "not a QTensor"),
    ("weight-zp-onednn", lambda: conv2d(X, qw((6, 4, 3, 3), 2), numerics="onednn"), ValueError,
     "needs symmetric weights"),
    ("weight-zp-per-channel-onednn", lambda: conv2d(X, qops.make_per_channel_qtensor(
        np.ones((6, 4, 3, 3), np.int8), [0.1] * 6, [0, 0, 1, 0, 0, 0], 0, qops.qint8), numerics="onednn"),
     ValueError, "needs symmetric weights"),
    ("weight-zp-tflite", lambda: conv2d(qx((1, 4, 5, 5), qops.qint8), qw((6, 4, 3, 3), -1), numerics="tflite"),
     ValueError, "needs symmetric weights"),
    ("weight-zp-tflite-single", lambda: conv2d(qx((1, 4, 5, 5), qops.qint8), qw((6, 4, 3, 3), 3),
                                               numerics="tflite_single"), ValueError, "needs symmetric weights"),
    ("zero-point-256", lambda: conv2d(X, W, None, 1, 0, 1, 1, "zeros", 0.1, 256), ValueError, "outside the range"),
    ("zero-point-negative", lambda: conv2d(X, W, None, 1, 0, 1, 1, "zeros", 0.1, -1), ValueError,
     "outside the range"),
    ("zero-point-int8", lambda: conv2d(qx((1, 4, 5, 5), qops.qint8), W, None, 1, 0, 1, 1, "zeros", 0.1, 128,
                                       numerics="onnxruntime"), ValueError, "outside the range"),
    ("scale-zero", lambda: conv2d(X, W, None, 1, 0, 1, 1, "zeros", 0.0, 0), ValueError, "scale"),
    ("input-rank", lambda: conv2d(qx((4, 5, 5)), W), ValueError, "4-D input (N, C, H, W)"),
    ("weight-rank", lambda: conv2d(X, qw((6, 4, 3))), ValueError, "4-D weight"),
    ("conv1d-rank", lambda: conv1d(X, W), ValueError, "3-D input (N, C, L)"),
    ("conv3d-rank", lambda: conv3d(X, W), ValueError, "5-D input (N, C, D, H, W)"),
    ("weight-empty", lambda: conv2d(X, qw((0, 4, 3, 3))), ValueError, "empty dimension"),
    ("padding-mode-unknown", lambda: conv2d(X, W, padding_mode="mirror"), ValueError,
     "padding_mode must be one of zeros, reflect, replicate, circular"),
    ("padding-mode-none", lambda: conv2d(X, W, padding_mode=None), ValueError, "padding_mode must be one of"),
    ("reflect-too-large", lambda: conv2d(X, W, padding=5, padding_mode="reflect"), ValueError,
     "too large for padding_mode='reflect'"),
    ("circular-too-large", lambda: conv2d(X, W, padding=6, padding_mode="circular"), ValueError,
     "too large for padding_mode='circular'"),
    ("replicate-empty-dim", lambda: conv2d(qx((1, 4, 0, 5)), W, padding=2, padding_mode="replicate"), ValueError,
     "too large for padding_mode='replicate'"),
    ("numerics-unknown", lambda: conv2d(X, W, numerics="tensorrt"), ValueError, "unknown numerics profile"),
]


@pytest.mark.parametrize(("call", "error", "fragment"), [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_clearly(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


@pytest.mark.parametrize("profile", PROFILES)
def test_degenerate_shapes_run(rng, profile):
    """Batch 0 (torch 2.13 returns an empty ``(0, O, *out)`` tensor under
    every engine), 1x1 inputs, a kernel as large as the input, one channel,
    depthwise with one channel per group, an empty spatial dimension that the
    padding fills: no crash, the expected shapes, and (where every tap is
    padding) the output zero point."""
    dt = X_DTYPE[profile]
    cases = [
        ((0, 4, 5, 5), (6, 4, 3, 3), 1, 0, (0, 6, 3, 3)),
        ((1, 4, 1, 1), (6, 4, 1, 1), 1, 0, (1, 6, 1, 1)),
        ((2, 4, 3, 3), (6, 4, 3, 3), 1, 0, (2, 6, 1, 1)),
        ((2, 1, 3, 3), (1, 1, 3, 3), 1, 1, (2, 1, 3, 3)),
        ((3, 8, 1, 1), (8, 1, 3, 3), 8, 1, (3, 8, 1, 1)),
        ((1, 4, 1, 1), (6, 4, 3, 3), 1, 1, (1, 6, 1, 1)),
        ((1, 4, 0, 5), (6, 4, 3, 3), 1, 2, (1, 6, 2, 7)),
    ]
    for xshape, wshape, groups, padding, out_shape in cases:
        y = conv2d(qx(xshape, dt, 3, rng), qw(wshape, rng=rng), None, 1, padding, 1, groups, "zeros", 0.5, 7,
                   numerics=profile)
        assert y.shape == out_shape
        assert y.dtype is dt
        if 0 in xshape[2:]:  # every tap reads the padding: A = 0
            np.testing.assert_array_equal(y.int_repr(), 7)
    for f, shape in ((conv1d, (0, 2, 4)), (conv3d, (0, 2, 2, 2, 2))):
        w = qw((3, 2) + (1,) * (len(shape) - 2), rng=rng)
        assert f(qx(shape, dt), w, numerics=profile).shape == (0, 3) + shape[2:]


@pytest.mark.parametrize("profile", ["fbgemm", "onednn"])
def test_degenerate_shapes_match_torch(rng, profile):
    """Batch 0 and an empty height filled by the padding, as torch 2.13 runs
    them (engines fbgemm and onednn; qnnpack refuses an empty height)."""
    torch = pytest.importorskip("torch")  # noqa: F841
    from tests.oracles import conv as oc
    from tests.oracles import torch_peer as peer

    with peer.engine(profile):
        for xshape, padding in (((0, 4, 5, 5), 0), ((1, 4, 0, 5), 2)):
            x = rng.integers(0, 256, xshape, dtype=np.uint8)
            w = rng.integers(-127, 128, (6, 4, 3, 3), dtype=np.int8)
            want, _ = oc.torch_conv(x, 0.1, 3, w, 0.05, 0, None, 0.5, 7, padding=padding)
            got = conv2d(qops.make_per_tensor_qtensor(x, 0.1, 3, qops.quint8),
                         qops.make_per_tensor_qtensor(w, 0.05, 0, qops.qint8), None, 1, padding,
                         scale=0.5, zero_point=7, numerics=profile).int_repr()
            assert got.shape == want.shape
            np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ padding modes
@pytest.mark.parametrize("profile", ["fbgemm", "qnnpack", "onnxruntime", "tflite", "reference"])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_equal_zeros_mode_on_padded_integers(rng, profile, mode):
    """``padding_mode=mode`` equals the zeros-mode convolution (no padding)
    of the integers padded by ``np.pad`` (reflect -> reflect, replicate ->
    edge, circular -> wrap), in 1-D, 2-D and 3-D, with groups, strides,
    dilations and the largest paddings each mode allows."""
    dt = X_DTYPE[profile]
    for nd, f, frelu in ((1, conv1d, None), (2, conv2d, conv2d_relu), (3, conv3d, conv3d_relu)):
        size = (7, 5, 4)[:nd][::-1]
        limit = {"reflect": min(size) - 1, "replicate": min(size) + 2, "circular": min(size)}[mode]
        for padding, stride, dilation, groups in (((1,) * nd, 1, 1, 1), ((limit,) * nd, 2, 1, 2),
                                                  (tuple(range(1, nd + 1)), 1, 2, 4)):
            padding = tuple(min(p, limit) for p in padding)
            x = qx((2, 4) + size, dt, 5, rng)
            w = qops.make_per_channel_qtensor(rng.integers(-127, 128, (8, 4 // groups) + (3,) * nd).astype(np.int8),
                                              np.full(8, 0.03), np.zeros(8, np.int64), 0, qops.qint8)
            bias = np.linspace(-1, 1, 8).astype(np.float32)
            if profile in ("tflite", "onnxruntime"):
                bias = np.arange(-400, 400, 100).astype(np.int32)
            padded = np.pad(x.int_repr(), [(0, 0), (0, 0)] + [(p, p) for p in padding], mode=NP_MODE[mode])
            xp = qops.make_per_tensor_qtensor(padded, 0.1, 5, dt)
            for g in (f, frelu) if frelu else (f,):
                got = g(x, w, bias, stride, padding, dilation, groups, mode, 0.7, 4, numerics=profile)
                want = g(xp, w, bias, stride, 0, dilation, groups, "zeros", 0.7, 4, numerics=profile)
                np.testing.assert_array_equal(got.int_repr(), want.int_repr(),
                                              err_msg=f"{nd}-D padding={padding} stride={stride}")


def test_numpy_padding_modes_are_torchs():
    """np.pad's reflect / edge / wrap are torch's F.pad reflect / replicate /
    circular, on integer values (exact in float), 1-D to 3-D, at the largest
    paddings torch allows (reflect < size, circular <= size, replicate any)."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(7)
    for nd in (1, 2, 3):
        size = (5, 4, 3)[:nd]
        x = rng.integers(0, 256, (2, 3) + size)
        for mode, np_mode in NP_MODE.items():
            for p in range(0, {"reflect": min(size), "circular": min(size) + 1, "replicate": 6}[mode]):
                pads = tuple(range(p, p + nd)) if mode == "replicate" else (p,) * nd
                torch_pad = sum(((q, q) for q in reversed(pads)), ())
                want = F.pad(torch.from_numpy(x.astype(np.float64)), torch_pad, mode=mode).numpy()
                got = np.pad(x, [(0, 0), (0, 0)] + [(q, q) for q in pads], mode=np_mode)
                np.testing.assert_array_equal(got, want.astype(np.int64), err_msg=f"{mode} {pads}")
        with pytest.raises(RuntimeError):
            F.pad(torch.zeros((1, 1) + size, dtype=torch.float64), (min(size),) * (2 * nd), mode="reflect")
