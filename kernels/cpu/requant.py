"""Requantization epilogues of linear and convolution (CPU).

Every linear and convolution ends the same way: the raw GEMM result
``raw[i, j] = sum_k xu[i, k] * ws[j, k]`` (:mod:`kernels.cpu.gemm`) becomes the
accumulator of ``shared NUMERICS.md`` section 3 through the zero-point
corrections (int32, wrapping)

    A = raw - zw[j] * rowsum[i] + cc[j],    cc[j] = K*zx*zw[j] - zx*colsum[j]

and ``A`` is requantized to an 8-bit output under one numerics profile.
:func:`requantize_accumulators` does both in one parallel pass over ``raw``;
the per-profile arithmetic is one small scalar function each (``ep_*``
below), inlined into the loops.

Parameters per output column ``j`` travel in two small arrays, ``ip`` (int64,
``NI`` rows) and ``fp`` (float32, ``NF`` rows), plus the scalars ``cf0``,
``cf1`` (float32) and ``ci0`` (int64); the API layer
(``qops/_packed.py``) fills them.  Rows not listed are unused.

=================  =============================================================
mode               parameters
=================  =============================================================
EP_FBGEMM          fp[0] = p, fp[1] = q (bias term ``fma(p, q, fl(A))``),
                   fp[2] = M
EP_QNNPACK         ip[0] = bq (int32 bias), fp[0] = rs
EP_ONEDNN          fp[0] = s_w, fp[1] = b; cf0 = s_src, cf1 = inv_dst,
                   ci0 = the output for NaN
EP_ONNXRUNTIME     ip[0] = int32 bias, fp[0] = M
EP_TFLITE(_SINGLE) ip[0] = int32 bias, ip[1] = multiplier, ip[2] = shift
EP_REFERENCE       ip[0] = integer bias (exact, not wrapped), ip[1] = mw
                   (24-bit mantissa of sw), ip[2] = e1 (exponent of
                   ``sx*sw/so`` over ``mx*mw/mo``), ip[3] = mb, ip[4] = e2
                   (float bias ``b/so = mb * 2**e2 / mo``), ip[5] = bias
                   class (0 finite, 1 +inf, -1 -inf, 2 NaN); ci0 = mx,
                   cf0 unused; the output scale's mantissa ``mo`` is in
                   ``ip[6]`` (same value in every column)
=================  =============================================================

Layout: element ``(i, j)`` of the block is ``raw[raw_off + i*raw_stride + j]``
and goes to ``out[out_off + i*out_stride + j]``; its column parameters are at
``pcol + j`` (``zw``, ``cc``, ``ip``, ``fp``).  Convolution with groups calls
once per group with its output channel offset as ``pcol`` and inside
``out_off``.
"""

import math

import numpy as np
from numba import njit

from .._options import CPU, CPU_INLINE
from .._split import run_ranges
from ..modes import (
    EP_FBGEMM,
    EP_ONEDNN,
    EP_ONNXRUNTIME,
    EP_QNNPACK,
    EP_REFERENCE,
    EP_TFLITE,
    EP_TFLITE_SINGLE,
)
from ._llvm import fma32
from .scalar import tflite_requant, tflite_requant_single, wrap32

__all__ = [
    "NI",
    "NF",
    "PARALLEL_MIN",
    "ep_fbgemm",
    "ep_qnnpack",
    "ep_onednn",
    "ep_onnxruntime",
    "ep_tflite",
    "ep_tflite_single",
    "ep_reference",
    "reference_round",
    "requantize_accumulators",
]

NI = 7  # int64 parameter rows
NF = 3  # float32 parameter rows

_TWO31F = np.float32(2147483648.0)
_INT8 = np.dtype(np.int8)
_REF_SAT = np.int64(1) << 20  # |rne| beyond this saturates every 8-bit output

# ---------------------------------------------------------------------------
# one scalar function per profile: corrected accumulator -> output integer
# ---------------------------------------------------------------------------


@njit(**CPU_INLINE)
def _torch_store(v, zo, lo, hi):
    """fbgemm / qnnpack output stage for float32 ``v``: ``cvt`` (x86: NaN or
    outside int32 gives INT32_MIN, which saturates to the low clamp), then
    ``clamp(sat16(r) + zo, lo, hi)`` (== ``clamp(r + zo)`` for 8-bit outputs)."""
    ok = (v > -_TWO31F) & (v < _TWO31F)
    y = np.float32(np.rint(v)) + zo
    y = min(max(y, lo), hi)
    return np.int32(y) if ok else np.int32(lo)


