"""``numerics="onnxruntime"`` against onnxruntime's own QuantizeLinear / DequantizeLinear
(written against onnxruntime 1.32.0, CPU execution provider, opset 21 models).

Every comparison is bit-exact: integers with their dtype, dequantized floats by
their float32 bit patterns.  Each configuration runs in a few large calls (at
least a million values per dtype and scheme) through one cached onnxruntime
session; scales and zero points are graph inputs.
"""

import numpy as np
import pytest

import qops
from tests.oracles import exact

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from tests.oracles import onnx_models as onnx_peer  # noqa: E402

NUMERICS = "onnxruntime"
DTYPES = [(qops.quint8, np.uint8), (qops.qint8, np.int8)]
DTYPE_IDS = ["quint8", "qint8"]

#: Scales every test sees: the smallest normal float32, tiny, large, powers of
#: two, short significands (exact ties), long ones.
FIXED_SCALES = np.array(
    [2.0**-126, 1e-30, 3.3e-20, 2.0**-20, 1.0 / 65536, 0.00390625, 0.0123, 0.1, 1.0 / 3, 0.5,
     0.75, 1.0, 1.25, 3.0, 7.5, 1e3, 2.0**40, 1e30, 1e36],
    dtype=np.float32,
)


def _scales(rng, n):
    """``n`` float32 scales: :data:`FIXED_SCALES` then log-uniform ones."""
    extra = np.exp2(rng.uniform(-40, 40, size=max(n - FIXED_SCALES.size, 0)))
    return np.concatenate([FIXED_SCALES, extra.astype(np.float32)])[:n]


def _zero_points(rng, n, qmin, qmax):
    """``n`` zero points: the range ends, odd values, then random ones."""
    fixed = [qmin, qmax, 0 if qmin < 0 else 128, 3, qmin + 1, qmax - 2]
    return np.array((fixed + list(rng.integers(qmin, qmax, size=n, endpoint=True)))[:n], np.int64)


def _assert_int_equal(actual, expected, what):
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_array_equal(actual, expected, err_msg=what)


def _assert_f32_bits_equal(actual, expected, what):
    assert actual.dtype == np.float32 and expected.dtype == np.float32, what
    np.testing.assert_array_equal(actual.view(np.uint32), expected.view(np.uint32), err_msg=what)


def _channel_floats(rng, per_channel, scales, zps, qmin, qmax):
    """Rows of stress values, one row per channel, shape ``(C, per_channel)``."""
    return np.stack([exact.stress_floats(rng, per_channel, s, z, qmin, qmax) for s, z in zip(scales, zps)])


def _to_axis(rows, shape, axis):
    """Lay ``(C, n)`` rows out as an array of ``shape`` whose axis ``axis`` is C
    (a non-contiguous view)."""
    moved = list(shape)
    c = moved.pop(axis)
    return np.moveaxis(rows.reshape([c] + moved), 0, axis)


# ------------------------------------------------------------------ quantize
@pytest.mark.parametrize(("qdtype", "npdtype"), DTYPES, ids=DTYPE_IDS)
def test_quantize_per_tensor_matches_quantize_linear(rng, qdtype, npdtype):
    sizes = [16384] * 60 + [1 << 18] * 2  # small calls run serially, large ones in parallel
    scales = _scales(rng, len(sizes))
    zps = _zero_points(rng, len(sizes), qdtype.qmin, qdtype.qmax)
    compared = 0
    for s, z, n in zip(scales, zps, rng.permutation(sizes)):
        x = exact.stress_floats(rng, n, s, z, qdtype.qmin, qdtype.qmax)
        got = qops.quantize_per_tensor(x, float(s), int(z), qdtype, numerics=NUMERICS).int_repr()
        want = onnx_peer.quantize_linear(x, s, z, npdtype)
        _assert_int_equal(got, want, f"scale={s!r} zero_point={z}")
        compared += x.size
    assert compared >= 1_000_000


@pytest.mark.parametrize(("qdtype", "npdtype"), DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    ("shape", "axis"),
    [((31, 16384), 0), ((16, 33, 1024), 1), ((8, 4, 128, 127), -1), ((1, 5), 1)],
    ids=["axis0", "axis1-of-3", "last-of-4", "tiny"],
)
def test_quantize_per_channel_matches_quantize_linear(rng, qdtype, npdtype, shape, axis):
    c = shape[axis]
    per_channel = int(np.prod(shape)) // c
    scales = _scales(rng, c)
    zps = _zero_points(rng, c, qdtype.qmin, qdtype.qmax)
    rows = _channel_floats(rng, per_channel, scales, zps, qdtype.qmin, qdtype.qmax)
    x = _to_axis(rows, shape, axis)
    got = qops.quantize_per_channel(x, scales.astype(np.float64), zps, axis, qdtype, numerics=NUMERICS)
    want = onnx_peer.quantize_linear(x, scales, zps, npdtype, axis=axis)
    _assert_int_equal(got.int_repr(), want, f"shape={shape} axis={axis}")


