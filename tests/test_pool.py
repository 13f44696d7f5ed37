"""Quantized pooling against torch 2.13 (bit for bit) and an exact oracle.

Each torch test runs one vectorised sweep of geometries per dtype, in both
memory formats (torch's NCHW and NHWC kernels round differently), with channel
counts on both sides of the 8- and 16-channel vector boundaries of torch's
NHWC kernels.
"""

import warnings

import numpy as np
import pytest

import qops
import qops.functional as QF

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = [qops.quint8, qops.qint8, qops.qint32]
_TORCH = {"quint8": (torch.quint8, np.uint8), "qint8": (torch.qint8, np.int8),
          "qint32": (torch.qint32, np.int32)}


#: The thresholds from which the pooling kernels run on several threads.
_PARALLEL_SWITCHES = ("POOL_PARALLEL_WORK", "NC_PARTS_WORK", "SIMD_CL_PARTS_MIN")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's quantized-dtype deprecation
        yield


@pytest.fixture
def engine():
    old = torch.backends.quantized.engine
    yield lambda name: setattr(torch.backends.quantized, "engine", name)
    torch.backends.quantized.engine = old


def pair(rng, shape, dtype, zp=None, channels_last=False, scale=0.05):
    """The same integers as a torch quantized tensor and a QTensor, in the
    same memory format."""
    tdt, ndt = _TORCH[dtype.name]
    lo, hi = (dtype.qmin, dtype.qmax) if dtype is not qops.qint32 else (-5000, 5000)
    if zp is None:
        zp = int(rng.integers(max(dtype.qmin, -300), min(dtype.qmax, 300) + 1))
    ints = rng.integers(lo, hi + 1, shape).astype(ndt)
    t = torch._make_per_tensor_quantized_tensor(torch.from_numpy(ints.copy()), scale, zp)
    if not channels_last:
        return t, qops.make_per_tensor_qtensor(ints, scale, zp, dtype)
    nd = len(shape)
    perm = (0,) + tuple(range(2, nd)) + (1,)
    inv = (0, nd - 1) + tuple(range(1, nd - 1))
    t = t.contiguous(memory_format=torch.channels_last if nd == 4 else torch.channels_last_3d)
    q = qops.make_per_tensor_qtensor(np.ascontiguousarray(ints.transpose(perm)), scale, zp, dtype)
    return t, q.permute(inv)


