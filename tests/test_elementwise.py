"""add / mul / add_scalar / mul_scalar / cat / matmul / softmax against torch 2.13 and the reference."""

import warnings
from fractions import Fraction

import numpy as np
import pytest

import qops
from qops import functional as F
from qops.qtensor import QTensor

from .test_matmul import _measured_host

torch = pytest.importorskip("torch")
warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated", category=UserWarning)

DTYPES = [qops.quint8, qops.qint8, qops.qint32]
RANGE = {qops.quint8: (0, 255), qops.qint8: (-128, 127), qops.qint32: (-3000, 3000)}


@pytest.fixture(autouse=True)
def _torch_one_thread():
    old, eng = torch.get_num_threads(), torch.backends.quantized.engine
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
    torch.backends.quantized.engine = eng


def qt(data, dtype, s, z):
    return QTensor._per_tensor(data, dtype, float(s), int(z))


def rand_q(rng, shape, dtype, s, z):
    lo, hi = RANGE[dtype]
    return qt(rng.integers(lo, hi + 1, size=shape).astype(dtype.storage), dtype, s, z)


def to_torch(q):
    """The same integers, strides and qparams as a torch quantized tensor."""
    return torch._make_per_tensor_quantized_tensor(torch.from_numpy(q._data), q.q_scale(), q.q_zero_point())


def qparams(rng, dtype, n=3):
    lo, hi = (-1000, 1000) if dtype is qops.qint32 else RANGE[dtype]
    return 10 ** rng.uniform(-3, 0, n), rng.integers(lo, hi + 1, n)


def check_same(r, t):
    np.testing.assert_array_equal(r.int_repr(), t.int_repr().numpy())
    assert r.int_repr().dtype == t.int_repr().numpy().dtype
    assert (r.q_scale(), r.q_zero_point()) == (t.q_scale(), t.q_zero_point())


# ------------------------------------------------------------------ add / mul
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_binary_lengths_across_the_vector_boundary(rng, dtype):
    """Lengths on both sides of torch's 64-lane (qint32: 16-lane) vector blocks."""
    compared = 0
    for n in (1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 191, 257, 1000):
        for _ in range(6):
            s, z = qparams(rng, dtype)
            a, b = rand_q(rng, (n,), dtype, s[0], z[0]), rand_q(rng, (n,), dtype, s[1], z[1])
            for op in ("add", "add_relu", "mul", "mul_relu"):
                r = getattr(F, op)(a, b, s[2], int(z[2]))
                t = getattr(torch.ops.quantized, op)(to_torch(a), to_torch(b), float(s[2]), int(z[2]))
                check_same(r, t)
                compared += n
    assert compared > 10000


def _all_pairs(dtype):
    lo, hi = RANGE[dtype]
    v = np.arange(lo, hi + 1)
    return (np.repeat(v, v.size).astype(dtype.storage), np.tile(v, v.size).astype(dtype.storage))


def _flat_path(monkeypatch, simd):
    """Select the AVX-512 (qadd64 / qmul64) or the portable 8-bit add / mul kernels."""
    from qops.kernels.cpu import _avx512

    if simd and not _avx512.avx512bw_available():
        pytest.skip("no AVX512-BW on this host (or QOPS_DISABLE_AVX512 set)")
    if not simd:
        monkeypatch.setenv("QOPS_DISABLE_AVX512", "1")


@pytest.mark.parametrize("simd", [True, False], ids=["avx512", "portable"])
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parts"])
@pytest.mark.parametrize("dtype", [qops.quint8, qops.qint8], ids=lambda d: d.name)
def test_flat_add_mul_all_pairs_both_drivers(rng, monkeypatch, dtype, parallel, simd):
    """The flat 8-bit kernel (int32 vector lanes, the float32 product for mul)
    on every (a, b) pair plus a 63-element scalar tail, on one thread and in
    parts (the part boundary inside the pairs), AVX-512 and portable, with
    zero points at the ends of the range."""
    import qops._elementwise as E

    _flat_path(monkeypatch, simd)
    monkeypatch.setattr(E, "_FLAT_PARALLEL_MIN", 0 if parallel else 1 << 62)
    lo, hi = RANGE[dtype]
    ai, bi = _all_pairs(dtype)
    ai, bi = np.concatenate([ai, ai[:63]]), np.concatenate([bi, bi[-63:]])
    for za, zb, zo in ((lo, hi, lo), (hi, lo, hi), (0, 3, -1 if lo < 0 else 7)):
        s = 10 ** rng.uniform(-3, 0, 3)
        a, b = qt(ai, dtype, s[0], za), qt(bi, dtype, s[1], zb)
        for op in ("add", "add_relu", "mul", "mul_relu"):
            check_same(getattr(F, op)(a, b, s[2], zo),
                       getattr(torch.ops.quantized, op)(to_torch(a), to_torch(b), float(s[2]), zo))


