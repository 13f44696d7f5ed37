"""``qops.functional.linear`` / ``linear_relu`` against torch 2.13.

The fbgemm, qnnpack and onednn profiles must give the integers of
``torch.ops.quantized.linear`` / ``linear_relu`` (weights prepacked with
``linear_prepack``) under the engine of the same name; the fbgemm profile is
also compared with engine ``x86``, which runs linear on fbgemm.  Activations
span the whole uint8 range (torch's own tests use [0, 4)), weight zero points
-5..5 where the engine allows them (oneDNN needs 0), per-tensor and
per-channel weights, with and without bias and relu, output zero points 0,
255 and random, plus accumulator overflow, NaN and infinite biases.
"""

import itertools
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import qops  # noqa: E402
from qops.functional import linear, linear_relu  # noqa: E402
from qops.kernels.cpu.requant import PARALLEL_MIN  # noqa: E402
from tests.oracles import torch_peer as peer  # noqa: E402

pytestmark = pytest.mark.filterwarnings(f"ignore:{peer.DEPRECATION_MESSAGE}:UserWarning")

#: (qops profile, torch engine)
ENGINES = [("fbgemm", "fbgemm"), ("fbgemm", "x86"), ("qnnpack", "qnnpack"), ("onednn", "onednn")]
ENGINE_IDS = ["fbgemm", "fbgemm-x86", "qnnpack", "onednn"]
MS = (1, 3, 17, 64)
KS = (1, 3, 4, 31, 64, 257)
NS = (1, 5, 32, 33, 100)


def _weight_qparams(rng, profile, n, per_channel):
    """Scales (log-uniform) and zero points (-5..5, or 0 for onednn)."""
    zmax = 0 if profile == "onednn" else 5
    if per_channel:
        return np.exp2(rng.uniform(-14, -4, n)), rng.integers(-zmax, zmax + 1, n)
    return float(np.exp2(rng.uniform(-14, -4))), int(rng.integers(-zmax, zmax + 1))


def _case(rng, profile, m, k, n, per_channel):
    """Full-range activations and weights with parameters that spread the
    outputs over the uint8 range (some saturate)."""
    x = rng.integers(0, 256, (m, k), dtype=np.uint8)
    w = rng.integers(-128, 128, (n, k), dtype=np.int8)
    sx = float(np.exp2(rng.uniform(-8, 0)))
    zx = int(rng.integers(0, 256))
    sw, zw = _weight_qparams(rng, profile, n, per_channel)
    typical = sx * float(np.mean(sw)) * 5500.0 * np.sqrt(k)  # ~ std of A * sx * sw
    so = float(typical / 60.0 * np.exp2(rng.uniform(-1.5, 1.5)))
    bias = (rng.normal(0.0, 1.0, n) * typical).astype(np.float32)
    return x, w, sx, zx, sw, zw, bias, so


def _qops(profile, x, sx, zx, w, sw, zw, bias, so, zo, relu):
    xq = qops.make_per_tensor_qtensor(x, sx, zx, qops.quint8)
    if np.ndim(sw):
        wq = qops.make_per_channel_qtensor(w, sw, zw, 0, qops.qint8)
    else:
        wq = qops.make_per_tensor_qtensor(w, sw, zw, qops.qint8)
    f = linear_relu if relu else linear
    return f(xq, wq, bias, so, zo, numerics=profile).int_repr()


def _torch(x, sx, zx, w, sw, zw, bias, so, zo, relu):
    axis = 0 if np.ndim(sw) else None
    return peer.linear(x, sx, zx, w, sw, zw, bias, so, zo, relu=relu, axis=axis)


@pytest.mark.parametrize(("profile", "engine"), ENGINES, ids=ENGINE_IDS)
def test_linear_matches_torch_sweep(rng, profile, engine):
    """Every (M, K, N) of the sweep x per-tensor/per-channel x bias x relu:
    ~87,000 outputs per configuration, 0 mismatches."""
    compared = 0
    with peer.engine(engine):
        for i, (m, k, n) in enumerate(itertools.product(MS, KS, NS)):
            for j, (per_channel, has_bias, relu) in enumerate(
                itertools.product((False, True), repeat=3)
            ):
                x, w, sx, zx, sw, zw, bias, so = _case(rng, profile, m, k, n, per_channel)
                zo = (0, 255, int(rng.integers(1, 255)))[(i + j) % 3]
                b = bias if has_bias else None
                want = _torch(x, sx, zx, w, sw, zw, b, so, zo, relu)
                got = _qops(profile, x, sx, zx, w, sw, zw, b, so, zo, relu)
                assert got.dtype == want.dtype == np.uint8
                np.testing.assert_array_equal(
                    got, want, err_msg=f"M={m} K={k} N={n} per_channel={per_channel} "
                    f"bias={has_bias} relu={relu} zo={zo}"
                )
                compared += got.size
    assert compared == 8 * len(KS) * sum(MS) * sum(NS)


