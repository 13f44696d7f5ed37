"""Transposed convolution: bad input, unsupported combinations, and the modules.

Every refusal names what is wrong and what torch 2.13 supports; the modules
are shaped like ``torch.ao.nn.quantized.ConvTranspose{1,2,3}d`` and give
torch's integers.
"""

from __future__ import annotations

import numpy as np
import pytest

import qops

F = qops.functional


def qx(shape=(1, 4, 5), zx=3, dtype=qops.quint8, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = (0, 256) if dtype is qops.quint8 else (-128, 128)
    return qops.make_per_tensor_qtensor(rng.integers(lo, hi, shape).astype(dtype.storage), 0.05, zx, dtype)


def qw(shape=(4, 3, 3), zw=0, per_channel_axis=None, seed=1):
    data = np.random.default_rng(seed).integers(-128, 128, shape).astype(np.int8)
    if per_channel_axis is None:
        return qops.make_per_tensor_qtensor(data, 0.02, zw, qops.qint8)
    n = shape[per_channel_axis]
    return qops.make_per_channel_qtensor(data, np.full(n, 0.02), np.full(n, zw), per_channel_axis, qops.qint8)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("bad, exc, match", [
    (dict(input=np.zeros((1, 4, 5), np.uint8)), TypeError, "quantized input"),
    (dict(input=qx((4, 5))), ValueError, r"3-D input \(N, C, L\)"),
    (dict(input=qx((1, 3, 5))), ValueError, "has 3 channels"),
    (dict(input=qx(dtype=qops.qint8, zx=0)), TypeError, "quint8 input"),
    (dict(weight=np.zeros((4, 3, 3))), TypeError, "qint8 QTensor"),
    (dict(weight=qw((4, 3))), ValueError, "3-D weight"),
    (dict(stride=0), ValueError, "stride must be positive"),
    (dict(padding=-1), ValueError, "padding must be non-negative"),
    (dict(output_padding=2, stride=2), ValueError, "output_padding must be smaller"),
    (dict(dilation=(1, 1)), TypeError, "dilation must be an int or a tuple of 1"),
    (dict(groups=3), ValueError, "not divisible by groups"),
    (dict(groups=0), ValueError, "groups must be a positive integer"),
    (dict(padding=5), ValueError, "output size"),
    (dict(zero_point=256), ValueError, "zero_point"),
    (dict(scale=0.0), ValueError, "scale"),
    (dict(bias=np.zeros(2, np.float32)), ValueError, "bias must have shape"),
    (dict(weight=qw(per_channel_axis=1)), NotImplementedError, "per-tensor weights only"),
    (dict(weight=qw(per_channel_axis=0)), NotImplementedError, "axis 1"),
    (dict(numerics="onnxruntime"), NotImplementedError, "QLinearConvTranspose"),
    (dict(numerics="tflite"), NotImplementedError, "not implemented"),
    (dict(numerics="tflite_single"), NotImplementedError, "not implemented"),
    (dict(numerics="onednn", weight=qw(zw=2)), ValueError, "symmetric weights"),
    (dict(numerics="onednn", output_padding=1, stride=2), NotImplementedError, "output_padding 0"),
    (dict(numerics="nope"), ValueError, "nope"),
])
def test_bad_input_raises_clearly(bad, exc, match):
    args = dict(input=qx(), weight=qw(), bias=None, stride=1, padding=0, output_padding=0, groups=1,
                dilation=1, scale=0.1, zero_point=5, numerics="fbgemm")
    args.update(bad)
    numerics = args.pop("numerics")
    with pytest.raises(exc, match=match):
        F.conv_transpose1d(**args, numerics=numerics)


def test_profile_support_matrix():
    """qnnpack: per-channel with groups 1 only, no 3-D; reference takes
    everything (qint8 activations, per-channel with groups, int32 bias)."""
    w = qw((4, 3, 3), per_channel_axis=1)
    F.conv_transpose1d(qx(), w, None, numerics="qnnpack")
    F.conv_transpose1d(qx(), w, None, numerics="reference")
    with pytest.raises(NotImplementedError, match="groups=1"):
        F.conv_transpose1d(qx(), w, None, groups=2, numerics="qnnpack")
    F.conv_transpose1d(qx(), w, None, groups=2, numerics="reference")
    with pytest.raises(NotImplementedError, match="depth slice"):
        F.conv_transpose3d(qx((1, 4, 2, 2, 2)), qw((4, 3, 2, 2, 2)), None, numerics="qnnpack")
    y = F.conv_transpose1d(qx(dtype=qops.qint8, zx=-3), qw(), np.arange(3, dtype=np.int32),
                           scale=0.1, zero_point=5, numerics="reference")
    assert y.dtype is qops.qint8 and y.shape == (1, 3, 7)
    with pytest.raises(TypeError, match="int32 bias"):
        F.conv_transpose1d(qx(), qw(), np.arange(3, dtype=np.int32), numerics="fbgemm")


def test_output_qparams_and_layout():
    y = F.conv_transpose2d(qx((2, 4, 3, 5)), qw((4, 3, 2, 3)), None, (2, 1), (0, 1), (1, 0), 1, (1, 2),
                           0.25, 17)
    assert y.shape == (2, 3, (3 - 1) * 2 + 1 + 1 + 1, (5 - 1) * 1 - 2 + 2 * 2 + 1)
    assert (y.q_scale(), y.q_zero_point(), y.dtype) == (0.25, 17, qops.quint8)


# ------------------------------------------------------------------ modules
def test_module_defaults_and_repr():
    m = qops.nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
    assert repr(m) == ("QuantizedConvTranspose2d(6, 4, kernel_size=(3, 3), stride=(2, 2), scale=1.0, "
                       "zero_point=0, padding=(1, 1), output_padding=(1, 1), groups=2)")
    assert m.weight().shape == (6, 2, 3, 3) and m.bias().tolist() == [0.0] * 4
    m1 = qops.nn.ConvTranspose1d(6, 4, 3, bias=False, dilation=2)
    assert repr(m1) == ("QuantizedConvTranspose1d(6, 4, kernel_size=(3,), stride=(1,), scale=1.0, "
                        "zero_point=0, dilation=(2,), bias=False)")
    with pytest.raises(ValueError, match="padding_mode"):
        qops.nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="divisible by groups"):
        qops.nn.ConvTranspose2d(3, 2, 3, groups=2)
    with pytest.raises(ValueError, match="must have shape"):
        m.set_weight_bias(qw((6, 4, 3, 3)), None)