def test_quantize_nan_gives_qmin_and_infinities_saturate():
    x = np.float32([np.nan, np.inf, -np.inf, 2.5, 3.5])
    for qdtype, npdtype in DTYPES:
        got = qops.quantize_per_tensor(x, 1.0, 3, qdtype, numerics=NUMERICS).int_repr()
        np.testing.assert_array_equal(got, np.array([qdtype.qmin, qdtype.qmax, qdtype.qmin, 5, 7], npdtype))
        _assert_int_equal(got, onnx_peer.quantize_linear(x, 1.0, 3, npdtype), qdtype.name)


# ---------------------------------------------------------------- dequantize
def _all_values(npdtype, reps):
    info = np.iinfo(npdtype)
    return np.tile(np.arange(info.min, info.max + 1, dtype=np.int64), reps).astype(npdtype)


@pytest.mark.parametrize(("qdtype", "npdtype"), DTYPES, ids=DTYPE_IDS)
def test_dequantize_per_tensor_matches_dequantize_linear(rng, qdtype, npdtype):
    # every value 16 times under 192 parameter sets (serial calls), then
    # 1024 times under 4 more (large calls)
    reps = [16] * 192 + [1024] * 4
    scales = _scales(rng, len(reps))
    zps = _zero_points(rng, len(reps), qdtype.qmin, qdtype.qmax)
    compared = 0
    for s, z, r in zip(scales, zps, rng.permutation(reps)):
        q = rng.permutation(_all_values(npdtype, r))
        qt = qops.make_per_tensor_qtensor(q, float(s), int(z), qdtype)
        got = qops.dequantize(qt, numerics=NUMERICS)
        _assert_f32_bits_equal(got, onnx_peer.dequantize_linear(q, s, z), f"scale={s!r} zero_point={z}")
        compared += q.size
    assert compared >= 1_000_000


@pytest.mark.parametrize(("qdtype", "npdtype"), DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("c", "reps", "axis"), [(4096, 1, 0), (4096, 1, 1), (3, 512, 0)],
                         ids=["4096ch-axis0", "4096ch-axis1", "3ch-large"])
def test_dequantize_per_channel_matches_dequantize_linear(rng, qdtype, npdtype, c, reps, axis):
    # every value under 4096 (scale, zero point) pairs (1,048,576 values), or
    # 512 times under 3 pairs
    rows = np.stack([rng.permutation(_all_values(npdtype, reps)) for _ in range(c)])
    q = np.ascontiguousarray(rows if axis == 0 else rows.T)
    scales = _scales(rng, c)
    zps = _zero_points(rng, c, qdtype.qmin, qdtype.qmax)
    qt = qops.make_per_channel_qtensor(q, scales.astype(np.float64), zps, axis, qdtype)
    got = qops.dequantize(qt, numerics=NUMERICS)
    _assert_f32_bits_equal(got, onnx_peer.dequantize_linear(q, scales, zps, axis=axis), f"axis={axis}")


def test_dequantize_qint32_wraps_like_dequantize_linear(rng):
    """int32 input: onnxruntime subtracts the zero point in int32 (wrapping)."""
    n = 1 << 16
    q = rng.integers(-(2**31), 2**31, size=n, dtype=np.int64)
    q[:6] = [-(2**31), 2**31 - 1, 0, 1, -1, 2**24 + 1]
    q = q.astype(np.int32)
    for s in (1.0, 0.1, 2.0**-20, 3e-30, 1e20):
        for z in (0, 5, -7, 2**31 - 1, -(2**31)):
            qt = qops.make_per_tensor_qtensor(q, s, z, qops.qint32)
            got = qops.dequantize(qt, numerics=NUMERICS)
            want = onnx_peer.dequantize_linear(q, np.float32(s), np.int32(z))
            _assert_f32_bits_equal(got, want, f"scale={s!r} zero_point={z}")
    # per-axis
    c = 64
    q2 = q.reshape(c, -1)
    scales = _scales(rng, c)
    zps = rng.integers(-(2**31), 2**31, size=c)
    qt = qops.make_per_channel_qtensor(q2, scales.astype(np.float64), zps, 0, qops.qint32)
    _assert_f32_bits_equal(
        qops.dequantize(qt, numerics=NUMERICS),
        onnx_peer.dequantize_linear(q2, scales, zps.astype(np.int32), axis=0),
        "per-axis qint32",
    )