@pytest.mark.parametrize("dtype", [qops.quint8, qops.qint8], ids=lambda d: d.name)
def test_add_all_pairs_vector_and_scalar_paths(rng, dtype):
    """Every (a, b) pair on the vector path (65536 contiguous), exact; and on the
    scalar path (inner rows of 2 under a column broadcast: never vectorised),
    exact for these random scales (see the measured bound below for others)."""
    ai, bi = _all_pairs(dtype)
    for _ in range(3):
        s, z = qparams(rng, dtype)
        a, b = qt(ai, dtype, s[0], z[0]), qt(bi, dtype, s[1], z[1])
        for op in ("add", "add_relu"):
            check_same(getattr(F, op)(a, b, s[2], int(z[2])),
                       getattr(torch.ops.quantized, op)(to_torch(a), to_torch(b), float(s[2]), int(z[2])))
        # (65536, 1) + (65536, 2): inner rows of 2, all on the scalar lambda
        a2 = qt(ai.reshape(-1, 1), dtype, s[0], z[0])
        b2 = qt(np.stack([bi, bi[::-1]], 1), dtype, s[1], z[1])
        check_same(F.add(b2, a2, s[2], int(z[2])),
                   torch.ops.quantized.add(to_torch(b2), to_torch(a2), float(s[2]), int(z[2])))


@pytest.mark.parametrize("dtype", [qops.quint8, qops.qint8], ids=lambda d: d.name)
def test_add_scalar_table_path(rng, dtype):
    """Large contiguous 8-bit add_scalar looks its 2 x 256 results up: every
    byte on the vector path and in a 37-element scalar tail, zero points
    saturating at either end, against torch."""
    lo, hi = RANGE[dtype]
    every = np.arange(256).astype(np.uint8).view(dtype.storage)
    data = np.concatenate([np.tile(every, 17), every[rng.permutation(256)[:37]]])
    for z, c in ((lo + 5, 3.0), (hi - 5, -3.0), (lo + 100, 0.7), (hi, 1e-3)):
        for sc in (0.01, 0.37):
            a = qt(data, dtype, sc, z)
            r = F.add_scalar(a, c)
            t = torch.ops.quantized.add_scalar(to_torch(a), c)
            check_same(r, t)


def test_add_scalar_lambda_exact_on_ties():
    """torch's scalar lambda of add (row tails, rows that cannot vectorise):
    ``fl(float(q - z) * s)``, one float sum, then ``quantize_val``'s
    ``rne(fl(fl(c * inv) + zo))`` with two roundings.  Short-decimal scales make
    many exact ties, where a fused ``fma(c, inv, zo)`` (one rounding) or
    rounding before adding the zero point give other integers; every (a, b) pair
    on the scalar path, exact."""
    for dtype in (qops.quint8, qops.qint8):
        ai, bi = _all_pairs(dtype)
        for sa, sb, so in ((0.05, 0.02, 0.04), (0.3, 0.0123, 0.2)):
            za, zb, zo = (5, 200, 100) if dtype is qops.quint8 else (-3, 70, 0)
            a = qt(ai.reshape(-1, 1), dtype, sa, za)
            b = qt(np.stack([bi, bi[::-1]], 1), dtype, sb, zb)
            for op in ("add", "add_relu"):
                check_same(getattr(F, op)(b, a, so, zo),
                           getattr(torch.ops.quantized, op)(to_torch(b), to_torch(a), so, zo))


@pytest.mark.parametrize("dtype", [qops.quint8, qops.qint8], ids=lambda d: d.name)
def test_add_mul_of_two_channels_last_inputs(rng, dtype):
    """Two channels-last 4-D inputs (two conv outputs, a residual add): torch
    returns a channels-last tensor computed in memory order; 2*5*7*3 = 210
    elements cross the 64-lane vector boundary (192 vector, 18 scalar)."""
    for shape in ((2, 3, 5, 7), (1, 64, 3, 3), (3, 5, 4, 4)):
        n, c, h, w = shape
        for _ in range(2):
            s, z = qparams(rng, dtype)
            a = rand_q(rng, (n, h, w, c), dtype, s[0], z[0]).permute(0, 3, 1, 2)
            b = rand_q(rng, (n, h, w, c), dtype, s[1], z[1]).permute(0, 3, 1, 2)
            for op in ("add", "add_relu", "mul", "mul_relu"):
                r = getattr(F, op)(a, b, s[2], int(z[2]))
                t = getattr(torch.ops.quantized, op)(to_torch(a), to_torch(b), float(s[2]), int(z[2]))
                assert t.is_contiguous(memory_format=torch.channels_last)
                check_same(r, t)


