"""CUDA layer/group/instance/batch norm against the CPU kernels, bit for bit.

The CPU kernels are the oracle (their conformance to torch is tested in
``tests/test_norm.py``).  Inputs stay small for the simulator but cross the
32/64-element vector boundaries of torch's kernels, several CUDA blocks and
the grid-stride loops; near-tie inputs make a double-rounded FMA (or an
unwanted contraction) change the integers.
"""

import numpy as np
import pytest
from numba import cuda

import qops
from qops import functional as F
from qops.kernels.cuda import config

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
f32 = np.float32


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(config, "threads_per_block", 32)
    monkeypatch.setattr(config, "max_blocks", 4)


def _pair(rng, shape, dt, s=0.05, z=3):
    st, lo, hi = (np.uint8, 0, 255) if dt is qops.quint8 else (np.int8, -128, 127)
    xi = rng.integers(lo, hi + 1, size=shape).astype(st)
    host = qops.make_per_tensor_qtensor(xi, s, z, dt)
    dev = qops.make_per_tensor_qtensor(cuda.to_device(xi), s, z, dt)
    return xi, host, dev


def _same(a, b):
    ha = a.int_repr()
    hb = b.int_repr()
    hb = hb.copy_to_host() if hasattr(hb, "copy_to_host") else hb
    assert ha.dtype == hb.dtype
    np.testing.assert_array_equal(ha, hb)
    assert a.q_scale() == b.q_scale() and a.q_zero_point() == b.q_zero_point()
    return ha.size


@pytest.mark.parametrize("numerics", ["fbgemm", "reference"])
def test_layer_and_group_norm_cuda_equal_cpu(rng, numerics):
    n_cmp = 0
    for dt in (qops.quint8, qops.qint8):
        for n in (33, 97):
            xi, h, d = _pair(rng, (3, n), dt)
            # near ties: beta puts every exact result on a half output step
            g = rng.uniform(0.5, 3, n).astype(f32)
            b = (rng.integers(-40, 40, n) + 0.5).astype(f32) * f32(0.07)
            n_cmp += _same(F.layer_norm(h, [n], g, b, 1e-5, 0.07, 5, numerics=numerics),
                           F.layer_norm(d, [n], g, b, 1e-5, 0.07, 5, numerics=numerics))
        xi, h, d = _pair(rng, (2, 6, 5, 3), dt)
        w = rng.standard_normal(6).astype(f32)
        n_cmp += _same(F.group_norm(h, 3, w, None, 1e-5, 0.03, 7, numerics=numerics),
                       F.group_norm(d, 3, w, None, 1e-5, 0.03, 7, numerics=numerics))
        n_cmp += _same(F.instance_norm(h, scale=0.03, zero_point=7, numerics=numerics),
                       F.instance_norm(d, scale=0.03, zero_point=7, numerics=numerics))
    assert n_cmp > 1000


def test_group_norm_nhwc_cuda_equal_cpu(rng):
    """torch counts a contiguous (N, C, 1, 1) or (N, 1, H, W) input as channels-last:
    its NHWC kernels (per-group sums for H*W < 512, per-thread float32 sums
    beyond) run on the same bytes on both devices."""
    n_cmp = 0
    for dt in (qops.quint8, qops.qint8):
        _, h, d = _pair(rng, (2, 100, 1, 1), dt)
        w = rng.standard_normal(100).astype(f32)
        n_cmp += _same(F.group_norm(h, 2, w, w, 1e-5, 0.02, 1), F.group_norm(d, 2, w, w, 1e-5, 0.02, 1))
    _, h, d = _pair(rng, (2, 1, 23, 23), qops.qint8)  # H*W = 529 >= 512
    n_cmp += _same(F.group_norm(h, 1, None, None, 1e-5, 0.01, 0, torch_threads=3),
                   F.group_norm(d, 1, None, None, 1e-5, 0.01, 0, torch_threads=3))
    assert n_cmp > 1000


@pytest.mark.parametrize("numerics", ["fbgemm", "reference"])
def test_batch_norm_cuda_equal_cpu(rng, numerics):
    n_cmp = 0
    for dt in (qops.quint8, qops.qint8):
        for name, shape in (("batch_norm2d", (2, 70, 2, 2)), ("batch_norm3d_relu", (1, 33, 2, 1, 3)),
                            ("batch_norm1d", (5, 65))):
            c = shape[1]
            _, h, d = _pair(rng, shape, dt)
            w, b, m = (rng.standard_normal(c).astype(f32) for _ in range(3))
            v = rng.uniform(0.1, 2, c).astype(f32)
            n_cmp += _same(getattr(F, name)(h, w, b, m, v, 1e-5, 0.04, 9, numerics=numerics),
                           getattr(F, name)(d, w, b, m, v, 1e-5, 0.04, 9, numerics=numerics))
    assert n_cmp > 1000
