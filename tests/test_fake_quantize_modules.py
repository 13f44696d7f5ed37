"""Fake quantization modules against torch 2.13: outputs, parameters and the
gradients torch's autograd computes, bit for bit.

Each test steps a qops module and a torch module through the same batches
and compares after every step: the float32 output bits, ``scale`` and
``zero_point``, and ``backward`` against ``x.grad`` (and the parameter
gradients of the learnable module).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.ao.quantization import fake_quantize as tfq  # noqa: E402
from torch.ao.quantization import observer as tobs  # noqa: E402
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize  # noqa: E402

import qops  # noqa: E402
from qops import fake_quantize as qfq  # noqa: E402
from qops import observer as qobs  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*reduce_range will be deprecated:UserWarning",
    "ignore:.*must run observer before calling calculate_qparams:UserWarning",
)

F32 = np.float32


def bits(a):
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def assert_bits(got, want, what):
    np.testing.assert_array_equal(bits(got), bits(want), err_msg=what)


def torch_step(t, x, g):
    """torch forward and backward: (output, input gradient)."""
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    y = t(xt)
    y.backward(torch.from_numpy(g))
    return y.detach().numpy(), xt.grad.numpy()


def data(rng, shape, k):
    """Normal data whose spread changes per step, with exact zeros, a large
    outlier and values that fall on .5 steps of the output grid."""
    x = (rng.normal(0.3 * k, 1 + k, shape)).astype(F32)
    flat = x.reshape(-1)
    flat[:3] = [0.0, -0.0, 25.0 * (k + 1)]
    flat[3:40] = np.round(flat[3:40] * 8) / 8 + F32(1 / 16)
    return x


def grad_out(rng, shape):
    g = rng.normal(0, 1, shape).astype(F32)
    g.reshape(-1)[:2] = [-1.0, np.inf]  # -1 * 0 gives -0.0, inf * 0 gives NaN
    return g


def assert_step(q, t, x, g, where):
    yt, gt = torch_step(t, x, g)
    yq = q(x)
    assert_bits(yq, yt, f"output {where}")
    assert_bits(q.scale, t.scale.detach().numpy(), f"scale {where}")
    np.testing.assert_array_equal(q.zero_point, t.zero_point.detach().numpy(), err_msg=f"zero point {where}")
    assert q.zero_point.dtype == t.zero_point.detach().numpy().dtype, where
    gq = q.backward(x, g)
    np.testing.assert_array_equal(np.isnan(gq), np.isnan(gt), err_msg=f"grad NaN {where}")
    ok = ~np.isnan(gt)
    assert_bits(gq[ok], gt[ok], f"grad {where}")


FAKE_QUANTS = [
    ("default_fake_quant", (64, 33)),
    ("default_weight_fake_quant", (16, 9)),
    ("default_per_channel_weight_fake_quant", (8, 3, 5)),
    ("default_histogram_fake_quant", (300,)),
    ("default_dynamic_fake_quant", (50, 4)),
    ("default_embedding_fake_quant", (10, 16)),
    ("default_embedding_fake_quant_4bit", (10, 16)),
    ("default_fixed_qparams_range_0to1_fake_quant", (40,)),
    ("default_fixed_qparams_range_neg1to1_fake_quant", (40,)),
    ("default_fused_act_fake_quant", (64, 33)),
    ("default_fused_wt_fake_quant", (16, 9)),
    ("default_fused_per_channel_wt_fake_quant", (8, 3, 5)),
    ("fused_wt_fake_quant_range_neg_127_to_127", (16, 9)),
    ("fused_per_channel_wt_fake_quant_range_neg_127_to_127", (8, 3, 5)),
]


@pytest.mark.parametrize("name, shape", FAKE_QUANTS, ids=[n for n, _ in FAKE_QUANTS])
def test_default_fake_quants_match_torch(name, shape, rng):
    q = getattr(qfq, name)()
    t = getattr(tfq, name)()
    assert type(q).__name__ == type(t).__name__
    assert (q.quant_min, q.quant_max) == (t.quant_min, t.quant_max)
    for k in range(4):
        x = data(rng, shape, k)
        assert_step(q, t, x, grad_out(rng, shape), f"{name} step {k}")
    # disabling fake quantization: identity forward and gradient; observing goes on
    q.disable_fake_quant()
    t.disable_fake_quant()
    x = data(rng, shape, 5)
    assert_step(q, t, x, grad_out(rng, shape), f"{name} fake quant off")
    q.enable_fake_quant()
    t.enable_fake_quant()
    q.disable_observer()
    t.disable_observer()
    x = data(rng, shape, 6) * F32(3)
    assert_step(q, t, x, grad_out(rng, shape), f"{name} observer off")
    sq, zq = q.calculate_qparams()
    st, zt = t.calculate_qparams()
    assert_bits(sq, st.detach().numpy(), f"{name} calculate_qparams")
    np.testing.assert_array_equal(zq, zt.detach().numpy())


def test_fused_uses_fbgemm_parameters_not_the_observers(rng):
    """The fused module's forward scale comes from fbgemm's formula; its
    calculate_qparams() is the observer's: they differ, in qops as in torch."""
    q = qfq.default_fused_wt_fake_quant()
    t = tfq.default_fused_wt_fake_quant()
    x = F32([-1.0, 0.2, 0.5])
    q(x)
    t(torch.from_numpy(x))
    assert_bits(q.scale, t.scale.numpy(), "forward scale")
    assert q.scale[0] == F32(1.0) / F32(128)  # |min| / 128
    sq, _ = q.calculate_qparams()
    assert sq[0] == F32(2.0) / F32(255)  # the observer: amax / 127.5
    assert_bits(sq, t.calculate_qparams()[0].numpy(), "calculate_qparams")


