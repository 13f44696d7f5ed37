"""``numerics="tflite"`` and ``"tflite_single"`` against independent oracles.

TFLite is not a test dependency: the peer is read from source
(tensorflow/lite/kernels/internal: ``AffineQuantize``, ``Dequantize``,
``Requantize``, ``QuantizeMultiplier``, ``MultiplyByQuantizedMultiplier``) and
reimplemented on Python integers in ``tests/oracles/fixedpoint.py``, plus the
published vector ``A = 7984, M = 1583594044, shift = -9``.  Where C++ leaves a
result undefined (signed int32 overflow), the oracle and qops take the
two's-complement wraparound that compiled code gives.
"""

import math

import numpy as np
import pytest

import qops
from qops._recipes import quantize_multiplier
from qops.kernels.cpu.scalar import tflite_requant, tflite_requant_single
from tests.oracles import exact
from tests.oracles import fixedpoint as fp

PROFILES = ["tflite", "tflite_single"]
DTYPES = [(qops.quint8, np.uint8), (qops.qint8, np.int8)]
DTYPE_IDS = ["quint8", "qint8"]
F32_TINY = float(np.finfo(np.float32).tiny)


def _assert_int_equal(actual, expected, what=""):
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_array_equal(actual, expected, err_msg=what)


def _log_scales(rng, n, lo=-40, hi=40):
    return np.exp2(rng.uniform(lo, hi, size=n)).astype(np.float32)


# ------------------------------------------------------------------ quantize
def _quantize_oracle(x, scale, zero_point, qmin, qmax):
    """``clamp(round_half_away(fl(x / s)) + zp)``; NaN -> qmin.

    ``fl(x / s)`` is NumPy's float32 division (IEEE, correctly rounded; checked
    against the exact quotient in :func:`test_float32_division_is_correctly_rounded`);
    the rounding and the clamp are exact integer arithmetic on its value.
    """
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        v = (np.asarray(x, np.float32) / np.asarray(scale, np.float32)).astype(np.float64)
        a = np.abs(v)
        f = np.floor(a)
        r = np.copysign(f + (a - f >= 0.5), v)  # a - f is exact
        r = np.clip(r + np.asarray(zero_point, np.float64), qmin, qmax)
    return np.where(np.isnan(v), qmin, r).astype(np.int64)


def test_float32_division_is_correctly_rounded(rng):
    """The quantize oracle's ``fl(x / s)``: NumPy float32 division equals the
    exact quotient rounded once (20,000 stress values over 40 scales)."""
    for s in _log_scales(rng, 40, -30, 30):
        x = exact.stress_floats(rng, 500, s, 3, -128, 127)
        x = x[np.isfinite(x) & (x != 0)]  # an exact rational has no signed zero
        with np.errstate(over="ignore"):
            got = x / s
        want = np.array([exact.f32_quotient(v, s) for v in x], np.float32)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_quantize_oracle_rounds_half_away_from_zero():
    x = np.float32([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(
        _quantize_oracle(x, 1.0, 3, -128, 127), [4, 5, 6, 2, 1, 0, 3, -128, 127, -128]
    )
    for v in (0.5, 1.5, 2.5, -0.5, -1.5, -2.5):
        assert exact.round_half_away(v) == _quantize_oracle(np.float32([v]), 1.0, 0, -128, 127)[0]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("qdtype", "npdtype"), DTYPES + [(qops.qint32, np.int32)],
                         ids=DTYPE_IDS + ["qint32"])
def test_quantize_per_tensor_matches_oracle(rng, profile, qdtype, npdtype):
    sizes = [16384] * 60 + [1 << 18] * 2  # 1,507,328 values; large calls run in parallel
    scales = np.concatenate([np.float32([2.0**-126, 1.0, 0.5, 0.75, 1.0 / 3, 0.1, 1e30]),
                             _log_scales(rng, len(sizes) - 7)])
    lo, hi = max(qdtype.qmin, -(2**20)), min(qdtype.qmax, 2**20)
    zps = rng.integers(lo, hi, size=len(sizes), endpoint=True)
    zps[:3] = [qdtype.qmin, qdtype.qmax, 3]
    for s, z, n in zip(scales, zps, sizes):
        x = exact.stress_floats(rng, n, s, int(z), max(qdtype.qmin, -(2**24)), min(qdtype.qmax, 2**24))
        got = qops.quantize_per_tensor(x, float(s), int(z), qdtype, numerics=profile).int_repr()
        want = _quantize_oracle(x, s, z, qdtype.qmin, qdtype.qmax).astype(npdtype)
        _assert_int_equal(got, want, f"scale={s!r} zero_point={z}")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("qdtype", "npdtype"), DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("shape", "axis"), [((64, 16384), 0), ((32, 17, 1024), 1)], ids=["axis0", "axis1"])
