"""CUDA quantize / dequantize / requantize / fake quantize against the CPU kernels.

Every CUDA result must be bit-identical to the same qops call on NumPy
arrays (qops dispatches by the input's device): integers equal with equal
dtypes, float32 results equal bit for bit.  The CPU kernels are the oracle
here; their conformance to the peers is tested in ``tests/``.

Runs on a GPU or under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), where
each thread is a Python thread: inputs stay at a few thousand elements and
the blocks are shrunk so that even small inputs span several blocks and
threads loop in the grid stride.  Tests marked ``gpu`` need real hardware.

The inputs include three kinds of rounding traps, each checked to be a trap
(a naive evaluation gets at least one of them wrong), so that a recipe that
rounds once too often, e.g. a float32 ``a*b + c`` contracted into an FMA by
NVVM, or an FMA rounded twice by the simulator, fails here.
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest
from numba import cuda

import qops
from qops.kernels.cpu import quantize as cpu_kernels
from qops.kernels.cuda import config
from qops.kernels.cuda import quantize as cuda_kernels
from qops.kernels.cuda.scalar import SIMULATOR
from qops.kernels.modes import Q_FMA
from tests.oracles import exact as oracle
from tests.oracles.exact import exact, rne, stress_floats, to_f32

# the simulator evaluates with NumPy scalars, which warn on overflow and NaN
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

PROFILES = qops.available_numerics()
DTYPES = (qops.quint8, qops.qint8, qops.qint32, qops.quint4x2, qops.quint2x4)

#: Launch shape for the simulator runs: 4 blocks of 32 threads at most.
SMALL_TPB = 32
SMALL_BLOCKS = 4

gpu_only = pytest.mark.skipif(SIMULATOR, reason="needs a real GPU (too slow in the CUDA simulator)")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Shrink the launch configuration: small inputs span several blocks."""
    monkeypatch.setattr(config, "threads_per_block", SMALL_TPB)
    monkeypatch.setattr(config, "max_blocks", SMALL_BLOCKS)


# ------------------------------------------------------------------ helpers
def host(a):
    """A device array's contents (host arrays pass through)."""
    return a.copy_to_host() if hasattr(a, "copy_to_host") else a


def assert_ints_equal(dev, ref):
    got = host(dev)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


def assert_f32_bits_equal(dev, ref):
    got = host(dev)
    assert got.dtype == ref.dtype == np.float32
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))


def assert_same_qtensor(dev_q, cpu_q):
    """Same dtype, parameters and integers; the CUDA integers stay on the device."""
    assert dev_q.device == "cuda" and cpu_q.device == "cpu"
    assert dev_q.cpu().equal(cpu_q)
    assert_ints_equal(dev_q.int_repr(), cpu_q.int_repr())


def odd_zero_point(dtype, offset):
    """An odd zero point ``offset`` from the middle of ``dtype``'s range (clamped)."""
    mid = 0 if dtype is qops.qint32 else (dtype.qmin + dtype.qmax) // 2
    return min(max(mid + offset, dtype.qmin), dtype.qmax) | 1  # every qmax is odd


def tensor_inputs(rng, dtype, scale, zp, n):
    """Stress values for one scale and zero point: ties, neighbours, specials."""
    return stress_floats(rng, n, scale, zp, dtype.qmin, dtype.qmax)


def channel_inputs(rng, dtype, scales, zps, shape, axis):
    """``shape``-d stress values whose slices along ``axis`` suit their channel."""
    x = np.empty(shape, np.float32)
    moved = np.moveaxis(x, axis, 0)
    for c in range(shape[axis]):
        moved[c] = tensor_inputs(rng, dtype, scales[c], zps[c], moved[c].size).reshape(moved[c].shape)
    return x


#: Per-channel layout: channels on axis 1, so row ``r`` (56 elements) uses
#: channel ``r % 5`` and the 5 channels repeat over 3 outer rows.
PC_SHAPE = (3, 5, 56)
PC_AXIS = 1
PC_SCALES = np.array([0.0625, 0.0371, 1.7, 2.0**-10, 0.3], np.float64)


