"""``numerics="reference"`` linear against the exact fractions oracle.

The reference profile is ``clamp(rne((A*sx*sw_j + b_j) / so) + zo)`` on the
real values of the float32 scales and bias (``tests/oracles/exact.py``).  The
products reach 82 bits, so the kernel forms them on two-limb integers
(``kernels/cpu/requant.py``, :func:`reference_round`); these tests drive it
through exact ties on purpose (short-significand scales, biases on half
steps), ties broken by a bias far below the last bit, biases that cancel the
product to within a few units, and saturation.
"""

import itertools
from fractions import Fraction

import numpy as np
import pytest
from numba import njit

import qops
from qops.functional import linear, linear_relu
from qops.kernels.cpu.requant import reference_round
from tests.oracles import exact

NUMERICS = "reference"
SAT = 1 << 20
QDTYPE = {np.dtype(np.uint8): qops.quint8, np.dtype(np.int8): qops.qint8}


@njit(cache=False)
def _round_all(a, mx, mw, e1, mb, e2, mo, out):
    for i in range(a.size):
        out[i] = reference_round(a[i], mx[i], mw[i], e1[i], mb[i], e2[i], mo[i])


def _exact_value(a, mx, mw, e1, mb, e2, mo):
    two = Fraction(2)
    return (Fraction(a * mx * mw) * two**e1 + Fraction(mb) * two**e2) / mo


def _mantissas(rng, n, p_short):
    """24-bit significands; a fraction ``p_short`` with only 4 significant bits."""
    m = rng.integers(2**23, 2**24, n)
    short = rng.random(n) < p_short
    m[short] = rng.integers(8, 16, n)[short] << 20
    return m


def _hard_cases(rng, n):
    """Arguments of :func:`reference_round` that land near, on and around ties."""
    a = rng.integers(-(2**33), 2**33, n)
    small = rng.random(n) < 0.5
    a[small] = rng.integers(-3000, 3000, n)[small]
    mx, mw, mo = _mantissas(rng, n, 0.4), _mantissas(rng, n, 0.4), _mantissas(rng, n, 0.4)
    mb = rng.integers(-(2**24) + 1, 2**24, n)
    e1 = np.zeros(n, np.int64)
    e2 = rng.integers(-40, 10, n)
    kind = rng.integers(0, 5, n)
    for i in range(n):
        p = int(a[i]) * int(mx[i]) * int(mw[i])
        target = int(rng.integers(-3, 14))  # log2 of |value|
        e1[i] = target + 23 - abs(p).bit_length() if p else 0
        if kind[i] == 0:  # no bias
            mb[i] = 0
        elif kind[i] == 1:  # bias of the result's size or smaller
            e2[i] = target + int(rng.integers(-26, 3))
        elif kind[i] == 2 and p:  # bias cancels the product to a few units
            sh = abs(p).bit_length() - 24
            m = -round(Fraction(p, 2**sh)) if sh >= 0 else -p * 2 ** (-sh)
            if abs(m) >= 2**24:
                m //= 2
                sh += 1
            mb[i] = m + int(rng.integers(-2, 3))
            e2[i] = e1[i] + sh
        elif kind[i] == 3:  # exact tie from the product: value = odd / 2
            mx[i] = mw[i] = 2**23
            odd = 2 * int(rng.integers(-600, 600)) + 1
            if mo[i] % 2**20 == 0:  # short significand mo = m4 * 2**20
                a[i], e1[i] = odd * (int(mo[i]) >> 20), -27
            else:
                mo[i], a[i], e1[i] = 2**23, odd, -24
            mb[i] = 0
            if rng.random() < 0.5:  # break the tie by one unit far below
                mb[i] = int(rng.choice([-1, 1]))
                e2[i] = -int(rng.integers(30, 200))
        else:  # integer product part plus a bias of odd / 2: value = a + odd / 2
            odd = 2 * int(rng.integers(-50, 50)) + 1
            if mo[i] % 2**20 == 0:
                mb[i], e2[i] = odd * (int(mo[i]) >> 20), 19
            else:
                mo[i], mb[i], e2[i] = 2**23, odd, 22
            a[i] = 0 if rng.random() < 0.3 else int(rng.integers(-3000, 3000))
            mx[i], mw[i], e1[i] = mo[i], 2**23, -23
    return a, mx, mw, e1, mb, e2, mo