def test_quantize_per_channel_matches_oracle(rng, profile, qdtype, npdtype, shape, axis):
    c = shape[axis]
    scales = _log_scales(rng, c)
    scales[:4] = [1.0, 0.5, 0.1, 2.0**-126]
    zps = rng.integers(qdtype.qmin, qdtype.qmax, size=c, endpoint=True)
    per = int(np.prod(shape)) // c
    rows = np.stack([exact.stress_floats(rng, per, s, int(z), qdtype.qmin, qdtype.qmax)
                     for s, z in zip(scales, zps)])
    moved = [c] + [d for i, d in enumerate(shape) if i != axis]
    x = np.moveaxis(rows.reshape(moved), 0, axis)  # a strided view
    got = qops.quantize_per_channel(x, scales.astype(np.float64), zps, axis, qdtype, numerics=profile)
    bshape = [1] * len(shape)
    bshape[axis] = c
    want = _quantize_oracle(x, scales.reshape(bshape), zps.reshape(bshape), qdtype.qmin, qdtype.qmax)
    _assert_int_equal(got.int_repr(), want.astype(npdtype), f"shape={shape} axis={axis}")


# ---------------------------------------------------------------- dequantize
def _dequantize_oracle(q, scale, zero_point):
    """``static_cast<float>(double(s) * (q - zp))`` with the subtraction in int32."""
    d = fp.wrap32(np.asarray(q, np.int64) - np.asarray(zero_point, np.int64)).astype(np.float64)
    return (np.asarray(scale, np.float32).astype(np.float64) * d).astype(np.float32)


@pytest.mark.parametrize("profile", PROFILES)
def test_dequantize_matches_oracle(rng, profile):
    for qdtype, npdtype in DTYPES:
        info = np.iinfo(npdtype)
        c = 2048  # every value under 2048 (scale, zero point) pairs, per channel
        rows = np.tile(np.arange(info.min, info.max + 1), (c, 1)).astype(npdtype)
        scales = _log_scales(rng, c, -126, 100)
        zps = rng.integers(info.min, info.max, size=c, endpoint=True)
        qt = qops.make_per_channel_qtensor(rows, scales.astype(np.float64), zps, 0, qdtype)
        got = qops.dequantize(qt, numerics=profile)
        want = _dequantize_oracle(rows, scales[:, None], zps[:, None])
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32), err_msg=qdtype.name)
        for s, z in zip(scales[:64], zps[:64]):
            qt = qops.make_per_tensor_qtensor(rows[0], float(s), int(z), qdtype)
            got = qops.dequantize(qt, numerics=profile)
            want = _dequantize_oracle(rows[0], s, z)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    # qint32: the product needs up to 57 bits (rounded in double, then to
    # float32), and q - zp wraps in int32
    q = rng.integers(-(2**31), 2**31, size=1 << 16, dtype=np.int64).astype(np.int32)
    q[:4] = [-(2**31), 2**31 - 1, 0, 1]
    for s, z in ((0.1, 0), (1.0 / 3, 5), (2.0**-20, -(2**31)), (3e-5, 2**31 - 1)):
        qt = qops.make_per_tensor_qtensor(q, s, z, qops.qint32)
        got = qops.dequantize(qt, numerics=profile)
        np.testing.assert_array_equal(got.view(np.uint32), _dequantize_oracle(q, s, z).view(np.uint32),
                                      err_msg=f"qint32 scale={s} zero_point={z}")


