"""HistogramObserver against torch 2.13: histograms and qparams bit for bit.

torch's result depends on its float32 arithmetic in histc, linspace, cumsum,
bincount and torch.sum; qops reproduces each step, so the histogram (every
bin's float32 bits) and the searched qparams must equal torch's exactly, on
hundreds of random calibration runs and on the edge cases.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.ao.quantization import observer as tobs  # noqa: E402

import qops  # noqa: E402
from qops import _dispatch  # noqa: E402
from qops import observer as qobs  # noqa: E402
from qops.kernels._options import PARALLEL_MIN  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*reduce_range will be deprecated:UserWarning",
    "ignore:.*must run observer before calling calculate_qparams:UserWarning",
)

F32 = np.float32


def torch_kwargs(kw):
    out = dict(kw)
    for key in ("dtype", "qscheme"):
        if key in out:
            out[key] = getattr(torch, out[key].name)
    return out


def assert_qparams(got, want, where=""):
    (gs, gz), (ts, tz) = got, want
    ts, tz = ts.numpy(), tz.numpy()
    assert gs.dtype == ts.dtype == np.float32 and gz.dtype == tz.dtype, where
    # bits, except that any NaN equals any NaN (torch's NaN sign is not reproduced)
    np.testing.assert_array_equal(np.isnan(gs), np.isnan(ts), err_msg=f"NaN scales {where}")
    ok = ~np.isnan(ts)
    np.testing.assert_array_equal(gs[ok].view(np.uint32), ts[ok].view(np.uint32), err_msg=f"scale bits {where}")
    np.testing.assert_array_equal(gz, tz, err_msg=f"zero point {where}")


def assert_same_state(q, t, where=""):
    np.testing.assert_array_equal(q.histogram.view(np.uint32), t.histogram.numpy().view(np.uint32),
                                  err_msg=f"histogram bits {where}")
    assert q.min_val == t.min_val.item() and q.max_val == t.max_val.item(), where


def draw(rng, kind, n, scale, loc):
    if kind == 0:
        x = rng.normal(loc, scale, n)
    elif kind == 1:
        x = rng.uniform(loc - scale, loc + scale, n)
    elif kind == 2:
        x = rng.lognormal(0, 1, n) * scale * np.sign(rng.normal())
    elif kind == 3:  # outliers
        x = np.concatenate([rng.normal(loc, scale, n), rng.normal(loc, 30 * scale, max(1, n // 100))])
    elif kind == 4:  # few distinct values
        x = rng.choice(rng.normal(loc, scale, 5), n)
    else:  # integers: many exact ties with bin edges
        x = rng.integers(-20, 21, n) * scale
    return x.astype(F32)


def random_config(rng):
    sym = bool(rng.integers(0, 2))
    dt = [qops.quint8, qops.qint8][int(rng.integers(0, 2))]
    kw = dict(dtype=dt, qscheme=qops.per_tensor_symmetric if sym else qops.per_tensor_affine)
    kw["reduce_range"] = bool(rng.integers(0, 2))
    if rng.random() < 0.2:
        kw["quant_min"], kw["quant_max"] = (0, 127) if dt is qops.quint8 else (-64, 63)
    kw["bins"] = int(rng.choice([2048, 1024, 512, 256, 128, 100, 37]))
    return kw


@pytest.fixture(autouse=True)
def torch_one_thread():
    """torch on one thread: its histc and search cost less here, and none of
    the results depends on torch's thread count (``test_float32_building_blocks``
    checks two threads)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_random_calibrations_match_torch_bit_for_bit(rng):
    """420 random calibration runs (1-3 batches each, ranges growing on
    either side, bins 37..2048, the default in a seventh): every histogram and every qparams equal."""
    runs = 420
    for case in range(runs):
        kw = random_config(rng)
        q = qobs.HistogramObserver(**kw)
        t = tobs.HistogramObserver(**torch_kwargs(kw))
        # few distinct values (kind 4) make torch's own search slow: drawn less often
        kind = int(rng.choice(6, p=[0.25, 0.2, 0.2, 0.2, 0.05, 0.1]))
        scale = float(rng.uniform(0.01, 10))
        loc = float(rng.normal() * scale * rng.uniform(0, 2))
        for b in range(int(rng.integers(1, 4))):
            x = draw(rng, kind, int(rng.integers(1, 3000)), scale * rng.uniform(0.5, 2), loc + b * rng.normal())
            q(x)
            t(torch.from_numpy(x))
            assert_same_state(q, t, f"run {case} batch {b} {kw}")
        assert_qparams(q.calculate_qparams(), t.calculate_qparams(), f"run {case} {kw}")


