"""qops.nn modules against torch.ao.nn.quantized modules (torch 2.13, engine fbgemm)."""

import numpy as np
import pytest

import qops
import qops.nn as qnn

torch = pytest.importorskip("torch")
tq = torch.ao.nn.quantized
tiq = torch.ao.nn.intrinsic.quantized

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _engine():
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = "fbgemm"
    yield
    torch.backends.quantized.engine = old


def _input(rng, shape, scale=0.05, zp=3):
    x = rng.integers(0, 256, shape).astype(np.uint8)
    return (qops.make_per_tensor_qtensor(x, scale, zp, qops.quint8),
            torch._make_per_tensor_quantized_tensor(torch.from_numpy(x), scale, zp))


def _torch_weight(rng, shape, per_channel):
    w = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
    if per_channel:
        s = torch.from_numpy(rng.uniform(0.002, 0.02, shape[0]))
        z = torch.from_numpy(rng.integers(-3, 4, shape[0]))
        return torch.quantize_per_channel(w, s, z, 0, torch.qint8)
    return torch.quantize_per_tensor(w, 0.01, 2, torch.qint8)


def _same(a, b):
    np.testing.assert_array_equal(a.int_repr(), b.int_repr().numpy())
    assert a.q_scale() == b.q_scale() and a.q_zero_point() == b.q_zero_point()


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("tcls,qcls", [(tq.Linear, qnn.Linear), (tiq.LinearReLU, qnn.LinearReLU)])
def test_linear_from_torch_module(rng, per_channel, tcls, qcls):
    m = tcls(33, 17)
    m.set_weight_bias(_torch_weight(rng, (17, 33), per_channel), torch.randn(17))
    m.scale, m.zero_point = 0.07, 5
    q = qcls.from_float(m)
    assert repr(q) == repr(m).replace("torch.", "qops.")
    np.testing.assert_array_equal(q.weight().int_repr(), m.weight().int_repr().numpy())
    np.testing.assert_array_equal(q.bias(), m.bias().detach().numpy())
    xq, xt = _input(rng, (4, 5, 33))
    _same(q(xq), m(xt))


CONVS = [
    (tq.Conv1d, qnn.Conv1d, 1), (tq.Conv2d, qnn.Conv2d, 2), (tq.Conv3d, qnn.Conv3d, 3),
    (tiq.ConvReLU1d, qnn.ConvReLU1d, 1), (tiq.ConvReLU2d, qnn.ConvReLU2d, 2), (tiq.ConvReLU3d, qnn.ConvReLU3d, 3),
]


@pytest.mark.parametrize("tcls,qcls,nd", CONVS, ids=[c[1].__name__ for c in CONVS])
@pytest.mark.parametrize("per_channel", [False, True])
def test_conv_from_torch_module(rng, tcls, qcls, nd, per_channel):
    m = tcls(4, 6, 3, stride=2, padding=1, dilation=1, groups=2)
    m.set_weight_bias(_torch_weight(rng, (6, 2) + (3,) * nd, per_channel), torch.randn(6))
    m.scale, m.zero_point = 0.1, 4
    q = qcls.from_float(m)
    assert repr(q) == repr(m)
    xq, xt = _input(rng, (2, 4) + (7,) * nd)
    _same(q(xq), m(xt))
    # the channels-last output feeds the next layer as is
    m2 = tcls(6, 6, 1)
    m2.set_weight_bias(_torch_weight(rng, (6, 6) + (1,) * nd, per_channel), None)
    m2.scale, m2.zero_point = 0.3, 100
    _same(qcls.from_float(m2)(q(xq)), m2(m(xt)))


def test_depthwise_module(rng):
    m = tq.Conv2d(16, 16, 3, padding=1, groups=16)
    m.set_weight_bias(_torch_weight(rng, (16, 1, 3, 3), True), torch.randn(16))
    m.scale, m.zero_point = 0.2, 9
    q = qnn.Conv2d.from_float(m)
    xq, xt = _input(rng, (1, 16, 6, 6))
    _same(q(xq), m(xt))