# ------------------------------------------------------------ multipliers
def _double_stress(rng, n):
    """Doubles that stress QuantizeMultiplier: log-uniform over [2^-45, 2^45],
    values whose mantissa rounds to 2**31 (the fix-up), exact ties of
    ``q * 2**31`` (half away), and the shift boundaries -31/-32 and 30/31."""
    d = list(np.exp2(rng.uniform(-45, 45, size=n)))
    for k in range(-40, 40):
        p = 2.0**k
        d += [p, p * (1 - 2.0**-33), p * (1 - 2.0**-32), p * (1 - 2.0**-31), p * (1 + 2.0**-31),
              p * (1 + 2.0**-52), math.nextafter(p, 0)]
        m = int(rng.integers(2**30, 2**31))
        d += [(m + 0.5) * 2.0 ** (k - 31), (m + 0.5) * 2.0 ** (k - 31) * (1 - 2.0**-52)]
    return [float(v) for v in d] + [0.0, 5e-324, 1e-300, 1e300, 2.0**-32 * (1 - 2.0**-40)]


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
def test_quantize_multiplier_matches_oracle(rng, single):
    ds = _double_stress(rng, 50_000)
    got = [quantize_multiplier(d, single) for d in ds]
    want = [fp.quantize_multiplier(d, single_rounding=single) for d in ds]
    bad = [(d, g, w) for d, g, w in zip(ds, got, want) if tuple(g) != tuple(w)]
    assert not bad, f"{len(bad)} of {len(ds)} differ, e.g. {bad[:5]}"


def test_quantize_multiplier_edges():
    assert fp.quantize_multiplier(0.0) == (0, 0)
    assert fp.quantize_multiplier(0.5) == (2**30, 0)
    assert fp.quantize_multiplier(1.0) == (2**30, 1)
    assert fp.quantize_multiplier(1 - 2.0**-33) == (2**30, 1)  # M rounds to 2**31: fix-up
    assert fp.quantize_multiplier(2.0**-32) == (2**30, -31)
    assert fp.quantize_multiplier(2.0**-33) == (0, 0)  # shift < -31 flushes to zero
    assert fp.quantize_multiplier(2.0**40) == (2**30, 41)
    assert fp.quantize_multiplier(2.0**40, single_rounding=True) == (2**31 - 1, 30)
    assert fp.quantize_multiplier((2**30 + 0.5) * 2.0**-31) == (2**30 + 1, 0)  # half away


# ---------------------------------------------------------- fixed point
def test_published_vector_double_and_single_rounding():
    """A = 7984, M = 1583594044, shift = -9 (exact value 11.499...): 12 with
    gemmlowp's double rounding, 11 with single rounding."""
    a, m, shift = 7984, 1583594044, -9
    assert tflite_requant(a, m, shift) == 12
    assert tflite_requant_single(a, m, shift) == 11
    assert fp.multiply_by_quantized_multiplier(a, m, shift) == 12
    assert fp.multiply_by_quantized_multiplier_single(a, m, shift) == 11
    assert tflite_requant(-a, m, shift) == -12
    assert tflite_requant_single(-a, m, shift) == -11


def test_gemmlowp_primitives():
    imin, imax = fp.INT32_MIN, fp.INT32_MAX
    assert fp.srdhm(imin, imin) == imax  # the one saturating case
    assert fp.srdhm(imin, imax) == -imax
    assert fp.srdhm(2**30, 2**30) == 2**29
    assert fp.srdhm(1, 2**30) == 1 and fp.srdhm(-1, 2**30) == 0  # half toward +inf
    assert [fp.rdbpot(v, 1) for v in (-3, -2, -1, 1, 2, 3)] == [-2, -1, -1, 1, 1, 2]  # half away
    assert fp.rdbpot(imin, 31) == -1 and fp.rdbpot(imax, 31) == 1


