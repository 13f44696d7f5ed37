"""CUDA activations: the same integers as the CPU kernels (and so as torch)."""

import numpy as np
import pytest

import qops
import qops.functional as F
from qops.kernels.cuda import config


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(config, "threads_per_block", 32)
    monkeypatch.setattr(config, "max_blocks", 4)


CALLS = [
    lambda x: F.relu(x),
    lambda x: F.hardswish(x, 0.05, 100 if x.dtype is qops.quint8 else -3),
    lambda x: F.tanh(x),
    lambda x: F.gelu(x, "tanh"),
    lambda x: F.clamp(x, -0.5, 0.3),
    lambda x: F.sigmoid(x),
    lambda x: F.elu(x, 0.02, 3, 0.7),
    lambda x: F.leaky_relu(x, 0.1, numerics="reference"),
]


@pytest.mark.parametrize("dtype", [qops.quint8, qops.qint8])
def test_lut_ops_match_cpu(dtype, small_blocks):
    from numba import cuda

    # qparams where torch's vector and tail formulas differ for hardswish on some byte
    s, z = (0.18758000433444977, 117) if dtype is qops.quint8 else (0.013886165805161, 45)
    n = 3 * 32 * 4 + 77  # crosses blocks and the grid stride; a 13-element tail
    raw = np.random.default_rng(0).integers(0, 256, n).astype(np.uint8).view(dtype.storage)
    raw[:256] = np.arange(256, dtype=np.uint8).view(dtype.storage)
    raw[-13:] = raw[100:113]
    xc = qops.make_per_tensor_qtensor(raw, s, z, dtype)
    xg = qops.make_per_tensor_qtensor(cuda.to_device(raw), s, z, dtype)
    for call in CALLS:
        a, b = call(xc), call(xg)
        assert b.device == "cuda"
        assert (a.q_scale(), a.q_zero_point()) == (b.q_scale(), b.q_zero_point())
        got = b.int_repr().copy_to_host()
        assert got.dtype == a.int_repr().dtype
        np.testing.assert_array_equal(got, a.int_repr())


def test_prelu_matches_cpu(small_blocks):
    from numba import cuda

    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, (2, 3, 7, 11)).astype(np.uint8)
    w = qops.make_per_tensor_qtensor(np.uint8([3, 200, 128]), 0.01, 128, qops.quint8)
    xc = qops.make_per_tensor_qtensor(raw, 0.07, 130, qops.quint8)
    xg = qops.make_per_tensor_qtensor(cuda.to_device(raw), 0.07, 130, qops.quint8)
    a, b = F.prelu(xc, w, 0.05, 90), F.prelu(xg, w, 0.05, 90)
    np.testing.assert_array_equal(b.int_repr().copy_to_host(), a.int_repr())


def test_empty_and_strided():
    from numba import cuda

    e = qops.make_per_tensor_qtensor(cuda.to_device(np.zeros(0, np.uint8)), 0.1, 0, qops.quint8)
    assert F.sigmoid(e).shape == (0,)
    from qops.qtensor import QTensor

    strided = QTensor._per_tensor(cuda.to_device(np.zeros((4, 6), np.uint8))[:, ::2], qops.quint8, 0.1, 0)
    with pytest.raises(NotImplementedError, match="contiguous"):
        F.tanh(strided)


def test_qint32_selections_match_cpu(small_blocks):
    """relu, relu6, hardtanh and clamp on qint32 device arrays."""
    from numba import cuda

    raw = np.random.default_rng(2).integers(-2**31, 2**31, 3 * 32 * 4 + 5, dtype=np.int64).astype(np.int32)
    xc = qops.make_per_tensor_qtensor(raw, 1e-6, -12345, qops.qint32)
    xg = qops.make_per_tensor_qtensor(cuda.to_device(raw), 1e-6, -12345, qops.qint32)
    for op in (F.relu, F.relu6, lambda x: F.hardtanh(x, -900.0, 1234.5), lambda x: F.clamp(x, None, 3.0),
               lambda x: F.clamp(x, -5.0, 7.0, numerics="reference")):
        got, want = op(xg), op(xc)
        np.testing.assert_array_equal(got.int_repr().copy_to_host(), want.int_repr())
