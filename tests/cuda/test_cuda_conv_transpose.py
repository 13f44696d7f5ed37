"""CUDA transposed convolution against the CPU path (and torch), bit for bit.

``qops.functional.conv_transpose{1,2,3}d`` on QTensors whose data are CUDA
device arrays run the CUDA twins of the CPU kernels (``gemm_raw``,
``row_sums``, ``conv_transpose.col2im``, ``requantize_accumulators``); every
result must equal the NumPy call: integers, dtype, shape and qparams.  The CPU
path's conformance to torch is tested in ``tests/test_conv_transpose.py``;
one case per torch profile is also compared with torch here.

Small shapes with tiny launch blocks (and, in the simulator, GEMM tiles) so
that they span several blocks and threads loop in their grid strides.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

import qops
from qops.kernels.cpu import conv_transpose as cpu_ct
from qops.kernels.cuda import config
from qops.kernels.cuda import conv_transpose as cuda_ct
from qops.kernels.cuda import gemm as cuda_gemm
from qops.kernels.cuda.scalar import SIMULATOR

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

F = qops.functional


@pytest.fixture(autouse=True)
def small_launches(monkeypatch):
    monkeypatch.setattr(config, "threads_per_block", 8)
    monkeypatch.setattr(config, "max_blocks", 3)
    if SIMULATOR:
        monkeypatch.setattr(cuda_gemm, "TILE_M", 8)
        monkeypatch.setattr(cuda_gemm, "TILE_N", 8)
        monkeypatch.setattr(cuda_gemm, "TILE_K", 2)


def to_cuda(q):
    """The same QTensor with its data on the device."""
    return q.to("cuda")


def test_col2im_kernel_matches_cpu(rng):
    """The gather with corrections, every index checked: random raw products,
    row sums, tap sums and zero points, a grouped column block."""
    n_, d_, h_, w_ = 2, 1, 3, 2
    kd, kh, kw, og, o_total, o0 = 1, 2, 3, 3, 7, 2
    geometry = (kd, kh, kw, 1, 2, 1, 0, 1, 0, 1, 1, 2)
    od, oh, ow = 1, (h_ - 1) * 2 - 2 + 2, (w_ - 1) * 1 + 2 * 2 + 1
    m_in = n_ * d_ * h_ * w_
    stride = 32
    raw = rng.integers(-2**31, 2**31, m_in * stride).astype(np.int32)
    rowsum = rng.integers(0, 4000, m_in).astype(np.int32)
    wcz = rng.integers(-2**31, 2**31, kd * kh * kw * og).astype(np.int32)
    zw = rng.integers(-5, 6, og).astype(np.int32)
    acc_cpu = np.full(n_ * od * oh * ow * o_total, 7, np.int32)
    args = (og, o0, o_total, n_, d_, h_, w_) + geometry + (od, oh, ow)
    cpu_ct.col2im(raw, stride, rowsum, wcz, zw, *args, acc_cpu)
    acc_gpu = cuda.to_device(np.full_like(acc_cpu, 7))
    cuda_ct.col2im(cuda.to_device(raw), stride, cuda.to_device(rowsum), cuda.to_device(wcz),
                   cuda.to_device(zw), *args, acc_gpu)
    np.testing.assert_array_equal(acc_gpu.copy_to_host(), acc_cpu)
    assert np.all(acc_cpu.reshape(-1, o_total)[:, :o0] == 7)  # other groups' columns untouched


#: (profile, nd, x shape, weight shape, stride, padding, output_padding, dilation, groups,
#:  per_channel, zw, x dtype)
CASES = [
    ("fbgemm", 2, (2, 4, 3, 2), (4, 3, 2, 3), (2, 1), (0, 1), (1, 0), (1, 2), 2, False, 3, qops.quint8),
    ("qnnpack", 1, (2, 3, 5), (3, 4, 3), (3,), (1,), (2,), (1,), 1, True, 2, qops.quint8),
    ("onednn", 3, (1, 4, 2, 2, 2), (4, 3, 2, 1, 2), (1, 1, 2), (0, 0, 1), (0, 0, 0), (1, 1, 1), 1, False, 0,
     qops.quint8),
    ("reference", 2, (1, 6, 2, 3), (6, 2, 3, 2), (1, 2), (1, 0), (0, 1), (2, 1), 3, True, 1, qops.qint8),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_conv_transpose_matches_cpu(rng, case):
    profile, nd, xs, ws, s, p, op, d, g, per_channel, zw, x_dtype = case
    lo, hi = (0, 256) if x_dtype is qops.quint8 else (-128, 128)
    x = qops.make_per_tensor_qtensor(rng.integers(lo, hi, xs).astype(x_dtype.storage), 0.03,
                                     lo + 100, x_dtype)
    wi = rng.integers(-128, 128, ws).astype(np.int8)
    if per_channel:
        w = qops.make_per_channel_qtensor(wi, rng.uniform(0.005, 0.02, ws[1]), np.full(ws[1], zw), 1,
                                          qops.qint8)
    else:
        w = qops.make_per_tensor_qtensor(wi, 0.011, zw, qops.qint8)
    bias = rng.normal(size=ws[1] * g).astype(np.float32)
    f = getattr(F, f"conv_transpose{nd}d")
    want = f(x, w, bias, s, p, op, g, d, 0.05, lo + 131, numerics=profile)
    got = f(to_cuda(x), w, bias, s, p, op, g, d, 0.05, lo + 131, numerics=profile)
    assert got.device == "cuda"
    a, b = want.int_repr(), got.int_repr().copy_to_host()
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(b, a)
    assert (got.q_scale(), got.q_zero_point()) == (want.q_scale(), want.q_zero_point())
    if profile != "reference":
        torch = pytest.importorskip("torch")
        from tests.oracles import torch_peer as peer

        with peer.quiet(), peer.engine(profile):
            xq = peer.make_per_tensor(x.int_repr(), 0.03, lo + 100)
            wq = (peer.make_per_channel(wi, w.q_per_channel_scales(), w.q_per_channel_zero_points(), 1)
                  if per_channel else peer.make_per_tensor(wi, 0.011, zw))
            pk = getattr(torch.ops.quantized, f"conv_transpose{nd}d_prepack")(
                wq, torch.from_numpy(bias), list(s), list(p), list(op), list(d), g)
            y = getattr(torch.ops.quantized, f"conv_transpose{nd}d")(xq, pk, 0.05, lo + 131)
        np.testing.assert_array_equal(b, y.int_repr().numpy())