def test_add_mul_of_mixed_layouts(rng):
    """A channels-last input with a contiguous one, of the same shape (every
    element on torch's scalar lambda, the output in the first input's format)
    or broadcast against each other; the channels-last input first, second or
    both; channel counts around the 64-lane vectors; short-decimal scales, whose
    exact ties tell torch's vector and scalar lambdas apart."""
    compared = 0
    for it in range(40):
        dtype = (qops.quint8, qops.qint8)[it % 2]
        n, c, h, w = int(rng.integers(1, 3)), int(rng.choice([2, 7, 63, 64, 65, 130])), \
            int(rng.integers(1, 7)), int(rng.integers(1, 7))
        sa = (n, c, h, w)
        sb = sa if it % 3 else tuple(1 if m else d for m, d in zip(rng.integers(0, 2, 4), sa))
        if it % 4 == 1:
            sa, sb = sb, sa
        _, z = qparams(rng, dtype)
        s = rng.choice([0.01, 0.02, 0.03, 0.04, 0.05, 0.1], 3)  # short decimals: many exact ties
        a, b = rand_q(rng, sa, dtype, s[0], z[0]), rand_q(rng, sb, dtype, s[1], z[1])
        which = it % 3
        if which in (0, 2):
            a = a.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
        if which in (1, 2) and b.ndim == 4:
            b = b.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
        for op in ("add", "add_relu", "mul"):
            r = getattr(F, op)(a, b, s[2], int(z[2]))
            t = getattr(torch.ops.quantized, op)(to_torch(a), to_torch(b), float(s[2]), int(z[2]))
            np.testing.assert_array_equal(r.int_repr(), t.int_repr().numpy(), err_msg=f"{op} {sa} {sb} {which}")
            strides = [v // r.int_repr().itemsize for v in r._data.strides]
            assert all(x == y for x, y, k in zip(strides, t.stride(), t.shape) if k > 1), (strides, t.stride())
            compared += t.numel()
    assert compared > 50_000


@pytest.mark.parametrize("layout", ["transposed", "one_transposed", "sliced_rows", "row_broadcast",
                                    "a_broadcast", "scalar_broadcast", "column_broadcast",
                                    "middle_broadcast", "size_one_dims", "trailing_broadcast",
                                    "short_row_broadcast", "row_broadcast-portable",
                                    "a_broadcast-portable"])
def test_binary_layouts_and_broadcasting(rng, monkeypatch, layout):
    import qops._elementwise as E

    if layout.endswith("-portable"):  # the row-by-row kernel without AVX-512
        layout = layout.split("-")[0]
        _flat_path(monkeypatch, False)
    # the broadcast layouts run the row-by-row kernel in parts, the rest on one thread
    monkeypatch.setattr(E, "_FLAT_PARALLEL_MIN", 0 if layout in ("row_broadcast", "a_broadcast",
                                                                 "middle_broadcast",
                                                                 "trailing_broadcast") else 1 << 62)
    dtype = qops.quint8
    ai, bi = _all_pairs(dtype)
    x, y = ai[:40000], bi[:40000]
    views = {
        "transposed": (x.reshape(200, 200).T, y.reshape(200, 200).T),
        "one_transposed": (x.reshape(200, 200).T, y.reshape(200, 200)),
        "sliced_rows": (x.reshape(200, 200)[:, :130], y.reshape(200, 200)[:, 3:133]),
        "row_broadcast": (x.reshape(200, 200), y[:200]),
        "a_broadcast": (y[:130], x[:39000].reshape(300, 130)),
        "scalar_broadcast": (x.reshape(200, 200), y[:1]),
        "column_broadcast": (x[:39000].reshape(300, 130), y[:300].reshape(300, 1)),
        "middle_broadcast": (x[:390].reshape(3, 1, 130), y[:520].reshape(1, 4, 130)),
        "size_one_dims": (x[:390].reshape(3, 1, 130, 1), y[:390].reshape(3, 1, 130, 1)),
        "trailing_broadcast": (x[:39000].reshape(30, 10, 130), y[:1300].reshape(10, 130)),
        "short_row_broadcast": (x[:39200].reshape(5600, 1, 7), y[:7].reshape(1, 7)),
    }
    va, vb = views[layout]
    for _ in range(4):
        s, z = qparams(rng, dtype)
        a, b = qt(va, dtype, s[0], z[0]), qt(vb, dtype, s[1], z[1])
        for op in ("add", "mul", "add_relu", "mul_relu"):
            check_same(getattr(F, op)(a, b, s[2], int(z[2])),
                       getattr(torch.ops.quantized, op)(to_torch(a), to_torch(b), float(s[2]), int(z[2])))


@pytest.mark.parametrize("engine", ["onednn", "qnnpack"])
def test_binary_engines(rng, engine):
    """onednn uses the ATen kernel (== fbgemm); qnnpack too for qint8, broadcasts and mul."""
    torch.backends.quantized.engine = engine
    for dtype in (qops.quint8, qops.qint8):
        for _ in range(4):
            s, z = qparams(rng, dtype)
            a, b = rand_q(rng, (3, 300), dtype, s[0], z[0]), rand_q(rng, (300,), dtype, s[1], z[1])
            b2 = rand_q(rng, (3, 300), dtype, s[1], z[1])
            cases = [("add", a, b), ("mul", a, b2), ("mul_relu", a, b)]
            if dtype is qops.qint8:
                cases.append(("add", a, b2))
            for op, x, y in cases:
                check_same(getattr(F, op)(x, y, s[2], int(z[2]), numerics=engine),
                           getattr(torch.ops.quantized, op)(to_torch(x), to_torch(y), float(s[2]), int(z[2])))


def test_qnnpack_add_every_pair(rng):
    """Equal-shaped quint8 add / add_relu under qnnpack is QNNPACK's fixed-point
    q8vadd: every (a, b) byte pair under random scales and zero points
    (multipliers from both ends of QNNPACK's ratio range), torch's output
    layout, its refusals."""
    torch.backends.quantized.engine = "qnnpack"
    grid_a, grid_b = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8))
    compared = 0
    ratios = [(1.0, 1.0), (2.0 ** -14, 1.0), (255.9, 0.5), (1e-3, 3e-4), (0.37, 0.37)]
    for i in range(12):
        if i < len(ratios):
            ra, rb = ratios[i]
            so = float(10 ** rng.uniform(-3, -1))
            sa, sb = ra * so, rb * so
        else:
            sa, sb, so = (float(v) for v in 10 ** rng.uniform(-3, 0, 3))
        za, zb, zo = (int(v) for v in rng.integers(0, 256, 3))
        a = qt(grid_a.copy(), qops.quint8, sa, za)
        b = qt(grid_b.copy(), qops.quint8, sb, zb)
        for op in ("add", "add_relu"):
            t_op = getattr(torch.ops.quantized, op)
            if op == "add_relu" and zo == 255:
                zo = 254
            try:
                want = t_op(to_torch(a), to_torch(b), so, zo)
            except RuntimeError:
                with pytest.raises(ValueError, match="QNNPACK"):
                    getattr(F, op)(a, b, so, zo, numerics="qnnpack")
                continue
            check_same(getattr(F, op)(a, b, so, zo, numerics="qnnpack"), want)
            compared += want.numel()
    assert compared > 1_000_000
    # layouts: a transposed input gives a contiguous output, channels-last stays
    x = rand_q(rng, (4, 6, 5), qops.quint8, 0.1, 3).permute(2, 0, 1)
    r = F.add(x, x, 0.2, 4, numerics="qnnpack")
    t = torch.ops.quantized.add(to_torch(x), to_torch(x), 0.2, 4)
    check_same(r, t)
    assert r.int_repr().strides == tuple(t.int_repr().stride())
    raw = rng.integers(0, 256, (2, 5, 3, 4)).astype(np.uint8)
    cl = qt(raw.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2), qops.quint8, 0.1, 3)
    r = F.add_relu(cl, cl, 0.3, 9, numerics="qnnpack")
    t = torch.ops.quantized.add_relu(to_torch(cl), to_torch(cl), 0.3, 9)
    check_same(r, t)
    assert r.int_repr().strides == tuple(t.int_repr().stride())
    # refusals: torch fails there too
    big = rand_q(rng, (10,), qops.quint8, 300.0, 3)
    with pytest.raises(ValueError, match=r"2\*\*-14, 2\*\*8"):
        F.add(big, big, 1.0, 3, numerics="qnnpack")
    with pytest.raises(ValueError, match="empty output range"):
        F.add_relu(big, big, 100.0, 255, numerics="qnnpack")
    with pytest.raises(NotImplementedError, match="0-d"):
        F.add(qt(np.uint8(3).reshape(()), qops.quint8, 0.1, 0), qt(np.uint8(3).reshape(()), qops.quint8, 0.1, 0),
              0.1, 0, numerics="qnnpack")
    empty = qt(np.zeros((0, 3), np.uint8), qops.quint8, 0.1, 0)
    assert F.add(empty, empty, 0.2, 1, numerics="qnnpack").shape == (0, 3)