def test_reference_round_matches_fractions(rng):
    """40,000 arguments, a few thousand of them exact ties: 0 mismatches."""
    args = _hard_cases(rng, 40000)
    out = np.empty(args[0].size, np.int64)
    _round_all(*[np.ascontiguousarray(v, np.int64) for v in args], out)
    ties = 0
    for i in range(out.size):
        v = _exact_value(*(int(col[i]) for col in args))
        if v.denominator == 2:
            ties += 1
        want = exact.rne(v)
        if abs(want) >= SAT:
            assert out[i] == SAT * (1 if want > 0 else -1), i
        else:
            assert out[i] == want, (i, [int(c[i]) for c in args], int(out[i]), want)
    assert ties > 4000


def test_reference_round_extremes():
    """The largest products and exponents the kernel can see."""
    cases = [
        (2**33, 2**24 - 1, 2**24 - 1, -60, 0, 0, 2**23),
        (-(2**33), 2**24 - 1, 2**24 - 1, -70, 2**24 - 1, -2, 2**24 - 1),
        (2**32 - 1, 2**24 - 1, 2**24 - 1, 357, -(2**24) + 1, 253, 2**23),
        (1, 2**23, 2**23, -402, 1, -253, 2**24 - 1),
        (0, 2**23, 2**23, 0, 2**24 - 1, -15, 2**23),  # bias only: (2**24 - 1) / 2**38
        (0, 2**23, 2**23, 0, 2**24 - 1, 0, 2**23),  # bias only, saturates
        (7, 2**23, 2**23, -46, -(2**23), -24, 2**23),  # 7/2 - 1/2 = 3
    ]
    for c in cases:
        out = np.empty(1, np.int64)
        _round_all(*[np.array([v], np.int64) for v in c], out)
        want = exact.rne(_exact_value(*c))
        assert out[0] == (want if abs(want) < SAT else SAT * (1 if want > 0 else -1)), c


def _qops(x, sx, zx, w, sw, zw, bias, so, zo, relu=False):
    xq = qops.make_per_tensor_qtensor(x, float(sx), zx, QDTYPE[x.dtype])
    if np.ndim(sw):
        wq = qops.make_per_channel_qtensor(w, sw, zw, 0, QDTYPE[w.dtype])
    else:
        wq = qops.make_per_tensor_qtensor(w, float(sw), zw, QDTYPE[w.dtype])
    f = linear_relu if relu else linear
    return f(xq, wq, bias, so, zo, numerics=NUMERICS).int_repr()


def _count_ties(acc, sx, sw, bias, so, int_bias=None):
    """How many outputs are exact ties (``2 * value`` an odd integer)."""
    n = acc.shape[-1]
    sws = np.broadcast_to(np.asarray(sw, np.float32), (n,))
    ties = 0
    for (i, j), a in np.ndenumerate(acc):
        v = Fraction(int(a) + (0 if int_bias is None else int(int_bias[j]))) * Fraction(float(np.float32(sx)))
        v *= Fraction(float(sws[j]))
        if bias is not None:
            v += Fraction(float(bias[j]))
        v /= Fraction(float(np.float32(so)))
        ties += v.denominator == 2
    return ties


#: scales with short significands: A * sx * sw / so lands on half steps often
TIE_SX = 0.5
TIE_SW = np.float32([0.25, 0.125, 0.375, 0.0625, 0.75, 0.1875])
TIE_SO = (1.0, 0.75, 3.0)

DTYPE_PAIRS = [(np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8)]