def pc_zero_points(dtype):
    lo, hi = dtype.qmin, dtype.qmax
    if dtype is qops.qint32:
        return np.array([1, -3, 5, 101, -7])
    third = (hi - lo) // 3
    return np.array([lo + 1, (lo + third) | 1, ((lo + hi) // 2) | 1, (hi - 2) | 1, hi]).clip(lo, hi)


# ------------------------------------------------------ quantize/dequantize
@pytest.mark.parametrize("profile", PROFILES)
def test_per_tensor_matches_cpu(rng, profile):
    """quantize, dequantize and requantize (two output scales) per tensor,
    every dtype, a dyadic and a non-dyadic scale, odd zero points."""
    for dtype in DTYPES:
        for s, offset in ((0.0625, 3), (0.0371, -6)):
            z = odd_zero_point(dtype, offset)
            x = tensor_inputs(rng, dtype, s, z, 600)
            q_cpu = qops.quantize_per_tensor(x, s, z, dtype, numerics=profile)
            q_dev = qops.quantize_per_tensor(cuda.to_device(x), s, z, dtype, numerics=profile)
            assert_same_qtensor(q_dev, q_cpu)
            assert_f32_bits_equal(qops.dequantize(q_dev, numerics=profile),
                                  qops.dequantize(q_cpu, numerics=profile))
            for s2, z2 in ((s * 1.37, z), (s / 3.1, odd_zero_point(dtype, 5))):
                r_cpu = qops.requantize(q_cpu, s2, z2, numerics=profile)
                r_dev = qops.requantize(q_dev, s2, z2, numerics=profile)
                assert_same_qtensor(r_dev, r_cpu)


@pytest.mark.parametrize("profile", PROFILES)
def test_per_channel_matches_cpu(rng, profile):
    """quantize, dequantize and requantize per channel (axis 1 of a 3-D
    tensor: channel ``r % 5`` of row ``r``), every dtype."""
    for dtype in DTYPES:
        zps = pc_zero_points(dtype)
        x = channel_inputs(rng, dtype, PC_SCALES, zps, PC_SHAPE, PC_AXIS)
        q_cpu = qops.quantize_per_channel(x, PC_SCALES, zps, PC_AXIS, dtype, numerics=profile)
        q_dev = qops.quantize_per_channel(cuda.to_device(x), PC_SCALES, zps, PC_AXIS, dtype,
                                          numerics=profile)
        assert_same_qtensor(q_dev, q_cpu)
        assert_f32_bits_equal(qops.dequantize(q_dev, numerics=profile),
                              qops.dequantize(q_cpu, numerics=profile))
        z2 = odd_zero_point(dtype, 7)
        assert_same_qtensor(qops.requantize(q_dev, 0.05, z2, numerics=profile),
                            qops.requantize(q_cpu, 0.05, z2, numerics=profile))


@pytest.mark.parametrize("profile", PROFILES)
def test_requantize_qint32_to_8bit_matches_cpu(rng, profile):
    """Accumulator-range int32 input requantized to quint8 and qint8 (the
    fixed-point paths wrap and saturate)."""
    q = rng.integers(-(2**31), 2**31, size=500, dtype=np.int64)
    q[:6] = [-(2**31), 2**31 - 1, 0, 1, -1, 2**30]
    q = q.astype(np.int32)
    for scale, zp in ((0.002, 0), (3.5e-6, 17)):
        t_cpu = qops.make_per_tensor_qtensor(q, scale, zp, qops.qint32)
        t_dev = t_cpu.to("cuda")
        for dtype, s2, z2 in ((qops.quint8, 0.04, 129), (qops.qint8, 1e-3, -3)):
            assert_same_qtensor(qops.requantize(t_dev, s2, z2, dtype, numerics=profile),
                                qops.requantize(t_cpu, s2, z2, dtype, numerics=profile))


def test_float_qparams_match_cpu(rng):
    """per_channel_affine_float_qparams (torch's embedding quantization)."""
    for dtype in (qops.quint8, qops.quint4x2):
        zps = np.array([0.5, 3.25, -1.75, 7.0, 2.5])
        x = channel_inputs(rng, dtype, PC_SCALES, np.rint(zps).astype(np.int64), PC_SHAPE, PC_AXIS)
        q_cpu = qops.quantize_per_channel(x, PC_SCALES, zps, PC_AXIS, dtype)
        q_dev = qops.quantize_per_channel(cuda.to_device(x), PC_SCALES, zps, PC_AXIS, dtype)
        assert_same_qtensor(q_dev, q_cpu)
        assert_f32_bits_equal(q_dev.dequantize(), q_cpu.dequantize())
        assert_same_qtensor(qops.requantize(q_dev, 0.05, 3), qops.requantize(q_cpu, 0.05, 3))


# ------------------------------------------------------------ fake quantize
FAKE_RANGES = ((0, 255, 3), (-128, 127, -1), (0, 15, 7), (-(2**31), 2**31 - 1, 5))


@pytest.mark.parametrize("quant_min,quant_max,zp", FAKE_RANGES)
def test_fake_quantize_matches_cpu(rng, quant_min, quant_max, zp):
    """Outputs bit for bit and straight-through masks, per tensor and per channel."""
    x = stress_floats(rng, 400, 0.0371, zp, quant_min, quant_max)
    y_cpu, m_cpu = qops.fake_quantize_per_tensor_affine(x, 0.0371, zp, quant_min, quant_max,
                                                        return_mask=True)
    y_dev, m_dev = qops.fake_quantize_per_tensor_affine(cuda.to_device(x), 0.0371, zp, quant_min,
                                                        quant_max, return_mask=True)
    assert_f32_bits_equal(y_dev, y_cpu)
    assert_ints_equal(m_dev, m_cpu)

    zps = np.array([zp, quant_min, quant_max, zp, zp])
    xc = np.concatenate([x.reshape(4, 5, 20)] * 2, axis=2)  # channels on axis 1
    y_cpu, m_cpu = qops.fake_quantize_per_channel_affine(xc, PC_SCALES, zps, 1, quant_min, quant_max,
                                                         return_mask=True)
    y_dev, m_dev = qops.fake_quantize_per_channel_affine(cuda.to_device(xc), PC_SCALES, zps, 1,
                                                         quant_min, quant_max, return_mask=True)
    assert_f32_bits_equal(y_dev, y_cpu)
    assert_ints_equal(m_dev, m_cpu)
    assert m_cpu.any() and not m_cpu.all()

    fzps = np.float32([zp + 0.5, quant_min - 0.25, quant_max + 3.0, 0.125, zp])  # float zero points
    y_cpu, m_cpu = qops.fake_quantize_per_channel_affine(xc, PC_SCALES, fzps, 1, quant_min, quant_max,
                                                         return_mask=True)
    y_dev, m_dev = qops.fake_quantize_per_channel_affine(cuda.to_device(xc), PC_SCALES, fzps, 1,
                                                         quant_min, quant_max, return_mask=True)
    assert_f32_bits_equal(y_dev, y_cpu)
    assert_ints_equal(m_dev, m_cpu)


# ---------------------------------------------------- sizes and launch shape
@pytest.mark.parametrize("n", [0, 1, 3 * 8 + 1])
@pytest.mark.parametrize("max_blocks", [64, 2], ids=["one-element-per-thread", "grid-stride"])
def test_sizes_and_block_edges(rng, monkeypatch, n, max_blocks):
    """Empty, one element, and 3*TPB+1 elements with 8 threads per block:
    four blocks of one element per thread, or two blocks looping."""
    monkeypatch.setattr(config, "threads_per_block", 8)
    monkeypatch.setattr(config, "max_blocks", max_blocks)
    x = stress_floats(rng, n, 0.0371, 3, 0, 255)
    xd = cuda.to_device(x)
    for profile, dtype in (("fbgemm", qops.quint8), ("reference", qops.qint32), ("tflite", qops.quint4x2)):
        q_cpu = qops.quantize_per_tensor(x, 0.0371, 3, dtype, numerics=profile)
        q_dev = qops.quantize_per_tensor(xd, 0.0371, 3, dtype, numerics=profile)
        assert_same_qtensor(q_dev, q_cpu)
        assert_f32_bits_equal(qops.dequantize(q_dev, numerics=profile),
                              qops.dequantize(q_cpu, numerics=profile))
        assert_same_qtensor(qops.requantize(q_dev, 0.05, 1, numerics=profile),
                            qops.requantize(q_cpu, 0.05, 1, numerics=profile))
    xc = x.reshape(1, n)
    q_cpu = qops.quantize_per_channel(xc, [0.0371], [3], 0, qops.qint8)
    assert_same_qtensor(qops.quantize_per_channel(cuda.to_device(xc), [0.0371], [3], 0, qops.qint8), q_cpu)
    y_cpu, m_cpu = qops.fake_quantize_per_tensor_affine(x, 0.0371, 3, 0, 255, return_mask=True)
    y_dev, m_dev = qops.fake_quantize_per_tensor_affine(xd, 0.0371, 3, 0, 255, return_mask=True)
    assert_f32_bits_equal(y_dev, y_cpu)
    assert_ints_equal(m_dev, m_cpu)


def test_kernel_writes_stay_in_bounds(monkeypatch):
    """The grid-stride loops stop at the input's size: the output buffer's
    tail keeps its sentinel even when the grid has more threads than elements."""
    monkeypatch.setattr(config, "threads_per_block", 8)
    monkeypatch.setattr(config, "max_blocks", 64)
    n = 3 * 8 + 1
    x = cuda.to_device(np.linspace(-2, 2, n, dtype=np.float32))
    out = cuda.to_device(np.full(n + 15, 77, np.uint8))
    params = [cuda.to_device(np.array([v], dt)) for v, dt in
              ((0.1, np.float32), (10.0, np.float32), (3.0, np.float32), (3, np.int64))]
    cuda_kernels.quantize(x, out[:n], n, Q_FMA, *params, 0, 255, 255)
    got = out.copy_to_host()
    np.testing.assert_array_equal(got[n:], 77)
    assert (got[:n] != 77).any()


def test_launch_config_blocks():
    assert config.blocks(1) == 1
    assert config.blocks(SMALL_TPB * SMALL_BLOCKS * 10) == SMALL_BLOCKS
    assert config.blocks(3 * SMALL_TPB + 1) == 4


def test_strided_cuda_input_is_refused():
    x = cuda.to_device(np.zeros(16, np.float32))[::2]
    with pytest.raises(NotImplementedError, match="contiguous"):
        qops.quantize_per_tensor(x, 0.1, 0, qops.quint8)


# ------------------------------------------------------------ rounding traps
#: (x, scale, zero_point) for quint8 where x*fl(1/scale) + zp rounded to
#: float64 lands exactly on a float32 midpoint although the exact value does
#: not: rounding that float64 to float32 (two roundings) gives a different
#: integer than torch's one fused rounding.  Found by factoring the 48-bit
#: products that land within half a float64 ulp of such a midpoint.
FMA_TRAPS = (
    (58047.22265625, 116096.21875, 131),
    (-64590.55859375, 129183.0859375, 131),
    (60578.72265625, 121159.296875, 131),
    (-47778.9921875, 95559.4453125, 131),
    (44945.50390625, 89892.3828125, 131),
    (52924.1640625, 105846.7109375, 200),
    (-47202.6328125, 94403.828125, 250),
    (45495.69140625, 90989.9921875, 200),
)


def test_fma_midpoint_traps():
    """fbgemm per-tensor 8-bit quantize rounds ``x*inv + zp`` ONCE, on CUDA too."""
    wrong_when_rounded_twice = 0
    for x, scale, zp in FMA_TRAPS:
        xs = np.array([x], np.float32)
        inv = np.float32(1) / np.float32(scale)
        v = exact(xs[0]) * exact(inv) + zp
        want = np.array([min(max(rne(exact(to_f32(v))), 0), 255)], np.uint8)
        wrong_when_rounded_twice += rne(exact(np.float32(float(v)))) != want[0]
        q_cpu = qops.quantize_per_tensor(xs, scale, zp, qops.quint8)
        q_dev = qops.quantize_per_tensor(cuda.to_device(xs), scale, zp, qops.quint8)
        np.testing.assert_array_equal(q_cpu.int_repr(), want)
        assert_same_qtensor(q_dev, q_cpu)
    assert wrong_when_rounded_twice == len(FMA_TRAPS)


def test_two_rounding_recipe_is_not_fused(rng):
    """Per-channel quantize rounds ``fl(fl(x*inv) + zp)`` TWICE: a CUDA build
    that fused it into one FMA would give the per-tensor (fused) integers,
    which differ on these inputs."""
    s, z = 0.0371, 131
    x = tensor_inputs(rng, qops.quint8, s, z, 2000).reshape(1, -1)
    two = qops.quantize_per_channel(x, [s], [z], 0, qops.quint8)
    fused = qops.quantize_per_tensor(x, s, z, qops.quint8)
    assert (two.int_repr() != fused.int_repr()).sum() > 0
    assert_same_qtensor(qops.quantize_per_channel(cuda.to_device(x), [s], [z], 0, qops.quint8), two)


def _quotient_traps(s_mantissa):
    """float32 ``x`` with ``fl64(x/s)`` exactly ``k + 1/2`` although the exact
    quotient ``k + 1/2 + n/(2S)`` is not a tie (``|k|`` in [2**29, 2**31)).

    With ``s = S * 2**-24`` and ``x = X * 2**(6+t)``, ``x/s = X * 2**(30+t) / S``,
    which is ``k + 1/2 + n/(2S)`` when ``X * 2**(31+t) = (2k+1) S + n``.  Only
    candidates whose float64 quotient really is ``k + 1/2`` are kept.
    """
    S = s_mantissa
    s = np.float32(S * 2.0**-24)
    xs = []
    for t in (0, -1):
        for n in (1, -1, 3, -3):
            X = n * pow(2 ** (31 + t), -1, S) % S
            if X < 2**23:
                X += S
            for x in (np.float32(X * 2.0 ** (6 + t)), np.float32(-X * 2.0 ** (6 + t))):
                qd = float(x) / float(s)
                if X < 2**24 and qd % 1 == 0.5 and Fraction(qd) != exact(x) / exact(s):
                    xs.append(x)
    return np.array(xs, np.float32), float(s)


@pytest.mark.parametrize("s_mantissa", [0xB504F3, 0x8DB4AB, 0xD3C21B])
def test_reference_quotient_traps(s_mantissa):
    """reference quantize (qint32) rounds the EXACT quotient: the sign of the
    remainder decides where the float64 quotient is a false tie."""
    x, s = _quotient_traps(s_mantissa)
    assert x.size >= 4
    qmin, qmax = qops.qint32.qmin, qops.qint32.qmax
    want = oracle.quantize(x, s, 0, qmin, qmax).astype(np.int32)
    naive = np.clip(np.rint(x.astype(np.float64) / s), qmin, qmax).astype(np.int32)
    assert (naive != want).sum() >= 2  # rounding the float64 quotient is wrong on these
    q_cpu = qops.quantize_per_tensor(x, s, 0, qops.qint32, numerics="reference")
    q_dev = qops.quantize_per_tensor(cuda.to_device(x), s, 0, qops.qint32, numerics="reference")
    np.testing.assert_array_equal(q_cpu.int_repr(), want)
    assert_same_qtensor(q_dev, q_cpu)


def _product_traps(rng, count):
    """``(d, s)``: int32-range ``d`` and float32 ``s`` whose float64 product
    ``fl64(d * s)`` is a float32 midpoint although the exact product is not.

    With ``s = S * 2**-34`` (``S`` odd, 24 bits) the product is the integer
    ``P = d * S`` (54 or 55 bits) times ``2**-34``; ``P = (2m + 1) * 2**k + r``
    with ``r = +-1``, ``k = bits(P) - 25`` and ``2m + 1`` of 25 bits rounds to
    ``(2m + 1) * 2**k`` in float64: a float32 midpoint.
    """
    ds, ss = [], []
    while len(ds) < count:
        S = int(rng.integers(2**23, 2**24)) | 1
        r = int(rng.choice([-1, 1]))
        k = int(rng.choice([29, 30]))
        d0 = r * pow(S, -1, 2**k) % 2**k
        for d in range(d0, 2**31, 2**k):
            P = d * S
            if P.bit_length() == k + 25 and ((P - r) >> k) & 1:
                sign = int(rng.choice([-1, 1]))
                ds.append(sign * d)
                ss.append(np.float32(S * 2.0**-34))
                break
    return np.array(ds, np.int64), np.array(ss, np.float32)


def test_reference_dequantize_midpoint_traps(rng):
    """reference dequantize rounds ``(q - zp) * s`` to float32 ONCE, also
    where the float64 product is a false float32 midpoint."""
    d, s = _product_traps(rng, 48)
    p64 = d.astype(np.float64) * s.astype(np.float64)
    assert all(Fraction(float(p)) != Fraction(int(di)) * exact(si) for p, di, si in zip(p64, d, s))
    assert all(np.float32(p) != p for p in p64)  # not float32 values: midpoints
    want = np.array([to_f32(Fraction(int(di)) * exact(si)) for di, si in zip(d, s)], np.float32)
    assert (p64.astype(np.float32) != want).sum() >= 8  # rounding the float64 product is wrong
    zp = -1
    q = (d + zp).astype(np.int32).reshape(-1, 1)
    t_cpu = qops.make_per_channel_qtensor(q, s.astype(np.float64), np.full(d.size, zp), 0, qops.qint32)
    got_cpu = t_cpu.dequantize(numerics="reference")
    np.testing.assert_array_equal(got_cpu.ravel().view(np.uint32), want.view(np.uint32))
    assert_f32_bits_equal(t_cpu.to("cuda").dequantize(numerics="reference"), got_cpu)


# -------------------------------------------------- QTensor on the device
@pytest.mark.parametrize("dtype", DTYPES)
def test_qtensor_round_trip_and_int_repr(rng, dtype):
    """``to('cuda')`` / ``.cpu()`` keep integers and parameters; ``int_repr``
    on CUDA is a device array (packed bytes for the sub-byte types)."""
    x = rng.normal(size=(4, 5, 9)).astype(np.float32)
    for q in (qops.quantize_per_tensor(x, 0.05, 1, dtype),
              qops.quantize_per_channel(x, PC_SCALES, pc_zero_points(dtype), 1, dtype)):
        d = q.to("cuda")
        assert d.device == "cuda" and d.shape == q.shape and d.dtype is dtype
        assert d.to("cuda") is d
        rep = d.int_repr()
        assert hasattr(rep, "copy_to_host")  # a device array
        assert_ints_equal(rep, q.int_repr())
        if dtype.is_subbyte:
            assert host(rep).shape == (-(-x.size // dtype.per_byte),)
        back = d.cpu()
        assert back.device == "cpu" and back.equal(q)
        assert_f32_bits_equal(d.dequantize(), q.dequantize())


# ----------------------------------------------------- sub-byte packing
@pytest.mark.parametrize("bits", [4, 2])
def test_pack_unpack_kernels_match_cpu(rng, bits):
    per = 8 // bits
    for n in (1, per + 1, 3 * SMALL_TPB * per + 1):
        vals = rng.integers(0, 1 << bits, size=n).astype(np.uint8)
        packed = np.empty(-(-n // per), np.uint8)
        cpu_kernels.pack_subbyte(vals, bits, packed)
        dev_packed = cuda.device_array(packed.size, np.uint8)
        cuda_kernels.pack_subbyte(cuda.to_device(vals), bits, dev_packed)
        assert_ints_equal(dev_packed, packed)
        dev_vals = cuda.device_array(n, np.uint8)
        cuda_kernels.unpack_subbyte(dev_packed, bits, dev_vals)
        assert_ints_equal(dev_vals, vals)


def test_pack_known_bytes():
    """torch's nibble order: the first element in the low bits."""
    vals = cuda.to_device(np.array([3, 2, 6, 8, 15], np.uint8))
    out = cuda.device_array(3, np.uint8)
    cuda_kernels.pack_subbyte(vals, 4, out)
    assert_ints_equal(out, np.array([35, 134, 15], np.uint8))


# ------------------------------------------------------- real hardware only
@pytest.mark.gpu
@gpu_only
def test_large_sweep_matches_cpu(rng, monkeypatch):
    """One million stress values per configuration, default launch shape."""
    monkeypatch.setattr(config, "threads_per_block", 256)
    monkeypatch.setattr(config, "max_blocks", 8192)
    n = 1 << 20
    for profile in PROFILES:
        for dtype in DTYPES:
            s, z = 0.0371, odd_zero_point(dtype, 3)
            x = tensor_inputs(rng, dtype, s, z, n)
            q_cpu = qops.quantize_per_tensor(x, s, z, dtype, numerics=profile)
            q_dev = qops.quantize_per_tensor(cuda.to_device(x), s, z, dtype, numerics=profile)
            assert_same_qtensor(q_dev, q_cpu)
            assert_f32_bits_equal(qops.dequantize(q_dev, numerics=profile),
                                  qops.dequantize(q_cpu, numerics=profile))
            assert_same_qtensor(qops.requantize(q_dev, 0.05, z, numerics=profile),
                                qops.requantize(q_cpu, 0.05, z, numerics=profile))
            xc = x[: n // 320 * 320].reshape(-1, 5, 64)
            zps = pc_zero_points(dtype)
            c_cpu = qops.quantize_per_channel(xc, PC_SCALES, zps, 1, dtype, numerics=profile)
            c_dev = qops.quantize_per_channel(cuda.to_device(xc), PC_SCALES, zps, 1, dtype,
                                              numerics=profile)
            assert_same_qtensor(c_dev, c_cpu)
            assert_f32_bits_equal(qops.dequantize(c_dev, numerics=profile),
                                  qops.dequantize(c_cpu, numerics=profile))


@pytest.mark.gpu
@gpu_only
def test_throughput_smoke(rng, monkeypatch):
    """16M float32 values through quantize and dequantize at the default launch
    shape; results equal the CPU's, and the GPU is not pathologically slow."""
    monkeypatch.setattr(config, "threads_per_block", 256)
    monkeypatch.setattr(config, "max_blocks", 8192)
    x = rng.normal(size=1 << 24).astype(np.float32)
    xd = cuda.to_device(x)
    q = qops.quantize_per_tensor(xd, 0.02, 128, qops.quint8)  # compile
    qops.dequantize(q)
    cuda.synchronize()
    t0 = time.perf_counter()
    q = qops.quantize_per_tensor(xd, 0.02, 128, qops.quint8)
    y = qops.dequantize(q)
    cuda.synchronize()
    elapsed = time.perf_counter() - t0
    q_cpu = qops.quantize_per_tensor(x, 0.02, 128, qops.quint8)
    assert_same_qtensor(q, q_cpu)
    assert_f32_bits_equal(y, q_cpu.dequantize())
    assert elapsed < 5.0, f"quantize + dequantize of 16M values took {elapsed:.2f} s on the GPU"


def test_params_to_device_caches_small_arrays_by_content(monkeypatch):
    from qops import _device

    monkeypatch.setattr(_device, "_PARAM_CACHE", None)
    monkeypatch.setattr(_device, "_PARAM_CACHE_SIZE", 3)
    a = np.array([0.5, 0.25], np.float32)
    (d1,) = _device.params_to_device(a)
    (d2,) = _device.params_to_device(a.copy())
    assert d1 is d2  # equal bytes: one device copy
    np.testing.assert_array_equal(d1.copy_to_host(), a)
    (d3,) = _device.params_to_device(a.astype(np.float64))  # same values, other dtype
    assert d3 is not d1 and d3.copy_to_host().dtype == np.float64
    for k in range(3):  # evicts the oldest entries
        _device.params_to_device(np.array([k], np.int64))
    (d4,) = _device.params_to_device(a)
    assert d4 is not d1
    big = np.zeros(_device._PARAM_MAX_BYTES // 4 + 1, np.float32)
    assert _device.params_to_device(big)[0] is not _device.params_to_device(big)[0]
