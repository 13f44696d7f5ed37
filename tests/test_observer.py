"""MinMax-family observers against torch 2.13: statistics and qparams bit for bit.

Every comparison checks the float32 scale bits, the zero points and their
dtypes (``assert_qparams``).  The sweeps build one qops and one torch
observer per configuration and feed both the same batches; the counts of
compared configurations are asserted so that a sweep cannot silently shrink.
"""

import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.ao.quantization import observer as tobs  # noqa: E402

import qops  # noqa: E402
from qops import observer as qobs  # noqa: E402
from qops.kernels._options import PARALLEL_MIN  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*reduce_range will be deprecated:UserWarning",
    "ignore:.*must run observer before calling calculate_qparams:UserWarning",
)

F32 = np.float32


def tdtype(dt):
    return getattr(torch, dt.name)


def tscheme(qs):
    return getattr(torch, qs.name)


def torch_kwargs(kw):
    out = dict(kw)
    if "dtype" in out:
        out["dtype"] = tdtype(out["dtype"])
    if "qscheme" in out:
        out["qscheme"] = tscheme(out["qscheme"])
    return out


def assert_qparams(got, want, where=""):
    """Scale bits, zero points and both dtypes equal torch's."""
    (gs, gz), (ts, tz) = got, want
    ts, tz = ts.numpy(), tz.numpy()
    assert gs.dtype == ts.dtype == np.float32, where
    assert gz.dtype == tz.dtype, f"zero point dtype {gz.dtype} != torch {tz.dtype} {where}"
    # bits, except that any NaN equals any NaN (torch's NaN sign is not reproduced)
    np.testing.assert_array_equal(np.isnan(gs), np.isnan(ts), err_msg=f"NaN scales {where}")
    ok = ~np.isnan(ts)
    np.testing.assert_array_equal(gs[ok].view(np.uint32), ts[ok].view(np.uint32), err_msg=f"scale bits {where}")
    if gz.dtype.kind == "f":
        np.testing.assert_array_equal(gz.view(np.uint32), tz.view(np.uint32), err_msg=f"zero point bits {where}")
    else:
        np.testing.assert_array_equal(gz, tz, err_msg=f"zero points {where}")


def batches(rng, n_batches, size, kind):
    """Batches of float32 data of one kind: normal, shifted, one-signed, tiny, huge, constant."""
    out = []
    for _ in range(n_batches):
        n = int(rng.integers(1, size + 1))
        if kind == "normal":
            x = rng.normal(0, 3, n)
        elif kind == "shifted":
            x = rng.normal(5, 0.5, n)
        elif kind == "negative":
            x = -rng.lognormal(0, 1, n)
        elif kind == "tiny":
            x = rng.normal(0, 1e-30, n)
        elif kind == "huge":
            x = rng.normal(0, 1e30, n)
        elif kind == "constant":
            x = np.full(n, 0.7)
        else:  # zeros
            x = np.zeros(n)
        out.append(x.astype(F32))
    return out


KINDS = ["normal", "shifted", "negative", "tiny", "huge", "constant", "zeros"]
DTYPES = [qops.quint8, qops.qint8, qops.qint32, qops.quint4x2]


def per_tensor_configs():
    """Every valid dtype x scheme x reduce_range x range combination torch accepts."""
    for dt in DTYPES:
        for qs in (qops.per_tensor_affine, qops.per_tensor_symmetric):
            for rr in (False, True):
                if rr and qs is qops.per_tensor_symmetric and dt is qops.quint8:
                    continue
                yield dict(dtype=dt, qscheme=qs, reduce_range=rr)
                if dt in (qops.quint8, qops.qint8):
                    lo, hi = (0, 127) if dt is qops.quint8 else (-64, 63)
                    yield dict(dtype=dt, qscheme=qs, reduce_range=rr, quant_min=lo, quant_max=hi)
                    yield dict(dtype=dt, qscheme=qs, reduce_range=rr, quant_min=lo, quant_max=hi - 2,
                               eps=2.0**-12)


