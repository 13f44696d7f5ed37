"""CUDA pooling against the CPU kernels, bit for bit.

The CPU kernels are the oracle (their conformance to torch is tested in
``tests/test_pool.py``).  Runs on a GPU or under the CUDA simulator; the
blocks are shrunk so that the small inputs span several of them.  Every
``AVG_*`` recipe runs on both layouts' kernels, with channel counts across
the recipes' vector boundaries, odd zero points and divisors that make exact
ties.
"""

import numpy as np
import pytest
from numba import cuda

import qops
import qops.functional as QF
from qops.kernels.cpu import pool as cpu_pool
from qops.kernels.cuda import config
from qops.kernels.cuda import pool as cuda_pool

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(config, "threads_per_block", 32)
    monkeypatch.setattr(config, "max_blocks", 4)


def qtensor(rng, shape, dtype, zp):
    lo, hi = (dtype.qmin, dtype.qmax) if dtype is not qops.qint32 else (-9000, 9000)
    ints = rng.integers(lo, hi + 1, shape).astype(dtype.storage)
    return qops.make_per_tensor_qtensor(ints, 0.05, zp, dtype)


def same(y_gpu, y_cpu):
    assert y_gpu.device == "cuda"
    got = y_gpu.int_repr().copy_to_host()
    want = y_cpu.int_repr()
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert y_gpu.q_scale() == y_cpu.q_scale() and y_gpu.q_zero_point() == y_cpu.q_zero_point()


def test_functional_matches_cpu(rng):
    """The public ops on a CUDA QTensor (the dtypes are covered kernel by
    kernel below)."""
    dtype, zp = qops.qint8, -5
    x = qtensor(rng, (1, 2, 5, 4), dtype, zp)
    xg = x.to("cuda")
    for prof in ("fbgemm", "reference"):
        same(QF.avg_pool2d(xg, 3, 2, 1, True, False, numerics=prof),
             QF.avg_pool2d(x, 3, 2, 1, True, False, numerics=prof))
        same(QF.adaptive_avg_pool2d(xg, (3, 5), numerics=prof), QF.adaptive_avg_pool2d(x, (3, 5), numerics=prof))
    same(QF.max_pool2d(xg, 3, 2, 1, 2, True), QF.max_pool2d(x, 3, 2, 1, 2, True))
    same(QF.max_pool1d(xg[0], 2, 1, 1), QF.max_pool1d(x[0], 2, 1, 1))
    x5 = qtensor(rng, (1, 17, 2, 3, 2), dtype, zp)
    same(QF.avg_pool3d(x5.to("cuda"), 2, 1, 1, divisor_override=4), QF.avg_pool3d(x5, 2, 1, 1, divisor_override=4))
    same(QF.adaptive_avg_pool3d(x5.to("cuda"), (1, 2, 1)), QF.adaptive_avg_pool3d(x5, (1, 2, 1)))
    # 1x1 spatial input: torch's NHWC recipes on contiguous CUDA data
    x1 = qtensor(rng, (1, 18, 1, 1), dtype, zp)
    same(QF.avg_pool2d(x1.to("cuda"), 1), QF.avg_pool2d(x1, 1))
    same(QF.adaptive_avg_pool2d(x1.to("cuda"), 1), QF.adaptive_avg_pool2d(x1, 1))


def _wins(rng, n_in, n_out):
    lo = np.sort(rng.integers(0, n_in, n_out)).astype(np.int64)
    hi = np.minimum(lo + rng.integers(1, 4, n_out), n_in).astype(np.int64)
    ext = hi - lo + rng.integers(0, 2, n_out)
    return lo, hi, ext


@pytest.mark.parametrize("mode", [cpu_pool.AVG_REF, cpu_pool.AVG_TORCH_NCHW, cpu_pool.AVG_TORCH_NHWC,
                                  cpu_pool.AVG_ADAPTIVE_NCHW, cpu_pool.AVG_ADAPTIVE_NHWC])
