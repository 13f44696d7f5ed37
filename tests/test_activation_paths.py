"""The activation kernels' code paths against a NumPy statement of their result.

``lut_apply`` has an AVX512-VBMI path (64 bytes per table lookup) and a
portable one, each with a serial and a parallel driver; ``lut_channels`` and
``clamp_apply`` have the two drivers.  Every path must give the same bytes, on
lengths and offsets that are not multiples of 64 and on runs whose vector
part and tail use different tables.  The API tests (test_activation.py)
compare the results with torch.
"""

import numpy as np
import pytest

from qops.kernels.cpu import _avx512
from qops.kernels._split import line_start
from qops.kernels.cpu import activation as A

PATHS = [(vbmi, parallel) for vbmi in (True, False) for parallel in (False, True)]
IDS = [f"{'vbmi' if v else 'portable'}-{'parallel' if p else 'serial'}" for v, p in PATHS]


@pytest.fixture
def path(request, monkeypatch):
    vbmi, parallel = request.param
    if vbmi and not _avx512.vbmi_available():
        pytest.skip("this CPU has no AVX512-VBMI")
    if not vbmi:
        monkeypatch.setenv("QOPS_DISABLE_AVX512", "1")
    big = 1 << 62
    for name in ("PARALLEL_MIN", "STREAM_PARALLEL_MIN", "CHANNELS_PARALLEL_MIN"):
        monkeypatch.setattr(A, name, 0 if parallel else big)
    return vbmi, parallel


def lut_expected(x, lut, row):
    """``lut[0]`` on each run's first ``row - row % 64`` elements, ``lut[1]`` after."""
    if row == 0:
        return lut[0][x]
    pos = np.arange(x.size) % row
    return np.where(pos < row - row % 64, lut[0][x], lut[1][x])


@pytest.mark.parametrize("path", PATHS, ids=IDS, indirect=True)
def test_lut_apply_paths(rng, path):
    lut = rng.integers(0, 256, (2, 256)).astype(np.uint8)
    compared = 0
    for n in (1, 63, 64, 65, 200, 4095, 70_001):
        for row in (0, 2, 7, 64, 100, 130, 256):
            if row and n % row:
                continue  # the API passes whole runs
            for off in (0, 1, 3):  # start the data off a 64-byte boundary
                buf = rng.integers(0, 256, n + off).astype(np.uint8)
                x = buf[off:]
                out = np.full(n + off, 7, np.uint8)[off:]
                A.lut_apply(x, out, lut, row)
                np.testing.assert_array_equal(out, lut_expected(x, lut, row))
                compared += n
    assert compared > 200_000


@pytest.mark.parametrize("path", PATHS, ids=IDS, indirect=True)
def test_lut_apply_every_byte(path):
    lut = np.stack([np.arange(256)[::-1], (np.arange(256) * 7) % 256]).astype(np.uint8)
    x = np.tile(np.arange(256, dtype=np.uint8), 300)
    out = np.empty_like(x)
    A.lut_apply(x, out, lut, 0)
    np.testing.assert_array_equal(out, lut[0][x])


@pytest.mark.parametrize("path", [p for p in PATHS if not p[0]], ids=[i for i in IDS if "portable" in i],
                         indirect=True)
def test_lut_channels_paths(rng, path):
    for nch, inner, outer in ((64, 1, 300), (3, 5, 200), (5, 64, 7), (4, 100, 9), (2, 130, 11), (1, 1000, 3)):
        tables = rng.integers(0, 256, (nch, 256)).astype(np.uint8)
        x = rng.integers(0, 256, nch * inner * outer).astype(np.uint8)
        out = np.empty_like(x)
        A.lut_channels(x, out, tables, inner)
        chan = (np.arange(x.size) // inner) % nch
        np.testing.assert_array_equal(out, tables[chan, x])


@pytest.mark.parametrize("path", [p for p in PATHS if not p[0]], ids=[i for i in IDS if "portable" in i],
                         indirect=True)
def test_clamp_apply_drivers(rng, path):
    for dtype, lo, hi in ((np.uint8, 3, 250), (np.int8, -100, 50)):
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max + 1, 100_003).astype(dtype)
        out = np.empty_like(x)
        A.clamp_apply(x, out, dtype(lo), dtype(hi))
        np.testing.assert_array_equal(out, np.clip(x, lo, hi))


@pytest.mark.parametrize("in_parts", [False, True], ids=["serial", "parts"])
def test_clamp_apply_line_offsets(rng, monkeypatch, in_parts):
    """The clamp starts its vector loop where the output starts a cache line:
    every position of the output relative to a 64-byte line, each length
    short of, at and past one line, in one part and in parts."""
    monkeypatch.setattr(A, "CLAMP_PARTS_MIN", 0 if in_parts else 1 << 62)
    for dtype, lo, hi in ((np.uint8, 3, 250), (np.int8, -100, 50), (np.int32, -70_000, 9)):
        info = np.iinfo(dtype)
        item = np.dtype(dtype).itemsize
        for n in (1, 5, 64 // item - 1, 64 // item + 1, 1000, 5003):
            x = rng.integers(max(info.min, -200_000), min(info.max, 200_000) + 1, n).astype(dtype)
            for off in range(64 // item):
                buf = np.full(n + 2 * 64 // item, 77, dtype)
                start = (-buf.ctypes.data % 64) // item + off
                out = buf[start:start + n]
                A.clamp_apply(x, out, dtype(lo), dtype(hi))
                np.testing.assert_array_equal(out, np.clip(x, lo, hi))
                assert (buf[:start] == 77).all() and (buf[start + n:] == 77).all()


def test_line_start():
    """``line_start(a, i, j)``: the first index from ``i`` whose element starts
    a 64-byte line, ``j`` if there is none before it."""
    for dtype in (np.uint8, np.int32, np.float32):
        item = np.dtype(dtype).itemsize
        buf = np.zeros(4096 // item, dtype)
        for off in range(64 // item):
            a = buf[off:]
            for i in (0, 3, 17):
                m = line_start(a, i, a.size)
                assert i <= m < i + 64 // item and a[m:].ctypes.data % 64 == 0
                assert all(a[k:].ctypes.data % 64 for k in range(i, m))
                assert line_start(a, i, i) == i and line_start(a, i, i + 1) in (i, i + 1)


def test_avx512_switch(monkeypatch):
    """QOPS_DISABLE_AVX512 is read at every call: any value but empty or 0
    turns the AVX-512 paths off; unset, empty or 0 leaves them to the host."""
    for value in ("1", "yes", "0", "", None, "1"):
        if value is None:
            monkeypatch.delenv("QOPS_DISABLE_AVX512", raising=False)
        else:
            monkeypatch.setenv("QOPS_DISABLE_AVX512", value)
        on = value in ("0", "", None)
        assert _avx512.vbmi_available() == (on and _avx512._HOST_VBMI)
        assert _avx512.avx512_available() == (on and _avx512._HOST_AVX512)
        assert _avx512.avx512bw_available() == (on and _avx512._HOST_BW)