@pytest.mark.parametrize(("profile", "engine"), ENGINES, ids=ENGINE_IDS)
def test_linear_large_matches_torch(rng, profile, engine):
    """Shapes big enough for the parallel epilogue and many GEMM tiles."""
    assert 2100 * 130 >= PARALLEL_MIN
    with peer.engine(engine):
        for per_channel, relu in ((False, False), (True, True)):
            x, w, sx, zx, sw, zw, bias, so = _case(rng, profile, 2100, 200, 130, per_channel)
            want = _torch(x, sx, zx, w, sw, zw, bias, so, 77, relu)
            got = _qops(profile, x, sx, zx, w, sw, zw, bias, so, 77, relu)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("profile", "engine"), ENGINES, ids=ENGINE_IDS)
def test_linear_leading_dims_and_strided_input(rng, profile, engine):
    x, w, sx, zx, sw, zw, bias, so = _case(rng, profile, 24, 40, 9, True)
    x3 = x.reshape(2, 3, 4, 40)
    with peer.engine(engine):
        want = _torch(x3, sx, zx, w, sw, zw, bias, so, 3, False)
        got = _qops(profile, x3, sx, zx, w, sw, zw, bias, so, 3, False)
        assert got.shape == (2, 3, 4, 9)
        np.testing.assert_array_equal(got, want)
        wide = rng.integers(0, 256, (24, 80), dtype=np.uint8)
        view = wide[:, ::2]  # non-contiguous rows
        want = _torch(np.ascontiguousarray(view), sx, zx, w, sw, zw, bias, so, 3, True)
        got = _qops(profile, view, sx, zx, w, sw, zw, bias, so, 3, True)
        np.testing.assert_array_equal(got, want)
        empty = np.zeros((0, 40), np.uint8)
        got = _qops(profile, empty, sx, zx, w, sw, zw, bias, so, 3, False)
        assert got.shape == (0, 9) and got.dtype == np.uint8