@pytest.mark.parametrize(("x_dtype", "w_dtype"), DTYPE_PAIRS, ids=["u8s8", "s8s8", "u8u8", "s8u8"])
def test_linear_matches_exact_oracle_with_ties(rng, x_dtype, w_dtype):
    """Tie-heavy scales and biases, per-tensor and per-channel, float bias,
    int32 bias and none, relu: ~10,000 outputs per dtype pair, thousands of
    exact ties, 0 mismatches."""
    xi, wi = np.iinfo(x_dtype), np.iinfo(w_dtype)
    compared = ties = 0
    for t, (per_channel, bias_kind, relu) in enumerate(
        itertools.product((False, True), ("none", "float", "int"), (False, True))
    ):
        m, k, n = (17, 3, 40) if t % 2 else (33, 4, 25)
        zx = int(rng.integers(xi.min, xi.max + 1))
        if per_channel:
            sw = rng.choice(TIE_SW, n)
            zw = rng.integers(wi.min, wi.max + 1, n)
        else:
            sw, zw = np.float32(TIE_SW[t % TIE_SW.size]), int(rng.integers(wi.min, wi.max + 1))
        # values near the zero points keep most results unsaturated, where ties matter
        x = np.clip(zx + rng.integers(-9, 10, (m, k)), xi.min, xi.max).astype(x_dtype)
        w = np.clip(np.reshape(zw, (-1, 1)) + rng.integers(-9, 10, (n, k)), wi.min, wi.max).astype(w_dtype)
        so = TIE_SO[t % 3] / 8.0
        zo = int(rng.integers(xi.min, xi.max + 1))
        fb = ib = None
        if bias_kind == "float":
            fb = (rng.integers(-400, 400, n) / 16.0).astype(np.float32)
        elif bias_kind == "int":
            ib = rng.integers(-300, 300, n).astype(np.int32)
        acc = exact.accumulate(x, zx, w, zw)
        want = exact.linear(acc, TIE_SX, sw, so, zo, xi.min, xi.max, bias=fb, int_bias=ib, relu=relu)
        got = _qops(x, TIE_SX, zx, w, sw, zw, fb if ib is None else ib, so, zo, relu)
        assert got.dtype == x_dtype
        np.testing.assert_array_equal(got, want.astype(x_dtype), err_msg=f"case {t}")
        compared += got.size
        ties += _count_ties(acc, TIE_SX, sw, fb, so, ib)
    assert compared == 6 * (17 * 40 + 33 * 25) and ties > compared // 10


def test_linear_matches_exact_oracle_random_scales(rng):
    """Full-significand scales over a wide range, near-tie biases (a tie plus
    or minus one ulp of the bias), large K."""
    compared = 0
    for t in range(12):
        m, k, n = 6, (1, 31, 257, 1000)[t % 4], 15
        x = rng.integers(0, 256, (m, k), dtype=np.uint8)
        w = rng.integers(-128, 128, (n, k), dtype=np.int8)
        zx = int(rng.integers(0, 256))
        sx = np.float32(np.exp2(rng.uniform(-20, 5)))
        sw = np.exp2(rng.uniform(-20, 0, n)).astype(np.float32)
        zw = rng.integers(-5, 6, n)
        acc = exact.accumulate(x, zx, w, zw)
        so = np.float32(float(sx) * float(np.mean(sw)) * np.std(acc) / 50.0 + 1e-30)
        # bias that makes output 0 of row 0 an exact tie, nudged by an ulp
        tie = (Fraction(1, 2) + 7) * Fraction(float(so)) - Fraction(int(acc[0, 0])) * Fraction(
            float(sx)) * Fraction(float(sw[0]))
        fb = (rng.normal(0, 30, n) * float(so)).astype(np.float32)
        fb[0] = np.float32(float(tie))
        fb[1] = np.nextafter(fb[0], np.float32(np.inf))
        fb[2] = np.nextafter(fb[0], np.float32(-np.inf))
        want = exact.linear(acc, sx, sw, so, 100, 0, 255, bias=fb, relu=t % 2 == 1)
        got = _qops(x, sx, zx, w, sw, zw, fb, so, 100, relu=t % 2 == 1)
        np.testing.assert_array_equal(got, want.astype(np.uint8), err_msg=f"case {t}")
        compared += got.size
    assert compared == 12 * 6 * 15


def test_nonfinite_and_extreme_bias(rng):
    """NaN bias gives the zero point, infinities saturate, int32 biases at the
    limits are added exactly (the reference does not wrap A + b)."""
    x = rng.integers(0, 256, (4, 8), dtype=np.uint8)
    w = rng.integers(-128, 128, (6, 8), dtype=np.int8)
    fb = np.float32([np.nan, np.inf, -np.inf, 3e38, -1e-45, 0.5])
    for relu in (False, True):
        got = _qops(x, 0.5, 3, w, np.float32(0.25), 0, fb, 2.0, 40, relu)
        want = exact.linear(exact.accumulate(x, 3, w, 0), 0.5, 0.25, 2.0, 40, 0, 255, bias=fb, relu=relu)
        np.testing.assert_array_equal(got, want.astype(np.uint8))
        assert (got[:, 0] == 40).all() and (got[:, 1] == 255).all()
    ib = np.array([2**31 - 1, -(2**31), 0, 1, -1, 2**30], np.int32)
    got = _qops(x, 2.0**-20, 3, w, np.float32(2.0**-12), 0, ib, 2.0**-24, 128)
    want = exact.linear(exact.accumulate(x, 3, w, 0), 2.0**-20, 2.0**-12, 2.0**-24, 128, 0, 255, int_bias=ib)
    np.testing.assert_array_equal(got, want.astype(np.uint8))
