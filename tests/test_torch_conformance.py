"""qops against torch 2.13 (the fbgemm / qnnpack / onednn profiles).

quantize, dequantize, per-channel and float-qparams quantization, the
sub-byte types, requantize, dynamic quantization and ``QTensor.equal``.
torch is the oracle (``tests/oracles/torch_peer.py``): integers and float32
bits must be identical, and the sweeps are built from the cases where a
near miss would show (exact ties with odd and even zero points, NaN,
infinities, values beyond int32, tiny and huge scales, every zero point).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import qops  # noqa: E402
from tests.oracles import torch_peer as peer  # noqa: E402

pytestmark = pytest.mark.filterwarnings(f"ignore:{peer.DEPRECATION_MESSAGE}:UserWarning")

TORCH_PROFILES = ("fbgemm", "qnnpack", "onednn")
BYTE_TYPES = (qops.quint8, qops.qint8, qops.qint32)
F32_MAX = float(np.finfo(np.float32).max)


@pytest.fixture(autouse=True, scope="module")
def fbgemm_engine():
    with peer.engine("fbgemm"):
        yield


def ids(dtypes):
    return [d.name for d in dtypes]


def bits(a):
    """float32 array -> its bit patterns, so that NaN == NaN and -0 != +0."""
    a = np.asarray(a)
    assert a.dtype == np.float32, a.dtype
    return a.view(np.uint32)


# ------------------------------------------------------------------ inputs
SPECIALS = np.float32([
    np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 3e9, -3e9,
    2.0**31, -(2.0**31), 2.0**31 - 128, -(2.0**31) - 256, 2.0**63, -(2.0**63), F32_MAX, -F32_MAX,
    1e-45, -1e-45, 1e-38, -1e-38,
])


def quantize_inputs(rng, n, scale, qmin, qmax, zp):
    """``n`` float32 values that stress quantization at ``scale`` and ``zp``.

    A sixth each: normal values inside the range, normal values far outside
    it, exact ties ``(k + 0.5) * scale`` (exact in float64, then rounded to
    float32), ties formed in float32 as ``fl(fl(k + 0.5) * fl(scale))`` and
    their float32 neighbours, random float32 bit patterns (every exponent,
    NaN payloads, subnormals); plus the specials above, values that land just
    beyond int32 once scaled, and ``(qmin - zp)`` / ``(qmax - zp)`` boundaries.
    """
    s32 = np.float32(scale)
    half_span = min((qmax - qmin) / 2, 2.0**24)
    m = n // 6
    k = rng.integers(int(qmin - zp - 3), int(qmax - zp + 3), m, endpoint=True).astype(np.float64)
    if qmax - qmin > 2**24:  # qint32: k of every size
        k = np.round(k * 2.0 ** -rng.integers(0, 32, m)).astype(np.float64)
    k32 = k.astype(np.float32)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        f32_ties = (k32 + np.float32(0.5)) * s32
        parts = [
            (rng.normal(size=m) * half_span / 2 * scale).astype(np.float32),
            (rng.normal(size=m) * half_span * 8 * scale).astype(np.float32),
            ((k + 0.5) * scale).astype(np.float32),
            f32_ties,
            np.nextafter(f32_ties, np.float32(np.inf) * np.sign(rng.normal(size=m)).astype(np.float32)),
            rng.integers(0, 2**32, m, dtype=np.uint64).astype(np.uint32).view(np.float32),
            SPECIALS,
            (np.float32([qmin - zp, qmax - zp, qmin - zp - 0.5, qmax - zp + 0.5]) * s32),
            (np.float32([2.0**31 + 2**8, -(2.0**31) - 2**8, 2.0**40, -(2.0**40)]) * s32),
        ]
    x = np.concatenate(parts).astype(np.float32)
    rng.shuffle(x)
    return x


def odd_zero_point(rng, dtype):
    return int(rng.integers(dtype.qmin, dtype.qmax, endpoint=True)) | 1


#: Scales: powers of two (exact reciprocals), ordinary, tiny, huge.
SCALES = (1.0, 0.5, 2.0**-10, 2.0**7, 0.1, 0.0137, 3.3e-5, 7.77, 1e-30, 2.0**-126, 1e30, 2.0**100)


# ---------------------------------------------------------- 1. quantize
@pytest.mark.parametrize("dtype", BYTE_TYPES, ids=ids(BYTE_TYPES))
def test_quantize_per_tensor_matches_torch(dtype, rng):
    """Over 1.1M values per dtype: the same integers as torch, every torch profile."""
    configs = [(s, odd_zero_point(rng, dtype)) for s in SCALES]
    configs += [(1.0, dtype.qmin), (0.1, dtype.qmax), (2.0**-3, 0), (0.37, odd_zero_point(rng, dtype) - 1)]
    compared = 0
    for scale, zp in configs:
        x = quantize_inputs(rng, 70_000, scale, dtype.qmin, dtype.qmax, zp)
        want = peer.quantize_per_tensor(x, scale, zp, dtype).int_repr
        for profile in TORCH_PROFILES:
            got = qops.quantize_per_tensor(x, scale, zp, dtype, numerics=profile).int_repr()
            np.testing.assert_array_equal(got, want, err_msg=f"{profile} scale={scale} zp={zp}")
            assert got.dtype == want.dtype
        compared += x.size
    assert compared >= 1_000_000


@pytest.mark.parametrize("dtype", BYTE_TYPES, ids=ids(BYTE_TYPES))
def test_quantize_per_tensor_strided_and_tiny_inputs(dtype, rng):
    """Non-contiguous views, empty, one-element and every length up to 70
    (torch's vector loop and its scalar tail) with NaN at every position."""
    zp = odd_zero_point(rng, dtype)
    base = quantize_inputs(rng, 60_000, 0.05, dtype.qmin, dtype.qmax, zp)[:60_000].reshape(100, -1)
    for view in (base[:, ::3], base.T, base[::-1, 1::2]):
        want = peer.quantize_per_tensor(np.ascontiguousarray(view), 0.05, zp, dtype).int_repr
        np.testing.assert_array_equal(qops.quantize_per_tensor(view, 0.05, zp, dtype).int_repr(), want)
    for n in range(0, 71):
        x = (rng.normal(size=n) * 20).astype(np.float32)
        # NaN, +inf, -inf side by side at every position (short lengths) or
        # at the ends and in the middle (longer ones)
        starts = range(n) if n <= 40 else (0, 1, n // 2 - 1, n // 2, n - 3, n - 2, n - 1)
        for i in starts if n else [None]:
            row = x.copy()
            if n:
                row[[i, (i + 1) % n, (i + 2) % n]] = [np.nan, np.inf, -np.inf]
            want = peer.quantize_per_tensor(row, 0.1, zp, dtype).int_repr
            np.testing.assert_array_equal(
                qops.quantize_per_tensor(row, 0.1, zp, dtype).int_repr(), want, err_msg=f"n={n} i={i}"
            )


def test_torch_quantize_is_engine_independent(rng):
    """The fact behind one recipe for three profiles, re-measured."""
    for dtype in BYTE_TYPES:
        x = quantize_inputs(rng, 60_000, 0.1, dtype.qmin, dtype.qmax, 3)
        want = peer.quantize_per_tensor(x, 0.1, 3, dtype)
        for name in ("qnnpack", "onednn", "x86"):
            with peer.engine(name):
                got = peer.quantize_per_tensor(x, 0.1, 3, dtype)
            np.testing.assert_array_equal(got.int_repr, want.int_repr, err_msg=name)
            np.testing.assert_array_equal(bits(got.dequantized), bits(want.dequantized), err_msg=name)


# Facts measured in torch 2.13.0, checked here on torch and on qops alike.
X_FACTS = np.float32([np.nan, np.inf, -np.inf, 1e30, 3e9, -3e9, 2.5, 0.5, -0.5, -1.5])
FACTS = [
    # (dtype, how, expected integers for X_FACTS at scale 1, zero point 3)
    (qops.quint8, "per_tensor", [255, 255, 0, 255, 255, 0, 6, 4, 2, 2]),  # NaN -> qmax
    (qops.qint8, "per_tensor", [127, 127, -128, 127, 127, -128, 6, 4, 2, 2]),
    (qops.qint32, "per_tensor", [-(2**31), 2**31 - 1, -(2**31), 2**31 - 1, 2**31 - 1, -(2**31), 6, 4, 2, 2]),
    (qops.quint8, "per_channel", [0, 255, 0, 255, 255, 0, 6, 4, 2, 2]),  # NaN -> 0
    (qops.qint8, "per_channel", [0, 127, -128, 127, 127, -128, 6, 4, 2, 2]),
    (qops.qint32, "per_channel", [-(2**31), 2**31 - 1, -(2**31), 2**31 - 1, 2**31 - 1, -(2**31), 6, 4, 2, 2]),
    # float zero point 3.0: 64-bit lrint truncated to int32, so NaN, inf and
    # 1e30 give 0 and -3e9 wraps to a positive int32 (qmax)
    (qops.quint8, "float_qparams", [0, 0, 0, 0, 0, 255, 6, 4, 2, 2]),
    (qops.qint8, "float_qparams", [0, 0, 0, 0, -128, 127, 6, 4, 2, 2]),
    # sub-byte per-tensor: round, THEN add zp (2.5 -> 2 + 3); NaN/inf -> 0
    (qops.quint4x2, "per_tensor", [0, 0, 0, 0, 15, 0, 5, 3, 3, 1]),
    (qops.quint2x4, "per_tensor_zp1", [0, 0, 0, 0, 3, 0, 3, 1, 1, 0]),
]


@pytest.mark.parametrize("dtype, how, expected", FACTS, ids=[f"{d.name}-{h}" for d, h, _ in FACTS])
def test_torch_facts(dtype, how, expected):
    x = np.stack([X_FACTS, X_FACTS])
    if how.startswith("per_tensor"):
        zp = 1 if how.endswith("zp1") else 3
        t = peer.quantize_per_tensor(X_FACTS, 1.0, zp, dtype)
        q = qops.quantize_per_tensor(X_FACTS, 1.0, zp, dtype)
        if dtype.is_subbyte:  # compare the values behind the packed bytes
            got_torch = np.rint(t.dequantized).astype(np.int64) + zp
            got_qops = np.rint(q.dequantize()).astype(np.int64) + zp
        else:
            got_torch, got_qops = t.int_repr, q.int_repr()
    else:
        zps = np.array([3.0, 3.0]) if how == "float_qparams" else np.array([3, 3])
        t = peer.quantize_per_channel(x, [1.0, 1.0], zps, 0, dtype)
        q = qops.quantize_per_channel(x, [1.0, 1.0], zps, 0, dtype)
        got_torch, got_qops = t.int_repr[1], q.int_repr()[1]
    np.testing.assert_array_equal(got_torch, np.array(expected, dtype=got_torch.dtype), err_msg="torch moved")
    np.testing.assert_array_equal(got_qops, got_torch)


# ---------------------------------------------------------- 2. dequantize
def dequantize_configs(rng, dtype, n):
    scales = np.concatenate([
        [1.0, 0.1, 1e-30, 1e30, 2.0**-126, 2.0**100, 1 / 3, 3e-3],
        np.exp(rng.uniform(np.log(1e-12), np.log(1e12), n - 8)),
    ])
    zps = rng.integers(dtype.qmin, dtype.qmax, n, endpoint=True)
    zps[:3] = [dtype.qmin, dtype.qmax, 0]
    zps[3:6] = zps[3:6] | 1
    return scales, zps


@pytest.mark.parametrize("dtype", BYTE_TYPES, ids=ids(BYTE_TYPES))
def test_dequantize_per_tensor_bits(dtype, rng):
    """Every 8-bit value under 200 (scale, zp) pairs; qint32 values and zero
    points at the extremes (torch subtracts in int32, wrapping around)."""
    scales, zps = dequantize_configs(rng, dtype, 200 if dtype.bits == 8 else 40)
    for scale, zp in zip(scales, zps):
        if dtype.bits == 8:
            q = np.arange(dtype.qmin, dtype.qmax + 1).astype(dtype.storage)
        else:
            q = rng.integers(dtype.qmin, dtype.qmax, 20_000, endpoint=True)
            q[:6] = [dtype.qmin, dtype.qmax, 0, -1, zp, dtype.qmin + 1]
            q = q.astype(dtype.storage)
        want = peer.dequantize(peer.make_per_tensor(q, scale, zp))
        for profile in TORCH_PROFILES:
            got = qops.make_per_tensor_qtensor(q, scale, zp, dtype).dequantize(numerics=profile)
            np.testing.assert_array_equal(bits(got), bits(want), err_msg=f"{profile} scale={scale} zp={zp}")


@pytest.mark.parametrize("dtype", BYTE_TYPES, ids=ids(BYTE_TYPES))
def test_dequantize_per_channel_bits(dtype, rng):
    """Random integers, float64 scales from 1e-30 to 1e30, extreme zero points."""
    for shape, axis in (((9, 5001), 0), ((3, 11, 701), 1), ((2, 3, 4, 801), 3)):
        nch = shape[axis]
        q = rng.integers(dtype.qmin, dtype.qmax, shape, endpoint=True).astype(dtype.storage)
        scales = np.exp(rng.uniform(np.log(1e-30), np.log(1e30), nch))
        zps = rng.integers(dtype.qmin, dtype.qmax, nch, endpoint=True)
        zps[:2] = [dtype.qmin, dtype.qmax]
        want = peer.dequantize(peer.make_per_channel(q, scales, zps, axis))
        for profile in TORCH_PROFILES:
            got = qops.make_per_channel_qtensor(q, scales, zps, axis, dtype).dequantize(numerics=profile)
            np.testing.assert_array_equal(bits(got), bits(want), err_msg=f"{profile} {shape} axis={axis}")


# ---------------------------------------------------------- 3. per channel
SHAPES = ((1001,), (7, 3001), (5, 6, 701), (3, 4, 5, 301), (301, 5, 4, 3))


def per_channel_inputs(rng, shape, axis, scales, span):
    """Normal values, exact ties and specials, each row at its own scale."""
    bshape = [-1 if i == axis else 1 for i in range(len(shape))]
    s = np.broadcast_to(np.asarray(scales).reshape(bshape), shape).reshape(-1)
    x = rng.normal(size=s.size) * span * s
    k = rng.integers(-span - 4, span + 4, s.size)
    tie = rng.random(s.size) < 0.3
    x[tie] = (k[tie] + 0.5) * s[tie]
    x = x.astype(np.float32)
    spots = rng.integers(0, x.size, 4 * SPECIALS.size)
    x[spots] = np.tile(SPECIALS, 4)
    return x.reshape(shape)


@pytest.mark.parametrize("dtype", BYTE_TYPES, ids=ids(BYTE_TYPES))
def test_quantize_per_channel_matches_torch(dtype, rng):
    """Every axis of 1-D..4-D inputs: integers, parameters, scheme, dequantized bits."""
    span = 200 if dtype.bits == 8 else 2**30
    for shape in SHAPES:
        for axis in range(len(shape)):
            n = shape[axis]
            scales = np.exp(rng.uniform(np.log(1e-4), np.log(10.0), n))  # float64, kept
            scales[0] = 2.0**-6
            zps = rng.integers(dtype.qmin, dtype.qmax, n, endpoint=True)
            x = per_channel_inputs(rng, shape, axis, scales, span)
            want = peer.quantize_per_channel(x, scales, zps, axis, dtype)
            for profile in TORCH_PROFILES:
                q = qops.quantize_per_channel(x, scales, zps, axis, dtype, numerics=profile)
                where = f"{profile} shape={shape} axis={axis}"
                np.testing.assert_array_equal(q.int_repr(), want.int_repr, err_msg=where)
                np.testing.assert_array_equal(bits(q.dequantize()), bits(want.dequantized), err_msg=where)
            assert want.scales.dtype == np.float64 and want.zero_points.dtype == np.int64
            np.testing.assert_array_equal(q.q_per_channel_scales(), want.scales)
            np.testing.assert_array_equal(q.q_per_channel_zero_points(), want.zero_points)
            assert q.q_per_channel_scales().dtype == want.scales.dtype
            assert q.q_per_channel_zero_points().dtype == want.zero_points.dtype
            assert q.qscheme().name == want.qscheme == "per_channel_affine"
            assert q.q_per_channel_axis() == want.axis == axis


@pytest.mark.parametrize("dtype", BYTE_TYPES, ids=ids(BYTE_TYPES))
def test_quantize_per_channel_strided_and_empty_inputs(dtype, rng):
    """Permuted and sliced views (torch quantizes the logical values), an
    empty input with a non-empty channel axis, and one element."""
    base = per_channel_inputs(rng, (50, 41, 3), 2, [0.1, 0.02, 7.0], 100)
    zps = rng.integers(dtype.qmin, dtype.qmax, 3, endpoint=True)
    for view, axis in ((base.transpose(2, 0, 1)[:, ::2], 0), (base[::-3, 1::2], 2), (base.T, 0)):
        scales = [0.1, 0.02, 7.0]
        want = peer.quantize_per_channel(view, scales, zps, axis, dtype)
        q = qops.quantize_per_channel(view, scales, zps, axis, dtype)
        np.testing.assert_array_equal(q.int_repr(), want.int_repr)
        np.testing.assert_array_equal(bits(q.dequantize()), bits(want.dequantized))
    for x, axis in ((np.zeros((0, 3), np.float32), 1), (np.float32([[np.nan], [2.5], [-1e30]]).T, 1)):
        want = peer.quantize_per_channel(x, [0.1, 1.0, 0.5][: x.shape[axis]], zps[: x.shape[axis]], axis, dtype)
        q = qops.quantize_per_channel(x, [0.1, 1.0, 0.5][: x.shape[axis]], zps[: x.shape[axis]], axis, dtype)
        assert q.int_repr().shape == want.int_repr.shape
        np.testing.assert_array_equal(q.int_repr(), want.int_repr)


FLOAT_QP_TYPES = (qops.quint8, qops.qint8, qops.quint4x2, qops.quint2x4)


@pytest.mark.parametrize("dtype", FLOAT_QP_TYPES, ids=ids(FLOAT_QP_TYPES))
def test_quantize_per_channel_float_qparams_matches_torch(dtype, rng):
    """Float zero points (per_channel_affine_float_qparams): integers (packed
    bytes for the sub-byte types), dequantized bits and scheme."""
    span = (dtype.qmax - dtype.qmin) + 1
    for shape in SHAPES:
        for axis in range(len(shape)):
            n = shape[axis]
            scales = np.exp(rng.uniform(np.log(1e-4), np.log(10.0), n))
            zps = rng.uniform(-1.5 * span, 1.5 * span, n)
            zps[: min(n, 3)] = [0.5, -2.5, float(dtype.qmax) + 0.5][: min(n, 3)]  # exact ties
            x = per_channel_inputs(rng, shape, axis, scales, span)
            want = peer.quantize_per_channel(x, scales, zps, axis, dtype)
            for profile in TORCH_PROFILES:
                q = qops.quantize_per_channel(x, scales, zps, axis, dtype, numerics=profile)
                where = f"{profile} shape={shape} axis={axis}"
                np.testing.assert_array_equal(q.int_repr(), want.int_repr, err_msg=where)
                assert q.int_repr().dtype == want.int_repr.dtype
                np.testing.assert_array_equal(bits(q.dequantize()), bits(want.dequantized), err_msg=where)
            assert q.qscheme().name == want.qscheme == "per_channel_affine_float_qparams"


def test_float_qparams_parameters_match_torch(rng):
    x = rng.normal(size=(3, 17)).astype(np.float32)
    scales = np.array([0.1, 0.2 + 1e-12, 1 / 3])
    zps = np.array([0.1, -7.3, 100.25])
    want = peer.quantize_per_channel(x, scales, zps, 0, qops.quint8)
    q = qops.quantize_per_channel(x, scales, zps, 0, qops.quint8)
    assert want.scales.dtype == np.float32 and want.zero_points.dtype == np.float32
    assert q.q_per_channel_scales().dtype == want.scales.dtype
    np.testing.assert_array_equal(q.q_per_channel_scales(), want.scales)
    np.testing.assert_array_equal(q.q_per_channel_zero_points(), want.zero_points)
    # scales equal in float32 make equal tensors in torch
    other = scales + [1e-12, 0.0, 0.0]
    assert peer.quantize_per_channel(x, other, zps, 0, qops.quint8).tensor.equal(want.tensor)
    assert qops.quantize_per_channel(x, other, zps, 0, qops.quint8).equal(q)


# ---------------------------------------------------------- 4. sub-byte
SUBBYTE = (qops.quint4x2, qops.quint2x4)


def test_subbyte_packing_known_vector():
    x = np.float32([3, 2, 6, 8, 15])
    want = peer.quantize_per_tensor(x, 1.0, 0, qops.quint4x2).int_repr
    np.testing.assert_array_equal(want, np.uint8([35, 134, 15]))
    np.testing.assert_array_equal(qops.quantize_per_tensor(x, 1.0, 0, qops.quint4x2).int_repr(), want)


@pytest.mark.parametrize("dtype", SUBBYTE, ids=ids(SUBBYTE))
def test_subbyte_per_tensor_matches_torch(dtype, rng):
    """Packed bytes identical to torch's (torch packs the flat storage) for
    every zero point, odd lengths and multi-dimensional shapes, ties, NaN,
    inf; the dequantized bits too, and the packed bytes wrap back."""
    shapes = [(1,), (2,), (3,), (5,), (7,), (4, 3), (3, 5, 7), (2, 3, 3, 5), (1001, 3), (30_001,)]
    cases = [(shape, s, int(rng.integers(0, dtype.qmax + 1))) for shape in shapes
             for s in (1.0, 0.25, 0.0137, 1e-30, 1e30, 2.0**-126)]
    cases += [((2001, 7), s, zp) for zp in range(dtype.qmax + 1) for s in (0.1, 2.0**-4)]
    for shape, scale, zp in cases:
        n = int(np.prod(shape))
        x = quantize_inputs(rng, max(n, 6), scale, dtype.qmin, dtype.qmax, zp)[:n].reshape(shape)
        want = peer.quantize_per_tensor(x, scale, zp, dtype)
        q = qops.quantize_per_tensor(x, scale, zp, dtype)
        packed = q.int_repr()
        where = f"shape={shape} scale={scale} zp={zp}"
        assert packed.dtype == want.int_repr.dtype and packed.shape == want.int_repr.shape, where
        np.testing.assert_array_equal(packed, want.int_repr, err_msg=where)
        np.testing.assert_array_equal(bits(q.dequantize()), bits(want.dequantized), err_msg=where)
        back = qops.make_per_tensor_qtensor(packed, scale, zp, dtype, shape=shape)
        assert back.equal(q) and back.shape == tuple(shape)


# ---------------------------------------------------------- 5. requantize
def qtensor_pair(rng, dtype, scheme, shape):
    """The same random integers as a torch and a qops tensor."""
    q = rng.integers(dtype.qmin, dtype.qmax, shape, endpoint=True).astype(dtype.storage)
    q.reshape(-1)[:2] = [dtype.qmin, dtype.qmax]
    if scheme == "per_tensor":
        s = float(np.exp(rng.uniform(np.log(1e-4), np.log(10.0))))
        zp = int(rng.integers(dtype.qmin, dtype.qmax, endpoint=True))
        return peer.make_per_tensor(q, s, zp), qops.make_per_tensor_qtensor(q, s, zp, dtype)
    s = np.exp(rng.uniform(np.log(1e-4), np.log(10.0), shape[0]))
    zp = rng.integers(dtype.qmin, dtype.qmax, shape[0], endpoint=True)
    return peer.make_per_channel(q, s, zp, 0), qops.make_per_channel_qtensor(q, s, zp, 0, dtype)


REQUANT_OUT = (qops.quint8, qops.qint8, qops.qint32, qops.quint4x2)


REQUANT_IN = [(d, scheme) for d in BYTE_TYPES for scheme in ("per_tensor", "per_channel")]
REQUANT_IN += [(qops.quint8, "float_qparams"), (qops.qint8, "float_qparams")]


@pytest.mark.parametrize("src, scheme", REQUANT_IN, ids=[f"{d.name}-{s}" for d, s in REQUANT_IN])
def test_requantize_matches_torch_two_step(src, scheme, rng):
    """``requantize`` = torch's ``quantize_per_tensor(q.dequantize(), s2, z2)``."""
    if scheme == "float_qparams":
        x = (rng.normal(size=(6, 20_001)) * 4).astype(np.float32)
        s, zp = rng.uniform(0.01, 0.1, 6), rng.uniform(-20, 20, 6)
        tq = peer.quantize_per_channel(x, s, zp, 0, src).tensor
        qq = qops.quantize_per_channel(x, s, zp, 0, src)
    else:
        tq, qq = qtensor_pair(rng, src, scheme, (6, 20_001) if src.bits == 8 else (6, 5001))
    for dst in REQUANT_OUT:
        for scale in (2.0**-5, float(np.exp(rng.uniform(np.log(1e-4), np.log(10.0))))):
            zp = odd_zero_point(rng, dst) if dst.qmax > 1 else 1
            zp = min(zp, dst.qmax)
            want = peer.requantize(tq, scale, zp, dst)
            for profile in TORCH_PROFILES:
                got = qops.requantize(qq, scale, zp, dst, numerics=profile).int_repr()
                np.testing.assert_array_equal(got, want, err_msg=f"{profile} -> {dst.name} scale={scale} zp={zp}")


# ---------------------------------------------------------- 6. dynamic
def dynamic_inputs(rng, i):
    n = int(rng.integers(1, 2000))
    kind = i % 9
    if kind == 0:
        return rng.uniform(0, 10, n)  # all positive
    if kind == 1:
        return -rng.uniform(0, 10, n)  # all negative
    if kind == 2:
        return np.full(n, rng.normal() * 10)  # constant
    if kind == 3:
        return rng.normal(size=n) * 1e-6 + rng.normal()  # tiny range, offset
    if kind == 4:
        return np.zeros(n)
    if kind == 5:
        return rng.normal(size=n) * 1e-9  # below the 6.1e-5 scale floor
    if kind == 6:
        return rng.normal(size=n) * np.exp(rng.uniform(-20, 20))
    if kind == 7:
        return np.full(n, rng.choice([1e-5, -1e-5, 6.1e-5 * 255, 3e-3]))
    return rng.normal(size=n) * rng.uniform(0.01, 100) + rng.normal() * 5


@pytest.mark.parametrize("reduce_range", [False, True])
@pytest.mark.parametrize("dtype", [qops.quint8, qops.qint8], ids=["quint8", "qint8"])
def test_quantize_per_tensor_dynamic_matches_torch(dtype, reduce_range, rng):
    """Same float64 scale, zero point and integers over 300 data ranges."""
    for i in range(300):
        x = dynamic_inputs(rng, i).astype(np.float32)
        want = peer.quantize_per_tensor_dynamic(x, dtype, reduce_range)
        q = qops.quantize_per_tensor_dynamic(x, dtype, reduce_range)
        where = f"case {i}: min={x.min()!r} max={x.max()!r}"
        assert q.q_scale() == want.scale, where  # exact float64
        assert q.q_zero_point() == want.zero_point, where
        np.testing.assert_array_equal(q.int_repr(), want.int_repr, err_msg=where)


# ---------------------------------------------------------- 8. equality
def test_equal_agrees_with_torch(rng):
    x = (rng.normal(size=(4, 6)) * 3).astype(np.float32)
    sc = np.array([0.1, 0.2, 0.3, 0.4])
    with peer.quiet():
        def both(fn):
            return fn(qops, lambda t: t), fn(torch, lambda a: torch.from_numpy(np.ascontiguousarray(a)))

        def qpt(m, conv, s=0.1, z=3, dt="quint8", arr=x):
            return m.quantize_per_tensor(conv(arr), s, z, getattr(m, dt))

        def qpc(m, conv, s=sc, z=(1, 2, 3, 4)):
            return m.quantize_per_channel(conv(x), conv(np.asarray(s)), conv(np.asarray(z)), 0, m.quint8)

        cases = {
            "same": (both(qpt), both(qpt)),
            "other zero point": (both(qpt), both(lambda m, c: qpt(m, c, z=4))),
            "other scale": (both(qpt), both(lambda m, c: qpt(m, c, s=0.1 + 1e-12))),
            "other dtype": (both(qpt), both(lambda m, c: qpt(m, c, dt="qint8"))),
            "other shape": (both(qpt), both(lambda m, c: qpt(m, c, arr=x.reshape(6, 4)))),
            "other values": (both(qpt), both(lambda m, c: qpt(m, c, arr=x + 1))),
            "per-channel same": (both(qpc), both(qpc)),
            "per-channel other scales": (both(qpc), both(lambda m, c: qpc(m, c, s=sc + [1e-12, 0, 0, 0]))),
            "per-channel vs per-tensor": (both(qpc), both(qpt)),
        }
    for name, ((qa, ta), (qb, tb)) in cases.items():
        want = torch.equal(ta, tb)
        assert qa.equal(qb) == want, name
        assert (qa == qb) == want and (qa != qb) == (not want), name
    # transposed views compare by value, as torch's contiguous copy does
    qa, ta = both(qpt)
    with peer.quiet():
        assert torch.equal(ta.t(), ta.t().contiguous())
    assert qa.transpose(0, 1).equal(qa.transpose(0, 1).contiguous())


@pytest.mark.parametrize("path", ["serial", "python-parts", "compiled-parts"])
def test_quantize_dequantize_drivers(monkeypatch, path):
    """Per-tensor (quint8, qint8, qint32) and per-channel quantize and
    dequantize on one thread, in parts handed over as Python calls, and in
    parts handed over as compiled jobs, against torch, on lengths that end
    mid-chunk."""
    from qops.kernels import _split
    from qops.kernels.cpu import quantize as Q

    monkeypatch.setattr(Q, "QUANTIZE_PARTS_MIN", 0 if path == "compiled-parts" else 1 << 62)
    monkeypatch.setattr(Q, "FAST_PARALLEL_MIN", 0 if path == "python-parts" else 1 << 62)
    monkeypatch.setattr(Q, "PARALLEL_MIN", 0 if path == "python-parts" else 1 << 62)
    compiled = path == "compiled-parts" and _split.parts() > 1
    keep = []  # no result's memory is reused by a later output (it would hide unwritten elements)

    def posted(job):
        return _split._pool.ctl[_split._HEADER + _split._FN] == job.compile()

    rng = np.random.default_rng(11)
    for n in (1, 1000, 3 * Q.CHUNK + 17):
        x = (rng.standard_normal(n) * 3).astype(np.float32)
        x[: n // 7] = ((rng.integers(-200, 200, n // 7) + 0.5) * np.float32(0.05)).astype(np.float32)
        for dtype, tdt, zp in ((qops.quint8, torch.quint8, 128), (qops.qint8, torch.qint8, -3),
                               (qops.qint32, torch.qint32, 17)):
            q = qops.quantize_per_tensor(x, 0.05 if dtype is not qops.qint32 else 1e-6, zp, dtype)
            assert not compiled or n == 1 or posted(Q._QUANTIZE_JOB)
            t = torch.quantize_per_tensor(torch.from_numpy(x), q.q_scale(), zp, tdt)
            np.testing.assert_array_equal(q.int_repr(), t.int_repr().numpy())
            d = qops.dequantize(q)
            assert not compiled or n == 1 or dtype is not qops.qint32 or posted(Q._DEQUANTIZE_JOB)
            np.testing.assert_array_equal(d.view(np.uint32), t.dequantize().numpy().view(np.uint32))
            keep += [q, d]
        x2 = x[: n // 3 * 3].reshape(-1, 3)
        scales, zps = np.float32([0.05, 0.011, 0.3]), np.int64([128, 3, 250])
        for axis, xa in ((1, x2), (0, np.ascontiguousarray(x2.T))):
            q = qops.quantize_per_channel(xa, scales, zps, axis, qops.quint8)
            t = torch.quantize_per_channel(torch.from_numpy(xa), torch.from_numpy(scales.astype(np.float64)),
                                           torch.from_numpy(zps), axis, torch.quint8)
            np.testing.assert_array_equal(q.int_repr(), t.int_repr().numpy())
            d = qops.dequantize(q)
            np.testing.assert_array_equal(d.view(np.uint32), t.dequantize().numpy().view(np.uint32))
            keep += [q, d]


def test_quantize_profiles_in_compiled_parts(monkeypatch):
    """Every profile's quantize and dequantize recipe gives the same integers
    and float bits in compiled parts as on one thread."""
    from qops.kernels.cpu import quantize as Q

    x = (np.random.default_rng(12).standard_normal(3 * Q.CHUNK + 5) * 4).astype(np.float32)
    x[::97] = ((np.arange(x[::97].size) % 400 - 200 + 0.5) * np.float32(0.05)).astype(np.float32)
    for profile in ("fbgemm", "qnnpack", "onnxruntime", "tflite", "tflite_single", "reference"):
        got = {}
        for parts in (False, True):
            monkeypatch.setattr(Q, "QUANTIZE_PARTS_MIN", 0 if parts else 1 << 62)
            monkeypatch.setattr(Q, "FAST_PARALLEL_MIN", 1 << 62)
            monkeypatch.setattr(Q, "PARALLEL_MIN", 1 << 62)
            q = qops.quantize_per_tensor(x, 0.05, 3, qops.qint8, numerics=profile)
            got[parts] = (q, qops.dequantize(q, numerics=profile))
        np.testing.assert_array_equal(got[True][0].int_repr(), got[False][0].int_repr(), err_msg=profile)
        np.testing.assert_array_equal(got[True][1].view(np.uint32), got[False][1].view(np.uint32),
                                      err_msg=profile)


@pytest.mark.parametrize("profile", ["fbgemm", "onnxruntime", "tflite", "reference"])
def test_requantize_byte_table_equals_the_computed_path(monkeypatch, profile):
    """8-bit to 8-bit requantize of 4096+ elements looks its 256 results up:
    a C-contiguous CPU input in the API's table of these parameters (the
    dequantize-then-quantize profiles), otherwise in the kernel's (VBMI
    hosts); the bytes equal the element-by-element path, which a strided
    input without AVX-512 takes, for every input byte."""
    from qops import _ops

    rng = np.random.default_rng(5)
    for src, dst in ((qops.quint8, qops.quint8), (qops.qint8, qops.quint8), (qops.qint8, qops.qint8),
                     (qops.quint8, qops.qint8)):
        every = np.arange(256).astype(np.uint8).view(src.storage)
        data = np.concatenate([np.tile(every, 20), every[rng.permutation(256)[:77]]])
        q = qops.make_per_tensor_qtensor(data, 0.037, int(src.qmin) + 100, src)
        strided = qops.make_per_tensor_qtensor(np.repeat(data, 2)[::2], 0.037, int(src.qmin) + 100, src)
        monkeypatch.delenv("QOPS_DISABLE_AVX512", raising=False)
        looked_up = sum(_ops._requantize_table.cache_info()[:2])  # hits + misses
        fast = qops.requantize(q, 0.05, int(dst.qmin) + 17, dst, numerics=profile).int_repr()
        kernel_table = qops.requantize(strided, 0.05, int(dst.qmin) + 17, dst, numerics=profile).int_repr()
        looked_up = sum(_ops._requantize_table.cache_info()[:2]) - looked_up
        assert looked_up == (0 if profile in ("tflite", "reference") else 1)
        monkeypatch.setenv("QOPS_DISABLE_AVX512", "1")
        slow = qops.requantize(strided, 0.05, int(dst.qmin) + 17, dst, numerics=profile).int_repr()
        np.testing.assert_array_equal(fast, slow)
        np.testing.assert_array_equal(kernel_table, slow)
        monkeypatch.delenv("QOPS_DISABLE_AVX512")