@njit(**CPU_INLINE)
def ep_fbgemm(a, p, q, m, zo, lo, hi):
    """fbgemm: ``t = fl(p*q + fl(A))`` (one rounding: per-tensor bias ``b``
    times ``fl(1/atw)``, or ``fl(b/atw_j) * 1`` per channel, or 0),
    ``v = fl(t * M)``, ``cvt``, ``clamp(sat16(r) + zo, lo, hi)``.

    ``zo``, ``lo``, ``hi`` are float32 (exact small integers).
    """
    t = fma32(p, q, np.float32(a))
    return _torch_store(np.float32(t * m), zo, lo, hi)


@njit(**CPU_INLINE)
def ep_qnnpack(a, bq, rs, zo, lo, hi):
    """qnnpack: ``v = fl(fl(A + bq) * rs)`` (int32 wrap), then as fbgemm."""
    a2 = np.int32(a + bq)
    return _torch_store(np.float32(np.float32(a2) * rs), zo, lo, hi)


@njit(**CPU_INLINE)
def ep_onednn(a, sw, b, s_src, inv_dst, zo, lo, hi, nan_out):
    """oneDNN: ``t = fl(fl(fl(A)*s_src)*s_w) + b``, ``v = fl(fl(t*inv_dst) + zo)``,
    ``clamp(rne(v), lo, hi)``; overflow saturates.  A NaN (from a NaN bias)
    gives ``nan_out``: ``hi`` (oneDNN's saturation takes the upper bound
    first), or ``zo`` with fused relu (``max(NaN, 0)`` is 0 there)."""
    t = np.float32(np.float32(np.float32(a) * s_src) * sw)
    t = np.float32(t + b)
    v = np.float32(np.float32(t * inv_dst) + zo)
    if v != v:
        return np.int32(nan_out)
    return np.int32(np.rint(min(max(v, lo), hi)))


@njit(**CPU_INLINE)
def ep_onnxruntime(a, bias, m, zo, lo, hi):
    """onnxruntime (MLAS): ``clamp(rne(fl(fl(A + bias) * M)) + zo, lo, hi)``,
    the zero point added after rounding; ``lo``/``hi`` float32."""
    a2 = np.int32(a + bias)
    v = np.float32(np.float32(a2) * m)
    y = np.float32(np.rint(v)) + zo  # |v| >= 2**24 is far outside [lo, hi]
    return np.int32(min(max(y, lo), hi))


@njit(**CPU_INLINE)
def ep_tflite(a, bias, mult, shift, zo, lo, hi):
    """TFLite reference kernels: ``clamp(MBQM(A + bias) + zo, lo, hi)``, double rounding."""
    r = tflite_requant(wrap32(np.int64(a) + bias), mult, shift)
    y = wrap32(r + zo)  # int32 addition, as TFLite's
    return np.int32(lo if y < lo else (hi if y > hi else y))


@njit(**CPU_INLINE)
def ep_tflite_single(a, bias, mult, shift, zo, lo, hi):
    """TFLite with single rounding (ruy, TOSA SINGLE_ROUND)."""
    r = tflite_requant_single(wrap32(np.int64(a) + bias), mult, shift)
    y = wrap32(r + zo)
    return np.int32(lo if y < lo else (hi if y > hi else y))


# ---------------------------------------------------------------------------
# reference: exact rounding on a two-limb integer (value = h * 2**62 + l)
# ---------------------------------------------------------------------------

_LB = 62


@njit(**CPU_INLINE)
def _norm(h, l):
    """Carry ``l`` into ``h`` so that ``0 <= l < 2**62``."""
    c = l >> _LB
    return h + c, l - (c << _LB)


@njit(**CPU_INLINE)
def _add_shifted(h, l, t, s):
    """``(h, l) + t * 2**s`` for ``|t| < 2**62`` and ``0 <= s < 62``."""
    th = t >> (_LB - s)
    tl = (t - (th << (_LB - s))) << s
    return _norm(h + th, l + tl)


@njit(**CPU_INLINE)
def _shl(h, l, s):
    """``(h, l) * 2**s`` for ``s >= 0`` (the result must fit in ~2**124)."""
    while s > 0:
        k = s if s < 30 else 30
        h = (h << k) + (l >> (_LB - k))
        l = (l & ((np.int64(1) << (_LB - k)) - 1)) << k
        s -= k
    return h, l