def check_same(y, z):
    """torch result ``y`` and qops result ``z``: integers, dtype, qparams,
    shape and (for dimensions longer than 1) the memory layout."""
    a = y.int_repr().numpy()
    b = z.int_repr()
    assert z.dtype.name == str(y.dtype).replace("torch.", "")
    assert z.q_scale() == y.q_scale() and z.q_zero_point() == y.q_zero_point()
    np.testing.assert_array_equal(b, a)
    assert b.dtype == a.dtype
    zs = [s // b.itemsize for s in z._data.strides]
    for i, n in enumerate(a.shape):
        if n > 1 and a.size > 1:
            assert zs[i] == y.stride()[i], (zs, y.stride())
    return a.size


def _torch_scrambles(t, out_spatial):
    """torch's NHWC kernels write an NHWC buffer into the output they
    allocate with ``suggest_memory_format()``; for an input whose spatial
    dims are all 1 (both contiguous and channels last, suggested NCHW) and a
    larger output, torch's integers come out permuted (see
    test_torch_scrambles_ambiguous_layout)."""
    return t.dim() >= 4 and all(n == 1 for n in t.shape[2:]) and t.shape[1] > 1 \
        and int(np.prod(out_spatial)) > 1


def _geometry(rng, sizes, dilation=False):
    k = tuple(int(rng.integers(1, n + 1)) for n in sizes)
    s = tuple(int(v) for v in rng.integers(1, 4, len(sizes)))
    p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
    d = tuple(int(v) for v in rng.integers(1, 3, len(sizes))) if dilation else (1,) * len(sizes)
    return k, s, p, d


CHANNELS = [1, 3, 7, 8, 9, 15, 16, 17, 24, 31, 33, 64, 80, 130]


# ------------------------------------------------------------------ torch
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_avg_pool2d_matches_torch(rng, dtype):
    compared = 0
    for trial in range(48):
        cl = bool(trial % 2)
        n, c = int(rng.integers(1, 3)), int(rng.choice(CHANNELS))
        h, w = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        k, s, p, _ = _geometry(rng, (h, w))
        ceil, cip = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
        div = [None, None, None, 3, -2, 7][trial % 6]
        t, q = pair(rng, (n, c, h, w), dtype, channels_last=cl)
        y = F.avg_pool2d(t, k, s, p, ceil, cip, div)
        if _torch_scrambles(t, y.shape[2:]):
            continue
        compared += check_same(y, QF.avg_pool2d(q, k, s, p, ceil, cip, div))
    # unbatched input: torch's NCHW kernel
    t, q = pair(rng, (5, 7, 6), dtype)
    compared += check_same(F.avg_pool2d(t, 3, 2, 1, True, False), QF.avg_pool2d(q, 3, 2, 1, True, False))
    assert compared > 2000


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_avg_pool3d_matches_torch(rng, dtype):
    compared = 0
    for trial in range(24):
        n, c = int(rng.integers(1, 3)), int(rng.choice(CHANNELS))
        sizes = tuple(int(v) for v in rng.integers(1, 6, 3))
        k, s, p, _ = _geometry(rng, sizes)
        ceil, cip = bool(rng.integers(0, 2)), bool(rng.integers(0, 2))
        div = [None, None, 5, -3][trial % 4]
        t, q = pair(rng, (n, c) + sizes, dtype, channels_last=bool(trial % 2))
        y = F.avg_pool3d(t, k, s, p, ceil, cip, div)
        compared += check_same(y, QF.avg_pool3d(q, k, s, p, ceil, cip, div))
    assert compared > 1000


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_adaptive_avg_pool_matches_torch(rng, dtype):
    compared = 0
    for trial in range(40):
        cl = bool(trial % 2)
        n, c = int(rng.integers(1, 3)), int(rng.choice(CHANNELS))
        if trial % 4 < 2:
            sizes = (int(rng.integers(1, 10)), int(rng.integers(1, 10)))
            out = tuple(int(rng.integers(1, m + 3)) for m in sizes)
            t, q = pair(rng, (n, c) + sizes, dtype, channels_last=cl)
            y = F.adaptive_avg_pool2d(t, out)
            z = QF.adaptive_avg_pool2d(q, out)
        else:
            sizes = tuple(int(v) for v in rng.integers(1, 6, 3))
            out = tuple(int(rng.integers(1, m + 2)) for m in sizes)
            t, q = pair(rng, (n, c) + sizes, dtype, channels_last=cl)
            y = F.adaptive_avg_pool3d(t, out)
            z = QF.adaptive_avg_pool3d(q, out)
        if _torch_scrambles(t, y.shape[2:]):
            continue
        compared += check_same(y, z)
    # unbatched inputs and None entries
    t, q = pair(rng, (6, 5, 7), dtype)
    compared += check_same(F.adaptive_avg_pool2d(t, (None, 3)), QF.adaptive_avg_pool2d(q, (None, 3)))
    t, q = pair(rng, (3, 4, 5, 6), dtype)
    compared += check_same(F.adaptive_avg_pool3d(t, (2, None, 4)), QF.adaptive_avg_pool3d(q, (2, None, 4)))
    assert compared > 2000


def test_avg_pool_vector_boundary_ties(rng):
    """Exact ties and near-ties: the NHWC kernels round channels below
    ``C // 16 * 16`` (avg_pool) / ``C // 8 * 8`` (adaptive) differently from
    the rest, and the NCHW kernels differently again."""
    compared = 0
    for dtype in (qops.quint8, qops.qint8):
        for zp in (dtype.qmin + 1, 3, 4, dtype.qmax - 2):
            for cl in (False, True):
                t, q = pair(rng, (40, 33, 2, 6), dtype, zp=zp, channels_last=cl)
                compared += check_same(F.avg_pool2d(t, (2, 3), 1), QF.avg_pool2d(q, (2, 3), 1))
                compared += check_same(F.avg_pool2d(t, (1, 2), 1, (0, 1), False, False),
                                       QF.avg_pool2d(q, (1, 2), 1, (0, 1), False, False))
                compared += check_same(F.adaptive_avg_pool2d(t, (1, 4)), QF.adaptive_avg_pool2d(q, (1, 4)))
    assert compared > 50000


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_max_pool_matches_torch(rng, dtype):
    compared = 0
    for trial in range(40):
        n, c = int(rng.integers(1, 3)), int(rng.choice(CHANNELS))
        h, w = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        k, s, p, d = _geometry(rng, (h, w), dilation=True)
        ceil = bool(rng.integers(0, 2))
        t, q = pair(rng, (n, c, h, w), dtype, channels_last=bool(trial % 2))
        try:
            y = F.max_pool2d(t, k, s, p, d, ceil)
        except RuntimeError:  # output size below 1 (dilated kernel larger than the input)
            with pytest.raises(ValueError):
                QF.max_pool2d(q, k, s, p, d, ceil)
            continue
        if _torch_scrambles(t, y.shape[2:]):
            continue
        compared += check_same(y, QF.max_pool2d(q, k, s, p, d, ceil))
        t1, q1 = pair(rng, (n, c, w), dtype)
        y = F.max_pool1d(t1, k[1], s[1], p[1], d[1], ceil) if w >= (k[1] - 1) * d[1] + 1 - 2 * p[1] else None
        if y is not None:
            compared += check_same(y, QF.max_pool1d(q1, k[1], s[1], p[1], d[1], ceil))
    t, q = pair(rng, (5, 9, 8), dtype)
    compared += check_same(F.max_pool2d(t, 3, 2, 1), QF.max_pool2d(q, 3, 2, 1))
    t, q = pair(rng, (5, 9), dtype)
    compared += check_same(F.max_pool1d(t, 2, None), QF.max_pool1d(q, 2, None))
    # wide rows: the planes-first kernel takes whole windows at a step of 1 or
    # 2 tap by tap, the others (edges, other steps) one window at a time
    for w, k, s, p, d in ((37, 3, 2, 1, 1), (40, 2, 2, 0, 1), (33, 3, 1, 1, 1), (35, 3, 1, 1, 2),
                          (38, 5, 2, 2, 2), (41, 3, 3, 1, 1), (30, 4, 2, 2, 1)):
        for ceil in (False, True):
            t, q = pair(rng, (2, 3, 7, w), dtype)
            args = ((2, k), (1, s), (1, p), (1, d), ceil)
            compared += check_same(F.max_pool2d(t, *args), QF.max_pool2d(q, *args))
    assert compared > 1000


def test_non_contiguous_inputs(rng):
    """Sliced and transposed views run torch's NCHW kernel on a contiguous
    copy (or the NHWC kernel where the view is channels-last contiguous)."""
    t, q = pair(rng, (2, 20, 9, 10), qops.quint8, zp=7, channels_last=True)
    views = [
        (lambda a: a[:, ::2, 1:, :-1]),
        (lambda a: a[:, 3:19]),
        (lambda a: a.transpose(2, 3)),
        (lambda a: a[1:]),
    ]
    compared = 0
    for v in views:
        tv, qv = v(t), v(q)
        compared += check_same(F.avg_pool2d(tv, 2, 1, 1), QF.avg_pool2d(qv, 2, 1, 1))
        compared += check_same(F.max_pool2d(tv, 3, 2, 1), QF.max_pool2d(qv, 3, 2, 1))
        compared += check_same(F.adaptive_avg_pool2d(tv, (4, 3)), QF.adaptive_avg_pool2d(qv, (4, 3)))
    assert compared > 3000


def test_layout_flows_through_a_chain(rng):
    """A channels-last result stays channels last, as in torch, so a chain of
    ops takes torch's paths throughout."""
    t, q = pair(rng, (2, 24, 12, 11), qops.qint8, zp=-3, channels_last=True)
    y = F.adaptive_avg_pool2d(F.avg_pool2d(F.max_pool2d(t, 2, 1), 3, 1, 1), 3)
    z = QF.adaptive_avg_pool2d(QF.avg_pool2d(QF.max_pool2d(q, 2, 1), 3, 1, 1), 3)
    check_same(y, z)


def test_empty_and_size_one(rng):
    t, q = pair(rng, (0, 3, 4, 4), qops.quint8, zp=2)
    for ft, fq in ((F.avg_pool2d, QF.avg_pool2d), (F.max_pool2d, QF.max_pool2d)):
        assert fq(q, 2).shape == tuple(ft(t, 2).shape)
    t, q = pair(rng, (1, 5, 4, 4), qops.quint8, zp=2)
    assert QF.avg_pool2d(q, 5).shape == tuple(F.avg_pool2d(t, 5).shape) == (1, 5, 0, 0)
    assert QF.adaptive_avg_pool2d(q, 0).shape == tuple(F.adaptive_avg_pool2d(t, 0).shape)
    t, q = pair(rng, (1, 1, 1, 1), qops.qint8, zp=-9)
    check_same(F.avg_pool2d(t, 1), QF.avg_pool2d(q, 1))
    check_same(F.max_pool2d(t, 1), QF.max_pool2d(q, 1))
    check_same(F.adaptive_avg_pool2d(t, 1), QF.adaptive_avg_pool2d(q, 1))


def test_torch_scrambles_ambiguous_layout(rng):
    """torch 2.13 defect, documented: an input with 1x1 spatial size is both
    NCHW and NHWC contiguous; torch runs its NHWC kernel but allocates an
    NCHW output, so its integers are the NHWC buffer read as NCHW.  qops
    returns the right values (in an NHWC buffer)."""
    t, q = pair(rng, (2, 5, 1, 1), qops.quint8, zp=4)
    y = F.adaptive_avg_pool2d(t, (2, 3)).int_repr().numpy()
    z = QF.adaptive_avg_pool2d(q, (2, 3)).int_repr()
    np.testing.assert_array_equal(z, np.broadcast_to(t.int_repr().numpy(), z.shape))
    nhwc = np.ascontiguousarray(z.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(y, nhwc.reshape(y.shape))


# ------------------------------------------------------------------ engines
def test_engines(rng, engine):
    """onednn runs torch's ATen kernels (== fbgemm); so does qnnpack outside
    the cases torch sends to QNNPACK (tested below)."""
    t, q = pair(rng, (2, 19, 7, 6), qops.quint8, zp=5, channels_last=True)
    ts, qs = pair(rng, (2, 19, 7, 6), qops.qint8, zp=-5)
    t5, q5 = pair(rng, (1, 17, 4, 5, 6), qops.quint8, zp=9, channels_last=True)
    calls = [
        (lambda a: F.avg_pool2d(a, 3, 2, 1, True), lambda a, p: QF.avg_pool2d(a, 3, 2, 1, True, numerics=p), t, q),
        (lambda a: F.avg_pool2d(a, 3, 2, 1), lambda a, p: QF.avg_pool2d(a, 3, 2, 1, numerics=p), ts, qs),
        (lambda a: F.max_pool2d(a, 3, 2, 1, 1, True), lambda a, p: QF.max_pool2d(a, 3, 2, 1, 1, True, numerics=p), t, q),
        (lambda a: F.adaptive_avg_pool2d(a, (4, 4)), lambda a, p: QF.adaptive_avg_pool2d(a, (4, 4), numerics=p), t, q),
        (lambda a: F.adaptive_avg_pool2d(a, (7, 6)), lambda a, p: QF.adaptive_avg_pool2d(a, (7, 6), numerics=p), t, q),
        (lambda a: F.avg_pool3d(a, 2), lambda a, p: QF.avg_pool3d(a, 2, numerics=p), t5, q5),
        (lambda a: F.adaptive_avg_pool3d(a, 3), lambda a, p: QF.adaptive_avg_pool3d(a, 3, numerics=p), t5, q5),
    ]
    for name in ("onednn", "qnnpack"):
        engine(name)
        for ft, fq, a, b in calls:
            check_same(ft(a), fq(b, name))


# ------------------------------------------------------------------ QNNPACK
def test_qnnpack_pooling_matches_torch(rng, engine):
    """Where torch's engine qnnpack sends quint8 pooling (no ceil_mode) to
    QNNPACK: average pooling (fp32 requantization, half to even; the divisor
    is the window area whatever count_include_pad and divisor_override say),
    adaptive average pooling with whole windows, and max pooling, whose
    dilated windows clamp padding taps to the edge pixel.  Random geometries
    in both memory formats, channel counts on both sides of QNNPACK's 8."""
    engine("qnnpack")
    compared = 0
    for _ in range(60):
        n, c = int(rng.integers(1, 3)), int(rng.choice([1, 3, 7, 8, 9, 17]))
        h, w = int(rng.integers(3, 13)), int(rng.integers(3, 13))
        cl = bool(rng.random() < 0.4)
        t, q = pair(rng, (n, c, h, w), qops.quint8, channels_last=cl, scale=float(10 ** rng.uniform(-3, 0)))
        k = (int(rng.integers(1, 5)), int(rng.integers(2, 5)))
        st = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        pd = (int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1)))
        if h + 2 * pd[0] >= k[0] and w + 2 * pd[1] >= k[1]:
            cip, div = bool(rng.random() < 0.5), (None if rng.random() < 0.7 else 3)
            compared += check_same(F.avg_pool2d(t, k, st, pd, False, cip, div),
                                   QF.avg_pool2d(q, k, st, pd, False, cip, div, numerics="qnnpack"))
        dil = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        pm = (min(pd[0], ((k[0] - 1) * dil[0] + 1) // 2), min(pd[1], ((k[1] - 1) * dil[1] + 1) // 2))
        if all(e > 0 for e in ((h + 2 * pm[0] - dil[0] * (k[0] - 1) - 1), (w + 2 * pm[1] - dil[1] * (k[1] - 1) - 1))):
            compared += check_same(F.max_pool2d(t, k, st, pm, dil),
                                   QF.max_pool2d(q, k, st, pm, dil, numerics="qnnpack"))
        o = (h // int(rng.integers(1, 4)) or 1, w // int(rng.integers(1, 4)) or 1)
        compared += check_same(F.adaptive_avg_pool2d(t, o), QF.adaptive_avg_pool2d(q, o, numerics="qnnpack"))
    t, q = pair(rng, (2, 5, 11), qops.quint8)
    compared += check_same(F.max_pool1d(t, 3, 2, 1, 2), QF.max_pool1d(q, 3, 2, 1, 2, numerics="qnnpack"))
    assert compared > 20_000


def test_qnnpack_pooling_refusals(rng, engine):
    """What torch refuses before QNNPACK runs (RuntimeError there): qops raises
    ValueError and says why; ceil_mode and other dtypes stay on the ATen kernels."""
    engine("qnnpack")
    t, q = pair(rng, (1, 3, 8, 8), qops.quint8, zp=7)
    for ft, fq in ((lambda: F.avg_pool2d(t[0], 2), lambda: QF.avg_pool2d(q[0], 2, numerics="qnnpack")),
                   (lambda: F.max_pool2d(t[0], 2), lambda: QF.max_pool2d(q[0], 2, numerics="qnnpack")),
                   (lambda: F.max_pool1d(t[0, 0], 2), lambda: QF.max_pool1d(q[0, 0], 2, numerics="qnnpack")),
                   (lambda: F.adaptive_avg_pool2d(t[0], 4),
                    lambda: QF.adaptive_avg_pool2d(q[0], 4, numerics="qnnpack")),
                   (lambda: F.avg_pool2d(t, 1), lambda: QF.avg_pool2d(q, 1, numerics="qnnpack")),
                   (lambda: F.max_pool2d(t, 1), lambda: QF.max_pool2d(q, 1, numerics="qnnpack"))):
        with pytest.raises(RuntimeError):
            ft()
        with pytest.raises(ValueError, match="qnnpack"):
            fq()
    check_same(F.avg_pool2d(t, 3, 2, 1, True), QF.avg_pool2d(q, 3, 2, 1, True, numerics="qnnpack"))
    check_same(F.max_pool2d(t[0], 2, ceil_mode=True), QF.max_pool2d(q[0], 2, ceil_mode=True, numerics="qnnpack"))


# ------------------------------------------------------------------ reference
def _exact_avg(ints, zp, windows, divisors, qmin, qmax):
    """zp + rne(sum(q - zp) / d), from Python integers."""
    out = []
    for (sl, size), d in zip(windows, divisors):
        s = int(ints[sl].astype(np.int64).sum()) - size * zp
        if d < 0:
            s, d = -s, -d
        qv, r = divmod(s, d)
        if 2 * r > d or (2 * r == d and qv % 2):
            qv += 1
        out.append(min(max(zp + qv, qmin), qmax))
    return out


def test_reference_profile(rng):
    compared = 0
    for dtype in DTYPES:
        for cl in (False, True):
            t, q = pair(rng, (2, 5, 7, 6), dtype, channels_last=cl)
            ints = t.int_repr().numpy()
            zp = q.q_zero_point()
            for k, s, p, cip, div in (((3, 2), (2, 1), (1, 1), True, None), ((2, 2), 1, 1, False, None),
                                      ((3, 3), 2, 0, True, -4)):
                z = QF.avg_pool2d(q, k, s, p, False, cip, div, numerics="reference").int_repr()
                kk = k if isinstance(k, tuple) else (k, k)
                ss = s if isinstance(s, tuple) else (s, s)
                pp = p if isinstance(p, tuple) else (p, p)
                wins, divs = [], []
                for a in range(z.shape[2]):
                    for b in range(z.shape[3]):
                        h0, w0 = a * ss[0] - pp[0], b * ss[1] - pp[1]
                        h1, w1 = min(h0 + kk[0], 7 + pp[0]), min(w0 + kk[1], 6 + pp[1])
                        ext = (h1 - h0) * (w1 - w0)
                        hs, ws = slice(max(h0, 0), min(h1, 7)), slice(max(w0, 0), min(w1, 6))
                        size = (hs.stop - hs.start) * (ws.stop - ws.start)
                        for nn in range(2):
                            for c in range(5):
                                wins.append(((nn, c, hs, ws), size))
                                divs.append(div if div else (ext if cip else size))
                want = _exact_avg(ints, zp, wins, divs, dtype.qmin, dtype.qmax)
                got = z.transpose(2, 3, 0, 1).reshape(-1)
                np.testing.assert_array_equal(got, np.array(want, dtype=z.dtype))
                compared += len(want)
                # torch stays within 1 LSB of the exact result
                y = F.avg_pool2d(t, k, s, p, False, cip, div).int_repr().numpy().astype(np.int64)
                assert np.abs(y - z.astype(np.int64)).max() <= 1
            z = QF.adaptive_avg_pool2d(q, (3, 4), numerics="reference").int_repr().astype(np.int64)
            y = F.adaptive_avg_pool2d(t, (3, 4)).int_repr().numpy().astype(np.int64)
            assert np.abs(y - z).max() <= 1
            np.testing.assert_array_equal(
                QF.max_pool2d(q, 2, numerics="reference").int_repr(), F.max_pool2d(t, 2).int_repr().numpy())
    assert compared > 500


# ------------------------------------------------------------------ errors
def test_bad_inputs(rng):
    t, q = pair(rng, (1, 4, 6, 6), qops.quint8, zp=3)
    with pytest.raises(TypeError, match="quantize"):
        QF.avg_pool2d(np.zeros((1, 4, 6, 6), np.float32), 2)
    pc = qops.quantize_per_channel(np.ones((2, 3, 4, 4), np.float32), np.ones(2), np.zeros(2, np.int64), 0,
                                   qops.qint8)
    with pytest.raises(ValueError, match="per-tensor"):
        QF.max_pool2d(pc, 2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        QF.avg_pool2d(q.reshape(1, 1, 4, 6, 6), 2)
    with pytest.raises(ValueError, match="unsqueeze"):
        QF.avg_pool3d(q, 2)
    with pytest.raises(NotImplementedError, match="return_indices"):
        QF.max_pool2d(q, 2, return_indices=True)
    with pytest.raises(NotImplementedError, match="return_indices"):
        QF.max_pool1d(q[0], 2, return_indices=True)
    for prof in ("onnxruntime", "tflite", "tflite_single"):
        with pytest.raises(NotImplementedError, match=prof):
            QF.avg_pool2d(q, 2, numerics=prof)
        with pytest.raises(NotImplementedError, match=prof):
            QF.adaptive_avg_pool2d(q, 2, numerics=prof)
        np.testing.assert_array_equal(QF.max_pool2d(q, 2, numerics=prof).int_repr(),
                                      F.max_pool2d(t, 2).int_repr().numpy())
    with pytest.raises(ValueError, match="unknown|numerics"):
        QF.max_pool2d(q, 2, numerics="nope")


def test_planned_geometry_still_validates(rng):
    """The geometry plans are memoised per argument values: a valid call must
    not let an equal but invalid argument (True for 1, 2.0 for 2) pass, a
    failed plan raises again, and lists (unhashable) plan afresh."""
    t, q = pair(rng, (1, 4, 6, 6), qops.quint8, zp=3)
    x3 = q.reshape(1, 4, 1, 6, 6)
    for call in (lambda k: QF.max_pool2d(q, k), lambda k: QF.avg_pool2d(q, k), lambda k: QF.avg_pool3d(x3, k)):
        two = (1, 2, 2) if call(2).ndim == 5 else (1, 2)
        call(two)
        with pytest.raises((TypeError, ValueError), match="tuple of"):
            call((True,) + two[1:])
        with pytest.raises((TypeError, ValueError), match="tuple of"):
            call(tuple(float(v) for v in two))
        with pytest.raises(ValueError, match="positive"):
            call(0)
        with pytest.raises(ValueError, match="positive"):
            call(0)  # a plan that raised is not kept
        np.testing.assert_array_equal(call(list(two)).int_repr(), call(two).int_repr())
    np.testing.assert_array_equal(QF.max_pool2d(q, (1, 2)).int_repr(), F.max_pool2d(t, (1, 2)).int_repr().numpy())


@pytest.mark.parametrize("call", [
    lambda F_, x: F_.avg_pool2d(x, 1, padding=1),          # padding > half the kernel
    lambda F_, x: F_.max_pool2d(x, 2, padding=2),
    lambda F_, x: F_.avg_pool2d(x, 2, padding=-1),
    lambda F_, x: F_.avg_pool2d(x, 2, 0),                    # zero stride
    lambda F_, x: F_.avg_pool2d(x, 2, -1),
    lambda F_, x: F_.avg_pool2d(x, 2, divisor_override=0),
    lambda F_, x: F_.max_pool2d(x, 2, dilation=0),
    lambda F_, x: F_.max_pool2d(x, 7),                       # output size < 1
    lambda F_, x: F_.avg_pool2d(x, 12, 1, 1),                # negative output size
    lambda F_, x: F_.adaptive_avg_pool2d(x, -1),
    lambda F_, x: F_.max_pool2d(x[:, :0], 2),                # empty channels
    lambda F_, x: F_.adaptive_avg_pool2d(x[:, :, :0], 2),    # empty spatial dim
], ids=["avg-pad", "max-pad", "neg-pad", "zero-stride", "neg-stride", "zero-divisor", "zero-dilation",
        "max-too-small", "avg-negative", "adaptive-negative", "max-empty-c", "adaptive-empty-h"])
def test_invalid_geometry_like_torch(rng, call):
    t, q = pair(rng, (1, 4, 6, 6), qops.quint8, zp=3)
    with pytest.raises(RuntimeError):
        call(F, t)
    with pytest.raises(ValueError):
        call(QF, q)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_parallel_and_serial_drivers_agree(rng, monkeypatch, layout):
    """Every pooling kernel's parallel driver (several planes or row blocks
    per work item, one scratch per item) gives the serial driver's bytes."""
    from qops.kernels.cpu import pool as P

    cases = [
        (lambda x: qops.functional.max_pool2d(x, 3, 2, 1), (3, 5, 17, 19)),
        (lambda x: qops.functional.avg_pool2d(x, 3, 1, 1), (2, 6, 15, 13)),
        (lambda x: qops.functional.avg_pool2d(x, 2, ceil_mode=True, count_include_pad=False), (2, 3, 9, 11)),
        (lambda x: qops.functional.adaptive_avg_pool2d(x, (3, 5)), (2, 7, 23, 29)),
        (lambda x: qops.functional.avg_pool3d(x, 2, divisor_override=3), (2, 5, 6, 7, 9)),
        (lambda x: qops.functional.adaptive_avg_pool3d(x, (2, 3, 4)), (1, 6, 7, 9, 11)),
    ]
    for dtype in (qops.quint8, qops.qint32):  # int32 and int64 window sums
        for fn, shape in cases:
            lo, hi = (-5000, 5000) if dtype is qops.qint32 else (dtype.qmin, dtype.qmax)
            a = rng.integers(lo, hi + 1, shape).astype(dtype.storage)
            if layout == "nhwc":
                perm = (0,) + tuple(range(2, len(shape))) + (1,)
                inv = (0, len(shape) - 1) + tuple(range(1, len(shape) - 1))
                x = qops.make_per_tensor_qtensor(np.ascontiguousarray(a.transpose(perm)), 0.1, 3,
                                                 dtype).permute(inv)
            else:
                x = qops.make_per_tensor_qtensor(a, 0.1, 3, dtype)
            # the serial result stays alive: its memory, freed, could become
            # the parallel call's output and hide a row left unwritten
            for name in _PARALLEL_SWITCHES:
                monkeypatch.setattr(P, name, 1 << 62)
            serial = fn(x)
            for name in _PARALLEL_SWITCHES:
                monkeypatch.setattr(P, name, 0)
            parallel = fn(x)
            np.testing.assert_array_equal(parallel.int_repr(), serial.int_repr())


@pytest.mark.parametrize("dtype", [qops.quint8, qops.qint8], ids=lambda d: d.name)
def test_avx512_channels_last_drivers(rng, monkeypatch, dtype):
    """The AVX-512 channels-last drivers (window maximum / int32 sum of 64
    channels in registers, the channels past the last block in a loop) give
    the portable drivers' bytes: 64+ channels, dilated and clipped windows,
    serial and parallel drivers."""
    from qops.kernels.cpu import _avx512
    from qops.kernels.cpu import pool as P

    if not _avx512.avx512bw_available():
        pytest.skip("no AVX512-BW on this host (or QOPS_DISABLE_AVX512 set)")
    cases = [
        lambda x: qops.functional.max_pool2d(x, 3, 2, 1),
        lambda x: qops.functional.max_pool2d(x, (2, 3), (1, 2), (1, 1), (2, 1), True),
        lambda x: qops.functional.avg_pool2d(x, 3, 1, 1),
        lambda x: qops.functional.avg_pool2d(x, (2, 3), 2, (1, 0), True, False),
        lambda x: qops.functional.avg_pool2d(x, 2, divisor_override=3),
        lambda x: qops.functional.adaptive_avg_pool2d(x, (3, 4)),
    ]
    from qops.kernels import _split

    compiled = 0
    keep = []
    for c in (64, 65, 128, 200):
        a = rng.integers(dtype.qmin, dtype.qmax + 1, (2, 9, 11, c)).astype(dtype.storage)
        x = qops.make_per_tensor_qtensor(a, 0.1, 3, dtype).permute(0, 3, 1, 2)
        x3 = qops.make_per_tensor_qtensor(a.reshape(2, 3, 3, 11, c), 0.1, 3, dtype).permute(0, 4, 1, 2, 3)
        for fn, arg in [(f, x) for f in cases] + [
                (lambda v: qops.functional.avg_pool3d(v, 2, 1, 1), x3),
                (lambda v: qops.functional.adaptive_avg_pool3d(v, (2, 2, 5)), x3)]:
            got = {}
            for path in ("avx512", "portable"):
                if path == "portable":
                    monkeypatch.setenv("QOPS_DISABLE_AVX512", "1")
                for par in (True, False):
                    for name in _PARALLEL_SWITCHES:
                        monkeypatch.setattr(P, name, 0 if par else 1 << 62)
                    # kept: a freed output's memory, holding the right bytes,
                    # could become the next call's output and hide a row not written
                    keep.append(fn(arg))
                    got[path, par] = keep[-1].int_repr()
                    if par and _split.parts() > 1:  # the average pools' parts: a compiled job
                        compiled += _split._pool.ctl[_split._HEADER + _split._FN] == P._AVG_CL_SIMD_JOB.compile()
                monkeypatch.delenv("QOPS_DISABLE_AVX512", raising=False)
            for key, v in got.items():
                np.testing.assert_array_equal(v, got["portable", False], err_msg=str((c, key)))
    # the 4 average pools run in compiled parts for each of 4 channel counts
    assert compiled >= 4 * 4 or _split.parts() == 1