def _wrapping_case(n):
    """K = 70,000 full-scale products: in row 0 every column's accumulator
    passes 2**31 and wraps to the opposite sign; row 1 is 0; row 2 mixes."""
    k = 70000
    x = np.zeros((3, k), np.uint8)
    x[0] = 255
    x[2, : k // 2] = 255
    w = np.full((n, k), 127, np.int8)
    w[1::2] = -128
    return x, w


@pytest.mark.filterwarnings("ignore:.*int32 accumulator can overflow:RuntimeWarning")
@pytest.mark.parametrize(("profile", "engine"), ENGINES, ids=ENGINE_IDS)
@pytest.mark.parametrize("n", [5, 33])
def test_accumulator_wraps_like_torch(profile, engine, n):
    """The int32 accumulator wraps in every engine: 255*127*70000 becomes
    negative (output at the low clamp), -255*128*70000 positive (255)."""
    x, w = _wrapping_case(n)
    with peer.engine(engine):
        for relu in (False, True):
            want = _torch(x, 0.01, 0, w, 0.001, 0, None, 1.0, 7, relu)
            got = _qops(profile, x, 0.01, 0, w, 0.001, 0, None, 1.0, 7, relu)
            np.testing.assert_array_equal(got, want)
            low = 7 if relu else 0
            np.testing.assert_array_equal(got[0], np.where(np.arange(n) % 2 == 0, low, 255))
            np.testing.assert_array_equal(got[1], np.full(n, 7, np.uint8))


def test_overflow_warning_once_per_call_site():
    """The warning names the bound and points at the caller, once per call
    site (a line that calls again stays quiet)."""
    x, w = _wrapping_case(3)
    xq = qops.make_per_tensor_qtensor(x, 0.01, 0, qops.quint8)
    wq = qops.make_per_tensor_qtensor(w, 0.001, 0, qops.qint8)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(3):
            linear(xq, wq, None, 1.0, 7)
        linear_relu(xq, wq, None, 1.0, 7)  # another call site
    msgs = [r for r in rec if issubclass(r.category, RuntimeWarning)]
    assert len(msgs) == 2
    assert all(m.filename == __file__ for m in msgs)  # points at the caller
    assert "K * max|x - zx| * max|w - zw| = 2284800000" in str(msgs[0].message)


@pytest.mark.parametrize(("profile", "engine"), ENGINES, ids=ENGINE_IDS)
def test_requantized_overflow_matches_torch(rng, profile, engine):
    """``A * sx * sw / so`` beyond int32 (output scale 1e-6): fbgemm and
    qnnpack convert it to INT32_MIN, so the output is the low clamp (0, or zo
    with relu) even for huge positive values; onednn saturates to 255."""
    x = rng.integers(0, 256, (9, 64), dtype=np.uint8)
    w = rng.integers(-128, 128, (21, 64), dtype=np.int8)
    acc = (x.astype(np.int64) - 128) @ w.astype(np.int64).T
    with peer.engine(engine):
        for relu in (False, True):
            want = _torch(x, 1.0, 128, w, 1.0, 0, None, 1e-6, 9, relu)
            got = _qops(profile, x, 1.0, 128, w, 1.0, 0, None, 1e-6, 9, relu)
            np.testing.assert_array_equal(got, want)
            low = 9 if relu else 0
            big = acc * 1e6 >= 2**31
            assert big.sum() > 50
            np.testing.assert_array_equal(got[big], 255 if profile == "onednn" else low)
            np.testing.assert_array_equal(got[acc * 1e6 <= -(2**31)], low)


@pytest.mark.parametrize(("profile", "engine"), ENGINES, ids=ENGINE_IDS)
def test_nonfinite_bias_matches_torch(rng, profile, engine):
    """NaN and infinite biases: fbgemm gives the low clamp, qnnpack quantizes
    NaN to INT32_MIN, onednn gives 255 for NaN (the zero point with relu)."""
    x, w, sx, zx, sw, zw, bias, so = _case(rng, profile, 6, 16, 12, False)
    bias[:5] = [np.nan, np.inf, -np.inf, 3e38, -3e38]
    with peer.engine(engine):
        for per_channel in (False, True):
            sws, zws = _weight_qparams(rng, profile, 12, per_channel)
            for relu in (False, True):
                want = _torch(x, sx, zx, w, sws, zws, bias, so, 50, relu)
                got = _qops(profile, x, sx, zx, w, sws, zws, bias, so, 50, relu)
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("profile", "engine"), ENGINES, ids=ENGINE_IDS)
def test_scales_as_float64_match_torch(rng, profile, engine):
    """Scales that are not float32 values (torch keeps them as double)."""
    with peer.engine(engine):
        for trial in range(6):
            per_channel = trial % 2 == 0
            x, w, sx, zx, sw, zw, bias, so = _case(rng, profile, 8, 64, 40, per_channel)
            sx = sx * (1 + 1e-9 * trial)  # off the float32 grid
            so = so * (1 - 3e-10 * trial)
            want = _torch(x, sx, zx, w, sw, zw, bias, so, 128, trial % 3 == 0)
            got = _qops(profile, x, sx, zx, w, sw, zw, bias, so, 128, trial % 3 == 0)
            np.testing.assert_array_equal(got, want)


def test_qnnpack_refuses_unusable_requantization_scales(rng):
    """qnnpack needs ``fl(fl(sw*sx) * fl(1/so))`` positive and normal: torch
    raises, qops raises ValueError; fbgemm runs the same parameters."""
    x = rng.integers(0, 256, (3, 8), dtype=np.uint8)
    w = rng.integers(-128, 128, (4, 8), dtype=np.int8)
    for sx, sw, so in ((1e-20, 1e-20, 1e10), (1e20, 1e20, 1e-20), (2.0**-70, 2.0**-70, 1.0)):
        with peer.engine("qnnpack"), pytest.raises(RuntimeError, match="requantization scale"):
            _torch(x, sx, 3, w, sw, 0, None, so, 5, False)
        with pytest.raises(ValueError, match="requantization scale"):
            _qops("qnnpack", x, sx, 3, w, sw, 0, None, so, 5, False)
        with peer.engine("fbgemm"):
            want = _torch(x, sx, 3, w, sw, 0, None, so, 5, False)
        np.testing.assert_array_equal(_qops("fbgemm", x, sx, 3, w, sw, 0, None, so, 5, False), want)
