"""CUDA elementwise ops: the same integers and qparams as the CPU kernels (and so as torch)."""

import numpy as np
import pytest

from numba import cuda

import qops
import qops.functional as F
from qops.kernels.cuda import config
from qops.kernels.cuda.scalar import expf_libm, expf_sleef


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(config, "threads_per_block", 16)
    monkeypatch.setattr(config, "max_blocks", 3)


def pair(raw, dtype, s, z):
    from numba import cuda

    return (qops.make_per_tensor_qtensor(raw, s, z, dtype),
            qops.make_per_tensor_qtensor(cuda.to_device(raw), s, z, dtype))


def same(a, b):
    assert b.device == "cuda"
    assert (a.q_scale(), a.q_zero_point()) == (b.q_scale(), b.q_zero_point())
    got = b.int_repr().copy_to_host()
    assert got.dtype == a.int_repr().dtype and got.shape == a.int_repr().shape
    np.testing.assert_array_equal(got, a.int_repr())


@pytest.mark.parametrize("dtype", [qops.quint8, qops.qint32], ids=lambda d: d.name)
def test_binary_and_scalar_ops_match_cpu(dtype):
    """quint8 and qint32 (qint8 runs the same device code on signed bytes; the
    CPU tests cover it against torch)."""
    rng = np.random.default_rng(0)
    lo, hi = (-2000, 2000) if dtype is qops.qint32 else (dtype.qmin, dtype.qmax)
    # 2 rows of 67 = 134 > 3 blocks of 16: blocks, the grid stride, torch's 64-lane vector tail
    raw_a = rng.integers(lo, hi + 1, (2, 67)).astype(dtype.storage)
    raw_b = rng.integers(lo, hi + 1, (2, 67)).astype(dtype.storage)
    za, zb, zo = (7, -3, 11) if dtype is not qops.quint8 else (120, 131, 99)
    ac, ag = pair(raw_a, dtype, 0.37, za)
    bc, bg = pair(raw_b, dtype, 0.011, zb)
    rc, rg = pair(raw_b[:1, :], dtype, 0.05, zb)  # row broadcast
    for p in ("fbgemm", "reference"):
        for op in (F.add, F.add_relu, F.mul, F.mul_relu):
            same(op(ac, bc, 0.2, zo, numerics=p), op(ag, bg, 0.2, zo, numerics=p))
            same(op(ac, rc, 1e-3, zo, numerics=p), op(ag, rg, 1e-3, zo, numerics=p))
        for c in (0.0, -2.2, 1e4):
            same(F.add_scalar(ac, c, numerics=p), F.add_scalar(ag, c, numerics=p))
            same(F.mul_scalar(ac, c, numerics=p), F.mul_scalar(ag, c, numerics=p))
    # overflow of the requantization: vector and scalar paths differ, as on the CPU
    same(F.mul(ac, bc, 1e-9, zo), F.mul(ag, bg, 1e-9, zo))
    if dtype is qops.quint8:  # QNNPACK's fixed-point add
        for op in (F.add, F.add_relu):
            same(op(ac, bc, 0.2, zo, numerics="qnnpack"), op(ag, bg, 0.2, zo, numerics="qnnpack"))


def test_cat_matmul_softmax_match_cpu():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (2, 5, 6)).astype(np.uint8)
    b = rng.integers(0, 256, (2, 3, 6)).astype(np.uint8)
    ac, ag = pair(a, qops.quint8, 0.1, 3)
    bc, bg = pair(b, qops.quint8, 0.2, 9)
    for p in ("fbgemm", "reference"):
        same(F.cat([ac, bc], 1, 0.15, 4, numerics=p), F.cat([ag, bg], 1, 0.15, 4, numerics=p))
        for dim in (1, 2):
            same(F.softmax(ac, dim, 1 / 256, 0, numerics=p), F.softmax(ag, dim, 1 / 256, 0, numerics=p))
    same(F.cat([ac, ac], -1, numerics="tflite"), F.cat([ag, ag], -1, numerics="tflite"))
    m1 = rng.integers(0, 256, (2, 4, 9)).astype(np.uint8)
    m2 = rng.integers(0, 256, (2, 9, 3)).astype(np.uint8)
    xc, xg = pair(m1, qops.quint8, 0.02, 100)
    yc, yg = pair(m2, qops.quint8, 0.03, 120)
    for p in ("fbgemm", "reference"):
        same(F.matmul(xc, yc, 0.05, 10, numerics=p), F.matmul(xg, yg, 0.05, 10, numerics=p))


