"""Quantized matmul against torch 2.13: the float32 sums of ``at::matmul`` bit for bit.

torch dequantizes both inputs (always into contiguous tensors), multiplies
with ``at::matmul`` and quantizes.  qops reproduces the summation order that
MKL 2024.2 (torch 2.13.0's wheel) uses on an AVX-512 AMD EPYC host; the
shapes below reach each of its paths (blocked FMA with its K blocks, the
small-matrix path and its unaligned leading columns, the dot kernels of a
single column, the split of rows between two threads, torch's own loop for
small batches).  On another CPU MKL may choose other kernels: the bit-exact
tests are skipped there and the 1-LSB bound test still runs.
"""

import platform
import warnings

import numpy as np
import pytest

import qops
from qops import functional as F
from qops._elementwise import _sgemm_plan
from qops.qtensor import QTensor

torch = pytest.importorskip("torch")
warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated", category=UserWarning)


def _measured_host():
    """MKL 2024.2 inside torch on an AMD CPU with AVX-512: where the order was measured."""
    if "Math Kernel Library Version 2024.2" not in torch.__config__.show():
        return False
    if platform.system() != "Linux":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return False
    return "AuthenticAMD" in info and " avx512f " in info


measured_host = pytest.mark.skipif(
    not _measured_host(),
    reason="torch's sgemm order was measured for MKL 2024.2 on AVX-512 AMD CPUs; this host may differ")

#: (batch, M, K, N) and what each shape reaches (with 2 threads unless said).
SHAPES = [
    ((), 64, 100, 64, "blocked FMA, one K block"),
    ((), 16, 64, 16, "blocked FMA, 16 columns"),
    ((), 33, 193, 40, "K in (192, 384]: two halves and a remainder of 1"),
    ((), 20, 255, 17, "K = 255: blocks of 127"),
    ((), 12, 400, 30, "K > 384: blocks of 192"),
    ((), 5, 1000, 12, "12 columns; 2 threads: 4 rows blocked, 1 small"),
    ((), 6, 64, 40, "2 threads: 4 + 2 rows"),
    ((), 13, 70, 20, "2 threads: 8 + 5 rows"),
    ((), 16, 100, 10, "10 columns: small path, 2 leading columns on odd rows"),
    ((), 7, 75, 19, "small rows after a thread split, leading columns"),
    ((), 3, 100, 100, "3 rows: small path"),
    ((), 2, 52, 69, "2 rows, 3 leading columns"),
    ((), 20, 186, 5, "5 columns: a leading column only when 4 remain"),
    ((), 35, 64, 3, "3 columns: no leading columns"),
    ((), 64, 53, 2, "2 columns"),
    ((), 1, 1024, 256, "one row"),
    ((), 1, 100, 1, "one output: in order"),
    ((), 12, 43, 1, "dot: groups of 4 rows"),
    ((), 7, 30, 1, "dot: 3 rows after the groups (8, 4 and 8 lanes)"),
    ((), 6, 21, 1, "dot: 2 rows after the groups"),
    ((), 3, 9, 1, "dot: rows without a group, short"),
    ((), 18, 328, 1, "dot, long"),
    ((), 3, 0, 5, "K = 0"),
    ((3,), 5, 64, 20, "batched: one thread per matrix"),
    ((2, 3), 5, 100, 20, "4-D batch"),
    ((2,), 2, 50, 7, "batched small path: leading columns follow the batch offset"),
    ((4,), 9, 33, 1, "batched, under 400 multiply-adds: torch's loop"),
    ((2,), 22, 86, 1, "batched single column: torch's loop"),
    ((1,), 5, 64, 20, "one batch: as 2-D, 2 threads"),
    ((1,), 3, 10, 12, "one batch under 400: torch's loop"),
]


def _floats(rng, shape, scale):
    """Dequantized-like float32 values: integers times a scale."""
    return ((rng.integers(0, 256, shape) - 128) * scale).astype(np.float32)


