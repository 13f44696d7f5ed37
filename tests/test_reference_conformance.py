"""``numerics="reference"``: the real-number result of each formula, rounded once.

The oracle is ``tests/oracles/exact.py`` (``fractions.Fraction``).  Inputs are
built so that plain float64 arithmetic gets them wrong: exact quotients
``k + 1/2 +- 2**-25`` that float64 division rounds onto the tie, and products
of more than 53 bits that float64 rounds onto a float32 midpoint.  Each such
construction checks that the naive float64 formula really fails on it, so the
tests cannot pass vacuously.
"""

import math

import numpy as np
import pytest

import qops
from qops.kernels.cpu.scalar import round_dd_to_f32
from tests.oracles import exact

NUMERICS = "reference"
F32_MAX = float(np.finfo(np.float32).max)


def _assert_int_equal(actual, expected, what=""):
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    np.testing.assert_array_equal(actual, expected, err_msg=what)


def _assert_f32_bits_equal(actual, expected, what=""):
    assert actual.dtype == np.float32 and expected.dtype == np.float32, what
    np.testing.assert_array_equal(actual.view(np.uint32), expected.view(np.uint32), err_msg=what)


def _storage(qdtype):
    return np.dtype(qdtype.storage)


# ------------------------------------------------------------------ quantize
def _near_tie_quotients(rng, n):
    """float32 pairs ``(x, s)`` whose exact quotient is ``k + 1/2 +- 1/(2 ms)``
    with ``k`` near ``2**29``: float64 division rounds it onto ``k + 1/2``.

    ``s = ms * 2**e`` with odd ``ms`` in ``[2**23, 2**24)`` and
    ``x = mx * 2**(29 + e)`` with ``2**30 * mx = +-1 (mod ms)``, so
    ``x / s = (j * ms +- 1) / (2 * ms)`` with ``j`` odd.
    """
    xs, ss = [], []
    while len(xs) < n:
        ms = int(rng.integers(2**22, 2**23)) * 2 + 1
        inv = pow(2**30, -1, ms)
        sign = 1 if rng.random() < 0.5 else -1
        mx = (sign * inv) % ms
        while mx <= ms:  # mx > ms puts the quotient in [2**29, 2**30)
            mx += ms
        if mx >= 2**24:
            continue
        e = int(rng.integers(-140, 70))
        xs.append(math.ldexp(mx, 29 + e) * (1 if rng.random() < 0.5 else -1))
        ss.append(math.ldexp(ms, e))
    return np.array(xs, np.float32), np.array(ss, np.float32)


def test_near_tie_construction_defeats_float64_division(rng):
    x, s = _near_tie_quotients(rng, 2000)
    naive = np.rint(x.astype(np.float64) / s.astype(np.float64))
    want = exact.quantize(x, s, 0, -(2**31), 2**31 - 1)
    q64 = x.astype(np.float64) / s.astype(np.float64)
    assert np.all(q64 - np.floor(q64) == 0.5)  # float64 lands exactly on the tie
    assert np.mean(naive != want) > 0.3  # and rne then goes the wrong way half the time