@pytest.mark.parametrize("cls", ["MinMaxObserver", "MovingAverageMinMaxObserver"])
def test_per_tensor_observers_match_torch(cls, rng):
    compared = crossed = 0
    for kw in per_tensor_configs():
        extra = [{}] if cls == "MinMaxObserver" else [{}, {"averaging_constant": 0.37}, {"averaging_constant": 1}]
        for ex in extra:
            for kind in KINDS:
                q = getattr(qobs, cls)(**kw, **ex)
                t = getattr(tobs, cls)(**torch_kwargs(kw), **ex)
                for x in batches(rng, 3, 40, kind):
                    assert q(x) is x
                    t(torch.from_numpy(x))
                    np.testing.assert_array_equal(q.min_val.view(np.uint32), t.min_val.numpy().view(np.uint32))
                    np.testing.assert_array_equal(q.max_val.view(np.uint32), t.max_val.numpy().view(np.uint32))
                if q.min_val > q.max_val:  # averaging crossed the ends: torch asserts too
                    with pytest.raises(AssertionError):
                        t.calculate_qparams()
                    with pytest.raises(ValueError, match="should not exceed max"):
                        q.calculate_qparams()
                    crossed += 1
                else:
                    assert_qparams(q.calculate_qparams(), t.calculate_qparams(), f"{cls} {kw} {ex} {kind}")
                compared += 1
    assert compared == (203 if cls == "MinMaxObserver" else 609)
    assert crossed < compared // 10


def per_channel_configs():
    for dt in (qops.quint8, qops.qint8, qops.quint4x2):
        for qs in (qops.per_channel_affine, qops.per_channel_symmetric, qops.per_channel_affine_float_qparams):
            for rr in (False, True):
                if rr and qs is qops.per_channel_symmetric and dt is qops.quint8:
                    continue
                yield dict(dtype=dt, qscheme=qs, reduce_range=rr)
    yield dict(dtype=qops.qint8, qscheme=qops.per_channel_symmetric, quant_min=-127, quant_max=127, eps=2.0**-12)


LAYOUTS = [((6, 7), 0), ((6, 7), 1), ((6, 7), -1), ((3, 4, 5), 1), ((2, 3, 4, 5), 0), ((2, 3, 4, 5), 3),
           ((2, 3, 4, 5), -3), ((9,), 0)]


@pytest.mark.parametrize("cls", ["PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver"])
def test_per_channel_observers_match_torch(cls, rng):
    compared = 0
    for kw in per_channel_configs():
        for shape, axis in LAYOUTS:
            q = getattr(qobs, cls)(ch_axis=axis, **kw)
            t = getattr(tobs, cls)(ch_axis=axis, **torch_kwargs(kw))
            for k in range(3):
                # channels of different scale and sign, some constant or zero
                x = (rng.normal(0, 1, shape) * rng.choice([1e-3, 1, 50], shape)).astype(F32)
                x += F32(rng.normal() * 2) * k
                x.reshape(-1)[: 2] = 0
                q(x)
                # torch cannot flatten a 1-D input; qops makes every element a channel
                t(torch.from_numpy(x.reshape(-1, 1) if x.ndim == 1 else x))
            np.testing.assert_array_equal(q.min_val.view(np.uint32), t.min_val.numpy().view(np.uint32))
            np.testing.assert_array_equal(q.max_val.view(np.uint32), t.max_val.numpy().view(np.uint32))
            assert_qparams(q.calculate_qparams(), t.calculate_qparams(), f"{cls} {kw} {shape} {axis}")
            compared += 1
    assert compared == 18 * len(LAYOUTS)