def test_binary_extreme_scales(rng):
    """Requantization overflow: torch's vector path (cvtps -> INT32_MIN, wrapping
    zero point) and scalar path (lrintf in int64) disagree; both reproduced."""
    for dtype in (qops.quint8, qops.qint8):
        for n in (63, 64, 200):
            a = rand_q(rng, (n,), dtype, 1e6, 3)
            b = rand_q(rng, (n,), dtype, 1e5, -1 if dtype is qops.qint8 else 7)
            for so in (1e-6, 3e-3):
                for op in ("add", "mul", "mul_relu"):
                    check_same(getattr(F, op)(a, b, so, 5),
                               getattr(torch.ops.quantized, op)(to_torch(a), to_torch(b), so, 5))


def test_binary_reference_exact(rng):
    """The reference profile against exact rational arithmetic."""
    for dtype in (qops.quint8, qops.qint8):
        for _ in range(3):
            s, z = qparams(rng, dtype)
            a, b = rand_q(rng, (300,), dtype, s[0], z[0]), rand_q(rng, (300,), dtype, s[1], z[1])
            S = [Fraction(float(np.float32(v))) for v in s]
            lo, hi = RANGE[dtype]
            for op in ("add", "add_relu", "mul", "mul_relu"):
                r = getattr(F, op)(a, b, s[2], int(z[2]), numerics="reference").int_repr()
                for i in range(0, 300, 7):
                    da = (int(a._data[i]) - int(z[0])) * S[0]
                    db = (int(b._data[i]) - int(z[1])) * S[1]
                    x = da + db if op.startswith("add") else da * db
                    if op.endswith("relu"):
                        x = max(x, Fraction(0))
                    want = min(max(round(x / S[2]) + int(z[2]), lo), hi)
                    assert int(r[i]) == want, (op, i)