def test_large_batches_use_the_parallel_histogram(rng):
    """Batches beyond PARALLEL_MIN: parallel min/max and histc, then growth."""
    q = qobs.HistogramObserver()
    t = tobs.HistogramObserver()
    for k in range(3):
        x = rng.normal(k, 1 + k, PARALLEL_MIN + 777).astype(F32)
        q(x)
        t(torch.from_numpy(x))
        assert_same_state(q, t, f"batch {k}")
    assert_qparams(q.calculate_qparams(), t.calculate_qparams())


EDGE_BATCHES = {
    "constant": [np.full(50, 0.7, F32)],
    "constant then wider": [np.full(50, 0.7, F32), F32([-1.0, 2.0, 0.5])],
    "constant twice": [np.full(50, -3.0, F32), np.full(7, -3.0, F32)],
    "all zero": [np.zeros(64, F32)],
    "zero then data": [np.zeros(64, F32), F32([-0.5, 0.25, 1.0])],
    "one element": [F32([1.5])],
    "tiny range": [F32([1.0, 1.0000001, 1.0000002])],
    "subnormal": [F32([0.0, 1e-45, 3e-45, -2e-45])],
    "huge": [F32([-3e38, 1e38, 3e38])],
    "narrower later": [F32([-10.0, 10.0]), F32([-1.0, 1.0, 0.0])],
    "shift left": [F32([0.0, 1.0]), F32([-5.0, -4.0])],
    "shift right": [F32([0.0, 1.0]), F32([5.0, 4.0])],
    "one-signed": [F32([2.0, 3.0, 7.0])],
    "negative": [F32([-2.0, -3.0, -7.0])],
}


#: Cases whose (empty or degenerate) histogram makes torch's own search run
#: its 1e5 Python steps: two dtypes only.
SLOW_EDGES = ("huge", "subnormal")
EDGE_DTYPES = [(qops.quint8, qops.per_tensor_affine), (qops.qint8, qops.per_tensor_symmetric),
               (qops.qint32, qops.per_tensor_affine), (qops.quint4x2, qops.per_tensor_affine)]


@pytest.mark.parametrize("name, dt, qs", [
    (name, dt, qs) for name in sorted(EDGE_BATCHES) for dt, qs in EDGE_DTYPES
    if name not in SLOW_EDGES or dt in (qops.quint8, qops.qint8)
])
def test_edge_cases_match_torch(name, dt, qs):
    kw = dict(dtype=dt, qscheme=qs)
    q = qobs.HistogramObserver(**kw)
    t = tobs.HistogramObserver(**torch_kwargs(kw))
    assert q.dst_nbins == t.dst_nbins
    for x in EDGE_BATCHES[name]:
        q(x)
        t(torch.from_numpy(x))
        assert_same_state(q, t, name)
    assert_qparams(q.calculate_qparams(), t.calculate_qparams(), name)


@pytest.mark.parametrize("reduce_range, qmin, qmax", [(True, None, None), (False, 0, 127), (True, 0, 255),
                                                      (False, 0, 31)])
def test_ranges_and_eps_match_torch(reduce_range, qmin, qmax, rng):
    kw = dict(reduce_range=reduce_range, quant_min=qmin, quant_max=qmax, eps=2.0**-12)
    q = qobs.HistogramObserver(**kw)
    t = tobs.HistogramObserver(**kw)
    for x in (rng.normal(0, 1, 500).astype(F32), F32([1e-5, 2e-5])):
        q(x)
        t(torch.from_numpy(x))
    assert (q.quant_min, q.quant_max) == (t.quant_min, t.quant_max)
    assert_qparams(q.calculate_qparams(), t.calculate_qparams())


def test_infinities_are_dropped_with_a_warning():
    q = qobs.HistogramObserver()
    t = tobs.HistogramObserver()
    for x in (F32([1.0, np.inf, -2.0, 0.5]), F32([np.inf, -np.inf]), F32([-np.inf, 3.0])):
        with pytest.warns(UserWarning, match="inf detected in input tensor, ignoring input"):
            q(x)
        with pytest.warns(UserWarning):
            t(torch.from_numpy(x))
        assert_same_state(q, t)
    assert_qparams(q.calculate_qparams(), t.calculate_qparams())
    only_inf = qobs.HistogramObserver()
    with pytest.warns(UserWarning, match="inf detected"):
        only_inf(F32([np.inf, np.inf]))
    assert only_inf.min_val == np.inf  # still unobserved


