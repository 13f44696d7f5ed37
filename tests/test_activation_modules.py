"""Activation modules against torch.ao.nn.quantized's."""

import warnings

import numpy as np
import pytest

import qops
import qops.nn as qnn

torch = pytest.importorskip("torch")
nnq = pytest.importorskip("torch.ao.nn.quantized")
warnings.filterwarnings("ignore", message=".*quantized tensor creation.*")


def test_modules_match_torch():
    raw = np.random.default_rng(0).integers(0, 256, (2, 3, 5, 17)).astype(np.uint8)
    xt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(raw), 0.05, 120)
    x = qops.make_per_tensor_qtensor(raw, 0.05, 120, qops.quint8)
    pairs = [
        (qnn.ReLU6(), nnq.ReLU6()),
        (qnn.Hardswish(0.03, 100), nnq.Hardswish(0.03, 100)),
        (qnn.ELU(0.03, 150, 1.2), nnq.ELU(0.03, 150, 1.2)),
        (qnn.LeakyReLU(0.04, 50, 0.2), nnq.LeakyReLU(0.04, 50, 0.2)),
        (qnn.Sigmoid(0.1, 3), nnq.Sigmoid(0.1, 3)),
        (qnn.Sigmoid(0.0173, 200), nnq.Sigmoid(0.0173, 200)),
        (qnn.Dropout(0.3), nnq.Dropout(0.3)),
    ]
    for ours, theirs in pairs:
        a, b = ours(x), theirs(xt)
        assert (a.q_scale(), a.q_zero_point()) == (b.q_scale(), b.q_zero_point()), repr(ours)
        np.testing.assert_array_equal(a.int_repr(), b.int_repr().numpy(), err_msg=repr(ours))
    p = qnn.PReLU(0.02, 90, 3)
    pt = nnq.PReLU(0.02, 90, 3)
    wr = np.uint8([10, 130, 250])
    p.set_weight(qops.make_per_tensor_qtensor(wr, 0.01, 128, qops.quint8))
    pt.set_weight(torch._make_per_tensor_quantized_tensor(torch.from_numpy(wr), 0.01, 128))
    np.testing.assert_array_equal(p(x).int_repr(), pt(xt).int_repr().numpy())
    for ours, theirs in pairs[1:4]:
        assert repr(ours) == repr(theirs)


def test_from_float_explicit_qparams():
    m = qnn.ELU.from_float(torch.nn.ELU(alpha=0.7), 0.1, 10)
    assert (m.scale, m.zero_point, m.alpha) == (0.1, 10, 0.7)
    m = qnn.LeakyReLU.from_float(torch.nn.LeakyReLU(0.2), 0.1, 10)
    assert m.negative_slope == 0.2
    with pytest.raises(ValueError, match="prepared"):
        qnn.Hardswish.from_float(torch.nn.Hardswish())