# ------------------------------------------------------------------ scalars
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_add_mul_scalar(rng, dtype):
    lo, hi = RANGE[dtype]
    for n in (5, 16, 63, 64, 65, 300):
        for _ in range(6):
            s = float(10 ** rng.uniform(-3, 0))
            z = int(rng.integers(-1000, 1000)) if dtype is qops.qint32 else int(rng.integers(lo, hi + 1))
            a = rand_q(rng, (n,), dtype, s, z)
            for c in (0.0, s * 2.5, -s * 3.5, float(rng.normal() * s * 60), float(rng.normal() * s * 400), 1e-9):
                for op in ("add_scalar", "mul_scalar"):
                    check_same(getattr(F, op)(a, c), getattr(torch.ops.quantized, op)(to_torch(a), c))


# ------------------------------------------------------------------ cat
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_cat(rng, dtype):
    for _ in range(8):
        s, z = qparams(rng, dtype)
        xs = [rand_q(rng, (3, int(rng.integers(0, 40)), 5), dtype, s[i], z[i]) for i in range(2)]
        check_same(F.cat(xs, 1, s[2], int(z[2])),
                   torch.ops.quantized.cat([to_torch(x) for x in xs], 1, float(s[2]), int(z[2])))
        same = [xs[0], xs[0][:, :3]]
        r = F.cat(same, -2)
        check_same(r, torch.ops.quantized.cat([to_torch(x) for x in same], -2, float(s[0]), int(z[0])))
        # the identical-qparams copy is allowed under every profile
        for p in ("onnxruntime", "tflite"):
            np.testing.assert_array_equal(F.cat(same, 1, numerics=p).int_repr(), r.int_repr())
    with pytest.raises(NotImplementedError, match="numerics 'tflite'"):
        F.cat(xs, 1, s[2], int(z[2]) if dtype is not qops.qint32 else 0, numerics="tflite")


# ------------------------------------------------------------------ float paths
def _torch_threads(n):
    """Set torch's intra-op threads (the autouse fixture restores them).  Numba
    kernels must not start on Numba's OpenMP layer meanwhile: its first launch
    resets the shared OpenMP thread count, so tests launch kernels as qops
    does, inside ``kernel_lock()`` (workqueue)."""
    torch.set_num_threads(n)


def _float_softmax(x, d, threads):
    """qops's float32 softmax kernels on the float32 array ``x`` along ``d``
    (launched as qops launches them: on the workqueue layer, whose first use
    does not reset torch's OpenMP thread count as Numba's OpenMP layer does)."""
    from qops._threading import kernel_lock
    from qops.kernels.cpu import elementwise as K

    sh = x.shape
    outer, n, inner = int(np.prod(sh[:d])), sh[d], int(np.prod(sh[d + 1:]))
    y = np.empty(x.size, np.float32)
    with kernel_lock():
        if d == len(sh) - 1:
            K.softmax_rows(np.ascontiguousarray(x).reshape(-1), y, outer, n)
        else:
            flags = np.zeros(outer * inner, np.uint8)
            K.softmax_vector_columns(outer, n, inner, threads, flags)
            K.softmax_columns(np.ascontiguousarray(x).reshape(-1), flags, y, outer, n, inner)
    return y.reshape(sh)


