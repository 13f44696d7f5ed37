"""qops fake quantization against torch 2.13: output bits and gradient mask.

torch's forward output must match bit for bit (compared as float32 bit
patterns) and qops' ``return_mask=True`` mask must equal the gradient torch's
autograd gives the input (``d sum(y) / dx != 0``).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import qops  # noqa: E402
from tests.oracles import torch_peer as peer  # noqa: E402

pytestmark = pytest.mark.filterwarnings(f"ignore:{peer.DEPRECATION_MESSAGE}:UserWarning")

#: Quant ranges: the 8-bit, reduced, 4-bit, 1-bit ones, a wide custom one and
#: the full int32 range (where torch's float32 / double steps show).
RANGES = [(0, 255), (-128, 127), (0, 127), (-64, 63), (0, 15), (-8, 7), (0, 1), (-1000, 1000),
          (-(2**31), 2**31 - 1)]
SPECIALS = np.float32([np.nan, -np.nan, np.inf, -np.inf, 1e30, -1e30, 3e9, -3e9, 1e20, -1e20, 0.0, -0.0])


def fake_inputs(rng, n, scale, lo, hi):
    """Normal values around the range, exact ties formed in float64 and in
    float32, and the specials (a fiftieth of the values)."""
    span = min(hi - lo, 2**26)
    k = rng.integers(max(lo, -(2**26)) - 20, min(hi, 2**26) + 20, n)
    x = (rng.normal(size=n) * span * scale).astype(np.float32)
    third = n // 3
    x[:third] = ((k[:third] + 0.5) * scale).astype(np.float32)
    x[third:2 * third] = (k[third:2 * third].astype(np.float32) + np.float32(0.5)) * np.float32(scale)
    spots = rng.integers(0, n, max(n // 50, 1))
    x[spots] = rng.choice(SPECIALS, spots.size)
    rng.shuffle(x)
    return x


def assert_same(got, want, where):
    y, mask = got
    ty, tmask = want
    assert y.dtype == ty.dtype == np.float32 and mask.dtype == np.bool_, where
    np.testing.assert_array_equal(y.view(np.uint32), ty.view(np.uint32), err_msg=f"output bits, {where}")
    np.testing.assert_array_equal(mask, tmask, err_msg=f"mask, {where}")


@pytest.mark.parametrize("lo, hi", RANGES, ids=[f"{a}_{b}" for a, b in RANGES])
def test_fake_quantize_per_tensor_matches_torch(lo, hi, rng):
    for scale in (1.0, 0.1, 2.0**-4, 0.0137, 3.7, 1e-30, 1e30):
        for zp in (lo, hi, (lo + hi) // 2 | 1):
            x = fake_inputs(rng, 20_001, scale, lo, hi)
            want = peer.fake_quantize_per_tensor_affine(x, scale, zp, lo, hi)
            got = qops.fake_quantize_per_tensor_affine(x, scale, zp, lo, hi, return_mask=True)
            assert_same(got, want, f"scale={scale} zp={zp}")
            np.testing.assert_array_equal(
                qops.fake_quantize_per_tensor_affine(x, scale, zp, lo, hi).view(np.uint32),
                want[0].view(np.uint32),
            )


PC_LAYOUTS = [((4, 5001), 0), ((4, 5001), 1), ((3, 7, 1001), 1), ((3, 7, 11, 101), 2), ((3, 7, 11, 101), 3)]


@pytest.mark.parametrize("lo, hi", RANGES, ids=[f"{a}_{b}" for a, b in RANGES])
def test_fake_quantize_per_channel_matches_torch(lo, hi, rng):
    """Every layout, float32 scales from 1e-30 to 1e30, zero points across the range."""
    for shape, axis in PC_LAYOUTS:
        n = shape[axis]
        scales = np.exp(rng.uniform(np.log(1e-4), np.log(10.0), n)).astype(np.float32)
        scales[:3] = [2.0**-4, 1e-30, 1e30]
        zps = rng.integers(lo, hi, n, endpoint=True)
        zps[:2] = [lo, hi]
        x = fake_inputs(rng, int(np.prod(shape)), float(np.median(scales)), lo, hi).reshape(shape)
        want = peer.fake_quantize_per_channel_affine(x, scales, zps, axis, lo, hi)
        got = qops.fake_quantize_per_channel_affine(x, scales, zps, axis, lo, hi, return_mask=True)
        assert_same(got, want, f"shape={shape} axis={axis}")


def test_fake_quantize_torch_facts():
    """Measured in torch 2.13.0: per-tensor sends NaN to quant_min (fmax(NaN,
    qmin)) and +inf to quant_max; per-channel casts to int64 first, so +inf,
    1e30 and NaN all land on quant_min; both round THEN add the zero point."""
    x = np.float32([np.nan, np.inf, -np.inf, 1e30, 2.5, 0.5, -0.5])
    want_pt = np.float32([-3, 252, -3, 252, 2, 0, 0])  # (clamp(zp + rne(x)) - zp) * 1
    want_pc = np.float32([-3, -3, -3, -3, 2, 0, 0])
    pt = peer.fake_quantize_per_tensor_affine(x, 1.0, 3, 0, 255)
    pc = peer.fake_quantize_per_channel_affine(x[None], [1.0], [3], 0, 0, 255)
    np.testing.assert_array_equal(pt[0], want_pt)
    np.testing.assert_array_equal(pc[0][0], want_pc)
    np.testing.assert_array_equal(pt[1], [False, False, False, False, True, True, True])
    assert_same(qops.fake_quantize_per_tensor_affine(x, 1.0, 3, 0, 255, return_mask=True), pt, "per-tensor")
    assert_same(qops.fake_quantize_per_channel_affine(x[None], [1.0], [3], 0, 0, 255, return_mask=True),
                pc, "per-channel")


@pytest.mark.parametrize("lo, hi", [(0, 255), (-128, 127), (0, 15)], ids=["u8", "s8", "u4"])
def test_fake_quantize_per_channel_float_zero_points_match_torch(lo, hi, rng):
    """Float zero points (torch's float-qparams fake quant): lrint of
    ``zp + x/s``, any finite zero point, even outside the range."""
    shape, axis = (6, 3001), 0
    scales = np.exp(rng.uniform(np.log(1e-3), np.log(10.0), 6)).astype(np.float32)
    zps = rng.uniform(lo - 5, hi + 5, 6).astype(np.float32)
    zps[:3] = [0.5, -0.25, float(hi) + 40.0]
    x = fake_inputs(rng, int(np.prod(shape)), float(np.median(scales)), lo, hi).reshape(shape)
    x[1, :200] = (np.arange(200, dtype=np.float32) - 100) * np.float32(0.5) - np.float32(-0.25)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    y = torch.fake_quantize_per_channel_affine(
        xt, torch.from_numpy(scales), torch.from_numpy(zps), axis, lo, hi
    )
    y.sum().backward()
    want = (y.detach().numpy(), xt.grad.numpy() != 0)
    got = qops.fake_quantize_per_channel_affine(x, scales, zps, axis, lo, hi, return_mask=True)
    assert_same(got, want, "float zero points")


def test_fake_quantize_float_zero_point_is_fused():
    """torch 2.13.0's CPU kernel computes ``zp + x * inv`` with one rounding:
    this element differs between one and two roundings (measured)."""
    x = np.float32([[-0.4375]])
    s, z = np.float32([0.012745098]), np.float32([161.82692])
    xt = torch.from_numpy(x.copy())
    want = torch.fake_quantize_per_channel_affine(xt, torch.from_numpy(s), torch.from_numpy(z), 0, 0, 255)
    got = qops.fake_quantize_per_channel_affine(x, s, z, 0, 0, 255)
    np.testing.assert_array_equal(got.view(np.uint32), want.numpy().view(np.uint32))
    assert got[0, 0] == np.float32(-0.4438725)