def test_matmul_sgemm_paths_match_cpu(monkeypatch):
    """The float32 product in torch's matmul order, every bit, on the device: the
    blocked FMA path with two K blocks and a thread's small row with unaligned
    leading columns (5 x 194 x 12, 4 rows per thread), the dot kernels of a
    single column (group rows and the 3 rows after them), torch's loop for
    batches, and the small path's leading columns after a batch offset.  One
    simulated thread per block: thousands of device calls per thread stall the
    simulator when many threads contend for its per-call module swap."""
    from qops.kernels.cpu import elementwise as cpu_ew
    from qops.kernels.cuda import elementwise as gpu_ew

    monkeypatch.setattr(config, "threads_per_block", 1)
    monkeypatch.setattr(config, "max_blocks", 2)
    rng = np.random.default_rng(5)
    for nb, m, k, n, rows, naive in ((1, 5, 194, 12, 4, False), (1, 7, 62, 1, 8, False),
                                     (2, 3, 20, 7, 3, True), (2, 2, 24, 7, 2, False)):
        a = ((rng.integers(0, 256, (nb, m, k)) - 128) * 0.0173).astype(np.float32)
        b = ((rng.integers(0, 256, (nb, k, n)) - 128) * 0.0091).astype(np.float32)
        want = np.empty((nb, m, n), np.float32)
        cpu_ew.matmul_sgemm(a, b, want, rows, naive)
        got = cuda.device_array((nb, m, n), np.float32)
        gpu_ew.matmul_sgemm(cuda.to_device(a), cuda.to_device(b), got, rows, naive)
        np.testing.assert_array_equal(got.copy_to_host().view(np.int32), want.view(np.int32))


def test_softmax_float_paths_match_cpu():
    """torch's float32 softmax on the device: last-dim rows (16-lane sums, the
    tail lanes, rows below 16) and columns of both paths (Sleef's and glibc's
    exp), on qint32 data whose output scale 2**-30 shows every float bit of
    ``y`` above 2**-30."""
    rng = np.random.default_rng(4)
    # small columns: the simulator slows down sharply on long per-thread loops
    for shape, dim, threads in (((3, 37), 1, (1,)), ((2, 3, 9), 2, (1,)), ((2, 6, 21), 1, (1, 2)),
                                ((5, 20), 0, (1, 2, 3))):
        raw = rng.integers(-3000, 3000, shape).astype(np.int32)
        xc, xg = pair(raw, qops.qint32, 0.004, 5)
        for t in threads:
            same(F.softmax(xc, dim, 2.0 ** -30, 0, torch_threads=t),
                 F.softmax(xg, dim, 2.0 ** -30, 0, torch_threads=t))


@cuda.jit
def _exps(x, a, b):
    i = cuda.grid(1)
    if i < x.size:
        a[i] = expf_sleef(x[i])
        b[i] = expf_libm(x[i])


def test_softmax_exponentials_match_cpu():
    """The device ``expf_sleef`` and ``expf_libm`` give the CPU functions' bits
    (both are checked against their originals on the CPU), over the reduced
    range and the special values."""
    from numba import njit

    from qops.kernels.cpu import scalar as C

    @njit
    def host(x, a, b):
        for i in range(x.size):
            a[i] = C.expf_sleef(x[i])
            b[i] = C.expf_libm(x[i])

    rng = np.random.default_rng(5)
    x = np.concatenate([-rng.uniform(0, 110, 300), rng.uniform(-1, 1, 40), rng.uniform(80, 120, 20),
                        [0.0, -0.0, -103.97, -104.0, -87.5, 88.0, 88.72, 100.0, np.inf, -np.inf, np.nan]]
                       ).astype(np.float32)
    a, b = np.empty_like(x), np.empty_like(x)
    host(x, a, b)
    ga, gb = cuda.device_array_like(x), cuda.device_array_like(x)
    _exps[(x.size + 63) // 64, 64](cuda.to_device(x), ga, gb)
    np.testing.assert_array_equal(ga.copy_to_host().view(np.uint32), a.view(np.uint32))
    np.testing.assert_array_equal(gb.copy_to_host().view(np.uint32), b.view(np.uint32))


def test_mixed_devices_refused():
    raw = np.zeros(4, np.uint8)
    ac, ag = pair(raw, qops.quint8, 0.1, 0)
    with pytest.raises(ValueError, match="one device"):
        F.add(ac, ag, 0.1, 0)
