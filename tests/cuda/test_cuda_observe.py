"""CUDA observer kernels (min/max, per-channel min/max, histc) against the CPU
kernels, and observers fed CUDA device arrays against the same observers fed
NumPy arrays.

The CPU kernels are the oracle here (their conformance to torch is tested in
``tests/``): every result must be bit-identical.  Runs on a GPU or under the
CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``): inputs stay small and the blocks
are shrunk so that a few hundred elements span several blocks and threads
loop in the grid stride.
"""

import numpy as np
import pytest
from numba import cuda

from qops import _dispatch
from qops import fake_quantize as qfq
from qops import observer as qobs
from qops.kernels.cpu import observe as cpu_kernels
from qops.kernels.cuda import config
from qops.kernels.cuda import observe as cuda_kernels

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

F32 = np.float32
SMALL_TPB = 16
SMALL_BLOCKS = 4
#: Sizes: one element, one short block, three blocks and one, and enough for
#: every thread to loop in the grid stride.
SIZES = (1, 7, 3 * SMALL_TPB + 1, SMALL_TPB * SMALL_BLOCKS * 3 + 5)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(config, "threads_per_block", SMALL_TPB)
    monkeypatch.setattr(config, "max_blocks", SMALL_BLOCKS)


def bits(a):
    return np.asarray(a, F32).view(np.uint32)


def cpu_minmax(x, skip_inf):
    out = np.empty(2, F32)
    cpu_kernels.minmax(x, skip_inf, out)
    return out


def gpu_minmax(x, skip_inf):
    out = cuda.device_array(2, F32)
    cuda_kernels.minmax(cuda.to_device(x), skip_inf, out)
    return out.copy_to_host()


@pytest.mark.parametrize("n", SIZES)
def test_minmax_matches_cpu(n, rng):
    x = rng.normal(0, 3, n).astype(F32)
    cases = [x]
    if n > 2:
        for special in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y[rng.integers(0, n)] = special
            cases.append(y)
        y = x.copy()
        y[0], y[-1] = np.inf, -np.inf
        cases.append(y)
    cases += [np.full(n, np.inf, F32), np.zeros(n, F32), -np.zeros(n, F32)]
    z = np.zeros(n, F32)
    z[::2] = -0.0
    cases.append(z)
    for y in cases:
        for skip_inf in (False, True):
            np.testing.assert_array_equal(bits(gpu_minmax(y, skip_inf)), bits(cpu_minmax(y, skip_inf)))


LAYOUTS = [(1, 5, 40), (6, 3, 1), (4, 7, 9), (2, 1, 70), (3, 40, 2)]


@pytest.mark.parametrize("outer, nch, inner", LAYOUTS)
def test_minmax_axis_matches_cpu(outer, nch, inner, rng):
    x = rng.normal(0, 2, outer * nch * inner).astype(F32)
    x[rng.integers(0, x.size)] = np.nan
    x[rng.integers(0, x.size)] = -np.inf
    want_min, want_max = np.empty(nch, F32), np.empty(nch, F32)
    cpu_kernels.minmax_axis(x, outer, nch, inner, want_min, want_max)
    got_min, got_max = cuda.device_array(nch, F32), cuda.device_array(nch, F32)
    cuda_kernels.minmax_axis(cuda.to_device(x), outer, nch, inner, got_min, got_max)
    np.testing.assert_array_equal(bits(got_min.copy_to_host()), bits(want_min))
    np.testing.assert_array_equal(bits(got_max.copy_to_host()), bits(want_max))


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("n", SIZES)
def test_histc_matches_cpu(n, exact, rng):
    x = rng.normal(0, 1, n).astype(F32)
    lo, hi = float(F32(-1.5)), float(F32(1.25))
    x[: min(n, 4)] = F32([lo, hi, np.nan, 0.3])[: min(n, 4)]  # both edges (right one in the last bin), NaN
    for bins in (1, 7, 64):
        want = np.empty(bins, np.int64)
        cpu_kernels.histc(x, lo, hi, exact, want)
        got = cuda.to_device(np.full(bins, 99, np.int64))  # the launcher zeroes it
        cuda_kernels.histc(cuda.to_device(x), lo, hi, exact, got)
        np.testing.assert_array_equal(got.copy_to_host(), want)
    nan_edges = cuda.device_array(5, np.int64)
    cuda_kernels.histc(cuda.to_device(x), float("nan"), float("nan"), exact, nan_edges)
    assert not nan_edges.copy_to_host().any()


