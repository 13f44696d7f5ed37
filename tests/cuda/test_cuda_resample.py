"""CUDA interpolate / channel_shuffle against the CPU kernels and torch.

Every CUDA result must be bit-identical to the same qops call on NumPy
arrays, and (where torch has the op) to torch 2.13.  CUDA QTensors are
C-contiguous, so the public ops reach torch's channels-last bilinear only
through inputs contiguous both ways; the channels-last kernel is therefore
also compared with its CPU twin directly, on real channels-last data that
crosses torch's vector boundaries (8 and 16 channels).

Runs on a GPU or under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``):
inputs of a few hundred elements, blocks shrunk so that they span several
blocks and threads loop in the grid stride.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

import qops
from qops import _resample
from qops import functional as qf
from qops.kernels.cpu import resample as cpu_kernels
from qops.kernels.cuda import config
from qops.kernels.cuda import resample as cuda_kernels

pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings(r"ignore:.*(deprecated|will be removed):UserWarning"),
]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(config, "threads_per_block", 32)
    monkeypatch.setattr(config, "max_blocks", 4)


def ints(rng, dtype, shape):
    lo, hi = (dtype.qmin, dtype.qmax) if dtype is not qops.qint32 else (-2**31, 2**31 - 1)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64).astype(dtype.storage)


def both(a, dtype, zp):
    q = qops.make_per_tensor_qtensor(a, 0.1, zp, dtype)
    return q, q.cuda()


def same(host_q, dev_q):
    assert dev_q.device == "cuda"
    got = dev_q.int_repr().copy_to_host()
    want = host_q.int_repr()
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert (dev_q.q_scale(), dev_q.q_zero_point()) == (host_q.q_scale(), host_q.q_zero_point())


@pytest.mark.parametrize("dtype", [qops.quint8, qops.qint8, qops.qint32], ids=lambda d: d.name)
def test_interpolate_cuda_matches_cpu(rng, dtype):
    cases = [
        ((2, 3, 4, 5), dict(scale_factor=1.7), "nearest"),
        ((1, 2, 3, 2, 4), dict(size=(2, 5, 3)), "nearest"),
        ((1, 3, 5, 3), dict(size=(4, 7)), "nearest-exact"),
        ((2, 3, 4, 5), dict(size=(7, 6), align_corners=False), "bilinear"),
        ((1, 2, 3, 4), dict(scale_factor=(2.3, 1.4), align_corners=True), "bilinear"),
        ((1, 1, 4, 5), dict(size=(6, 9), align_corners=False), "bilinear"),  # C=1: torch's channels-last kernel
        ((2, 17, 1, 1), dict(size=(3, 4), align_corners=False), "bilinear"),  # 1x1: channels-last + transpose
        ((1, 2, 3, 3), dict(size=(3, 3), align_corners=False), "bilinear"),  # same size: copy
    ]
    for shape, kw, mode in cases:
        q, d = both(ints(rng, dtype, shape), dtype, 3)
        same(qf.interpolate(q, mode=mode, **kw), qf.interpolate(d, mode=mode, **kw))
        if mode == "bilinear" and dtype is not qops.qint32:
            same(qf.interpolate(q, mode=mode, numerics="reference", **kw),
                 qf.interpolate(d, mode=mode, numerics="reference", **kw))


def test_channel_shuffle_cuda(rng):
    cases = [(qops.quint8, (2, 6, 3, 5), 3), (qops.qint8, (1, 8, 7), 4), (qops.qint32, (1, 4, 2, 2, 3), 2)]
    for dtype, shape, g in cases:
        q, d = both(ints(rng, dtype, shape), dtype, 1)
        same(qf.channel_shuffle(q, g), qf.channel_shuffle(d, g))


def test_bilinear_nhwc_kernel_twins(rng):
    """The channels-last kernel on channels-last data: CUDA == CPU bit for bit."""
    for dtype, c in [(qops.quint8, 17), (qops.qint8, 9), (qops.quint8, 24)]:
        n, h, w, oh, ow = 1, 3, 4, 5, 3
        x = ints(rng, dtype, (n, h, w, c))
        th = _resample.linear_weights(h, oh, False, None, True)
        tw = _resample.linear_weights(w, ow, False, 1.3, True)
        nvec = 16 * (c // 16) + 8 * ((c % 16) // 8)
        args = (np.float32(dtype.qmin + 5), dtype.qmin, dtype.qmax, nvec)
        want = np.empty((n, oh, ow, c), dtype.storage)
        cpu_kernels.bilinear_nhwc(x, *th, *tw, *args, want)
        got = cuda.device_array((n, oh, ow, c), dtype.storage)
        cuda_kernels.bilinear_nhwc(cuda.to_device(x), *[cuda.to_device(a) for a in th + tw], *args, got)
        np.testing.assert_array_equal(got.copy_to_host(), want)


def test_interpolate_cuda_matches_torch(rng):
    torch = pytest.importorskip("torch")
    if not torch.__version__.startswith("2.13."):
        # torch 2.11.0's quantized bilinear upsampling rounds 5 of these 144
        # values one step away from 2.13.0's (and from qops's).
        pytest.skip(f"the oracle is torch 2.13; this is torch {torch.__version__}")
    x = ints(rng, qops.quint8, (2, 3, 4, 5))
    q, d = both(x, qops.quint8, 7)
    t = torch._make_per_tensor_quantized_tensor(torch.from_numpy(x), 0.1, 7)
    for mode, kw in [("nearest", dict(scale_factor=1.5)), ("bilinear", dict(size=(6, 4), align_corners=False))]:
        want = torch.nn.functional.interpolate(t, mode=mode, **kw).int_repr().numpy()
        np.testing.assert_array_equal(qf.interpolate(d, mode=mode, **kw).int_repr().copy_to_host(), want)
