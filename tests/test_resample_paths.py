"""The channel-shuffle kernel's paths: the AVX512-VBMI permutation of whole
64-byte blocks (channels-last, channel count dividing 64), its parallel
driver, and the element-by-element copy, against the transpose they compute."""

import numpy as np
import pytest

from qops.kernels.cpu import _avx512
from qops.kernels.cpu import resample as R


@pytest.mark.parametrize("path", ["vbmi-serial", "vbmi-parallel", "portable"])
def test_channel_shuffle_paths(rng, monkeypatch, path):
    if path != "portable" and not _avx512.vbmi_available():
        pytest.skip("this CPU has no AVX512-VBMI")
    if path == "portable":
        monkeypatch.setenv("QOPS_DISABLE_AVX512", "1")
    monkeypatch.setattr(R, "STREAM_PARALLEL_MIN", 0 if path == "vbmi-parallel" else 1 << 62)
    compared = 0
    for groups, cg in ((8, 8), (2, 32), (4, 4), (2, 1), (32, 2), (16, 4), (3, 5), (2, 58)):
        for pixels in (1, 5, 63, 64, 1000, 70_001):
            x = rng.integers(0, 256, (pixels, groups, cg, 1)).astype(np.uint8)
            out = np.empty((pixels, cg, groups, 1), np.uint8)
            R.channel_shuffle(x, out)
            np.testing.assert_array_equal(out, x.transpose(0, 2, 1, 3))
            compared += x.size
    assert compared > 5_000_000


def test_shuffle_index_is_a_permutation_of_whole_pixels():
    for c in (2, 4, 8, 16, 32, 64):
        for groups in (g for g in (2, 4, 8, 16, 32, 64) if c % g == 0):
            idx = _avx512_index(groups, c // groups)
            assert sorted(idx) == list(range(64))
            assert all(idx[j] // c == j // c for j in range(64))


def _avx512_index(groups, cg):
    return [int(v) for v in R._shuffle_index(groups, cg)]