def fbgemm_cases(rng, n):
    mn = -np.abs(rng.normal(0, 1, n) * 10.0 ** rng.uniform(-8, 4, n))
    mx = np.abs(rng.normal(0, 1, n) * 10.0 ** rng.uniform(-8, 4, n))
    pairs = np.stack([mn, mx], 1)
    specials = [(0, 0), (0, 1e-9), (-1e-9, 0), (-3e-7, 5e-7), (2, 5), (-5, -2), (0, 7), (-7, 0), (-1, 1),
                (-1.0, 1.0 + 2**-20), (-1e30, 1e30), (1e-45, 2e-45), (-128, 127), (-127.5, 127.5)]
    third = n // 3
    pairs[:third] = np.abs(pairs[:third])  # one-signed channels, both signs
    pairs[third:2 * third] = -np.abs(pairs[third:2 * third])
    pairs[: len(specials)] = specials
    return pairs.astype(F32)


@pytest.mark.parametrize("qmin, qmax", [(0, 255), (-128, 127), (-127, 127), (0, 127), (0, 15), (-64, 63)])
@pytest.mark.parametrize("symmetric", [False, True])
def test_fbgemm_choose_qparams_matches_torch(qmin, qmax, symmetric, rng):
    """fbgemm's ChooseQuantizationParams on 4000 (min, max) channels at once:
    torch's fused op observes a (C, 2) tensor of [min, max] rows per channel."""
    pairs = fbgemm_cases(rng, 4000)
    c = pairs.shape[0]
    run_min = torch.full((c,), float("inf"))
    run_max = torch.full((c,), float("-inf"))
    scale = torch.ones(c)
    zp = torch.zeros(c, dtype=torch.int32)
    torch.fused_moving_avg_obs_fake_quant(
        torch.from_numpy(pairs), torch.tensor([1]), torch.tensor([1]), run_min, run_max, scale, zp,
        1.0, qmin, qmax, 0, True, symmetric)
    s, z = qfq.choose_qparams_fbgemm(pairs.min(axis=1), pairs.max(axis=1), qmin, qmax, symmetric)
    assert s.dtype == np.float32 and z.dtype == np.int32
    assert_bits(s, scale.numpy(), "scales")
    np.testing.assert_array_equal(z, zp.numpy())