@njit(**CPU_INLINE)
def _sar(h, l, s):
    """``floor((h, l) / 2**s)`` for ``s >= 0`` and whether bits were dropped."""
    if s <= 0:
        return h, l, False
    if s < _LB:
        sticky = (l & ((np.int64(1) << s) - 1)) != 0
        nl = (l >> s) | ((h & ((np.int64(1) << s) - 1)) << (_LB - s))
        return h >> s, nl, sticky
    s2 = s - _LB
    sticky = l != 0
    if s2 >= 63:
        if h != 0:
            sticky = True
        v = np.int64(-1) if h < 0 else np.int64(0)
    else:
        if (h & ((np.int64(1) << s2) - 1)) != 0:
            sticky = True
        v = h >> s2
    vh = v >> _LB
    return vh, v - (vh << _LB), sticky


@njit(**CPU_INLINE)
def _bitlen(v):
    """Bit length of ``v >= 0``."""
    if v == 0:
        return 0
    e = math.frexp(np.float64(v))[1]  # one too high if the conversion rounded up
    if (v >> (e - 1)) == 0:
        e -= 1
    return e


@njit(**CPU_INLINE)
def _bitlen2(h, l):
    """Bit length of ``|(h, l)|``."""
    if h < 0:
        h, l = _norm(-h, -l)
    if h > 0:
        return _LB + _bitlen(h)
    return _bitlen(l)


@njit(**CPU_INLINE)
def _sign2(h, l):
    if h < 0:
        return -1
    if h == 0 and l == 0:
        return 0
    return 1


@njit(**CPU_INLINE)
def reference_round(a, mx, mw, e1, mb, e2, mo):
    """``rne((a*mx*mw * 2**e1 + mb * 2**e2) / mo)`` exactly, saturated to +-2**20.

    ``|a| < 2**34``, ``mx``, ``mw``, ``mo`` 24-bit mantissas (``mo >= 2**23``),
    ``|mb| < 2**24``: the value ``(A*sx*sw + b) / so`` with every float32
    split into mantissa and exponent.  The product has up to 82 bits, so the
    sum is formed on a two-limb integer; only the part that decides an 8-bit
    result is computed: ``W = floor(2X)`` and whether ``2X`` is an integer.
    """
    t = a * mx  # < 2**58
    t1 = t >> 31
    t0 = t - (t1 << 31)
    ph, pl = _norm(np.int64(0), t0 * mw)  # P = a*mx*mw
    ph, pl = _add_shifted(ph, pl, t1 * mw, 31)
    neg = np.int64(-(1 << 30))
    top1 = e1 + _bitlen2(ph, pl) if (ph != 0 or pl != 0) else neg
    top2 = e2 + _bitlen(abs(mb)) if mb != 0 else neg
    tmax = max(top1, top2)
    if tmax <= 21:  # |X| < 2**22 <= mo / 2: |value| < 1/2
        return np.int64(0)
    mbh = mb >> _LB  # mb as a two-limb number
    mbl = mb - (mbh << _LB)
    if tmax >= 40:
        if top1 >= top2 + 2:  # |X| >= 2**(top1 - 2) >= 2**38: saturated
            return _REF_SAT * _sign2(ph, pl)
        if top2 >= top1 + 2:
            return _REF_SAT * (1 if mb > 0 else -1)
        # comparable magnitudes: align both at the lower exponent (< 2**108)
        elo = min(e1, e2)
        sh, sl = _shl(ph, pl, e1 - elo)
        bh, bl = _shl(mbh, mbl, e2 - elo)
        sh, sl = _norm(sh + bh, sl + bl)
        if sh == 0 and sl == 0:
            return np.int64(0)
        if _bitlen2(sh, sl) + elo >= 40:
            return _REF_SAT * _sign2(sh, sl)
        # here elo >= -43: X * 2**60 is an integer below 2**100
        fh, fl = _shl(sh, sl, elo + 60)
        sticky = False
    else:
        # every term below 2**40; the larger exponent is >= -60, so
        # F = floor(X * 2**60) is exact: one term integral, one floored
        if e1 + 60 >= 0:
            fh, fl = _shl(ph, pl, e1 + 60)
            s1 = False
        else:
            fh, fl, s1 = _sar(ph, pl, -(e1 + 60))
        if e2 + 60 >= 0:
            gh, gl = _shl(mbh, mbl, e2 + 60)
            s2 = False
        else:
            gh, gl, s2 = _sar(mbh, mbl, -(e2 + 60))
        fh, fl = _norm(fh + gh, fl + gl)
        sticky = s1 or s2
    # W = floor(2X) = floor(F / 2**59); 2X is an integer iff nothing dropped
    wh, wl, s3 = _sar(fh, fl, 59)
    sticky = sticky or s3
    w = (wh << _LB) + wl  # |W| < 2**42
    d = 2 * mo
    q = w // d
    r = w - q * d  # value = q + (r + frac) / (2 mo)
    if r > mo or (r == mo and (sticky or (q & 1) != 0)):
        q += 1
    return q