def test_expf_sleef_is_torch_vectorised_exp(rng):
    """``softmax([0, x])[1]`` is torch's vectorised ``exp(x)`` itself for
    ``x < -17`` (the sum rounds to 1): 200,000 arguments down to the underflow
    at -104, and the subnormal results below -87.3."""
    from numba import njit

    from qops.kernels.cpu.scalar import expf_sleef

    @njit
    def run(x, out):
        for i in range(x.size):
            out[i] = expf_sleef(x[i])

    x = np.concatenate([-rng.uniform(17, 110, 200_000), [-17.0, -87.3, -103.9, -104.0, -104.5]])
    x = x.astype(np.float32)
    want = torch.softmax(torch.from_numpy(np.stack([np.zeros_like(x), x], 1)), 1)[:, 1].numpy()
    got = np.empty_like(x)
    run(x, got)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_expf_libm_is_the_c_library_expf(rng):
    """``expf_libm`` against glibc's own ``expf`` (torch's scalar ``std::exp``):
    every 97th float32 from -0 down to the underflow at -103.97 (11.6M
    arguments), 200,000 random positive ones and the special values."""
    import ctypes
    import ctypes.util
    import platform

    from numba import njit

    from qops.kernels.cpu.scalar import expf_libm

    libc, version = platform.libc_ver()
    if libc != "glibc" or tuple(int(v) for v in version.split(".")[:2]) < (2, 28):
        pytest.skip(f"glibc 2.28+ expf needed as the oracle, found {libc} {version}")
    cexpf = ctypes.CDLL(ctypes.util.find_library("m")).expf
    cexpf.restype, cexpf.argtypes = ctypes.c_float, [ctypes.c_float]

    @njit
    def compare(x):
        bad = 0
        for i in range(x.size):
            a = expf_libm(x[i])
            b = cexpf(x[i])
            if a != b and not (a != a and b != b):
                bad += 1
        return bad

    neg = np.arange(0x80000000, 0xC2CFF1B4, 97, dtype=np.uint32).view(np.float32)
    pos = rng.uniform(0, 90, 200_000).astype(np.float32)
    special = np.float32([np.inf, -np.inf, np.nan, 88.0, 88.72, 88.73, -103.97, -103.98, -1e30, 1e30])
    assert compare(np.concatenate([neg, pos, special])) == 0


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_float_softmax_is_torch_bit_for_bit(rng, threads):
    """qops's float32 softmax kernels give torch.softmax's bits: last-dim rows
    (below 16, tails of the 16 lanes) and other dims, whose columns take the
    vector or scalar path by torch's split over ``threads`` threads."""
    _torch_threads(threads)
    compared = 0
    for _ in range(40):
        nd = int(rng.integers(1, 4))
        shape = tuple(int(v) for v in rng.integers(1, 70, nd))
        d = int(rng.integers(0, nd))
        x = (rng.standard_normal(shape) * rng.choice([0.1, 1.0, 5.0, 30.0])).astype(np.float32)
        want = torch.softmax(torch.from_numpy(x), d).numpy()
        np.testing.assert_array_equal(_float_softmax(x, d, threads).view(np.uint32),
                                      want.view(np.uint32))
        compared += x.size
    assert compared > 100_000


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_softmax_level_tables_equal_the_general_kernels(rng, monkeypatch, parallel):
    """8-bit softmax from per-maximum exp tables gives the float32 bits of the
    general kernels (exp per element) on the same dequantized values: every
    level, one- and many-row shapes, every axis (both column paths), a
    transposed input, both drivers."""
    from qops._threading import kernel_lock
    from qops.kernels.cpu import elementwise as K

    for name in ("SOFTMAX_PARALLEL_MIN", "SOFTMAX_COLUMNS_PARALLEL_MIN"):
        monkeypatch.setattr(K, name, 0 if parallel else 1 << 62)

    for dtype in (qops.quint8, qops.qint8):
        lo, hi = RANGE[dtype]
        levels = np.arange(lo, hi + 1).astype(dtype.storage)
        for shape, dim in (((256,), 0), ((3, 256), 1), ((256, 3), 0), ((5, 7, 9), 1), ((4, 300), 1),
                           ((2, 3, 4, 5), -1), ((9, 1, 4), 1), ((7, 256), -1), ((130, 40), 1),
                           ((6, 50, 37), 1), ((9, 20, 1), 1)):
            n_el = int(np.prod(shape))
            data = np.resize(levels, n_el) if n_el >= 256 else rng.integers(lo, hi + 1, n_el)
            a = qt(rng.permutation(np.asarray(data)).astype(dtype.storage).reshape(shape), dtype,
                   float(10 ** rng.uniform(-2, 0.5)), int(rng.integers(lo, hi + 1)))
            for x in (a, a.permute(*reversed(range(len(shape))))):
                d = dim % len(shape)
                sh = x.shape
                outer, n, inner = int(np.prod(sh[:d])), sh[d], int(np.prod(sh[d + 1:]))
                f = np.asarray(qops.dequantize(x, numerics="fbgemm"))
                for threads in (1, 2):
                    want = _float_softmax(f, d, threads).reshape(-1)
                    flags = np.zeros(0 if d == len(sh) - 1 else outer * inner, np.uint8)
                    if flags.size:
                        K.softmax_vector_columns(outer, n, inner, threads, flags)
                    every = (np.arange(256) - (128 if dtype is qops.qint8 else 0)).astype(dtype.storage)
                    xv = qops.dequantize(qt(every, dtype, x.q_scale(), x.q_zero_point()), numerics="fbgemm")
                    got = np.empty(f.size, np.float32)
                    with kernel_lock():
                        K.softmax_levels(np.ascontiguousarray(x.int_repr()).reshape(-1),
                                         np.asarray(xv, np.float32), flags, got, outer, n,
                                         inner, d == len(sh) - 1, 256.0, 0.0, 0, 255)
                    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("threads", [1, 2])