def test_observers_on_device_arrays_match_host(rng):
    factories = [
        qobs.MinMaxObserver,
        qobs.MovingAverageMinMaxObserver.with_args(averaging_constant=0.3),
        qobs.PerChannelMinMaxObserver.with_args(ch_axis=1, dtype="qint8", qscheme="per_channel_symmetric"),
        qobs.MovingAveragePerChannelMinMaxObserver.with_args(ch_axis=0),
        qobs.HistogramObserver.with_args(bins=64),
        qobs.HistogramObserver.with_args(bins=32, numerics="reference"),
    ]
    for make in factories:
        host_obs, dev_obs = make(), make()
        for k in range(3):
            x = (rng.normal(0.5 * k, 1 + k, (5, 13))).astype(F32)
            host_obs(x)
            d = cuda.to_device(x)
            assert dev_obs(d) is d
        np.testing.assert_array_equal(bits(dev_obs.min_val), bits(host_obs.min_val))
        np.testing.assert_array_equal(bits(dev_obs.max_val), bits(host_obs.max_val))
        (sd, zd), (sh, zh) = dev_obs.calculate_qparams(), host_obs.calculate_qparams()
        np.testing.assert_array_equal(bits(sd), bits(sh))
        np.testing.assert_array_equal(zd, zh)
        if hasattr(host_obs, "histogram"):
            np.testing.assert_array_equal(dev_obs.histogram, host_obs.histogram)


def test_fake_quantize_on_device_arrays(rng):
    for make in (qfq.default_fake_quant, qfq.default_fused_per_channel_wt_fake_quant):
        host_fq, dev_fq = make(), make()
        x = rng.normal(0, 1, (4, 9)).astype(F32)
        g = rng.normal(0, 1, x.shape).astype(F32)
        yh = host_fq(x)
        d = cuda.to_device(x)
        yd = dev_fq(d)
        yd = yd.copy_to_host() if hasattr(yd, "copy_to_host") else yd
        np.testing.assert_array_equal(bits(yd), bits(yh))
        np.testing.assert_array_equal(bits(dev_fq.backward(d, g)), bits(host_fq.backward(x, g)))
        host_fq.disable_fake_quant()
        dev_fq.disable_fake_quant()
        yd = dev_fq(d)
        yd = yd.copy_to_host() if hasattr(yd, "copy_to_host") else yd
        np.testing.assert_array_equal(bits(yd), bits(host_fq(x)))
        np.testing.assert_array_equal(bits(dev_fq.backward(d, g)), bits(host_fq.backward(x, g)))


def test_host_state_ops_have_cuda_entries():
    """The statistics state stays on the host: its ops resolve on 'cuda' to the
    CPU functions (every op has a CUDA entry in the dispatch table)."""
    for op in ("histogram_search", "histogram_upscale", "cascade_sum", "linspace"):
        assert _dispatch._resolve(op, "cuda") is getattr(cpu_kernels, op)
    for op in ("minmax", "minmax_axis", "histc"):
        assert _dispatch._resolve(op, "cuda") is getattr(cuda_kernels, op)


def test_recording_observer_keeps_device_copies(rng):
    rec = qobs.RecordingObserver()
    x = rng.normal(0, 1, 9).astype(F32)
    d = cuda.to_device(x)
    assert rec(d) is d
    stored = rec.get_tensor_value()[0]
    assert stored is not d and hasattr(stored, "copy_to_host")
    np.testing.assert_array_equal(stored.copy_to_host(), x)