def test_multiply_by_quantized_multiplier_kernels_match_oracle(rng):
    """qops's scalar functions against the oracle on random int32 accumulators
    and multipliers, per shift (called through one small Numba loop)."""
    from numba import njit

    @njit(cache=False)
    def run(a, m, sh, out_d, out_s):
        for i in range(a.size):
            out_d[i] = tflite_requant(a[i], m[i], sh[i])
            if sh[i] <= 30:
                out_s[i] = tflite_requant_single(a[i], m[i], sh[i])

    n = 200_000
    a = rng.integers(-(2**31), 2**31, size=n)
    small = rng.integers(-(2**20), 2**20, size=n)
    a = np.where(rng.random(n) < 0.7, small, a)
    a[:4] = [fp.INT32_MIN, fp.INT32_MAX, 0, -1]
    m = rng.integers(2**30, 2**31, size=n)
    m[:8] = [2**31 - 1, 2**30, 0, 0, 2**31 - 1, 2**30, 1, 2]
    sh = rng.integers(-31, 32, size=n)
    out_d = np.empty(n, np.int64)
    out_s = np.zeros(n, np.int64)
    run(a, m, sh, out_d, out_s)
    _assert_int_equal(out_d, fp.multiply_by_quantized_multiplier(a, m, sh), "double rounding")
    ok = sh <= 30
    _assert_int_equal(out_s[ok], fp.multiply_by_quantized_multiplier_single(a[ok], m[ok], sh[ok]),
                      "single rounding")


def test_double_and_single_rounding_differ_by_at_most_one(rng, record_property):
    """Rate at which the two TFLite modes differ on random accumulators
    (|A| < 2**20, M uniform in [2**30, 2**31), shift uniform in [-16, -1])."""
    n = 200_000
    a = rng.integers(-(2**20), 2**20, size=n)
    m = rng.integers(2**30, 2**31, size=n)
    sh = rng.integers(-16, 0, size=n)
    d = fp.multiply_by_quantized_multiplier(a, m, sh)
    s = fp.multiply_by_quantized_multiplier_single(a, m, sh)
    assert np.abs(d - s).max() == 1
    rate = float(np.mean(d != s))
    record_property("double_vs_single_rate", rate)
    assert 0.02 < rate < 0.045, rate  # ~3.2% for this distribution (seeded)


# ---------------------------------------------------------------- requantize
def _ratio_configs(rng, n, qin, qout, *, single):
    """``(s1, z1, s2, z2)`` arrays: typical ratios, ratios above 1 (up to
    2**30, where ``x << shift`` wraps in int32), ratios just off powers of two,
    and tiny ratios (shift < -31 flushes the multiplier to 0)."""
    s2 = _log_scales(rng, n, -30, 20).astype(np.float64)
    kind = rng.integers(0, 5, size=n)
    ratio = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3],
        [np.exp2(rng.uniform(-12, 4, size=n)),
         np.exp2(rng.uniform(0, 60 if single else 30, size=n)),
         np.exp2(rng.integers(-34, 30, size=n)) * (1 + rng.integers(-3, 4, size=n) * 2.0**-23),
         np.exp2(rng.uniform(-40, -30, size=n))],
        np.exp2(rng.uniform(-4, 1, size=n)),
    )
    s1 = (s2 * ratio).astype(np.float32)
    ok = (s1 >= F32_TINY) & np.isfinite(s1)
    if not single:  # 1 << shift is undefined in C++ beyond shift 31: stay below 2**31
        ok &= s1.astype(np.float64) / s2.astype(np.float32).astype(np.float64) < 2.0**31
    s1 = np.where(ok, s1, np.float32(0.5) * s2.astype(np.float32))
    z1 = rng.integers(qin.qmin, qin.qmax, size=n, endpoint=True)
    z2 = rng.integers(qout.qmin, qout.qmax, size=n, endpoint=True)
    z1[:2] = [qin.qmin, qin.qmax]
    z2[:2] = [qout.qmax, qout.qmin]
    return s1, z1, s2.astype(np.float32), z2


def _tflite_params(s1, s2, single):
    """The oracle's (M, shift) per entry, from ``double(s1) / double(s2)``."""
    pairs = [fp.quantize_multiplier(float(a) / float(b), single_rounding=single)
             for a, b in zip(np.asarray(s1, np.float32), np.asarray(s2, np.float32))]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def _requant_oracle(q, s1, z1, s2, z2, qout, single):
    m, sh = _tflite_params(np.atleast_1d(s1), np.atleast_1d(s2), single)
    shape = (-1,) + (1,) * (np.ndim(q) - 1)
    return fp.requantize(q, np.reshape(z1, shape), m.reshape(shape), sh.reshape(shape),
                         np.reshape(z2, shape), qout.qmin, qout.qmax, single_rounding=single)


