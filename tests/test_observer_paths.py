"""The min/max kernel's paths against NumPy and the exact loop, bit for bit.

``kernels.cpu.observe.minmax`` reduces with ``vminps`` / ``vmaxps`` where the
CPU has AVX512F, falls back to the ``llvm.minimum`` loop when it saw a NaN
(whose bits that loop decides), and gives a zero result the sign that the
order ``-0.0 < +0.0`` implies.  These tests compare every path's bits with
that statement, on lengths around the 64-element blocks, data with zeros of
both signs, infinities and NaN, on both drivers and on the portable path.
The values (not the zero signs or NaN bits, see docs/observers.md) equal
torch.aminmax's.
"""

import numpy as np
import pytest

from qops.kernels import _split
from qops.kernels.cpu import _avx512
from qops.kernels.cpu import observe as O

torch = pytest.importorskip("torch")

F32 = np.float32


def bits(a):
    return np.asarray(a, F32).view(np.uint32)


def exact(x):
    out = np.empty(2, F32)
    O._minmax_serial(x, False, out)
    return out


def expected(x):
    """NaN: the exact loop's NaN; else NumPy's extremes, a zero one signed by
    ``-0.0 < +0.0``."""
    if np.isnan(x).any():
        return exact(x)
    mn, mx = F32(x.min()), F32(x.max())
    b = x.view(np.uint32)
    if mn == 0:
        mn = F32(-0.0) if (b == 0x80000000).any() else F32(0.0)
    if mx == 0:
        mx = F32(0.0) if (b == 0).any() else F32(-0.0)
    return np.array([mn, mx], F32)


def cases(rng):
    for n in (1, 63, 64, 65, 127, 128, 129, 1000, 70_001):
        yield rng.normal(0, 3, n).astype(F32)
        pool = np.array([0.0, -0.0, 1.5, -2.0, 3.0, np.inf, -np.inf], F32)
        for sel in ([0, 1, 2, 4], [0, 1, 3], [0, 1], [0, 2, 5], [1, 3, 6], [2, 3, 5, 6]):
            yield rng.choice(pool[sel], n)
        y = rng.normal(0, 3, n).astype(F32)
        y[rng.integers(0, n)] = np.nan
        yield y


@pytest.mark.parametrize("path", ["avx512-serial", "avx512-parallel", "avx512-parallel-python", "portable"])
def test_minmax_paths_bit_exact(rng, monkeypatch, path):
    """Every min/max path against a NumPy statement and torch.aminmax; the
    parallel pass in compiled parts (checked: the job was posted) and in
    parts handed over as Python calls."""
    if path != "portable" and not _avx512.avx512_available():
        pytest.skip("this CPU has no AVX512F")
    if path == "portable":
        monkeypatch.setenv("QOPS_DISABLE_AVX512", "1")
    monkeypatch.setattr(O, "MINMAX_PARALLEL_MIN", 1 << 62 if path in ("avx512-serial", "portable") else 0)
    if path == "avx512-parallel-python":
        monkeypatch.setattr(O, "run_compiled", lambda *args: False)
    compared = posted = blocks = 0
    for x in cases(rng):
        blocks += x.size >= O.MINMAX_BLOCK  # smaller ones take the portable loop
        out = np.empty(2, F32)
        # a job was posted if the pool's job number moved; its function is
        # the last one posted (never written here: a worker reads it)
        before = -1 if _split._pool is None else int(_split._pool.ctl[_split._SEQ])
        O.minmax(x, False, out)
        if _split._pool is not None and _split._pool.ctl[_split._SEQ] != before:
            posted += _split._pool.ctl[_split._HEADER + _split._FN] == O._MINMAX_JOB.compile()
        np.testing.assert_array_equal(bits(out), bits(expected(x)))
        t = torch.aminmax(torch.from_numpy(x))
        np.testing.assert_array_equal(out, [t[0].item(), t[1].item()])  # NaN == NaN, -0 == +0
        compared += 1
    assert compared == 9 * 8
    if path == "avx512-parallel" and _split.parts() > 1:
        assert posted == blocks == 7 * 8
    else:
        assert posted == 0


def test_minmax_fast_pass_reports_nan():
    if not _avx512.avx512_available():
        pytest.skip("this CPU has no AVX512F")
    out = np.empty(2, F32)
    x = np.linspace(-1, 1, 256).astype(F32)
    assert O._minmax_fast_serial(x, out)
    np.testing.assert_array_equal(out, [-1, 1])
    for pos in (0, 77, 255):
        y = x.copy()
        y[pos] = np.nan
        assert not O._minmax_fast_serial(y, out)
    z = np.concatenate([x, [F32(np.nan)]]).astype(F32)  # NaN in the scalar tail
    assert not O._minmax_fast_serial(z, out)


def test_minmax_portable_when_disabled(rng, monkeypatch):
    monkeypatch.setenv("QOPS_DISABLE_AVX512", "1")
    x = rng.normal(0, 1, 1000).astype(F32)
    out = np.empty(2, F32)
    O.minmax(x, False, out)
    np.testing.assert_array_equal(out, [x.min(), x.max()])