def _sgemm(a, b, threads):
    from qops import _dispatch

    batch, (m, k), n = a.shape[:-2], a.shape[-2:], b.shape[-1]
    nb = int(np.prod(batch, dtype=np.int64))
    rows, naive = _sgemm_plan(a.ndim, nb, m, k, n, threads)
    out = np.empty((nb, m, n), np.float32)
    _dispatch.run("elementwise.matmul_sgemm", "cpu", a.reshape(nb, m, k), b.reshape(nb, k, n), out,
                  rows, naive)
    return out.reshape(batch + (m, n))


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


@measured_host
@pytest.mark.parametrize("threads", [1, 2])
def test_float_sums_are_torchs(rng, threads, parts):
    """Every float32 bit of the product equals torch.matmul's, over the paths above
    and 120 random shapes (random batch, M, K, N with single columns favoured)."""
    torch.set_num_threads(threads)
    shapes = [s[:4] for s in SHAPES]
    for _ in range(120):
        batch = tuple(int(v) for v in rng.integers(1, 4, int(rng.integers(0, 3))))
        n = int(rng.choice([1, 2, 5, int(rng.integers(1, 70))]))
        shapes.append((batch, int(rng.integers(1, 70)), int(rng.integers(0, 450)), n))
    compared = 0
    for batch, m, k, n in shapes:
        a = _floats(rng, batch + (m, k), 0.0173)
        b = _floats(rng, batch + (k, n), 0.0091)
        want = torch.matmul(torch.from_numpy(a), torch.from_numpy(b)).numpy()
        got = _sgemm(a, b, threads)
        bad = int((got.view(np.int32) != want.view(np.int32)).sum())
        assert bad == 0, (threads, batch, m, k, n, bad)
        compared += want.size
    assert compared > 50_000


def _q(rng, shape, dtype, s, z):
    lo, hi = (0, 255) if dtype is qops.quint8 else (-128, 127)
    return QTensor._per_tensor(rng.integers(lo, hi + 1, shape).astype(dtype.storage), dtype, s, z)


def _torch_q(q):
    return torch._make_per_tensor_quantized_tensor(torch.from_numpy(np.ascontiguousarray(q._data)),
                                                   q.q_scale(), q.q_zero_point())


@pytest.fixture(params=[False, True], ids=["one-part", "parts"])
def parts(request, monkeypatch):
    """The float32 products on one thread, or in parts from any size."""
    from qops.kernels.cpu import elementwise as E

    monkeypatch.setattr(E, "MATMUL_PARTS_MIN", 0 if request.param else 1 << 62)
    return request.param


@measured_host
@pytest.mark.parametrize("dtype", [qops.quint8, qops.qint8], ids=lambda d: d.name)
def test_matmul_matches_torch(rng, dtype, parts):
    """Integers and qparams equal torch.ops.quantized.matmul's, with torch on 1 and
    2 threads, on transposed inputs too (torch's dequantize makes them contiguous).
    A fine output scale puts many outputs near rounding ties of the float sums."""
    d = 0 if dtype is qops.quint8 else 128
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch, m, k, n, _ in SHAPES:
            a = _q(rng, batch + (m, k), dtype, 0.02, 121 - d)
            b = _q(rng, batch + (k, n), dtype, 0.013, 133 - d)
            if not batch and m > 1 and n > 1:  # transposed views of the same shapes
                a = QTensor._per_tensor(np.ascontiguousarray(a._data.T).T, dtype, 0.02, 121 - d)
            so = 0.02 * 0.013 * max(k, 1) ** 0.5 * 6
            got = F.matmul(a, b, so, 128 - d, torch_threads=threads)
            want = torch.ops.quantized.matmul(_torch_q(a), _torch_q(b), so, 128 - d)
            np.testing.assert_array_equal(got.int_repr(), want.int_repr().numpy(), err_msg=str((batch, m, k, n)))
            assert (got.q_scale(), got.q_zero_point()) == (want.q_scale(), want.q_zero_point())