# ---------------------------------------------------------------- requantize
def _requant_configs(rng, n, qin, qout):
    """``n`` tuples ``(s1, z1, s2, z2)``: ratios that make exact ties (1/2,
    3/2, 5/2, 1/4, powers of two), ratios near 1 and random ones."""
    s1 = _scales(rng, n)
    tie_ratios = np.array([2.0, 2.0 / 3, 0.4, 4.0, 0.5, 1.0, 0.25, 8.0, 1.0 + 2.0**-20, 1 - 2.0**-20])
    pick = rng.integers(0, tie_ratios.size + 6, size=n)
    ratio = np.where(pick < tie_ratios.size, tie_ratios[np.minimum(pick, tie_ratios.size - 1)],
                     np.exp2(rng.uniform(-8, 8, size=n)))
    s2 = (s1.astype(np.float64) * ratio).astype(np.float32)
    ok = np.isfinite(s2) & (s2 >= np.finfo(np.float32).tiny)
    s2 = np.where(ok, s2, s1)
    z1 = _zero_points(rng, n, qin.qmin, qin.qmax)
    z2 = rng.permutation(_zero_points(rng, n, qout.qmin, qout.qmax))
    return zip(s1, z1, s2, z2)


@pytest.mark.parametrize(("qin", "npin"), DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("qout", "npout"), DTYPES, ids=["to-quint8", "to-qint8"])
def test_requantize_per_tensor_matches_dequantize_quantize_linear(rng, qin, npin, qout, npout):
    reps = [16] * 192 + [1024] * 4  # serial calls, then large ones
    compared = 0
    for (s1, z1, s2, z2), r in zip(_requant_configs(rng, len(reps), qin, qout), rng.permutation(reps)):
        q = rng.permutation(_all_values(npin, r))
        qt = qops.make_per_tensor_qtensor(q, float(s1), int(z1), qin)
        got = qops.requantize(qt, float(s2), int(z2), qout, numerics=NUMERICS).int_repr()
        want = onnx_peer.requantize_linear(q, s1, z1, s2, z2, npout)
        _assert_int_equal(got, want, f"s1={s1!r} z1={z1} s2={s2!r} z2={z2}")
        compared += q.size
    assert compared >= 1_000_000


@pytest.mark.parametrize(("qin", "npin"), DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("qout", "npout"), DTYPES, ids=["to-quint8", "to-qint8"])
@pytest.mark.parametrize(("c", "reps"), [(4096, 1), (5, 256)], ids=["4096ch", "5ch-large"])
def test_requantize_per_channel_matches_dequantize_quantize_linear(rng, qin, npin, qout, npout, c, reps):
    # every input value under 4096 input parameter sets (1,048,576 values), or
    # 256 times under 5
    rows = np.stack([rng.permutation(_all_values(npin, reps)) for _ in range(c)])
    configs = list(_requant_configs(rng, c, qin, qout))
    s1 = np.array([cfg[0] for cfg in configs], np.float32)
    z1 = np.array([cfg[1] for cfg in configs], np.int64)
    for s2, z2 in ((configs[0][2], configs[0][3]), (np.float32(0.0123), 1), (np.float32(1.0), qout.qmax)):
        qt = qops.make_per_channel_qtensor(rows, s1.astype(np.float64), z1, 0, qin)
        got = qops.requantize(qt, float(s2), int(z2), qout, numerics=NUMERICS).int_repr()
        want = onnx_peer.requantize_linear(rows, s1, z1, s2, z2, npout, axis=0)
        _assert_int_equal(got, want, f"s2={s2!r} z2={z2}")


def test_requantize_qint32_input_matches_dequantize_quantize_linear(rng):
    q = rng.integers(-(2**31), 2**31, size=1 << 16, dtype=np.int64).astype(np.int32)
    q[:4] = [-(2**31), 2**31 - 1, 0, 1]
    small = rng.integers(-2000, 2000, size=1 << 16).astype(np.int32)
    for data in (q, small):
        for s1, z1, s2, z2 in ((0.5, 0, 1.0, 3), (1e-3, 7, 0.1, 128), (2.0**-20, -(2**31), 2.0**-10, 0)):
            qt = qops.make_per_tensor_qtensor(data, s1, z1, qops.qint32)
            got = qops.requantize(qt, s2, z2, qops.quint8, numerics=NUMERICS).int_repr()
            want = onnx_peer.requantize_linear(data, np.float32(s1), np.int32(z1), np.float32(s2), z2,
                                               np.uint8)
            _assert_int_equal(got, want, f"s1={s1} z1={z1} s2={s2} z2={z2}")
