"""CPU kernels of the quantized activations (``qops._activation``).

Every activation of an 8-bit input is a function of the input byte alone, so
the API layer computes the 256 results once per call (with the peer's exact
float arithmetic) and these kernels only look them up.  torch 2.13 evaluates
most activations with two different float formulas: a vectorised one on whole
64-byte vectors of a contiguous run and a scalar one on the last ``run % 64``
elements of it.  The table therefore has two rows: ``lut[0]`` for vector
positions and ``lut[1]`` for tail positions, and the input is read as runs of
``row`` elements (torch's inner loop length; ``row`` = 0 means one run).

relu, relu6, hardtanh and clamp are integer clamps (:func:`clamp_apply`);
PReLU has one table per weight channel (:func:`lut_channels`).
"""

import math

import numpy as np
from numba import njit, prange

from .._options import CHUNK, CPU, CPU_INLINE, CPU_PARALLEL, PARALLEL_MIN, STREAM_PARALLEL_MIN
from .._split import (CompiledJob, args_of, array1, claim, compiled_pool, finish, launch, line_start, part_bounds,
                      put_array, run_ranges)
from ._avx512 import avx512bw_available, lut64, qprelu64, vbmi_available
from ._llvm import add_i32, fma32

__all__ = ["lut_apply", "clamp_apply", "lut_channels", "prelu_apply", "erf_vec", "sleef_expm1f"]

#: quint8 lanes of torch's Vectorized<quint8> on an AVX512 CPU
VEC = 64

#: Elements from which :func:`lut_channels` looks bytes up one by one in
#: parallel (one thread does about 1.6 per nanosecond on the reference machine).
CHANNELS_PARALLEL_MIN = 1 << 21

#: Elements from which :func:`clamp_apply` runs in parts, handed over in
#: compiled code (:func:`qops.kernels._split.run_compiled`).  On the reference
#: machine, one thread / two parts (microseconds a call, back to back, in two
#: processes): 128K 2.8-3.0 / 2.8-3.0, 256K 5.2-6.3 / 3.5-4.5, 1M 23-24 / 13-14.
CLAMP_PARTS_MIN = 1 << 18