def test_fused_edge_cases_match_torch(rng):
    """All-zero input (scale 0.1), tiny ranges (scale floor 6.1e-5), one-signed
    channels of a symmetric per-channel module (affine zero points)."""
    cases = [
        ("default_fused_act_fake_quant", np.zeros((4, 6), F32)),
        ("default_fused_wt_fake_quant", np.zeros((4, 6), F32)),
        ("default_fused_act_fake_quant", F32([1e-7, 2e-7, -1e-8])),
        ("default_fused_wt_fake_quant", F32([1e-7, -3e-7])),
        ("default_fused_per_channel_wt_fake_quant", F32([[1.0, 2.0], [-3.0, -1.0], [-1.0, 4.0], [0.0, 0.0]])),
    ]
    for name, x in cases:
        q = getattr(qfq, name)()
        t = getattr(tfq, name)()
        assert_step(q, t, x, np.ones(x.shape, F32), name)
    q = qfq.default_fused_per_channel_wt_fake_quant()
    q(F32([[1.0, 2.0], [-3.0, -1.0]]))
    assert list(q.zero_point) == [-128, 127]  # affine zero points for one-signed channels


def test_fused_per_channel_needs_axis_0():
    q = qfq.FusedMovingAvgObsFakeQuantize(observer=qobs.MovingAveragePerChannelMinMaxObserver, ch_axis=1,
                                          quant_min=-128, quant_max=127, dtype=qops.qint8,
                                          qscheme=qops.per_channel_symmetric)
    with pytest.raises(NotImplementedError, match="axis == 0"):
        q(np.ones((2, 3), F32))


# ------------------------------------------------------------------ learnable
LEARNABLE = [
    dict(observer="MovingAverageMinMaxObserver", quant_min=0, quant_max=255),
    dict(observer="MovingAverageMinMaxObserver", quant_min=0, quant_max=15, use_grad_scaling=True),
    dict(observer="MovingAverageMinMaxObserver", quant_min=-128, quant_max=127, dtype="qint8",
         qscheme="per_tensor_symmetric"),
    dict(observer="MovingAveragePerChannelMinMaxObserver", quant_min=-8, quant_max=7, dtype="qint8",
         qscheme="per_channel_affine", ch_axis=0, channel_len=6),
    dict(observer="MovingAveragePerChannelMinMaxObserver", quant_min=-128, quant_max=127, dtype="qint8",
         qscheme="per_channel_symmetric", ch_axis=1, channel_len=6, use_grad_scaling=True),
    # int32 ranges: torch's per-tensor kernel subtracts the zero point in int64,
    # the per-channel one in float32 (they differ beyond 2**24)
    dict(observer="MovingAverageMinMaxObserver", quant_min=-(2**31), quant_max=2**31 - 1, dtype="qint32"),
    dict(observer="MovingAveragePerChannelMinMaxObserver", quant_min=-(2**31), quant_max=2**31 - 1,
         dtype="qint32", qscheme="per_channel_affine", ch_axis=0, channel_len=6),
]


def build_learnable(cfg, lib):
    kw = dict(cfg)
    obs_name = kw.pop("observer")
    if lib == "torch":
        for key in ("dtype", "qscheme"):
            if key in kw:
                kw[key] = getattr(torch, kw[key])
        return _LearnableFakeQuantize(observer=getattr(tobs, obs_name), **kw)
    return qfq.LearnableFakeQuantize(observer=getattr(qobs, obs_name), **kw)


def assert_learnable_step(q, t, x, g, where, threads):
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    for p in (t.scale, t.zero_point):
        p.grad = None
    y = t(xt)
    y.backward(torch.from_numpy(g))
    yq = q(x)
    assert_bits(yq, y.detach().numpy(), f"output {where}")
    assert_bits(q.scale, t.scale.detach().numpy(), f"scale {where}")
    assert_bits(q.zero_point, t.zero_point.detach().numpy(), f"zero point {where}")
    dx, ds, dz = q.backward(x, g, threads=threads)
    gt = xt.grad.numpy()
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(gt), err_msg=f"grad NaN {where}")
    assert_bits(dx[~np.isnan(gt)], gt[~np.isnan(gt)], f"grad x {where}")
    if t.scale.grad is None:
        assert ds is None and dz is None
    else:
        assert_bits(ds, t.scale.grad.numpy(), f"grad scale {where}")
        assert_bits(dz, t.zero_point.grad.numpy(), f"grad zero point {where}")