def test_softmax_matches_torch(rng, threads):
    """Quantized softmax: torch's integers for quint8, qint8 and qint32 (qint32
    with output scale 2**-30 resolves every float bit of y above 2**-30),
    every dim, transposed inputs, with torch on ``threads`` threads."""
    _torch_threads(threads)
    compared = 0
    for dtype in DTYPES:
        lo, hi = (-5000, 5000) if dtype is qops.qint32 else RANGE[dtype]
        for _ in range(15):
            shape = tuple(int(v) for v in rng.integers(1, 40, int(rng.integers(1, 4))))
            dim = int(rng.integers(-len(shape), len(shape)))
            s = float(10 ** rng.uniform(-2, 0)) if dtype is not qops.qint32 else 0.003
            a = qt(rng.integers(lo, hi + 1, shape).astype(dtype.storage), dtype, s,
                   int(rng.integers(lo // 4, hi // 4)))
            if len(shape) > 1 and rng.random() < 0.3:
                a = a.permute(*reversed(range(len(shape))))
            if dtype is qops.qint32:
                so, zo = 2.0 ** -30, 0
            else:
                so, zo = float(rng.choice([1 / 256, 1e-3, 1e-2])), int(rng.integers(lo, lo + 10))
            r = F.softmax(a, dim, so, zo, torch_threads=threads)
            check_same(r, torch.ops.quantized.softmax(to_torch(a), dim, so, zo))
            compared += r.int_repr().size
    assert compared > 20_000
    x = rand_q(rng, (4, 7), qops.quint8, 0.1, 3)
    with pytest.raises(NotImplementedError, match="QNNPACK"):
        F.softmax(x, 1, 2.0 ** -8, 0, numerics="qnnpack")
    # other output parameters stay on the ATen path under qnnpack too
    torch.backends.quantized.engine = "qnnpack"
    check_same(F.softmax(x, 1, 1e-3, 0, numerics="qnnpack"),
               torch.ops.quantized.softmax(to_torch(x), 1, 1e-3, 0))
    with pytest.raises(TypeError, match="torch_threads"):
        F.softmax(x, 1, 1e-3, 0, torch_threads=1.5)
    with pytest.raises(ValueError, match="torch_threads"):
        F.softmax(x, 1, 1e-3, 0, torch_threads=0)


def test_matmul_softmax_reference(rng):
    a = rand_q(rng, (2, 3, 4), qops.qint8, 0.05, 1)
    b = rand_q(rng, (2, 4, 5), qops.qint8, 0.02, -2)
    r = F.matmul(a, b, 0.5, 3, numerics="reference").int_repr()
    sa, sb, so = (Fraction(float(np.float32(v))) for v in (0.05, 0.02, 0.5))
    A = a._data.astype(np.int64) - 1
    Bm = b._data.astype(np.int64) + 2
    acc = np.einsum("bik,bkj->bij", A, Bm)
    want = [min(max(round(int(v) * sa * sb / so) + 3, -128), 127) for v in acc.ravel()]
    np.testing.assert_array_equal(r.ravel(), np.array(want, np.int8))
    x = rand_q(rng, (3, 6), qops.quint8, 0.3, 100)
    y = F.softmax(x, 1, 1 / 256, 0, numerics="reference").int_repr()
    f = (x._data.astype(np.float64) - 100) * float(np.float32(0.3))
    e = np.exp(f - f.max(1, keepdims=True))
    np.testing.assert_array_equal(y, np.clip(np.rint(e / e.sum(1, keepdims=True) * 256), 0, 255).astype(np.uint8))


# ------------------------------------------------------------------ errors
def test_errors():
    a = qt(np.zeros(4, np.uint8), qops.quint8, 0.1, 0)
    b = qt(np.zeros(4, np.int8), qops.qint8, 0.1, 0)
    with pytest.raises(TypeError, match="QTensor"):
        F.add(np.zeros(4), a, 0.1, 0)
    with pytest.raises(TypeError, match="same dtype"):
        F.mul(a, b, 0.1, 0)
    with pytest.raises(ValueError, match="broadcast"):
        F.add(a, qt(np.zeros(3, np.uint8), qops.quint8, 0.1, 0), 0.1, 0)
    with pytest.raises(ValueError):
        F.add(a, a, 0.1, 300)
    with pytest.raises(ValueError):
        F.add(a, a, -1.0, 0)
    with pytest.raises(NotImplementedError, match="numerics 'onnxruntime'"):
        F.add(a, a, 0.1, 0, numerics="onnxruntime")
    with pytest.raises(ValueError, match="unknown numerics"):
        F.add(a, a, 0.1, 0, numerics="bogus")
    with pytest.raises(TypeError, match="real scalar"):
        F.add_scalar(a, "1")
    with pytest.raises(ValueError, match="finite"):
        F.mul_scalar(a, float("nan"))
    with pytest.raises(ValueError, match="out of range"):
        F.cat([a, a], 1)
    with pytest.raises(ValueError, match="does not match"):
        F.cat([a.reshape(2, 2), a.reshape(1, 4)], 0)
    with pytest.raises(TypeError, match="list or tuple"):
        F.cat(a, 0)
    with pytest.raises(ValueError, match="rank"):
        F.matmul(a, a, 0.1, 0)
    with pytest.raises(ValueError, match="multiply"):
        F.matmul(a.reshape(2, 2), a.reshape(1, 4), 0.1, 0)
    with pytest.raises(TypeError, match="quint8, qint8"):
        q32 = qt(np.zeros((2, 2), np.int32), qops.qint32, 0.1, 0)
        F.matmul(q32, q32, 0.1, 0)
    with pytest.raises(ValueError, match="out of range"):
        F.softmax(a, 1, 0.1, 0)
    cl = qt(np.zeros((2, 3, 4, 5), np.uint8).transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2),
            qops.quint8, 0.1, 0)
    assert F.add(cl, cl, 0.1, 0, numerics="reference").shape == (2, 3, 4, 5)
    empty = qt(np.zeros((0, 3), np.uint8), qops.quint8, 0.1, 0)
    assert F.add(empty, empty, 0.1, 0).shape == (0, 3)


# ------------------------------------------------------------------ modules
def test_modules_match_torch(rng):
    import torch.ao.nn.quantized as nnq

    from qops.observer import MinMaxObserver

    x = rng.standard_normal((4, 70)).astype(np.float32)
    y = rng.standard_normal((4, 70)).astype(np.float32)
    f = qops.nn.FloatFunctional()
    f.activation_post_process = MinMaxObserver()
    np.testing.assert_array_equal(f.add(x, y), x + y)
    np.testing.assert_array_equal(f.add_scalar(x, 2.0), x + np.float32(2.0))
    q = qops.nn.QFunctional.from_float(f)
    tf = torch.ao.nn.quantized.FloatFunctional()
    tf.activation_post_process = torch.ao.quantization.MinMaxObserver()
    tf.add(torch.from_numpy(x), torch.from_numpy(y))
    tq_ = nnq.QFunctional.from_float(tf)
    assert (q.scale, q.zero_point) == (tq_.scale, tq_.zero_point)
    qx = qops.quantize_per_tensor(x, 0.02, 120, qops.quint8)
    qy = qops.quantize_per_tensor(y, 0.03, 130, qops.quint8)
    for name in ("add", "mul", "add_relu", "matmul"):
        args = (qx, qy) if name != "matmul" else (qx, qy.reshape(70, 4))
        r = getattr(q, name)(*args)
        t = getattr(tq_, name)(*(to_torch(a.contiguous()) for a in args))
        d = np.abs(r.int_repr().astype(int) - t.int_repr().numpy().astype(int))
        # matmul: torch's float32 sums are reproduced where their order was measured
        assert d.max() <= (1 if name == "matmul" and not _measured_host() else 0), name
    check_same(q.cat([qx, qy], 1), tq_.cat([to_torch(qx), to_torch(qy)], 1))
    check_same(q.add_scalar(qx, 0.7), tq_.add_scalar(to_torch(qx), 0.7))
    check_same(q.mul_scalar(qx, -0.7), tq_.mul_scalar(to_torch(qx), -0.7))
    sm, tsm = qops.nn.Softmax(scale=1 / 256), nnq.Softmax(scale=1 / 256)
    check_same(sm(qx), tsm(to_torch(qx)))
    assert repr(sm).startswith("QuantizedSoftmax(dim=None")
    # a 3-D input takes torch's legacy dim 0, a non-last dim: torch's thread split
    x3 = qops.quantize_per_tensor(np.asarray(x, np.float32).reshape(5, 7, 8), 0.05, 120, qops.quint8)
    check_same(qops.nn.Softmax(scale=1 / 256, torch_threads=1)(x3),
               nnq.Softmax(scale=1 / 256)(to_torch(x3)))
    with pytest.raises(TypeError, match="torch_threads"):
        qops.nn.Softmax(torch_threads="2")
    with pytest.raises(ValueError, match="torch_threads"):
        qops.nn.Softmax(torch_threads=0)
    with pytest.raises(RuntimeError):
        q(qx)