@njit(**CPU_INLINE)
def _run_split(i, row, stop):
    """For position ``i`` in runs of ``row`` elements: where its run's vector
    part ends and where the run ends (both capped at ``stop``)."""
    r0 = (i // row) * row
    return min(r0 + row - row % VEC, stop), min(r0 + row, stop)


@njit(**CPU_INLINE)
def _gather(x, out, t, a, b):
    for k in range(np.uint64(a), np.uint64(b)):
        out[k] = t[x[k]]


@njit(**CPU_INLINE)
def _gather_vbmi(x, out, t, a, b):
    """:func:`_gather` with 64 bytes per ``vpermi2b`` pair (AVX512-VBMI)."""
    nv = (b - a) // 64
    if nv > 0:
        lut64(t, x, a, out, a, nv)
    _gather(x, out, t, a + 64 * nv, b)


@njit(**CPU_INLINE)
def _gather_pairs(x, out, x16, out16, t, p, a, b):
    """``out[k] = t[x[k]]`` on ``[a, b)`` with ``a`` even, two bytes per lookup
    through the pair table ``p`` (``x16``/``out16``: the arrays as uint16)."""
    h = np.uint64(a) // np.uint64(2)
    m = np.uint64(b - a) // np.uint64(2)
    for k in range(h, h + m):
        out16[k] = p[x16[k]]
    if (b - a) % 2:
        out[b - 1] = t[x[b - 1]]


@njit(**CPU_INLINE)
def _lut_range(x, out, x16, out16, lut, p, row, start, stop):
    """Elements ``[start, stop)``, ``start`` even; ``row`` > 0 is the run length
    (the pair path needs every run to start at an even index: ``row`` even)."""
    t0 = lut[0]
    t1 = lut[1]
    if row == 0:
        _gather_pairs(x, out, x16, out16, t0, p, start, stop)
        return
    i = start
    while i < stop:
        vend, rend = _run_split(i, row, stop)
        if i < vend:
            if row % 2 == 0:
                _gather_pairs(x, out, x16, out16, t0, p, i, vend)
            else:
                _gather(x, out, t0, i, vend)
            i = vend
        _gather(x, out, t1, i, rend)
        i = rend


@njit(**CPU)
def _pair_table(t):
    """The lookup of two bytes at once: ``p[a | b << 8] = t[a] | t[b] << 8``."""
    p = np.empty(65536, np.uint16)
    for v in range(65536):
        p[v] = np.uint16(t[v & 255]) | (np.uint16(t[v >> 8]) << np.uint16(8))
    return p


@njit(**CPU)
def _lut_serial(x, out, lut, row):
    n = x.size
    if row == 0:
        _gather(x, out, lut[0], 0, n)
    else:
        _lut_range_plain(x, out, lut, row, 0, n)


@njit(**CPU_INLINE)
def _lut_range_plain(x, out, lut, row, start, stop):
    t0 = lut[0]
    t1 = lut[1]
    i = start
    while i < stop:
        vend, rend = _run_split(i, row, stop)
        if i < vend:
            _gather(x, out, t0, i, vend)
            i = vend
        _gather(x, out, t1, i, rend)
        i = rend


@njit(**CPU_INLINE)
def _lut_range_vbmi(x, out, lut, row, start, stop):
    """:func:`_lut_range_plain` through :func:`_gather_vbmi`."""
    t0 = lut[0]
    t1 = lut[1]
    if row == 0:
        _gather_vbmi(x, out, t0, start, stop)
        return
    i = start
    while i < stop:
        vend, rend = _run_split(i, row, stop)
        if i < vend:
            _gather_vbmi(x, out, t0, i, vend)
            i = vend
        _gather(x, out, t1, i, rend)
        i = rend


@njit(**CPU)
def _lut_span_vbmi(x, out, lut, row, start, stop):
    _lut_range_vbmi(x, out, lut, row, start, stop)


@njit(**CPU_PARALLEL)
def _lut_parallel(x, out, x16, out16, lut, p, row):
    n = x.size
    nchunks = (n + CHUNK - 1) // CHUNK
    for c in prange(nchunks):
        _lut_range(x, out, x16, out16, lut, p, row, c * CHUNK, min(n, (c + 1) * CHUNK))


def lut_apply(x, out, lut, row):
    """``out[i] = lut[t, x[i]]``: ``t`` = 0 at vector positions, 1 in run tails.

    Parameters
    ----------
    x, out : uint8 arrays, flat, C-contiguous (signed data viewed as uint8)
    lut : uint8 array (2, 256)
    row : int
        Run length (torch's inner loop): in each run of ``row`` elements the
        first ``row - row % 64`` use ``lut[0]``, the rest ``lut[1]``; 0 means
        ``lut[0]`` everywhere.

    With AVX512-VBMI (:func:`kernels.cpu._avx512.vbmi_available`) the table
    sits in four registers and 64 bytes are looked up at once; elsewhere large
    inputs look two bytes up at once through a 65536-entry table.
    """
    n = x.size
    if vbmi_available():
        if n >= STREAM_PARALLEL_MIN:
            run_ranges(_lut_span_vbmi, n, x, out, lut, row)
        else:
            _lut_span_vbmi(x, out, lut, row, 0, n)
    elif n >= PARALLEL_MIN:
        h = n // 2
        _lut_parallel(x, out, x[: 2 * h].view(np.uint16), out[: 2 * h].view(np.uint16), lut,
                      _pair_table(lut[0]), row)
    else:
        _lut_serial(x, out, lut, row)


@njit(**CPU_INLINE)
def _clamp_range(x, out, lo, hi, a, b):
    m = line_start(out, a, b)  # the vector body stores whole lines from m
    for k in range(np.uint64(a), np.uint64(m)):
        v = x[k]
        v = lo if v < lo else v
        out[k] = hi if v > hi else v
    for k in range(np.uint64(m), np.uint64(b)):
        v = x[k]
        v = lo if v < lo else v
        out[k] = hi if v > hi else v


@njit(**CPU)
def _clamp_span(x, out, lo, hi, a, b):
    _clamp_range(x, out, lo, hi, a, b)


def _clamp_job(p):
    """One part of :func:`clamp_apply` run by a pool worker without the GIL;
    the slots as :func:`_clamp_parts` writes them (the element type: 0
    uint8, 1 int8, 2 int32)."""
    a, b = p[6], p[7]
    if p[8] == 0:
        _clamp_range(array1(p, 0, np.uint8), array1(p, 2, np.uint8), np.uint8(p[4]), np.uint8(p[5]), a, b)
    elif p[8] == 1:
        _clamp_range(array1(p, 0, np.int8), array1(p, 2, np.int8), np.int8(p[4]), np.int8(p[5]), a, b)
    else:
        _clamp_range(array1(p, 0, np.int32), array1(p, 2, np.int32), np.int32(p[4]), np.int32(p[5]), a, b)


_CLAMP_JOB = CompiledJob(_clamp_job)
_CLAMP_KIND = {np.dtype(np.uint8): 0, np.dtype(np.int8): 1, np.dtype(np.int32): 2}


@njit(**CPU)
def _clamp_parts(x, out, lo, hi, kind, ctl, nworkers, job):
    """:func:`clamp_apply` in ``nworkers + 1`` parts on the pool
    (:func:`qops.kernels._split.run_compiled`)."""
    if not claim(ctl):
        return -1
    n = x.size
    for w in range(nworkers):
        i = put_array(ctl, put_array(ctl, args_of(ctl, w), x), out)
        ctl[i] = lo
        ctl[i + 1] = hi
        ctl[i + 2], ctl[i + 3] = part_bounds(n, nworkers + 1, w + 1, 64)
        ctl[i + 4] = kind
    seq = launch(ctl, nworkers, job)
    _clamp_range(x, out, lo, hi, 0, part_bounds(n, nworkers + 1, 0, 64)[1])
    return finish(ctl, nworkers, seq, job)


def clamp_apply(x, out, lo, hi):
    """``out = min(max(x, lo), hi)`` on flat uint8, int8 or int32 arrays
    (``lo``, ``hi`` of the same NumPy type): relu, relu6, hardtanh and clamp,
    which are integer selections in every torch path.  LLVM vectorises the
    loop; from ``CLAMP_PARTS_MIN`` elements it runs in parts, handed to the
    pool's workers in compiled code (:func:`qops.kernels._split.run_compiled`)."""
    n = x.size
    if n >= CLAMP_PARTS_MIN:
        use = compiled_pool()  # run_compiled's steps, without its layers:
        if use is not None:    # the clamp of 1M bytes is 15 us in all
            pool, nworkers = use
            mask = _clamp_parts(x, out, lo, hi, _CLAMP_KIND[x.dtype], pool.ctl, nworkers,
                                _CLAMP_JOB.address or _CLAMP_JOB.compile())
            if mask >= 0:
                if mask:
                    pool.wake(mask)
                return
    _clamp_span(x, out, lo, hi, 0, n)


@njit(**CPU_INLINE)
def _channels_short(x, out, flat, offs, rowlen, o0, o1):
    """Outer rows ``[o0, o1)`` of ``rowlen`` elements whose channel runs are
    short (``inner`` < 64): each position reads the flat table through its
    offset ``offs[j]``.  Unsigned indices keep Numba's negative-index wrap
    out of the loop (it costs several times the lookup inside ``prange``)."""
    r = np.uint64(rowlen)
    for k in range(np.uint64(o0) * r, np.uint64(o1) * r, r):
        for j in range(r):
            out[k + j] = flat[offs[j] + np.uint64(x[k + j])]


@njit(**CPU_INLINE)
def _channels_range(x, out, tables, flat, offs, inner, o0, o1):
    """Outer rows ``[o0, o1)``, each ``nch * inner`` elements."""
    nch = tables.shape[0]
    if inner < 64:
        _channels_short(x, out, flat, offs, nch * inner, o0, o1)
        return
    k = o0 * nch * inner
    for _ in range(o0, o1):
        for c in range(nch):
            _gather(x, out, tables[c], k, k + inner)
            k += inner


@njit(**CPU)
def _channels_serial(x, out, tables, flat, offs, inner):
    _channels_range(x, out, tables, flat, offs, inner, 0, x.size // (inner * tables.shape[0]))


@njit(**CPU_PARALLEL)
def _channels_parallel(x, out, tables, flat, offs, inner):
    rowlen = inner * tables.shape[0]
    nout = x.size // rowlen
    per = max(1, CHUNK // rowlen)
    nchunks = (nout + per - 1) // per
    for c in prange(nchunks):
        _channels_range(x, out, tables, flat, offs, inner, c * per, min(nout, (c + 1) * per))


def lut_channels(x, out, tables, inner):
    """``out[i] = tables[(i // inner) % nch, x[i]]`` (flat uint8 arrays of a
    multiple of ``nch * inner`` elements; ``tables`` is ``(nch, 256)`` uint8):
    prelu's tables (the ``reference`` profile, and scales whose product
    overflows float32; the other profiles run :func:`prelu_apply`), in
    parallel from ``CHANNELS_PARALLEL_MIN`` elements."""
    nch = tables.shape[0]
    flat = tables.reshape(-1)
    offs = ((np.arange(nch * inner if inner < 64 else 1) // inner) * 256).astype(np.uint64)
    if x.size >= CHANNELS_PARALLEL_MIN:
        _channels_parallel(x, out, tables, flat, offs, inner)
    else:
        _channels_serial(x, out, tables, flat, offs, inner)


# --------------------------------------------------------------------------
# prelu in vector arithmetic
# --------------------------------------------------------------------------


@njit(**CPU_INLINE)
def _prelu_one(q, kneg, kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32):
    """torch's integer PReLU of one value: ``d = q - zx``, ``acc = d * k``
    (``k = one - zw`` for ``d > 0``, ``w - zw`` otherwise; both exact in
    float32, ``|acc| < 2**17``), then ``zo + rint(fl(acc * M))`` clamped.  The
    float clamp to ``[vlo, vhi]`` (one step beyond the output range) keeps the
    int32 conversion in range without changing the clamped result."""
    d = np.float32(q) - zxf
    k = kpos if d > np.float32(0.0) else kneg
    v = np.float32(d * k) * mult
    v = v if v > vlo else vlo
    v = v if v < vhi else vhi
    r = add_i32(np.int32(np.rint(v)), zo32)
    r = r if r > lo32 else lo32
    return r if r < hi32 else hi32


@njit(**CPU_INLINE)
def _prelu_rows(x, out, kn, kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32, nch, inner, o0, o1):
    """Outer rows ``[o0, o1)`` of ``nch * inner`` elements.  ``kn`` holds the
    negative-side factor per position of a row (``inner`` < 64) or per channel."""
    if inner < 64:
        r = np.uint64(nch * inner)
        for k in range(np.uint64(o0) * r, np.uint64(o1) * r, r):
            for j in range(r):
                out[k + j] = _prelu_one(x[k + j], kn[j], kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32)
        return
    k = o0 * nch * inner
    for _ in range(o0, o1):
        for c in range(nch):
            kc = kn[c]
            for j in range(np.uint64(k), np.uint64(k + inner)):
                out[j] = _prelu_one(x[j], kc, kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32)
            k += inner


@njit(**CPU)
def _prelu_serial(x, out, kn, kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32, nch, inner):
    _prelu_rows(x, out, kn, kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32, nch, inner, 0,
                x.size // (nch * inner))


@njit(**CPU_PARALLEL)
def _prelu_parallel(x, out, kn, kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32, nch, inner):
    rowlen = nch * inner
    nout = x.size // rowlen
    per = max(1, CHUNK // rowlen)
    for c in prange((nout + per - 1) // per):
        _prelu_rows(x, out, kn, kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32, nch, inner,
                    c * per, min(nout, (c + 1) * per))


# AVX512-BW: 64 values per step through qprelu64.  With fewer than 64
# positions per channel run the factors repeat with the period
# L = lcm(channels * inner, 64): one table of L factors serves every period;
# otherwise each channel run takes its factor from a block of 64 copies.
@njit(**CPU)
def _prelu_periods_simd(x, out, kt, period, p0, p1, kpos, mult, zxf, vlo, vhi, zo):
    for p in range(p0, p1):
        qprelu64(x, p * period, out, p * period, period // 64, kt, 0, 1, kpos, mult, zxf, vlo, vhi,
                 zo)


@njit(**CPU)
def _prelu_runs_simd(x, out, kb, kn, nch, inner, r0, r1, kpos, mult, zxf, vlo, vhi, zo32, lo32,
                     hi32):
    nv = inner // 64
    zo = np.int64(zo32)
    for r in range(r0, r1):
        c = r % nch
        b = r * inner
        qprelu64(x, b, out, b, nv, kb, c * 64, 0, kpos, mult, zxf, vlo, vhi, zo)
        for j in range(np.uint64(b + nv * 64), np.uint64(b + inner)):
            out[j] = _prelu_one(x[j], kn[c], kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32)


#: Elements from which :func:`prelu_apply` runs in parallel: the portable
#: ``prange`` driver (measured crossover on the reference machine, like the
#: flat add / mul before they ran in parts).
PRELU_PARALLEL_MIN = 1 << 23
#: Elements from which the AVX-512 PReLU runs in parts
#: (:mod:`qops.kernels._split`).  Measured on the reference machine, whole
#: calls, median of 40 back to back, one thread / two parts: 512K elements
#: 0.101 / 0.078 ms, 1M 0.170 / 0.115 ms, 2M 0.31 / 0.186 ms.
PRELU_PARTS_MIN = 1 << 19
#: The longest factor period (elements) the AVX-512 path tabulates.
PRELU_PERIOD_MAX = 1 << 16


def _prelu_simd(x, out, kneg, inner, args):
    """:func:`prelu_apply` through :func:`qprelu64`; False where it does not apply."""
    kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32, nch, _ = args
    big = x.size >= PRELU_PARTS_MIN
    if inner >= 64:
        kb = np.repeat(kneg.astype(np.float32), 64)
        runs = x.size // inner
        vec = (kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32)
        if big:
            run_ranges(_prelu_runs_simd, runs, x, out, kb, kneg, nch, inner, align=1, tail=vec)
        else:
            _prelu_runs_simd(x, out, kb, kneg, nch, inner, 0, runs, *vec)
        return True
    rowlen = nch * inner
    period = rowlen * 64 // math.gcd(rowlen, 64)
    if period > PRELU_PERIOD_MAX:
        return False
    period *= max(1, 4096 // period)  # a few thousand values per call
    kt = np.ascontiguousarray(np.tile(np.repeat(kneg, inner), period // rowlen), np.float32)
    full = x.size // period
    vec = (kpos, mult, zxf, vlo, vhi, np.int64(zo32))
    if big:
        run_ranges(_prelu_periods_simd, full, x, out, kt, period, align=1, tail=vec)
    else:
        _prelu_periods_simd(x, out, kt, period, 0, full, *vec)
    _prelu_serial_rows(x, out, kt, *args, full * period // rowlen, x.size // rowlen)
    return True


@njit(**CPU)
def _prelu_serial_rows(x, out, kn, kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32, nch, inner, o0, o1):
    _prelu_rows(x, out, kn, kpos, mult, zxf, vlo, vhi, zo32, lo32, hi32, nch, inner, o0, o1)


def prelu_apply(x, out, kneg, kpos, mult, zx, zo, qmin, qmax, inner):
    """torch 2.13's quantized PReLU on ``x`` (flat uint8 or int8, a multiple
    of ``nch * inner`` elements, channel ``(i // inner) % nch``) into ``out``
    (same dtype), in float32 vector arithmetic.

    ``kneg``: float32 ``w_c - zw`` per channel; ``kpos``: ``one - zw`` (the
    weight's quantized 1.0); ``mult``: float32 ``fl(fl(sx * sw) * fl(1/so))``,
    finite.  On AVX512-BW hosts, with the dtype's whole range as output
    range, 64 values at a time (:func:`qprelu64`).
    """
    nch = kneg.size
    args = (np.float32(kpos), np.float32(mult), np.float32(zx), np.float32(qmin - zo - 1),
            np.float32(qmax - zo + 1), np.int32(zo), np.int32(qmin), np.int32(qmax), nch, inner)
    info = np.iinfo(x.dtype)
    if (avx512bw_available() and x.size and (qmin, qmax) == (info.min, info.max)
            and _prelu_simd(x, out, np.ascontiguousarray(kneg, np.float32), inner, args)):
        return
    kn = np.repeat(kneg, inner) if inner < 64 else kneg
    if x.size >= PRELU_PARALLEL_MIN:
        _prelu_parallel(x, out, np.ascontiguousarray(kn, np.float32), *args)
    else:
        _prelu_serial(x, out, np.ascontiguousarray(kn, np.float32), *args)


# --------------------------------------------------------------------------
# table builders: torch's vectorised float32 helpers that need a fused
# multiply-add (NumPy has none); called on 256-element arrays by the API layer
# --------------------------------------------------------------------------
@njit(**CPU)
def erf_vec(x, e):
    """torch 2.13 ``Vectorized<float>::erf`` (AVX512/AVX2): Abramowitz-Stegun 7.1.26
    with fused multiply-adds; ``e`` holds ``exp(-fl(x*x))`` for each ``x``."""
    out = np.empty_like(x)
    one = np.float32(1.0)
    for i in range(x.size):
        v = x[i]
        t = one / fma32(np.float32(0.3275911), np.abs(v), one)
        r = fma32(np.float32(1.061405429), t, np.float32(-1.453152027))
        r = fma32(r, t, np.float32(1.421413741))
        r = fma32(r, t, np.float32(-0.284496736))
        r = fma32(r, t, np.float32(0.254829592))
        w = fma32((-e[i]) * t, r, one)
        out[i] = -w if v < 0 or (v == 0 and np.signbit(v)) else w
    return out


# Sleef's single-precision expm1 (u10) as torch 2.13 calls it on AVX512
# (Sleef_expm1f16_u10, the FMA variants of the double-float helpers of sleef's
# df.h), element by element; bit-identical to torch.expm1 on 4M float32 inputs.
_F = np.float32
_R_LN2F = _F(1.442695040888963407359924681001892137426645954152985934135449406931)
_L2UF = _F(0.693145751953125)
_L2LF = _F(1.428606765330187045e-06)


@njit(**CPU_INLINE)
def _ldexp2(d, q):
    a = q >> 1
    return d * _F(2.0 ** a) * _F(2.0 ** (q - a))


@njit(**CPU_INLINE)
def _dfadd2_df_f(xx, xy, y):
    rx = xx + y
    v = rx - xx
    ry = (xx - (rx - v)) + (y - v)
    return rx, ry + xy


@njit(**CPU_INLINE)
def _dfadd2_df_df(xx, xy, yx, yy):
    rx = xx + yx
    v = rx - xx
    ry = (xx - (rx - v)) + (yx - v)
    return rx, ry + (xy + yy)


@njit(**CPU_INLINE)
def _dfadd_f_df(x, yx, yy):
    rx = x + yx
    return rx, ((x - rx) + yx) + yy


@njit(**CPU_INLINE)
def _dfmul_df_f(xx, xy, y):
    rx = xx * y
    return rx, fma32(xy, y, fma32(xx, y, -rx))


@njit(**CPU_INLINE)
def _dfmul_df_df(xx, xy, yx, yy):
    rx = xx * yx
    return rx, fma32(xx, yy, fma32(xy, yx, fma32(xx, yx, -rx)))


@njit(**CPU_INLINE)
def _dfsqu(xx, xy):
    rx = xx * xx
    return rx, fma32(xx + xx, xy, fma32(xx, xx, -rx))


@njit(**CPU_INLINE)
def _expk2f(dx, dy):
    u = (dx + dy) * _R_LN2F
    q = np.int32(np.rint(u))
    qf = _F(q)
    sx, sy = _dfadd2_df_f(dx, dy, qf * -_L2UF)
    sx, sy = _dfadd2_df_f(sx, sy, qf * -_L2LF)
    u = _F(0.1980960224e-3)
    u = fma32(u, sx, _F(0.1394256484e-2))
    u = fma32(u, sx, _F(0.8333456703e-2))
    u = fma32(u, sx, _F(0.4166637361e-1))
    tx, ty = _dfmul_df_f(sx, sy, u)
    tx, ty = _dfadd2_df_f(tx, ty, _F(0.166666659414234244790680580464e+0))
    tx, ty = _dfmul_df_df(sx, sy, tx, ty)
    tx, ty = _dfadd2_df_f(tx, ty, _F(0.5))
    ax, ay = _dfsqu(sx, sy)
    tx, ty = _dfmul_df_df(ax, ay, tx, ty)
    tx, ty = _dfadd2_df_df(sx, sy, tx, ty)
    tx, ty = _dfadd_f_df(_F(1.0), tx, ty)
    tx = _ldexp2(tx, q)
    ty = _ldexp2(ty, q)
    if dx < _F(-104.0):
        return _F(0.0), _F(0.0)
    return tx, ty


@njit(**CPU)
def sleef_expm1f(x):
    """``Sleef_expm1f16_u10`` of each float32 ``x``."""
    out = np.empty_like(x)
    for i in range(x.size):
        a = x[i]
        dx, dy = _expk2f(a, _F(0.0))
        dx, dy = _dfadd2_df_f(dx, dy, _F(-1.0))
        r = dx + dy
        if a > _F(88.72283172607421875):
            r = _F(np.inf)
        if a < _F(-16.635532333438687426013570):
            r = _F(-1.0)
        if a == 0 and np.signbit(a):
            r = _F(-0.0)
        out[i] = r
    return out