def test_module_matches_torch_module():
    """from_float of a quantized torch module copies it exactly; the forward
    and the repr are torch's (engine fbgemm and qnnpack)."""
    torch = pytest.importorskip("torch")
    from tests.oracles import torch_peer as peer

    torch.manual_seed(0)
    for nd, engine in ((1, "qnnpack"), (2, "fbgemm"), (3, "fbgemm")):
        with peer.quiet(), peer.engine(engine):
            cls = getattr(torch.ao.nn.quantized, f"ConvTranspose{nd}d")
            tm = cls(6, 4, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=1)
            wf = torch.randn((6, 2) + (3,) * nd)
            tm.set_weight_bias(torch.quantize_per_tensor(wf, 0.02, 0, torch.qint8), torch.randn(4))
            tm.scale, tm.zero_point = 0.07, 120
            xt = torch.quantize_per_tensor(torch.randn((2, 6) + (4,) * nd), 0.03, 125, torch.quint8)
            want = tm(xt).int_repr().numpy()
        m = getattr(qops.nn, f"ConvTranspose{nd}d").from_float(tm, numerics=engine)
        x = qops.make_per_tensor_qtensor(xt.int_repr().numpy(), xt.q_scale(), xt.q_zero_point(), qops.quint8)
        np.testing.assert_array_equal(m(x).int_repr(), want)
        assert repr(m) == repr(tm)


def test_module_from_float_weights():
    """Float weights quantize symmetrically per tensor (default) or per output
    channel along axis 1; the module runs the functional op on its packing."""
    rng = np.random.default_rng(3)
    wf = rng.normal(size=(4, 3, 3)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    m = qops.nn.ConvTranspose1d.from_float(wf, b, scale=0.1, zero_point=7, stride=2, groups=2)
    assert not m.weight().is_per_channel and m.weight().q_zero_point() == 0
    assert (m.in_channels, m.out_channels, m.groups) == (4, 6, 2)
    x = qx((2, 4, 5))
    want = F.conv_transpose1d(x, m.weight(), b, 2, 0, 0, 2, 1, 0.1, 7)
    np.testing.assert_array_equal(m(x).int_repr(), want.int_repr())
    mp = qops.nn.ConvTranspose1d.from_float(wf, b, scale=0.1, zero_point=7, per_channel=True, groups=2,
                                            numerics="reference")
    assert mp.weight().q_per_channel_axis() == 1 and mp.weight().q_per_channel_scales().shape == (3,)
    mp(x)
    with pytest.raises(ValueError, match="scale and zero_point"):
        qops.nn.ConvTranspose1d.from_float(wf)


def test_module_from_float_torch_float_module():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    f = torch.nn.ConvTranspose2d(4, 6, (2, 3), stride=(2, 1), padding=(0, 1), groups=2, dilation=(1, 2))
    m = qops.nn.ConvTranspose2d.from_float(f, scale=0.2, zero_point=100)
    assert (m.stride, m.padding, m.dilation, m.groups) == ((2, 1), (0, 1), (1, 2), 2)
    x = qx((1, 4, 3, 3))
    y = m(x)
    ref = torch.nn.functional.conv_transpose2d(torch.from_numpy(x.dequantize()), f.weight.detach(),
                                               f.bias.detach(), (2, 1), (0, 1), 0, 2, (1, 2)).numpy()
    # quantized weights: within a few output steps of the float module
    assert np.max(np.abs(y.dequantize() - ref)) < 0.2 * 4