def test_avg_kernels_match_cpu(rng, mode):
    """Both layouts' kernels, every recipe, both sides of the vector boundary."""
    c = 18
    for dtype, zp in ((qops.quint8, 131), (qops.qint32, 12345)):  # qint8: test_functional_matches_cpu
        lo, hi = (dtype.qmin, dtype.qmax) if dtype is not qops.qint32 else (-10**6, 10**6)
        x = rng.integers(lo, hi + 1, (1, 2, 5, 4, c)).astype(dtype.storage)
        wd, wh, ww = _wins(rng, 2, 2), _wins(rng, 5, 3), _wins(rng, 4, 4)
        for cip, div in ((True, 0), (False, 0), (True, -6)):
            args = (*wd, *wh, *ww, cip, div, mode, 16)
            q = (zp, dtype.qmin, dtype.qmax)
            out = np.empty((1, 2, 3, 4, c), dtype.storage)
            cpu_pool.avg_pool_cl(x, out, *args, *q)
            dev = cuda.device_array(out.shape, out.dtype)
            cuda_pool.avg_pool_cl(cuda.to_device(x), dev, *args, *q)
            np.testing.assert_array_equal(dev.copy_to_host(), out)
            xp = np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3)).reshape(c, 2, 5, 4)
            outp = np.empty((c, 2, 3, 4), dtype.storage)
            cpu_pool.avg_pool_nc(xp, outp, *args, c, *q)
            devp = cuda.device_array(outp.shape, outp.dtype)
            cuda_pool.avg_pool_nc(cuda.to_device(xp), devp, *args, c, *q)
            np.testing.assert_array_equal(devp.copy_to_host(), outp)
            # the two layouts give the same integers for the same recipe
            np.testing.assert_array_equal(outp.reshape(1, c, 2, 3, 4), out.transpose(0, 4, 1, 2, 3))


def test_max_kernels_match_cpu(rng):
    x = rng.integers(-128, 128, (2, 1, 6, 5, 9)).astype(np.int8)
    lo_h, hi_h = np.array([0, 1, 3], np.int64), np.array([3, 5, 6], np.int64)
    lo_w, hi_w = np.array([0, 2], np.int64), np.array([4, 5], np.int64)
    one, zero = np.ones(1, np.int64), np.zeros(1, np.int64)
    args = (zero, one, lo_h, hi_h, lo_w, hi_w, 1, 2, 1, -128)
    out = np.empty((2, 1, 3, 2, 9), np.int8)
    cpu_pool.max_pool_cl(x, out, *args)
    dev = cuda.device_array(out.shape, out.dtype)
    cuda_pool.max_pool_cl(cuda.to_device(x), dev, *args)
    np.testing.assert_array_equal(dev.copy_to_host(), out)
    xp = np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3)).reshape(18, 1, 6, 5)
    outp = np.empty((18, 1, 3, 2), np.int8)
    cpu_pool.max_pool_nc(xp, outp, *args)
    devp = cuda.device_array(outp.shape, outp.dtype)
    cuda_pool.max_pool_nc(cuda.to_device(xp), devp, *args)
    np.testing.assert_array_equal(devp.copy_to_host(), outp)
    np.testing.assert_array_equal(outp.reshape(2, 9, 1, 3, 2), out.transpose(0, 4, 1, 2, 3))


def test_qnnpack_pooling_matches_cpu(rng):
    """torch's engine-qnnpack paths on the device: QNNPACK's average pooling
    (float32 requantization, exact ties at 2x2 windows), its adaptive form, and
    dilated max pooling with edge-clamped padding taps."""
    x = qtensor(rng, (2, 3, 7, 6), qops.quint8, 131)
    xg = x.to("cuda")
    for args in (((2, 2), (2, 2), 0), ((3, 2), (1, 2), (1, 1)), ((5, 3), 2, (2, 1))):
        same(QF.avg_pool2d(xg, *args, numerics="qnnpack"), QF.avg_pool2d(x, *args, numerics="qnnpack"))
    same(QF.adaptive_avg_pool2d(xg, (7, 3), numerics="qnnpack"),
         QF.adaptive_avg_pool2d(x, (7, 3), numerics="qnnpack"))
    same(QF.max_pool2d(xg, 3, 1, 1, 2, numerics="qnnpack"), QF.max_pool2d(x, 3, 1, 1, 2, numerics="qnnpack"))