ALL_DTYPE_PAIRS = [(a, b) for a in DTYPES for b in DTYPES]
PAIR_IDS = [f"{a}-to-{b}" for a in DTYPE_IDS for b in DTYPE_IDS]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("pin", "pout"), ALL_DTYPE_PAIRS, ids=PAIR_IDS)
def test_requantize_per_tensor_all_inputs_match_oracle(rng, profile, pin, pout):
    (qin, npin), (qout, npout) = pin, pout
    single = profile == "tflite_single"
    n = 160
    s1, z1, s2, z2 = _ratio_configs(rng, n, qin, qout, single=single)
    info = np.iinfo(npin)
    values = np.arange(info.min, info.max + 1).astype(npin)
    got = np.stack([
        qops.requantize(qops.make_per_tensor_qtensor(values, float(a), int(b), qin),
                        float(c), int(d), qout, numerics=profile).int_repr()
        for a, b, c, d in zip(s1, z1, s2, z2)
    ])
    want = _requant_oracle(np.tile(values.astype(np.int64), (n, 1)), s1, z1, s2, z2, qout, single)
    bad = np.flatnonzero((got != want.astype(npout)).any(axis=1))
    assert bad.size == 0, (
        f"{bad.size} of {n} configurations differ; first: s1={s1[bad[0]]!r} z1={z1[bad[0]]} "
        f"s2={s2[bad[0]]!r} z2={z2[bad[0]]}"
    )
    _assert_int_equal(got, want.astype(npout))


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(("pin", "pout"), [ALL_DTYPE_PAIRS[3], ALL_DTYPE_PAIRS[0]], ids=["qint8", "quint8"])
def test_requantize_per_channel_matches_oracle(rng, profile, pin, pout):
    """Per-channel input (one (s1, z1) per row, all 256 values in each row), a
    per-tensor output; two large calls of 1024 channels."""
    (qin, npin), (qout, npout) = pin, pout
    single = profile == "tflite_single"
    c = 1024
    info = np.iinfo(npin)
    rows = np.stack([rng.permutation(np.arange(info.min, info.max + 1)) for _ in range(c)]).astype(npin)
    s1, z1, s2_all, z2_all = _ratio_configs(rng, c, qin, qout, single=single)
    for axis in (0, 1):
        s2, z2 = s2_all[axis], z2_all[axis]
        # ratios against this call's output scale (keep them below 2**31)
        ok = single | (s1.astype(np.float64) / np.float64(s2) < 2.0**31)
        s1c = np.where(ok, s1, s2)
        data = rows if axis == 0 else np.ascontiguousarray(rows.T)
        qt = qops.make_per_channel_qtensor(data, s1c.astype(np.float64), z1, axis, qin)
        got = qops.requantize(qt, float(s2), int(z2), qout, numerics=profile).int_repr()
        want = _requant_oracle(rows.astype(np.int64), s1c, z1, np.full(c, s2), np.full(c, z2), qout, single)
        _assert_int_equal(got, (want if axis == 0 else want.T).astype(npout), f"axis={axis}")


@pytest.mark.parametrize("profile", PROFILES)
def test_requantize_qint32_input_wraps_in_int32(rng, profile):
    """qint32 input: ``q - z1`` and the final ``+ z2`` are int32 operations."""
    single = profile == "tflite_single"
    q = rng.integers(-(2**31), 2**31, size=1 << 14, dtype=np.int64)
    q[:4] = [fp.INT32_MIN, fp.INT32_MAX, 0, -1]
    for s1, z1, s2, z2 in ((1.0, 0, 1.0, 0), (2.0**-20, 2**31 - 1, 1.0, 5), (0.37, -(2**31), 0.5, 7),
                           (1e-3, 12345, 0.25, 127), (2.0**-32, 3, 1.0, 0)):
        for qout, npout in DTYPES:
            z2 = min(max(z2, qout.qmin), qout.qmax)
            qt = qops.make_per_tensor_qtensor(q.astype(np.int32), s1, z1, qops.qint32)
            got = qops.requantize(qt, s2, z2, qout, numerics=profile).int_repr()
            want = _requant_oracle(q[None, :], np.float32(s1), z1, np.float32(s2), z2, qout, single)[0]
            _assert_int_equal(got, want.astype(npout), f"s1={s1} z1={z1} s2={s2} z2={z2}")