@pytest.mark.parametrize("layout", ["first", "last", "middle"])
def test_large_inputs_take_the_parallel_kernels(layout, rng):
    """Inputs beyond PARALLEL_MIN (odd sizes, a NaN-free and a NaN channel)."""
    n = PARALLEL_MIN + 12345
    x = rng.normal(0, 2, n).astype(F32)
    x[-7] = 40.0  # the extreme sits in the last chunk
    q = qobs.MinMaxObserver()
    t = tobs.MinMaxObserver()
    q(x)
    t(torch.from_numpy(x))
    assert_qparams(q.calculate_qparams(), t.calculate_qparams(), "per-tensor")
    shape, axis = {"first": ((16, n // 16), 0), "last": ((n // 16, 16), 1), "middle": ((4, 16, n // 64), 1)}[layout]
    xc = x[: int(np.prod(shape))].reshape(shape).copy()
    q = qobs.PerChannelMinMaxObserver(ch_axis=axis, dtype=qops.qint8, qscheme=qops.per_channel_symmetric)
    t = tobs.PerChannelMinMaxObserver(ch_axis=axis, dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    q(xc)
    t(torch.from_numpy(xc))
    assert_qparams(q.calculate_qparams(), t.calculate_qparams(), layout)


def test_minmax_kernel_nan_and_inf_match_torch_aminmax(rng):
    """A NaN anywhere makes both ends NaN (torch.aminmax); per channel only
    that channel; infinities are ordinary extremes (or skipped on request)."""
    from qops import _dispatch

    for n in (5, PARALLEL_MIN + 3):
        x = rng.normal(0, 1, n).astype(F32)
        for pos in (0, n // 2, n - 1):
            y = x.copy()
            y[pos] = np.nan
            out = np.empty(2, F32)
            _dispatch.run("minmax", "cpu", y, False, out)
            tmin, tmax = torch.aminmax(torch.from_numpy(y))
            np.testing.assert_array_equal(out, [tmin.item(), tmax.item()])
        y = x.copy()
        y[1], y[-2] = np.inf, -np.inf
        out = np.empty(2, F32)
        _dispatch.run("minmax", "cpu", y, False, out)
        np.testing.assert_array_equal(out, [-np.inf, np.inf])
        _dispatch.run("minmax", "cpu", y, True, out)
        finite = y[np.isfinite(y)]
        np.testing.assert_array_equal(out, [finite.min(), finite.max()])
        _dispatch.run("minmax", "cpu", np.full(n, np.inf, F32), True, out)
        np.testing.assert_array_equal(out, [np.inf, -np.inf])
    x = rng.normal(0, 1, (5, 7)).astype(F32)
    x[2, 3] = np.nan
    q = qobs.PerChannelMinMaxObserver(ch_axis=0)
    t = tobs.PerChannelMinMaxObserver(ch_axis=0)
    with pytest.warns(RuntimeWarning, match="observed NaN"):
        q(x)
    t(torch.from_numpy(x))
    np.testing.assert_array_equal(q.min_val, t.min_val.numpy())
    np.testing.assert_array_equal(q.max_val, t.max_val.numpy())
    assert_qparams(q.calculate_qparams(), t.calculate_qparams(), "per-channel NaN")


@pytest.mark.parametrize("cls", ["MinMaxObserver", "MovingAverageMinMaxObserver"])
@pytest.mark.parametrize("dt", [qops.quint8, qops.qint8])
@pytest.mark.parametrize("qs", [qops.per_tensor_affine, qops.per_tensor_symmetric])
def test_nan_and_inf_in_the_data_follow_torch(cls, dt, qs):
    """NaN sticks in min/max (warning) and gives torch's NaN scale and zero
    point; infinities give torch's infinite scale."""
    kw = dict(dtype=dt, qscheme=qs)
    q = getattr(qobs, cls)(**kw)
    t = getattr(tobs, cls)(**torch_kwargs(kw))
    for x in (F32([1.0, 2.0]), F32([3.0, np.nan, -1.0]), F32([5.0])):
        if np.isnan(x).any():
            with pytest.warns(RuntimeWarning, match="observed NaN"):
                q(x)
        else:
            q(x)
        t(torch.from_numpy(x))
    assert np.isnan(q.min_val) and np.isnan(q.max_val)
    assert_qparams(q.calculate_qparams(), t.calculate_qparams(), "NaN")
    q = getattr(qobs, cls)(**kw)
    t = getattr(tobs, cls)(**torch_kwargs(kw))
    x = F32([1.0, np.inf, -2.0])
    q(x)
    t(torch.from_numpy(x))
    assert_qparams(q.calculate_qparams(), t.calculate_qparams(), "inf")


def test_unobserved_and_empty_input_give_the_defaults():
    for cls in ("MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver",
                "MovingAveragePerChannelMinMaxObserver"):
        q = getattr(qobs, cls)()
        t = getattr(tobs, cls)()
        empty = np.zeros((0, 3), F32)
        assert q(empty) is empty  # empty input leaves the state alone
        t(torch.from_numpy(empty))
        with pytest.warns(UserWarning, match="has not observed any data"):
            got = q.calculate_qparams()
        assert_qparams(got, t.calculate_qparams(), cls)


def test_reset_min_max_vals():
    q = qobs.MinMaxObserver()
    q(F32([1, 2]))
    q.reset_min_max_vals()
    q(F32([-3, 4]))
    assert (float(q.min_val), float(q.max_val)) == (-3.0, 4.0)
    p = qobs.PerChannelMinMaxObserver()
    p(np.ones((3, 2), F32))
    p.reset_min_max_vals()
    p(np.ones((5, 2), F32))  # a new channel count after a reset is fine
    assert p.min_val.shape == (5,)


def test_torch_tensors_and_float64_input_are_accepted():
    q = qobs.MinMaxObserver()
    t = torch.tensor([0.1, -0.3, 2.0], dtype=torch.float64)
    assert q(t) is t
    assert float(q.max_val) == np.float32(2.0)
    assert q.min_val.dtype == np.float32


# ------------------------------------------------------------------ defaults
DEFAULTS = [
    "default_observer", "default_weight_observer", "weight_observer_range_neg_127_to_127",
    "default_per_channel_weight_observer", "per_channel_weight_observer_range_neg_127_to_127",
    "default_float_qparams_observer", "default_float_qparams_observer_4bit",
    "default_fixed_qparams_range_0to1_observer", "default_fixed_qparams_range_neg1to1_observer",
    "default_symmetric_fixed_qparams_observer", "default_affine_fixed_qparams_observer",
]


@pytest.mark.parametrize("name", DEFAULTS)
def test_default_instances_match_torch(name, rng):
    q = getattr(qobs, name)()
    t = getattr(tobs, name)()
    assert type(q).__name__ == type(t).__name__
    assert q.dtype.name == str(t.dtype).removeprefix("torch.")
    assert q.qscheme.name == str(t.qscheme).removeprefix("torch.")
    assert (q.quant_min, q.quant_max) == (t.quant_min, t.quant_max)
    x = rng.normal(0, 2, (6, 10)).astype(F32)
    q(x)
    t(torch.from_numpy(x))
    assert_qparams(q.calculate_qparams(), t.calculate_qparams(), name)


def test_placeholder_dynamic_and_debug_defaults():
    p = qobs.default_dynamic_quant_observer()
    tp = tobs.default_dynamic_quant_observer()
    assert (p.dtype.name, p.is_dynamic, p.quant_min, p.quant_max) == ("quint8", True, 0, 255)
    assert (tp.is_dynamic, tp.quant_min, tp.quant_max) == (True, 0, 255)
    assert qobs.default_placeholder_observer().dtype == np.float32
    assert qobs.NoopObserver().dtype == np.float16
    x = F32([1, 2])
    for obs in (p, qobs.NoopObserver(), qobs.ReuseInputObserver(), qobs.default_placeholder_observer()):
        assert obs(x) is x
        with pytest.raises(RuntimeError, match="should not be called"):
            obs.calculate_qparams()
    rec = qobs.default_debug_observer()
    rec(x)
    rec(x * 2)
    assert [list(v) for v in rec.get_tensor_value()] == [[1, 2], [2, 4]]


def test_with_args_factories():
    f = qobs.MinMaxObserver.with_args(dtype=qops.qint8).with_args(qscheme=qops.per_tensor_symmetric)
    a, b = f(), f()
    assert a is not b and a.dtype is qops.qint8 and a.qscheme is qops.per_tensor_symmetric
    counter = iter(range(100))
    g = qobs.MinMaxObserver.with_callable_args(eps=lambda: 2.0 ** -next(counter))
    assert g().eps[0] == 1.0 and g().eps[0] == 0.5
    assert "MinMaxObserver" in repr(f)


# ------------------------------------------------------------------ reference profile
def round_f32(fr):
    """Nearest float32 of a positive normal rational, by integer arithmetic."""
    from fractions import Fraction

    e = fr.numerator.bit_length() - fr.denominator.bit_length()
    if Fraction(2) ** e > fr:
        e -= 1
    m = fr / Fraction(2) ** (e - 23)  # in [2**23, 2**24)
    k = m.numerator // m.denominator
    rem = m - k
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and k % 2):
        k += 1
    return np.float32(float(Fraction(k) * Fraction(2) ** (e - 23)))


def test_reference_profile_is_the_exact_formula(rng):
    """numerics="reference": scale = (max - min) / (qmax - qmin) rounded once
    to float32, zp = qmin - rne(min / scale) exactly (per channel likewise);
    it differs from torch's float32 steps on some ranges, by one float32 step."""
    from fractions import Fraction

    mins = (-rng.lognormal(0, 8, 300)).astype(F32)
    maxs = rng.lognormal(0, 8, 300).astype(F32)
    ref = qobs.PerChannelMinMaxObserver(numerics="reference")
    tq = qobs.PerChannelMinMaxObserver()
    with qops.numerics("reference"):
        sym = qobs.MinMaxObserver(dtype=qops.qint8, qscheme=qops.per_tensor_symmetric)
    assert sym.numerics == "reference"
    x = np.stack([mins, maxs], axis=1)
    ref(x)
    tq(x)
    s, z = ref.calculate_qparams()
    st, zt = tq.calculate_qparams()
    for i, (mn, mx) in enumerate(zip(mins, maxs)):
        exact = max((Fraction(float(mx)) - Fraction(float(mn))) / 255, Fraction(qobs.FLOAT32_EPS))
        assert s[i] == round_f32(exact), i
        q = Fraction(float(mn)) / Fraction(float(s[i]))
        assert z[i] == min(max(0 - round(q), 0), 255)
    differ = np.flatnonzero(s != st)
    assert 0 < differ.size < s.size // 2  # about a quarter of random ranges
    np.testing.assert_array_equal(np.abs(s.view(np.int32)[differ] - st.view(np.int32)[differ]), 1)
    sym(x)
    ss, zs = sym.calculate_qparams()
    amax = max(-Fraction(float(mins.min())), Fraction(float(maxs.max())))
    assert ss[0] == round_f32(amax / Fraction(255, 2)) and zs[0] == 0


# ------------------------------------------------------------------ bad input
def test_bad_configurations_raise_like_torch_or_clearer():
    with pytest.raises(NotImplementedError, match="Cannot reduce range for symmetric"):
        qobs.MinMaxObserver(qscheme=qops.per_tensor_symmetric, reduce_range=True)
    with pytest.raises(NotImplementedError, match="Cannot reduce range for symmetric"):
        qobs.PerChannelMinMaxObserver(qscheme=qops.per_channel_symmetric, reduce_range=True)
    for cls in ("MinMaxObserver", "MovingAverageMinMaxObserver", "HistogramObserver"):
        with pytest.raises(NotImplementedError, match="per_tensor"):
            getattr(qobs, cls)(qscheme=qops.per_channel_affine)
    for cls in ("PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver"):
        with pytest.raises(NotImplementedError, match="per_channel"):
            getattr(qobs, cls)(qscheme=qops.per_tensor_affine)
        with pytest.raises(NotImplementedError, match="dynamic"):
            getattr(qobs, cls)(is_dynamic=True)
    with pytest.raises(ValueError, match="must include 0"):
        qobs.MinMaxObserver(quant_min=1, quant_max=20)
    with pytest.raises(ValueError, match="strictly less"):
        qobs.MinMaxObserver(quant_min=0, quant_max=0)
    with pytest.raises(ValueError, match="holds 306 values"):
        qobs.MinMaxObserver(quant_min=-5, quant_max=300)  # torch accepts this for quint8
    with pytest.raises(ValueError, match="holds 257 values"):
        qobs.MinMaxObserver(dtype=qops.qint8, quant_min=-128, quant_max=128)
    with pytest.raises(TypeError, match="quant_min must be an integer"):
        qobs.MinMaxObserver(quant_min=0.0, quant_max=255)
    for c in (0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"averaging_constant must lie in \(0, 1\]"):
            qobs.MovingAverageMinMaxObserver(averaging_constant=c)
        with pytest.raises(ValueError, match=r"averaging_constant must lie in \(0, 1\]"):
            qobs.MovingAveragePerChannelMinMaxObserver(averaging_constant=c)
    with pytest.raises(NotImplementedError, match="dynamic quantization"):
        qobs.MovingAverageMinMaxObserver(averaging_constant=0.5, is_dynamic=True)
    assert qobs.MovingAverageMinMaxObserver(averaging_constant=1, is_dynamic=True).is_dynamic
    with pytest.raises(TypeError, match="not a quantized dtype|neither a quantized dtype"):
        qobs.MinMaxObserver(dtype="int4")
    with pytest.raises(ValueError, match="not a quantization scheme"):
        qobs.MinMaxObserver(qscheme="per_row")
    with pytest.raises(TypeError, match="unexpected keyword arguments: bins"):
        qobs.MinMaxObserver(bins=10)
    with pytest.raises(NotImplementedError, match="factory_kwargs"):
        qobs.MinMaxObserver(factory_kwargs={"device": "cpu"})
    with pytest.raises(ValueError, match="eps must be"):
        qobs.MinMaxObserver(eps=0.0)


def test_bad_data_raises():
    p = qobs.PerChannelMinMaxObserver(ch_axis=2)
    with pytest.raises(ValueError, match="ch_axis=2 is out of range for a 2-D input"):
        p(np.ones((3, 4), F32))
    p = qobs.PerChannelMinMaxObserver(ch_axis=1)
    p(np.ones((3, 4), F32))
    with pytest.raises(ValueError, match="has 5 channels but the observer has seen 4"):
        p(np.ones((3, 5), F32))
    with pytest.raises(ValueError, match="at least a 1-D input"):
        qobs.PerChannelMinMaxObserver()(F32(1.0))
    with pytest.raises(TypeError, match="float input"):
        qobs.MinMaxObserver()(np.arange(4))


def test_sub_byte_and_qint32_ranges_follow_torch():
    for dt, rr in ((qops.quint4x2, True), (qops.qint32, True), (qops.quint4x2, False)):
        q = qobs.MinMaxObserver(dtype=dt, reduce_range=rr)
        t = tobs.MinMaxObserver(dtype=tdtype(dt), reduce_range=rr)
        assert (q.quant_min, q.quant_max) == (t.quant_min, t.quant_max)
    # torch refuses quint2x4; qops gives it its own range
    q = qobs.MinMaxObserver(dtype=qops.quint2x4)
    assert (q.quant_min, q.quant_max) == (0, 3)


def test_calibrate_draws_a_progress_bar():
    buf = io.StringIO()
    data = [F32([-1.0, 2.0]), F32([0.5, 3.0]), F32([4.0])]
    obs = qops.calibrate(qobs.MinMaxObserver(), data, progress=True, stream=buf)
    assert (float(obs.min_val), float(obs.max_val)) == (-1.0, 4.0)
    last = buf.getvalue().rstrip().split("\r")[-1]
    assert last.startswith("calibrate [") and "3/3" in last
    buf = io.StringIO()
    qops.calibrate(qobs.MinMaxObserver(), iter(data), progress=True, stream=buf)
    assert "3/3" in buf.getvalue().rstrip().split("\r")[-1]
    buf = io.StringIO()
    qops.calibrate(qobs.MinMaxObserver(), data, stream=buf)
    assert buf.getvalue() == ""
    with pytest.raises(TypeError, match="callable observer"):
        qops.calibrate(3, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qops.calibrate(qobs.MinMaxObserver(), [])