@pytest.mark.parametrize("cfg", LEARNABLE, ids=range(len(LEARNABLE)))
def test_learnable_fake_quant_matches_torch_autograd(cfg, rng):
    q = build_learnable(cfg, "qops")
    t = build_learnable(cfg, "torch")
    shape = (6, 40) if cfg.get("ch_axis", 0) == 0 else (5, 6, 7)
    threads = torch.get_num_threads()
    g = rng.normal(0, 1, shape).astype(F32)
    for k in range(2):  # static estimates from the observer
        assert_learnable_step(q, t, data(rng, shape, k), g, f"static {k}", threads)
    q.enable_param_learning()
    t.enable_param_learning()
    for k in range(3):  # learning: parameters moved by hand, half-way zero points
        s = rng.uniform(0.02, 0.3, q.scale.shape).astype(F32)
        # zero points anywhere, or near the top so that the outliers clamp at quant_max
        top = rng.random(q.scale.shape) < 0.5
        z = np.where(top, q.quant_max - rng.integers(0, 40, q.scale.shape),
                     rng.integers(q.quant_min, q.quant_max, q.scale.shape))
        z = np.clip(z + 0.5 * k, q.quant_min, q.quant_max).astype(F32)
        z = np.where(z.astype(np.float64) > q.quant_max, np.nextafter(z, F32(-np.inf)), z)  # rounded past 2**31 - 1
        q.scale[:], q.zero_point[:] = s, z
        with torch.no_grad():
            t.scale.copy_(torch.from_numpy(s))
            t.zero_point.copy_(torch.from_numpy(z))
        assert_learnable_step(q, t, data(rng, shape, k) * F32(0.2), g, f"learning {k}", threads)
    q.toggle_fake_quant(False)
    t.toggle_fake_quant(False)
    assert_learnable_step(q, t, data(rng, shape, 4), g, "fake quant off", threads)
    sq, zq = q.calculate_qparams()
    st, zt = t.calculate_qparams()
    assert_bits(sq, st.numpy(), "calculate_qparams scale")
    np.testing.assert_array_equal(zq, zt.numpy())
    assert zq.dtype == zt.numpy().dtype


@pytest.mark.parametrize("threads", [1, 2])
def test_learnable_gradient_sums_follow_torch_threads(threads, rng):
    """From 32768 elements on, torch sums each thread's chunk separately."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cfg = dict(observer="MovingAverageMinMaxObserver", quant_min=0, quant_max=255)
        q, t = build_learnable(cfg, "qops"), build_learnable(cfg, "torch")
        q.enable_param_learning()
        t.enable_param_learning()
        n = 3 * 32768 + 11
        x = rng.normal(0, 3, n).astype(F32)
        assert_learnable_step(q, t, x, rng.normal(0, 1, n).astype(F32), f"{threads} threads", threads)
    finally:
        torch.set_num_threads(old)


# ------------------------------------------------------------------ construction
def test_constructor_checks():
    with pytest.raises(ValueError, match="less than or equal"):
        qfq.FakeQuantize(quant_min=10, quant_max=5)
    with pytest.raises(ValueError, match="outside the dtype's range"):
        qfq.FakeQuantize(quant_min=-1, quant_max=255)
    with pytest.raises(TypeError, match="FixedQParamsObserver"):
        qfq.FixedQParamsFakeQuantize(observer=qobs.MinMaxObserver)
    with pytest.raises(TypeError, match="MovingAverageMinMaxObserver"):
        qfq.FusedMovingAvgObsFakeQuantize(observer=qobs.MinMaxObserver)
    with pytest.raises(ValueError, match="strictly less"):
        qfq.LearnableFakeQuantize(observer=qobs.MinMaxObserver, quant_min=3, quant_max=3)
    with pytest.raises(ValueError, match="channel_len"):
        qfq.LearnableFakeQuantize(observer=qobs.MinMaxObserver, channel_len=0)
    fq = qfq.default_fake_quant()
    fq(F32([1.0, 2.0]))
    with pytest.raises(ValueError, match="grad_out has shape"):
        fq.backward(F32([1.0, 2.0]), F32([1.0]))
    assert qfq._LearnableFakeQuantize is qfq.LearnableFakeQuantize


def test_module_helpers_toggle_flags():
    fq = qfq.default_fake_quant()
    qfq.disable_fake_quant(fq)
    qfq.disable_observer(fq)
    assert fq.fake_quant_enabled[0] == 0 and fq.observer_enabled[0] == 0
    qfq.enable_fake_quant(fq)
    qfq.enable_observer(fq)
    assert fq.fake_quant_enabled[0] == 1 and fq.observer_enabled[0] == 1
    qfq.disable_fake_quant(object())  # anything else is left alone