@njit(**CPU_INLINE)
def ep_reference(a, ib, mx, mw, e1, mb, e2, bclass, mo, zo, lo, hi):
    """Exact ``clamp(rne((A*sx*sw + b)/so) + zo, lo, hi)``; an integer bias
    ``ib`` (accumulator scale) is added to ``A`` exactly, a NaN float bias
    gives ``zo`` and an infinite one saturates (then the clamp)."""
    if bclass == 0:
        q = reference_round(np.int64(a) + ib, mx, mw, e1, mb, e2, mo)
    elif bclass == 2:
        q = np.int64(0)
    else:
        q = _REF_SAT * bclass
    y = q + zo
    return np.int32(lo if y < lo else (hi if y > hi else y))


# ---------------------------------------------------------------------------
# the fused pass: corrections + requantization over a block of the output
# ---------------------------------------------------------------------------


@njit(**CPU)
def _block(mode, raw, raw_off, raw_stride, r0, r1, c0, c1, rowsum, zw, cc, ip, fp,
           cf0, cf1, ci0, zo, lo, hi, out, out_off, out_stride, pcol):
    zof = np.float32(zo)
    lof = np.float32(lo)
    hif = np.float32(hi)
    pc = np.uint64(pcol)
    for i in range(r0, r1):
        rs = np.int32(rowsum[i])
        # unsigned offsets and indices: no negative-index wrap, so loops vectorise
        rb = np.uint64(raw_off + i * raw_stride)
        ob = np.uint64(out_off + i * out_stride)
        js = np.uint64(c0)
        je = np.uint64(c1)
        if mode == EP_FBGEMM:
            for j in range(js, je):
                c = pc + j
                a = np.int32(raw[rb + j] - zw[c] * rs + cc[c])
                out[ob + j] = ep_fbgemm(a, fp[0, c], fp[1, c], fp[2, c], zof, lof, hif)
        elif mode == EP_QNNPACK:
            for j in range(js, je):
                c = pc + j
                a = np.int32(raw[rb + j] - zw[c] * rs + cc[c])
                out[ob + j] = ep_qnnpack(a, np.int32(ip[0, c]), fp[0, c], zof, lof, hif)
        elif mode == EP_ONEDNN:
            for j in range(js, je):
                c = pc + j
                a = np.int32(raw[rb + j] - zw[c] * rs + cc[c])
                out[ob + j] = ep_onednn(a, fp[0, c], fp[1, c], cf0, cf1, zof, lof, hif, ci0)
        elif mode == EP_ONNXRUNTIME:
            for j in range(js, je):
                c = pc + j
                a = np.int32(raw[rb + j] - zw[c] * rs + cc[c])
                out[ob + j] = ep_onnxruntime(a, np.int32(ip[0, c]), fp[0, c], zof, lof, hif)
        elif mode == EP_TFLITE:
            for j in range(js, je):
                c = pc + j
                a = np.int32(raw[rb + j] - zw[c] * rs + cc[c])
                out[ob + j] = ep_tflite(a, ip[0, c], ip[1, c], ip[2, c], zo, lo, hi)
        elif mode == EP_TFLITE_SINGLE:
            for j in range(js, je):
                c = pc + j
                a = np.int32(raw[rb + j] - zw[c] * rs + cc[c])
                out[ob + j] = ep_tflite_single(a, ip[0, c], ip[1, c], ip[2, c], zo, lo, hi)
        else:  # EP_REFERENCE
            for j in range(js, je):
                c = pc + j
                a = np.int32(raw[rb + j] - zw[c] * rs + cc[c])
                out[ob + j] = ep_reference(a, ip[0, c], ci0, ip[1, c], ip[2, c], ip[3, c],
                                           ip[4, c], ip[5, c], ip[6, c], zo, lo, hi)


_COL_BLOCK = 512  # columns per parallel work item
# Elements per parallel work item; below two of them one serial pass runs.
# The serial loop does ~4 elements per ns (fbgemm, AVX-512), and a parallel
# launch costs 10 us on an idle machine and ~100 us on a loaded one.
_MIN_WORK = 1 << 17
#: Blocks of at least this many elements run on the parallel driver.
PARALLEL_MIN = 2 * _MIN_WORK