def test_nan_raises_and_leaves_the_observer_unchanged():
    """torch raises from histc ("range of [nan, nan] is not finite") after
    storing the NaN range; qops raises a ValueError first and keeps its state."""
    q = qobs.HistogramObserver()
    with pytest.raises(ValueError, match="holds NaN"):
        q(F32([1.0, np.nan]))
    assert q.min_val == np.inf and not q.histogram.any()
    q(F32([1.0, 2.0]))
    before = q.histogram.copy()
    with pytest.raises(ValueError, match="holds NaN"):
        q(F32([np.nan, 5.0]))
    np.testing.assert_array_equal(q.histogram, before)
    assert (q.min_val, q.max_val) == (1.0, 2.0)
    t = tobs.HistogramObserver()
    with pytest.raises(RuntimeError, match="not finite"):
        t(torch.tensor([1.0, float("nan")]))


def test_unobserved_and_empty_give_the_defaults():
    q = qobs.HistogramObserver()
    t = tobs.HistogramObserver()
    empty = np.zeros(0, F32)
    assert q(empty) is empty
    with pytest.warns(UserWarning, match="has not observed any data"):
        got = q.calculate_qparams()
    assert_qparams(got, t.calculate_qparams())


def test_bad_configurations():
    # unlike the MinMax observers, torch's HistogramObserver accepts symmetric
    # quint8 with reduce_range (and then keeps the zero point 128)
    q = qobs.HistogramObserver(qscheme=qops.per_tensor_symmetric, reduce_range=True)
    t = tobs.HistogramObserver(qscheme=torch.per_tensor_symmetric, reduce_range=True)
    q(F32([-1.0, 3.0]))
    t(torch.tensor([-1.0, 3.0]))
    assert_qparams(q.calculate_qparams(), t.calculate_qparams())
    with pytest.raises(NotImplementedError, match="per_tensor"):
        qobs.HistogramObserver(qscheme=qops.per_channel_symmetric)
    with pytest.raises(NotImplementedError, match="dynamic"):
        qobs.HistogramObserver(is_dynamic=True)
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        qobs.HistogramObserver(bins=0)


def test_default_histogram_observer_matches_torch(rng):
    q = qobs.default_histogram_observer()
    t = tobs.default_histogram_observer()
    assert (q.quant_min, q.quant_max, q.bins) == (t.quant_min, t.quant_max, t.bins)
    x = rng.normal(0, 1, 4000).astype(F32)
    q(x)
    t(torch.from_numpy(x))
    assert_qparams(q.calculate_qparams(), t.calculate_qparams())


# ------------------------------------------------------------------ building blocks
def test_float32_building_blocks_match_torch(rng):
    """torch.sum (cascade, 1 and 2 threads), linspace and histc, bit for bit."""
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for n in list(range(1, 70)) + [2048, 4097, 32767, 32768, 100_003]:
                x = (rng.normal(0, 1, n) * rng.uniform(0, 1e3, n)).astype(F32)
                got = _dispatch.run("cascade_sum_threads", "cpu", x, threads)
                want = np.float32(torch.from_numpy(x).sum().item())
                assert np.float32(got).view(np.uint32) == want.view(np.uint32), n
            for n in (2, 3, 2049, 32769):
                a = F32(rng.normal() * 10)
                b = F32(a + abs(rng.normal()) * 50)
                out = np.empty(n, F32)
                _dispatch.run("linspace", "cpu", a, b, out)
                want = torch.linspace(torch.tensor(a), torch.tensor(b), n).numpy()
                np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))
    finally:
        torch.set_num_threads(old)
    x = rng.normal(0, 1, 10_000).astype(F32)
    x[:100] = np.linspace(-1, 1, 100, dtype=F32)  # values on bin edges
    counts = np.empty(97, np.int64)
    _dispatch.run("histc", "cpu", x, -1.0, 1.0, False, counts)
    want = torch.histc(torch.from_numpy(x), 97, -1.0, 1.0).numpy()
    np.testing.assert_array_equal(counts.astype(F32), want)


# ------------------------------------------------------------------ reference profile
def test_reference_profile_is_a_float64_histogram(rng):
    """numerics="reference" keeps a float64 histogram and searches in float64;
    its qparams are close to torch's and differ on a few percent of runs."""
    differ = 0
    runs = 80
    for _ in range(runs):
        x = draw(rng, int(rng.integers(0, 4)), 2000, 1.0, 0.3)
        ref = qobs.HistogramObserver(numerics="reference")
        tq = qobs.HistogramObserver()
        ref(x)
        tq(x)
        ref(x * F32(1.3))
        tq(x * F32(1.3))
        assert ref.histogram.dtype == np.float64
        (s, z), (st, zt) = ref.calculate_qparams(), tq.calculate_qparams()
        assert s.dtype == np.float32 and z.dtype == zt.dtype
        if s[0] != st[0] or z[0] != zt[0]:
            differ += 1
            assert abs(float(s[0]) / float(st[0]) - 1) < 0.05
    assert differ < runs // 2
