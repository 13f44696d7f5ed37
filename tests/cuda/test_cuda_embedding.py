"""CUDA embedding_bag / embedding against the CPU kernels (and torch 2.13).

A packed table on the device runs the CUDA kernels; every float32 result must
equal the CPU result bit for bit (the CPU results are checked against torch in
``tests/test_embedding.py``, and against torch here too when it is installed).
Under the simulator the inputs stay small and the blocks shrink to 32 threads
so that the outputs span several blocks and grid-stride loops.
"""

import numpy as np
import pytest
from numba import cuda

import qops
import qops.functional as F
from qops.kernels.cuda import config

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(config, "threads_per_block", 32)
    monkeypatch.setattr(config, "max_blocks", 4)


def bits_eq(dev, ref):
    got = dev.copy_to_host()
    assert got.dtype == ref.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))


def _table(rng, n, d):
    x = rng.standard_normal((n, d)) * np.exp2(rng.uniform(-10, 10, (n, 1)))
    x[0] = 0.0
    x[1, : d // 2] = -0.0
    x[2] = 3.0
    return x.astype(np.float32)


@pytest.mark.parametrize("bits", [8, 4])
def test_bags_match_cpu(rng, bits):
    """Sum with and without per-sample weights, mean with padding_idx, the
    reference profile: 13 bags x 6 columns = 78 outputs over 4 x 32 threads."""
    table = _table(rng, 20, 6)
    packed = getattr(F, f"embedding_bag_{'byte' if bits == 8 else '4bit'}_prepack")(table)
    dev = cuda.to_device(packed)
    idx = rng.integers(0, 20, 60)
    off = np.sort(rng.integers(0, 60, 13))
    off[0] = 0
    off[3] = off[2]  # an empty bag
    psw = rng.standard_normal(60).astype(np.float32)
    cases = [dict(), dict(per_sample_weights=psw), dict(mode="mean", padding_idx=0),
             dict(numerics="reference"), dict(numerics="reference", per_sample_weights=psw)]
    for kw in cases:
        want = F.embedding_bag(idx, packed, off, bit_width=bits, **kw)
        bits_eq(F.embedding_bag(idx, dev, off, bit_width=bits, **kw), want)
    try:
        import torch
    except ImportError:
        return
    name = "byte" if bits == 8 else "4bit"
    t = getattr(torch.ops.quantized, f"embedding_bag_{name}_rowwise_offsets")(
        torch.from_numpy(packed), torch.from_numpy(idx), torch.from_numpy(off), False, 0, False,
        torch.from_numpy(psw), None, False).numpy()
    bits_eq(F.embedding_bag(idx, dev, off, per_sample_weights=psw, bit_width=bits), t)


def test_qtensor_on_device_and_embedding(rng):
    x = _table(rng, 9, 10)
    scales = np.maximum((x.max(1) - x.min(1)) / 255, 1e-3).astype(np.float32)
    zps = (-x.min(1) / scales).astype(np.float32)
    qw = qops.quantize_per_channel(x, scales, zps, 0, qops.quint8)
    ii = rng.integers(0, 9, (3, 4))
    want = F.embedding(ii, qw)
    got = F.embedding(ii, qw.to("cuda"))
    assert got.shape == (3, 4, 10)
    bits_eq(got, want)
    bits_eq(F.embedding_bag(ii, qw.to("cuda")), F.embedding_bag(ii, qw))