def test_from_float_arrays(rng):
    w = rng.standard_normal((8, 16)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    q = qnn.Linear.from_float(w, b, scale=0.1, zero_point=3)
    wq = q.weight()
    assert wq.qscheme() is qops.per_channel_affine and wq.dtype is qops.qint8
    # torch's symmetric per-channel observer: scale = max|w| / 127.5, zero point 0
    obs = torch.ao.quantization.PerChannelMinMaxObserver(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    obs(torch.from_numpy(w))
    s, z = obs.calculate_qparams()
    np.testing.assert_array_equal(wq.q_per_channel_scales().astype(np.float32), s.numpy())
    np.testing.assert_array_equal(wq.q_per_channel_zero_points(), z.numpy())
    t = qnn.Linear.from_float(w, b, scale=0.1, zero_point=3, per_channel=False)
    assert t.weight().qscheme() is qops.per_tensor_affine
    with pytest.raises(ValueError, match="scale and zero_point"):
        qnn.Linear.from_float(w)
    c = qnn.Conv2d.from_float(rng.standard_normal((4, 3, 3, 3)), scale=0.1, zero_point=0, padding=1)
    assert c.kernel_size == (3, 3) and c.padding == (1, 1) and c.in_channels == 3


def test_from_float_torch_float_module(rng):
    fl = torch.nn.Conv2d(3, 4, 3, padding=1, bias=True)
    q = qnn.ConvReLU2d.from_float(fl, scale=0.1, zero_point=2)
    assert q.padding == (1, 1) and q.out_channels == 4
    np.testing.assert_array_equal(q.bias(), fl.bias.detach().numpy())
    xq, _ = _input(rng, (1, 3, 5, 5))
    assert q(xq).shape == (1, 4, 5, 5)


def test_defaults_and_validation():
    m = qnn.Linear(4, 3)
    assert m.scale == 1.0 and m.zero_point == 0
    assert not m.weight().int_repr().any() and m.bias().tolist() == [0.0, 0.0, 0.0]
    assert qnn.Linear(4, 3, bias=False).bias() is None
    with pytest.raises(ValueError, match="shape"):
        m.set_weight_bias(qops.quantize_per_tensor(np.zeros((4, 4), np.float32), 1.0, 0, qops.qint8), None)
    with pytest.raises(TypeError, match="QTensor"):
        m.set_weight_bias(np.zeros((3, 4)), None)
    with pytest.raises(ValueError, match="positive integer"):
        qnn.Linear(0, 3)
    with pytest.raises(ValueError, match="divisible by groups"):
        qnn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        qnn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="unknown numerics"):
        qnn.Linear(4, 3, numerics="fbgem")


def test_quantize_dequantize_modules():
    x = np.float32([0.5, 1.5, -2.0])
    qm = qnn.Quantize(0.5, 3, qops.quint8)
    q = qm(x)
    assert q == qops.quantize_per_tensor(x, 0.5, 3, qops.quint8)
    np.testing.assert_array_equal(qnn.DeQuantize()(q), q.dequantize())
    assert repr(qm) == "Quantize(scale=0.5, zero_point=3, dtype=qops.quint8)"
    with pytest.raises(TypeError, match="QTensor"):
        qnn.DeQuantize()(x)
    with pytest.raises(ValueError, match="outside the range"):
        qnn.Quantize(0.5, 300, qops.quint8)


def test_module_numerics(rng):
    w = rng.standard_normal((5, 8)).astype(np.float32)
    m = qnn.Linear.from_float(w, scale=0.05, zero_point=0, numerics="reference")
    xq = qops.quantize_per_tensor(rng.standard_normal((2, 8)).astype(np.float32), 0.05, 128, qops.quint8)
    want = qops.functional.linear(xq, m.weight(), m.bias(), 0.05, 0, numerics="reference")
    assert m(xq) == want