@pytest.mark.parametrize("qdtype", [qops.quint8, qops.qint8, qops.qint32], ids=lambda d: d.name)
def test_quantize_per_tensor_matches_exact_oracle(rng, qdtype):
    scales = np.concatenate([
        np.float32([2.0**-126, 1.0, 0.5, 0.75, 3.0, 1.0 / 3, 0.1, 1e30, 2.0**-20 * 1.5]),
        np.exp2(rng.uniform(-40, 40, size=31)).astype(np.float32),
    ])
    lo, hi = max(qdtype.qmin, -(2**24)), min(qdtype.qmax, 2**24)
    zps = rng.integers(lo, hi, size=scales.size, endpoint=True)
    zps[:3] = [qdtype.qmin, qdtype.qmax, lo // 2 + 1]
    for s, z in zip(scales, zps):
        x = exact.stress_floats(rng, 2500, s, int(z), lo, hi)  # 100,000 values in all
        got = qops.quantize_per_tensor(x, float(s), int(z), qdtype, numerics=NUMERICS).int_repr()
        want = exact.quantize(x, s, int(z), qdtype.qmin, qdtype.qmax).astype(_storage(qdtype))
        _assert_int_equal(got, want, f"scale={s!r} zero_point={z}")


def test_quantize_qint32_near_ties_match_exact_oracle(rng):
    """Quotients ``k + 1/2 +- 2**-25`` that float64 division rounds onto the tie."""
    x, s = _near_tie_quotients(rng, 3000)
    z = rng.integers(-(2**29), 2**29, size=x.size)
    for i in range(0, x.size, 1000):  # one scale per element: per-channel over 1000 channels
        xs, ss, zs = x[i:i + 1000], s[i:i + 1000], z[i:i + 1000]
        got = qops.quantize_per_channel(xs[:, None], ss.astype(np.float64), zs, 0, qops.qint32,
                                        numerics=NUMERICS).int_repr()[:, 0]
        want = exact.quantize(xs, ss, zs, -(2**31), 2**31 - 1).astype(np.int32)
        _assert_int_equal(got, want)
    for xv, sv, zv in zip(x[:200], s[:200], z[:200]):  # and per-tensor, one call each
        got = qops.quantize_per_tensor(np.float32([xv]), float(sv), int(zv), qops.qint32, numerics=NUMERICS)
        assert int(got.int_repr()[0]) == int(exact.quantize(xv, sv, int(zv), -(2**31), 2**31 - 1))


@pytest.mark.parametrize("qdtype", [qops.quint8, qops.qint8], ids=lambda d: d.name)
def test_quantize_per_channel_matches_exact_oracle(rng, qdtype):
    c, per = 24, 2048
    scales = np.exp2(rng.uniform(-30, 30, size=c)).astype(np.float32)
    scales[:4] = [1.0, 0.75, 2.0**-126, 0.1]
    zps = rng.integers(qdtype.qmin, qdtype.qmax, size=c, endpoint=True)
    rows = np.stack([exact.stress_floats(rng, per, s, int(z), qdtype.qmin, qdtype.qmax)
                     for s, z in zip(scales, zps)])
    x = np.moveaxis(rows.reshape(c, 32, per // 32), 0, 1)  # channel axis 1, strided
    got = qops.quantize_per_channel(x, scales.astype(np.float64), zps, 1, qdtype, numerics=NUMERICS)
    want = exact.quantize(x, scales[None, :, None], zps[None, :, None], qdtype.qmin, qdtype.qmax)
    _assert_int_equal(got.int_repr(), want.astype(_storage(qdtype)))


def test_quantize_nan_gives_zero_point_and_infinities_saturate():
    x = np.float32([np.nan, np.inf, -np.inf, 0.5, 1.5, 2.5, -2.5])
    for qdtype in (qops.quint8, qops.qint8, qops.qint32):
        got = qops.quantize_per_tensor(x, 1.0, 3, qdtype, numerics=NUMERICS).int_repr()
        np.testing.assert_array_equal(got, [3, qdtype.qmax, qdtype.qmin, 3, 5, 5, 1])


def test_quantize_uses_the_float32_scale():
    """A float64 scale is narrowed to float32 first (0.1 -> 0.100000001...)."""
    x = np.float32([0.25, 0.35, 2.5])
    got = qops.quantize_per_tensor(x, 0.1, 0, qops.qint8, numerics=NUMERICS).int_repr()
    _assert_int_equal(got, exact.quantize(x, np.float32(0.1), 0, -128, 127).astype(np.int8))


# ---------------------------------------------------------------- dequantize
def _midpoint_products(rng, n):
    """``(d, ms)`` with ``|d| < 2**32`` and odd ``ms < 2**24`` whose product has
    54..56 bits and lies within half a float64 ulp of a float32 midpoint (but
    not on it): float64 rounds it onto the midpoint, and float32 then breaks
    the tie to even, the wrong way about half of the time."""
    out = []
    while len(out) < n:
        bits = int(rng.integers(54, 57))  # bit length of d * ms
        low = bits - 24  # bits below the float32 significand
        delta = int(rng.integers(1, 2 ** (bits - 54) + 1)) * (1 if rng.random() < 0.5 else -1)
        ms = int(rng.integers(2**22, 2**23)) * 2 + 1
        target = (2 ** (low - 1) + delta) % 2**low
        d = target * pow(ms, -1, 2**low) % 2**low
        first = -(-(2 ** (bits - 1)) // ms)
        d += -(-(first - d) // 2**low) * 2**low  # smallest d >= first with that residue
        if d * ms >= 2**bits or d >= 2**32:
            continue
        out.append((d * (1 if rng.random() < 0.5 else -1), ms))
    return out


def _split_q_zp(rng, d):
    """int32 ``q`` and ``zp`` with ``q - zp == d`` for ``|d| < 2**32``."""
    lo = max(-(2**31), -(2**31) - d)
    hi = min(2**31 - 1, 2**31 - 1 - d)
    zp = int(rng.integers(lo, hi, endpoint=True))
    return zp + d, zp


def test_dequantize_qint32_float32_midpoints_match_exact_oracle(rng):
    pairs = _midpoint_products(rng, 4000)
    q, zp, s = [], [], []
    for d, ms in pairs:
        qq, zz = _split_q_zp(rng, d)
        bits = abs(d * ms).bit_length()
        e = int(rng.integers(-149, 127 - bits))
        q.append(qq)
        zp.append(zz)
        s.append(math.ldexp(ms, e))
    q = np.array(q, np.int32)
    zp = np.array(zp, np.int64)
    s = np.array(s, np.float32)
    want = exact.dequantize(q, s, zp)
    naive = (q.astype(np.float64) - zp) * s.astype(np.float64)
    assert np.mean(naive.astype(np.float32) != want) > 0.3  # float64 then float32 double-rounds
    for i in range(0, q.size, 1000):  # 1000 channels per call
        qt = qops.make_per_channel_qtensor(q[i:i + 1000, None], s[i:i + 1000].astype(np.float64),
                                           zp[i:i + 1000], 0, qops.qint32)
        got = qops.dequantize(qt, numerics=NUMERICS)[:, 0]
        _assert_f32_bits_equal(got, want[i:i + 1000])
    for j in range(300):  # per-tensor
        qt = qops.make_per_tensor_qtensor(q[j:j + 1], float(s[j]), int(zp[j]), qops.qint32)
        _assert_f32_bits_equal(qops.dequantize(qt, numerics=NUMERICS), want[j:j + 1], f"index {j}")


def test_dequantize_qint32_random_matches_exact_oracle(rng):
    q = rng.integers(-(2**31), 2**31, size=4096, dtype=np.int64).astype(np.int32)
    q[:4] = [-(2**31), 2**31 - 1, 0, 1]
    for s, z in ((0.1, 0), (1.0 / 3, 5), (2.0**-20 * 1.75, -(2**31)), (3e-5, 2**31 - 1), (1e29, 7),
                 (2.0**-126, -3)):
        qt = qops.make_per_tensor_qtensor(q, s, z, qops.qint32)
        _assert_f32_bits_equal(qops.dequantize(qt, numerics=NUMERICS),
                               exact.dequantize(q, np.float32(s), z), f"scale={s} zero_point={z}")


def test_dequantize_rounds_below_the_overflow_threshold_to_float32_max():
    """``(q - zp) * s = 2**128 - 2**103 - 2**74``: just below the midpoint between
    FLT_MAX and 2**128, so it rounds to FLT_MAX; the float64 product rounds
    onto the midpoint (a tie that float32 breaks upward, to infinity)."""
    ms = 2 * 8326789  # d * ms = (2**25 - 1) * 2**30 - 2
    d = 8269 * 261631
    s = math.ldexp(ms, 73)
    assert d * ms == (2**25 - 1) * 2**30 - 2
    q = np.int32([2**31 - 1, -(2**31)])
    zp = np.array([2**31 - 1 - d, -(2**31) + d])
    for sign, (qq, zz) in zip((1, -1), zip(q, zp)):
        qt = qops.make_per_tensor_qtensor(np.int32([qq]), s, int(zz), qops.qint32)
        got = qops.dequantize(qt, numerics=NUMERICS)
        want = exact.dequantize(np.int32([qq]), np.float32(s), zz)
        assert float(want[0]) == sign * F32_MAX
        _assert_f32_bits_equal(got, want)


@pytest.mark.parametrize("qdtype", [qops.quint8, qops.qint8], ids=lambda d: d.name)
def test_dequantize_8bit_all_values_match_exact_oracle(rng, qdtype):
    c = 256  # every value under 256 (scale, zero point) pairs
    vals = np.arange(qdtype.qmin, qdtype.qmax + 1)
    rows = np.tile(vals, (c, 1)).astype(_storage(qdtype))
    scales = np.exp2(rng.uniform(-126, 110, size=c)).astype(np.float32)
    scales[:3] = [2.0**-126, np.finfo(np.float32).max, 1.0 / 3]
    zps = rng.integers(qdtype.qmin, qdtype.qmax, size=c, endpoint=True)
    qt = qops.make_per_channel_qtensor(rows, scales.astype(np.float64), zps, 0, qdtype)
    _assert_f32_bits_equal(qops.dequantize(qt, numerics=NUMERICS),
                           exact.dequantize(rows, scales[:, None], zps[:, None]))


def test_dequantize_uses_the_float32_scale(rng):
    """A float64 scale is narrowed to float32 first, as every reference formula does."""
    q = rng.integers(-(2**31), 2**31, size=2000, dtype=np.int64).astype(np.int32)
    for s in (0.1, 1.0 / 3, 1e-5):
        want = exact.dequantize(q, np.float32(s), 0)
        with_f64_scale = np.array([exact.to_f32(exact.exact(int(v)) * exact.exact(s)) for v in q])
        assert np.any(with_f64_scale != want)  # the two readings differ on these values
        qt = qops.make_per_tensor_qtensor(q, s, 0, qops.qint32)
        _assert_f32_bits_equal(qops.dequantize(qt, numerics=NUMERICS), want, f"scale={s}")
        qc = qops.make_per_channel_qtensor(q, np.full(q.size, s), np.zeros(q.size, np.int64), 0, qops.qint32)
        _assert_f32_bits_equal(qops.dequantize(qc, numerics=NUMERICS), exact.dequantize(q, np.float32(s), 0),
                               f"per-channel scale={s}")


def test_round_dd_to_f32_matches_exact_rounding(rng):
    """The kernel helper ``round_dd_to_f32(hi, lo)`` rounds the exact ``hi + lo``
    once: float32 midpoints (normal, subnormal, at the overflow threshold)
    with tails of either sign, and random pairs."""
    cases = []
    for _ in range(3000):
        m = int(rng.integers(2**23, 2**24))
        e = int(rng.integers(-150, 104))
        mid = math.ldexp(2 * m + 1, e - 1)  # a float32 midpoint (subnormal range when e <= -126 - 23)
        tail = math.ldexp(1.0, e - 40) * float(rng.choice([-1.0, 1.0]))
        cases.append((mid, tail))
        x = float(rng.standard_normal()) * math.ldexp(1.0, int(rng.integers(-140, 120)))
        cases.append((x, x * 2.0**-60 * float(rng.standard_normal())))
    top = math.ldexp(2**25 - 1, 103)  # midpoint between FLT_MAX and 2**128
    for sign in (1.0, -1.0):
        for tail in (-1.0, 1.0, -(2.0**60), 2.0**60):
            cases.append((sign * top, sign * tail))
    tiny = math.ldexp(1.0, -210)  # below half a float64 ulp of 2**-150
    cases += [(math.ldexp(1.0, -150), tiny), (math.ldexp(1.0, -150), -tiny),
              (-math.ldexp(1.0, -150), -tiny), (-math.ldexp(3.0, -150), tiny)]
    for hi, lo in cases:
        assert hi + lo == hi  # hi = fl(hi + lo)
        got = round_dd_to_f32(hi, lo)
        want = exact.to_f32(exact.exact(hi) + exact.exact(lo))
        assert np.float32(got).view(np.uint32) == want.view(np.uint32), (hi, lo, got, want)


# ---------------------------------------------------------------- requantize
def _requant_configs(rng, n, qin, qout):
    """``(s1, z1, s2, z2)``: exact-tie ratios (1/2, 3/2, 1/4, 2/3), ratios near
    1, random ones, and extremes (``2**+-100``: saturation and rounding to 0)."""
    s2 = np.exp2(rng.uniform(-20, 20, size=n)).astype(np.float32).astype(np.float64)
    special = np.array([0.5, 1.5, 0.25, 2.0 / 3, 1.0, 1 + 2.0**-23, 2.0**100, 2.0**-100, 2.0**-40, 2.0**30])
    pick = rng.integers(0, 2 * special.size, size=n)
    ratio = np.where(pick < special.size, special[np.minimum(pick, special.size - 1)],
                     np.exp2(rng.uniform(-12, 12, size=n)))
    s1 = (s2 * ratio).astype(np.float32)
    s2 = s2.astype(np.float32)
    bad = ~np.isfinite(s1) | (s1 < np.finfo(np.float32).tiny)
    s1[bad] = s2[bad]
    z1 = rng.integers(max(qin.qmin, -(2**20)), min(qin.qmax, 2**20), size=n, endpoint=True)
    z2 = rng.integers(max(qout.qmin, -(2**20)), min(qout.qmax, 2**20), size=n, endpoint=True)
    z1[:2] = [qin.qmin, qin.qmax]
    z2[:3] = [qout.qmax, qout.qmin, 1 if qout.qmin < 0 else 3]  # odd zero points
    return s1, z1, s2, z2


DTYPE_PAIRS = [(qops.qint8, qops.qint8), (qops.quint8, qops.qint8), (qops.qint8, qops.quint8),
               (qops.quint8, qops.quint8), (qops.qint32, qops.qint8), (qops.qint32, qops.qint32)]


@pytest.mark.parametrize(("qin", "qout"), DTYPE_PAIRS, ids=lambda d: d.name)
def test_requantize_per_tensor_matches_exact_oracle(rng, qin, qout):
    n = 96
    s1, z1, s2, z2 = _requant_configs(rng, n, qin, qout)
    if qin.bits == 8:
        q = np.arange(qin.qmin, qin.qmax + 1).astype(_storage(qin))  # every value
    else:
        q = rng.integers(-(2**31), 2**31, size=256, dtype=np.int64)
        q[:128] = rng.integers(-4096, 4096, size=128)  # values that survive moderate ratios
        q[:4] = [-(2**31), 2**31 - 1, 0, 1]
        q = q.astype(np.int32)
    for a, b, c, d in zip(s1, z1, s2, z2):
        qt = qops.make_per_tensor_qtensor(q, float(a), int(b), qin)
        got = qops.requantize(qt, float(c), int(d), qout, numerics=NUMERICS).int_repr()
        want = exact.requantize(q, a, b, c, d, qout.qmin, qout.qmax).astype(_storage(qout))
        _assert_int_equal(got, want, f"s1={a!r} z1={b} s2={c!r} z2={d}")


def test_requantize_exact_ties_round_half_to_even():
    """``(q - z1) * s1 / s2 = k + 1/2`` exactly: ties go to even, then ``+ z2``."""
    q = np.arange(-128, 128).astype(np.int8)
    qt = qops.make_per_tensor_qtensor(q, 0.5, 0, qops.qint8)
    got = qops.requantize(qt, 1.0, 3, qops.qint8, numerics=NUMERICS).int_repr().astype(np.int64)
    half = q.astype(np.int64) / 2.0
    np.testing.assert_array_equal(got, np.clip(np.rint(half) + 3, -128, 127))  # np.rint: half to even


@pytest.mark.parametrize(("qin", "qout"), [(qops.qint8, qops.qint8), (qops.qint32, qops.quint8)],
                         ids=["qint8", "qint32-to-quint8"])
def test_requantize_per_channel_matches_exact_oracle(rng, qin, qout):
    c = 128
    s1, z1, s2_all, z2_all = _requant_configs(rng, c, qin, qout)
    if qin.bits == 8:
        rows = np.tile(np.arange(-128, 128), (c, 1))
    else:
        rows = rng.integers(-(2**31), 2**31, size=(c, 256), dtype=np.int64)
        rows[:, :128] = rng.integers(-4096, 4096, size=(c, 128))
    rows = rows.astype(_storage(qin))
    for axis, (s2, z2) in enumerate(zip(s2_all[:2], z2_all[:2])):
        data = rows if axis == 0 else np.ascontiguousarray(rows.T)
        qt = qops.make_per_channel_qtensor(data, s1.astype(np.float64), z1, axis, qin)
        got = qops.requantize(qt, float(s2), int(z2), qout, numerics=NUMERICS).int_repr()
        want = exact.requantize(rows, s1[:, None], z1[:, None], s2, z2, qout.qmin, qout.qmax)
        _assert_int_equal(got, (want if axis == 0 else want.T).astype(_storage(qout)), f"axis={axis}")


def test_large_inputs_match_exact_oracle(rng):
    """2**18 elements per call run the parallel and lookup-table drivers; the
    expected values are the oracle's on a pool of distinct inputs, looked up."""
    pool = exact.stress_floats(rng, 4096, 0.37, 3, -128, 127)
    idx = rng.integers(0, pool.size, size=1 << 18)
    x = pool[idx]
    got = qops.quantize_per_tensor(x, 0.37, 3, qops.qint8, numerics=NUMERICS).int_repr()
    _assert_int_equal(got, exact.quantize(pool, np.float32(0.37), 3, -128, 127).astype(np.int8)[idx])
    levels = np.arange(-128, 128)
    q = got
    qt = qops.make_per_tensor_qtensor(q, 0.37, 3, qops.qint8)
    lv = q.astype(np.int64) + 128
    _assert_f32_bits_equal(qops.dequantize(qt, numerics=NUMERICS),
                           exact.dequantize(levels, np.float32(0.37), 3)[lv])
    for s2, z2 in ((0.74, 1), (0.37 * 2.0**-20, 0), (1.0 / 3, -5)):
        got = qops.requantize(qt, s2, z2, qops.qint8, numerics=NUMERICS).int_repr()
        table = exact.requantize(levels, np.float32(0.37), 3, np.float32(s2), z2, -128, 127)
        _assert_int_equal(got, table[lv].astype(np.int8), f"s2={s2} z2={z2}")