@pytest.mark.parametrize("dtype", [qops.quint8, qops.qint8], ids=lambda d: d.name)
def test_fused_matmul_is_the_three_steps(rng, dtype, parts):
    """On any host: the CPU's one-launch matmul (byte tables, products, output
    quantization per group of rows) gives the integers of dequantize, the
    float32 products and quantize_per_tensor run one after the other."""
    from qops.kernels import _split
    from qops.kernels.cpu import elementwise as E

    lo = dtype.qmin
    for batch, m, k, n, _ in SHAPES:
        a = _q(rng, batch + (m, k), dtype, 0.02, lo + 121)
        b = _q(rng, batch + (k, n), dtype, 0.013, lo + 133)
        so = 0.02 * 0.013 * max(k, 1) ** 0.5 * 6
        fa, fb = qops.dequantize(a), qops.dequantize(b)
        prod = _sgemm(fa, fb, 2)
        want = qops.quantize_per_tensor(prod, so, lo + 128, dtype)
        got = F.matmul(a, b, so, lo + 128, torch_threads=2)
        np.testing.assert_array_equal(got.int_repr(), want.int_repr(), err_msg=str((batch, m, k, n)))
        if parts and k and _split.parts() > 1:  # handed over as a compiled job
            assert _split._pool.ctl[_split._HEADER + _split._FN] == E._MATMUL_Q8_JOB.compile()


def test_matmul_within_one_lsb_anywhere(rng):
    """On any host: torch's float32 sums and qops's differ at most in rounding, so
    outputs differ by at most 1 LSB and rarely (the default thread count on both)."""
    worst = bad = total = 0
    torch.set_num_threads(2)
    for dtype in (qops.quint8, qops.qint8):
        for _ in range(10):
            B, M, K, N = (int(v) for v in rng.integers(1, 20, 4))
            a = _q(rng, (B, M, K), dtype, 0.01, 3)
            b = _q(rng, (B, K, N), dtype, 0.02, -5 if dtype is qops.qint8 else 200)
            so = 0.01 * 0.02 * K ** 0.5 * 60
            r = F.matmul(a, b, so, 7, torch_threads=2).int_repr().astype(np.int64)
            t = torch.ops.quantized.matmul(_torch_q(a), _torch_q(b), so, 7).int_repr().numpy().astype(np.int64)
            d = np.abs(r - t)
            worst, bad, total = max(worst, int(d.max(initial=0))), bad + int((d != 0).sum()), total + d.size
    assert worst <= 1 and bad < 1e-3 * total, (worst, bad, total)


def test_plan():
    """Which computation each shape gets: rows per MKL thread (a multiple of 4), or torch's loop."""
    assert _sgemm_plan(2, 1, 5, 100, 16, 2) == (4, False)
    assert _sgemm_plan(2, 1, 5, 100, 16, 1) == (8, False)
    assert _sgemm_plan(2, 1, 17, 100, 16, 2) == (12, False)
    assert _sgemm_plan(2, 1, 3, 10, 12, 2) == (4, False)  # 2-D: MKL even when tiny
    assert _sgemm_plan(3, 1, 3, 10, 12, 2) == (3, True)  # one batch under 400: torch's loop
    assert _sgemm_plan(3, 4, 9, 100, 1, 2) == (9, True)  # batched single column
    assert _sgemm_plan(3, 1, 9, 100, 1, 2) == (8, False)
    assert _sgemm_plan(3, 4, 9, 100, 3, 2) == (9, False)  # batches: one thread each


def test_torch_threads_validated():
    a = QTensor._per_tensor(np.zeros((2, 2), np.uint8), qops.quint8, 0.1, 0)
    with pytest.raises(TypeError, match="torch_threads"):
        F.matmul(a, a, 0.1, 0, torch_threads=2.0)
    with pytest.raises(ValueError, match="torch_threads"):
        F.matmul(a, a, 0.1, 0, torch_threads=0)