def _blocks_parallel(mode, raw, raw_off, raw_stride, m, n, rowsum, zw, cc, ip, fp,
                     cf0, cf1, ci0, zo, lo, hi, out, out_off, out_stride, pcol, rows_per):
    """The blocks in parts on Python threads (:mod:`qops.kernels._split`)."""
    ncb = (n + _COL_BLOCK - 1) // _COL_BLOCK
    nrb = (m + rows_per - 1) // rows_per
    run_ranges(_blocks_range, nrb * ncb, mode, raw, raw_off, raw_stride, m, n, rowsum, zw, cc, ip,
               fp, cf0, cf1, ci0, zo, lo, hi, out, out_off, out_stride, pcol, rows_per, align=1)


@njit(**CPU)
def _blocks_range(mode, raw, raw_off, raw_stride, m, n, rowsum, zw, cc, ip, fp,
                  cf0, cf1, ci0, zo, lo, hi, out, out_off, out_stride, pcol, rows_per, t0, t1):
    ncb = (n + _COL_BLOCK - 1) // _COL_BLOCK
    for t in range(t0, t1):
        rb = t // ncb
        cb = t - rb * ncb
        r0 = rb * rows_per
        c0 = cb * _COL_BLOCK
        _block(mode, raw, raw_off, raw_stride, r0, min(r0 + rows_per, m), c0,
               min(c0 + _COL_BLOCK, n), rowsum, zw, cc, ip, fp, cf0, cf1, ci0, zo, lo, hi,
               out, out_off, out_stride, pcol)


@njit(**CPU)
def _blocks_serial(mode, raw, raw_off, raw_stride, m, n, rowsum, zw, cc, ip, fp,
                   cf0, cf1, ci0, zo, lo, hi, out, out_off, out_stride, pcol):
    _block(mode, raw, raw_off, raw_stride, 0, m, 0, n, rowsum, zw, cc, ip, fp, cf0, cf1, ci0,
           zo, lo, hi, out, out_off, out_stride, pcol)


def requantize_accumulators(mode, raw, raw_off, raw_stride, m, n, rowsum, zw, cc, ip, fp,
                            cf0, cf1, ci0, zo, lo, hi, out, out_off, out_stride, pcol):
    """Zero-point corrections and requantization of an ``m x n`` block, fused.

    Parameters
    ----------
    mode : int
        An ``EP_*`` code from ``kernels.modes``.
    raw : int32 array, flat
        Raw products; element ``(i, j)`` at ``raw_off + i*raw_stride + j``.
    m, n : int
        Rows (output pixels or linear rows) and columns (output channels).
    rowsum : int32 array
        ``sum_k xu[i, k]`` per row (any values when every ``zw`` is 0).
    zw, cc : int32 arrays
        Per column: the (shifted) weight zero point and the column correction
        ``K*zx*zw - zx*colsum`` (int32 wrap).
    ip, fp : int64 ``(NI, C)`` and float32 ``(NF, C)`` arrays
        Per-column profile parameters (see the module docstring).
    cf0, cf1 : float32; ci0 : int64
        Per-call profile scalars.
    zo, lo, hi : int
        Output zero point and clamp range (``lo = zo`` for fused relu).
    out : uint8 or int8 array, flat
        Element ``(i, j)`` at ``out_off + i*out_stride + j``.
    pcol : int
        Column offset into ``zw``, ``cc``, ``ip``, ``fp``.
    """
    if m <= 0 or n <= 0:
        return
    if out.dtype == _INT8:
        out = out.view(np.uint8)  # same bytes; one compiled kernel for both types
    if type(cf0) is not np.float32 or type(cf1) is not np.float32:
        cf0 = np.float32(cf0)
        cf1 = np.float32(cf1)
    if m * n < PARALLEL_MIN:
        _blocks_serial(mode, raw, raw_off, raw_stride, m, n, rowsum, zw, cc, ip, fp, cf0, cf1,
                       ci0, zo, lo, hi, out, out_off, out_stride, pcol)
        return
    rows_per = max(1, _MIN_WORK // min(n, _COL_BLOCK))
    _blocks_parallel(mode, raw, raw_off, raw_stride, m, n, rowsum, zw, cc, ip, fp, cf0, cf1,
                     ci0, zo, lo, hi, out, out_off, out_stride, pcol, rows_per)