@pytest.mark.parametrize("z2", [5, -5])
def test_requantize_output_zero_point_addition_wraps(z2):
    """``MultiplyByQuantizedMultiplier(...) + z2`` is an int32 addition.  With
    single rounding and a ratio >= 2**31 (multiplier saturated to
    ``(2**31 - 1, 30)``), ``x = +-2`` gives ``+-(2**31 - 1)`` and the zero
    point wraps it around: the output clamps to the opposite end."""
    q = np.int8([2, -2, 1, -1, 0, 127, -128])
    qt = qops.make_per_tensor_qtensor(q, 1.0, 0, qops.qint8)
    got = qops.requantize(qt, 2.0**-31, z2, qops.qint8, numerics="tflite_single").int_repr()
    want = _requant_oracle(q[None, :].astype(np.int64), np.float32(1.0), 0, np.float32(2.0**-31), z2,
                           qops.qint8, True)[0]
    assert want[0 if z2 > 0 else 1] == (-128 if z2 > 0 else 127)
    _assert_int_equal(got, want.astype(np.int8))


def test_requantize_double_rounding_left_shift_wraps():
    """A ratio in [2**30, 2**31) gives shift 31: ``x * (1 << 31)`` wraps in
    int32 (odd x -> INT32_MIN, even x -> 0) before the high multiply."""
    s1, s2 = np.float32(2 - 2.0**-23), np.float32(2.0**-30)
    q = np.arange(-128, 128).astype(np.int8)
    for z2 in (-128, 0, 127):
        qt = qops.make_per_tensor_qtensor(q, float(s1), 3, qops.qint8)
        got = qops.requantize(qt, float(s2), z2, qops.qint8, numerics="tflite").int_repr()
        want = _requant_oracle(q[None, :].astype(np.int64), s1, 3, s2, z2, qops.qint8, False)[0]
        _assert_int_equal(got, want.astype(np.int8), f"z2={z2}")


@pytest.mark.parametrize("profile", PROFILES)
def test_large_inputs_match_oracle(rng, profile):
    """2**18 elements per call run the parallel and lookup-table drivers; the
    expected values are the oracle's, looked up per input level."""
    single = profile == "tflite_single"
    levels = np.arange(-128, 128)
    idx = rng.integers(0, 256, size=1 << 18)
    q = levels[idx].astype(np.int8)
    s1, z1, s2, z2 = _ratio_configs(rng, 4, qops.qint8, qops.qint8, single=single)
    for a, b, c, d in zip(s1, z1, s2, z2):
        qt = qops.make_per_tensor_qtensor(q, float(a), int(b), qops.qint8)
        got = qops.requantize(qt, float(c), int(d), qops.qint8, numerics=profile).int_repr()
        table = _requant_oracle(levels[None, :], a, b, c, d, qops.qint8, single)[0]
        _assert_int_equal(got, table[idx].astype(np.int8), f"s1={a!r} z1={b} s2={c!r} z2={d}")
        got = qops.dequantize(qt, numerics=profile)
        want = _dequantize_oracle(levels, a, b)[idx]
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    # per-channel, 3 channels along axis 1
    q3 = q[: 3 * 87381].reshape(-1, 3)
    i3 = idx[: 3 * 87381].reshape(-1, 3)
    qt = qops.make_per_channel_qtensor(q3, s1[:3].astype(np.float64), z1[:3], 1, qops.qint8)
    got = qops.requantize(qt, float(s2[0]), int(z2[0]), qops.qint8, numerics=profile).int_repr()
    tables = _requant_oracle(np.tile(levels, (3, 1)), s1[:3], z1[:3], np.full(3, s2[0]), np.full(3, z2[0]),
                             qops.qint8, single)
    _assert_int_equal(got, tables[np.arange(3)[None, :], i3].astype(np.int8), "per-channel")
