"""CPU kernels: quantized layer, group, instance and batch normalisation.

Every kernel reproduces torch 2.13's ATen quantized CPU kernels on an AVX512
machine (``quantized_normalize_kernel``, ``quantized_groupnorm_nhwc_kernel``
and ``q_batch_norm_kernel`` in ``QuantizedOpKernels.cpp``) operation for
operation; ``docs/ops_norm.md`` states the arithmetic and how it was measured.
The ``*_ref`` kernels compute the ideal result (float64 on the dequantized
values, one round-half-to-even into the output parameters).

Layout contract (the API layer canonicalises to it): quantized data are flat
C-contiguous **uint8** arrays; qint8 data are passed as their bytes with
``sgn = 1`` (value ``(byte ^ 0x80) - 128``), so each kernel compiles once for
both dtypes, and outputs are written back as bytes (two's complement).
Per-row layouts:

* layer norm: ``M`` rows of ``N`` elements, affine parameters per element;
* group norm, NCHW: ``Bs * G`` rows of ``cpg * HW`` elements;
* group norm, NHWC: ``Bs`` images of ``HW`` pixels of ``C`` channels;
* batch norm: contiguous ``(Bs, C, inner)``: only the channel matters.

torch's vector code handles 64 quint8/qint8 values per step (``Vectorized``
with 16-lane floats); a remainder shorter than 64 runs through a scalar loop
that GCC vectorises 32 wide, so its first 32 elements (when it has 32) take
the vector arithmetic and the rest the scalar one.  :func:`_vec_end` gives
that split.
"""

import numpy as np
from numba import njit, prange

from .._options import CPU, CPU_INLINE, CPU_PARALLEL
from .._split import run_ranges
from ._avx512 import affine64, colsums64, lut64
from ._llvm import add_i32, fma32

__all__ = [
    "layer_norm",
    "group_norm_nchw",
    "group_norm_nhwc_rows",
    "group_norm_nhwc_sums",
    "group_norm_nhwc_apply",
    "batch_norm",
    "layer_norm_ref",
    "group_norm_ref",
    "batch_norm_ref",
]

_CVT_MAX = 2147483520.0  # the largest float32 below 2**31 (torch's clip before cvtps2dq)
_TWO31 = 2147483648.0
_F32_CVT_MAX = np.float32(_CVT_MAX)
_F32_NTWO31 = np.float32(-_TWO31)
#: Elements per int32 partial sum of squares (255**2 * 32768 < 2**31).
_SUM_BLOCK = 32768
_TWO63 = 9223372036854775808.0


# --------------------------------------------------------------------------
# element functions
# --------------------------------------------------------------------------


@njit(**CPU_INLINE)
def _value(b, sgn):
    """The integer value of stored byte ``b`` (uint8, or qint8 when ``sgn``)."""
    if sgn:
        return np.int64(b ^ np.uint8(0x80)) - 128
    return np.int64(b)


@njit(**CPU_INLINE)
def _clamp(q, qmin, qmax):
    if q < qmin:
        return qmin
    if q > qmax:
        return qmax
    return q


@njit(**CPU_INLINE)
def quant_vec(y, inv, zp, qmin, qmax):
    """torch's AVX512 ``QuantizeAvx512``: ``t = fl(y * inv)`` clipped to
    2147483520 (NaN too), ``cvtps2dq`` (INT32_MIN below -2**31), plus the zero
    point in int32 (wrapping), clamped."""
    t = np.float32(y * inv)
    if not (t <= _CVT_MAX):
        t = np.float32(_CVT_MAX)
    if t < -_TWO31:  # cvtps2dq gives INT32_MIN below -2**31: clip there instead
        t = np.float32(-_TWO31)
    r = np.int64(np.rint(t))
    return _clamp(np.int64(np.int32(r + zp)), qmin, qmax)


@njit(**CPU_INLINE)
def quant_vec32(y, inv, zp32, lo32, hi32):
    """:func:`quant_vec` in int32 lanes (``zp32``, ``lo32``, ``hi32`` int32):
    the same bits, in a loop LLVM vectorises at full width."""
    t = np.float32(y * inv)
    t = t if t <= _F32_CVT_MAX else _F32_CVT_MAX  # NaN too
    t = t if t >= _F32_NTWO31 else _F32_NTWO31
    v = add_i32(np.int32(np.rint(t)), zp32)
    v = v if v > lo32 else lo32
    return v if v < hi32 else hi32


@njit(**CPU_INLINE)
def _value32(b, sgn):
    """:func:`_value` as int32."""
    if sgn:
        return np.int32(np.int32(b ^ np.uint8(0x80)) - np.int32(128))
    return np.int32(b)


@njit(**CPU_INLINE)
def quant_scalar(y, inv, zpf, qmin, qmax):
    """torch's scalar ``quantize_val`` (fbgemm ``Quantize``):
    ``rne(fl(fl(y * inv) + zp))`` clamped in float (infinities saturate); NaN
    passes the float clamp and converts to the byte 0."""
    v = np.float32(np.float32(y * inv) + zpf)
    r = np.rint(np.float64(v))
    if r != r:
        return np.int64(0)
    if r < qmin:
        return np.int64(qmin)
    if r > qmax:
        return np.int64(qmax)
    return np.int64(r)


@njit(**CPU_INLINE)
def _vec_end(n):
    """Elements of a row of ``n`` that torch computes with the vector arithmetic."""
    nv = (n // 64) * 64
    if n - nv >= 32:
        return nv + 32
    return nv


@njit(**CPU_INLINE)
def row_stats(s, ss, n, xzpf, xs, eps):
    """torch's per-group statistics from the sums ``s`` and ``ss`` (float32).

    Returns ``(mean, rstd)``: ``mean = fl(fl(s/n) - zp)`` and
    ``rstd = fl(xs / sqrt(double(fl(fl(var*xs)*xs)) + eps))`` with
    ``var = max(fma(-m, m, fl(ss/n)), 0)``, ``m = fl(s/n)``.
    """
    nf = np.float32(n)
    m = np.float32(s / nf)
    mean = np.float32(m - xzpf)
    a = np.float32(ss / nf)
    var = fma32(-m, m, a)
    if var < np.float32(0.0):
        var = np.float32(0.0)
    t = np.float32(np.float32(var * xs) * xs)
    rstd = np.float32(np.float64(xs) / np.sqrt(np.float64(t) + eps))
    return mean, rstd


@njit(**CPU_INLINE)
def _int_sums(x, lo, hi, sgn):
    """Exact sums of the values and their squares (int64), from int32
    partial sums over blocks of ``_SUM_BLOCK`` elements (int32 lanes)."""
    s = np.int64(0)
    ss = np.int64(0)
    for b0 in range(lo, hi, _SUM_BLOCK):
        s32 = np.int32(0)
        ss32 = np.int32(0)
        for i in range(np.uint64(b0), np.uint64(min(b0 + _SUM_BLOCK, hi))):
            v = _value32(x[i], sgn)
            s32 = add_i32(s32, v)
            ss32 = add_i32(ss32, np.int32(v * v))
        s += s32
        ss += ss32
    return s, ss


# --------------------------------------------------------------------------
# torch profiles
# --------------------------------------------------------------------------


@njit(**CPU_PARALLEL)
def layer_norm(x, sgn, m_rows, n, gamma, beta, xs, xzp, eps, inv, yzp, qmin, qmax, out):
    """Layer norm over ``m_rows`` rows of ``n`` (``quantized_normalize_kernel``,
    elementwise affine; torch's missing weight/bias act as ones/zeros)."""
    xzpf = np.float32(xzp)
    yzpf = np.float32(yzp)
    yzp32, lo32, hi32 = np.int32(yzp), np.int32(qmin), np.int32(qmax)
    a_end = _vec_end(n)
    for r in prange(m_rows):
        base = r * n
        s, ss = _int_sums(x, base, base + n, sgn)
        mean, rstd = row_stats(np.float32(s), np.float32(ss), n, xzpf, xs, eps)
        xr = x[base:base + n]
        yr = out[base:base + n]
        for k in range(np.uint64(0), np.uint64(a_end)):
            d = np.float32(_value32(xr[k], sgn)) - xzpf
            y = fma32(np.float32(np.float32(d - mean) * rstd), gamma[k], beta[k])
            yr[k] = np.uint8(quant_vec32(y, inv, yzp32, lo32, hi32) & 0xFF)
        for k in range(np.uint64(a_end), np.uint64(n)):
            d = np.float32(_value(xr[k], sgn) - xzp)
            y = fma32(np.float32(np.float32(d - mean) * rstd), gamma[k], beta[k])
            yr[k] = np.uint8(quant_scalar(y, inv, yzpf, qmin, qmax) & 0xFF)


@njit(**CPU_INLINE)
def _gn_stats(x, sgn, base, n, xzpf, xs, eps):
    """``(mean, rstd)`` of the NCHW group row ``x[base : base + n]`` (exact
    integer sums, then :func:`row_stats`)."""
    s, ss = _int_sums(x, base, base + n, sgn)
    return row_stats(np.float32(s), np.float32(ss), n, xzpf, xs, eps)


@njit(**CPU_INLINE)
def _gn_affine(r, c, groups, cpg, nch, rstd, gamma, beta):
    """Channel ``c`` of group row ``r``: ``(fl(rstd * gamma), beta)``."""
    ch = ((r % groups) * cpg + c) % nch
    return np.float32(rstd * gamma[ch]), beta[ch]


@njit(**CPU_INLINE)
def _gn_byte(v, xzpf, mean, gp, b, inv, yzp32, lo32, hi32):
    """One NCHW group-norm output byte from the int32 input value ``v``:
    ``fma(fl(fl(v - zp) - mean), gp, beta)`` quantized in int32 lanes (the
    vector arithmetic every element of torch's NCHW kernel takes)."""
    d = np.float32(v) - xzpf
    y = fma32(np.float32(d - mean), gp, b)
    return np.uint8(quant_vec32(y, inv, yzp32, lo32, hi32) & 0xFF)


@njit(**CPU_PARALLEL)
def group_norm_nchw(x, sgn, rows, groups, cpg, hw, gamma, beta, xs, xzp, eps, inv, yzp, qmin,
                    qmax, out):
    """Group norm on contiguous NCHW data: ``rows = Bs * groups`` rows of
    ``cpg * hw`` (``quantized_normalize_kernel``, per-channel affine; every
    element takes the vector arithmetic)."""
    n = cpg * hw
    xzpf = np.float32(xzp)
    nch = groups * cpg
    yzp32, lo32, hi32 = np.int32(yzp), np.int32(qmin), np.int32(qmax)
    for r in prange(rows):
        base = r * n
        mean, rstd = _gn_stats(x, sgn, base, n, xzpf, xs, eps)
        for c in range(cpg):
            gp, b = _gn_affine(r, c, groups, cpg, nch, rstd, gamma, beta)
            xr = x[base + c * hw:base + c * hw + hw]
            yr = out[base + c * hw:base + c * hw + hw]
            for i in range(np.uint64(0), np.uint64(hw)):
                yr[i] = _gn_byte(_value32(xr[i], sgn), xzpf, mean, gp, b, inv, yzp32, lo32, hi32)


#: Plane size from which 8-bit NCHW group norm maps each channel through a
#: 256-entry table (VBMI hosts): building it costs 256 evaluations.
GN_TABLE_MIN_HW = 256
#: Elements from which the table path runs in parallel: one thread does 1M
#: in about 0.08 ms, less than waking the workqueue's second thread costs
#: when it has slept (measured between torch calls: 0.23 ms on two threads).
GN_TABLE_PARALLEL_MIN = 1 << 23


@njit(**CPU_INLINE)
def _gn_table_rows(x, sgn, r0, r1, groups, cpg, hw, gamma, beta, xs, xzp, eps, inv, yzp, qmin, qmax,
                   out, table):
    """Rows ``[r0, r1)`` of :func:`group_norm_nchw_vbmi`; ``table`` is 256
    bytes of scratch."""
    n = cpg * hw
    xzpf = np.float32(xzp)
    nch = groups * cpg
    yzp32, lo32, hi32 = np.int32(yzp), np.int32(qmin), np.int32(qmax)
    nv = hw // 64
    for r in range(r0, r1):
        base = r * n
        mean, rstd = _gn_stats(x, sgn, base, n, xzpf, xs, eps)
        for c in range(cpg):
            gp, b = _gn_affine(r, c, groups, cpg, nch, rstd, gamma, beta)
            for k in range(256):
                table[k] = _gn_byte(_value32(np.uint8(k), sgn), xzpf, mean, gp, b, inv, yzp32, lo32,
                                    hi32)
            p0 = base + c * hw
            if nv > 0:
                lut64(table, x, p0, out, p0, nv)
            for i in range(np.uint64(p0 + 64 * nv), np.uint64(p0 + hw)):
                out[i] = table[x[i]]


@njit(**CPU)
def group_norm_nchw_vbmi(x, sgn, rows, groups, cpg, hw, gamma, beta, xs, xzp, eps, inv, yzp, qmin,
                         qmax, out):
    """:func:`group_norm_nchw` through a table per channel: each of the 256
    bytes gets the vector arithmetic's result once, and the plane is mapped
    64 bytes at a time (``vpermi2b``, AVX512-VBMI hosts only).  The same
    integers: every element of the plane takes the same formula."""
    _gn_table_rows(x, sgn, 0, rows, groups, cpg, hw, gamma, beta, xs, xzp, eps, inv, yzp, qmin,
                   qmax, out, np.empty(256, np.uint8))


@njit(**CPU_PARALLEL)
def group_norm_nchw_vbmi_parallel(x, sgn, rows, groups, cpg, hw, gamma, beta, xs, xzp, eps, inv,
                                  yzp, qmin, qmax, out):
    """:func:`group_norm_nchw_vbmi` with one row (group) per work item."""
    for r in prange(rows):
        _gn_table_rows(x, sgn, r, r + 1, groups, cpg, hw, gamma, beta, xs, xzp, eps, inv, yzp, qmin,
                       qmax, out, np.empty(256, np.uint8))


@njit(**CPU_INLINE)
def _nhwc_scale_bias(mean, rstd, g0, cpg, gamma, beta, sc, bi):
    """Per-channel ``scale = fl(rstd * gamma)``, ``bias = fma(-scale, mean, beta)``
    for the channels ``g0 .. g0 + cpg``."""
    for d in range(cpg):
        ch = g0 + d
        s = np.float32(rstd * gamma[ch])
        sc[ch] = s
        bi[ch] = fma32(-s, mean, beta[ch])


@njit(**CPU_INLINE)
def _nhwc_apply_span(x, sgn, lo, c0, cnt, sc, bi, xzp, inv, yzp, yzpf, qmin, qmax, out, start=0):
    """``y = fma(x - zp, scale, bias)`` on channels ``start .. cnt`` of one pixel."""
    a_end = np.uint64(_vec_end(cnt))
    xo = np.uint64(lo)
    po = np.uint64(c0)
    xzpf = np.float32(xzp)
    yzp32, lo32, hi32 = np.int32(yzp), np.int32(qmin), np.int32(qmax)
    for d in range(np.uint64(start), a_end):
        y = fma32(np.float32(_value32(x[xo + d], sgn)) - xzpf, sc[po + d], bi[po + d])
        out[xo + d] = np.uint8(quant_vec32(y, inv, yzp32, lo32, hi32) & 0xFF)
    for d in range(max(a_end, np.uint64(start)), np.uint64(cnt)):
        y = fma32(np.float32(_value(x[xo + d], sgn) - xzp), sc[po + d], bi[po + d])
        out[xo + d] = np.uint8(quant_scalar(y, inv, yzpf, qmin, qmax) & 0xFF)


@njit(**CPU_PARALLEL)
def group_norm_nhwc_rows(x, sgn, bs, groups, cpg, hw, gamma, beta, xs, xzp, eps, inv, yzp, qmin,
                         qmax, sc, bi, out):
    """Group norm on channels-last data with ``hw < 512`` (torch's impl-1:
    exact integer sums per group, vectors over each group's channels).
    ``sc``/``bi`` are ``(bs * C,)`` float32 scratch arrays."""
    c = groups * cpg
    n = cpg * hw
    xzpf = np.float32(xzp)
    yzpf = np.float32(yzp)
    for r in prange(bs * groups):
        b = r // groups
        g = r % groups
        s = np.int64(0)
        ss = np.int64(0)
        for p in range(hw):
            lo = (b * hw + p) * c + g * cpg
            s1, ss1 = _int_sums(x, lo, lo + cpg, sgn)
            s += s1
            ss += ss1
        mean, rstd = row_stats(np.float32(s), np.float32(ss), n, xzpf, xs, eps)
        scb = sc[b * c:(b + 1) * c]
        bib = bi[b * c:(b + 1) * c]
        _nhwc_scale_bias(mean, rstd, g * cpg, cpg, gamma, beta, scb, bib)
        for p in range(hw):
            lo = (b * hw + p) * c + g * cpg
            _nhwc_apply_span(x, sgn, lo, b * c + g * cpg, cpg, sc, bi, xzp, inv, yzp, yzpf,
                             qmin, qmax, out)


@njit(**CPU_PARALLEL)
def group_norm_nhwc_sums(x, sgn, bs, hw, c, nthreads, buf):
    """torch's impl-1 step 1 for ``hw >= 512``: float32 running sums of ``x`` and
    ``x*x`` per (torch thread, image, channel), each torch thread taking
    ``ceil(bs*hw / nthreads)`` consecutive pixels.  ``buf`` is
    ``(nthreads, bs, 2, c)`` float32, zeroed."""
    total = bs * hw
    nt = min(nthreads, total)
    chunk = (total + nt - 1) // nt
    for t in prange(nt):
        lo = t * chunk
        hi = min(total, lo + chunk)
        for b in range(lo // hw, (hi + hw - 1) // hw):
            s1 = buf[t, b, 0]
            s2 = buf[t, b, 1]
            p0 = np.uint64(max(lo, b * hw))
            p1 = np.uint64(min(hi, b * hw + hw))
            cu = np.uint64(c)
            for pix in range(p0, p1):
                base = pix * cu
                for ch in range(np.uint64(0), cu):
                    v = _value32(x[base + ch], sgn)
                    s1[ch] = np.float32(s1[ch] + np.float32(v))
                    s2[ch] = np.float32(s2[ch] + np.float32(np.int32(v * v)))


@njit(**CPU_INLINE)
def _nhwc_fold_stats(bs, groups, cpg, hw, buf, gamma, beta, xs, xzp, eps, sc, bi):
    """torch's impl-2 steps 2-3: fold the per-thread sums in thread-then-channel
    order (float32), then the per-channel scale and bias."""
    c = groups * cpg
    n = cpg * hw
    xzpf = np.float32(xzp)
    nthreads = buf.shape[0]
    for r in range(bs * groups):
        b = r // groups
        g = r % groups
        sm = np.float32(0.0)
        sq = np.float32(0.0)
        for t in range(nthreads):
            for d in range(cpg):
                sm = np.float32(sm + buf[t, b, 0, g * cpg + d])
                sq = np.float32(sq + buf[t, b, 1, g * cpg + d])
        mean, rstd = row_stats(sm, sq, n, xzpf, xs, eps)
        _nhwc_scale_bias(mean, rstd, g * cpg, cpg, gamma, beta, sc[b * c:(b + 1) * c],
                         bi[b * c:(b + 1) * c])


@njit(**CPU_PARALLEL)
def group_norm_nhwc_apply(x, sgn, bs, groups, cpg, hw, buf, gamma, beta, xs, xzp, eps, inv, yzp,
                          qmin, qmax, sc, bi, out):
    """torch's impl-2 steps 2-4 for ``hw >= 512``: fold the per-thread sums in
    thread-then-channel order (float32), per-channel scale and bias, then
    vectors over all ``C`` channels of each pixel."""
    c = groups * cpg
    yzpf = np.float32(yzp)
    _nhwc_fold_stats(bs, groups, cpg, hw, buf, gamma, beta, xs, xzp, eps, sc, bi)
    for pix in prange(bs * hw):
        b = pix // hw
        _nhwc_apply_span(x, sgn, pix * c, b * c, c, sc, bi, xzp, inv, yzp, yzpf, qmin, qmax, out)


# AVX512-BW: the same two steps 64 channels at a time (colsums64, affine64),
# in parts on Python threads from NHWC_PARTS_MIN elements (group_norm of 1M
# channels-last bytes on the reference machine: 0.196 ms on one thread, 0.137
# ms in two parts).  Only for outputs over the dtype's whole range (the packs
# saturate there).
NHWC_PARTS_MIN = 1 << 18


@njit(**CPU)
def _nhwc_sums_simd(x, sgn, bs, hw, c, nthreads, buf, t0, t1):
    total = bs * hw
    nt = min(nthreads, total)
    chunk = (total + nt - 1) // nt
    nblk = c // 64
    xi = x.view(np.int8)
    for t in range(t0, min(t1, nt)):
        lo = t * chunk
        hi = min(total, lo + chunk)
        for b in range(lo // hw, (hi + hw - 1) // hw):
            s1 = buf[t, b, 0]
            s2 = buf[t, b, 1]
            p0 = max(lo, b * hw)
            p1 = min(hi, b * hw + hw)
            if sgn:
                colsums64(xi, p0 * c, p1 - p0, c, nblk, s1, s2, 0)
            else:
                colsums64(x, p0 * c, p1 - p0, c, nblk, s1, s2, 0)
            for pix in range(p0, p1):
                for ch in range(nblk * 64, c):
                    v = _value32(x[pix * c + ch], sgn)
                    s1[ch] = np.float32(s1[ch] + np.float32(v))
                    s2[ch] = np.float32(s2[ch] + np.float32(np.int32(v * v)))


def group_norm_nhwc_sums_simd(x, sgn, bs, hw, c, nthreads, buf):
    """:func:`group_norm_nhwc_sums` through :func:`colsums64` (``c >= 64``)."""
    nt = min(nthreads, bs * hw)
    if x.size >= NHWC_PARTS_MIN:
        run_ranges(_nhwc_sums_simd, nt, x, sgn, bs, hw, c, nthreads, buf, align=1)
    else:
        _nhwc_sums_simd(x, sgn, bs, hw, c, nthreads, buf, 0, nt)


@njit(**CPU)
def _nhwc_stats_simd(bs, groups, cpg, hw, buf, gamma, beta, xs, xzp, eps, sc, bi):
    _nhwc_fold_stats(bs, groups, cpg, hw, buf, gamma, beta, xs, xzp, eps, sc, bi)


@njit(**CPU)
def _nhwc_apply_simd(x, sgn, hw, c, sc, bi, xzp, inv, yzp, qmin, qmax, out, p0, p1):
    """Pixels ``[p0, p1)`` (counted over the batch) of the AVX-512 apply step."""
    nblk = c // 64
    xi = x.view(np.int8)
    oi = out.view(np.int8)
    xzpf = np.float32(xzp)
    yzpf = np.float32(yzp)
    for b in range(p0 // hw, (p1 + hw - 1) // hw):
        q0 = max(p0, b * hw)
        q1 = min(p1, b * hw + hw)
        if sgn:
            affine64(xi, q0 * c, oi, q1 - q0, c, nblk, sc, bi, b * c, xzpf, inv, yzp)
        else:
            affine64(x, q0 * c, out, q1 - q0, c, nblk, sc, bi, b * c, xzpf, inv, yzp)
        if nblk * 64 < c:
            for pix in range(q0, q1):
                _nhwc_apply_span(x, sgn, pix * c, b * c, c, sc, bi, xzp, inv, yzp, yzpf, qmin, qmax,
                                 out, nblk * 64)


def group_norm_nhwc_apply_simd(x, sgn, bs, groups, cpg, hw, buf, gamma, beta, xs, xzp, eps, inv,
                               yzp, qmin, qmax, sc, bi, out):
    """:func:`group_norm_nhwc_apply` through :func:`affine64` (``C >= 64``)."""
    _nhwc_stats_simd(bs, groups, cpg, hw, buf, gamma, beta, xs, xzp, eps, sc, bi)
    c = groups * cpg
    args = (x, sgn, hw, c, sc, bi, xzp, np.float32(inv), yzp, qmin, qmax, out)
    if x.size >= NHWC_PARTS_MIN:
        run_ranges(_nhwc_apply_simd, bs * hw, *args, align=1)
    else:
        _nhwc_apply_simd(*args, 0, bs * hw)


@njit(**CPU_PARALLEL)
def batch_norm(x, sgn, bs, c, inner, alpha, beta, xzp, yzp, relu, qmin, qmax, out):
    """Batch norm (``q_batch_norm_kernel``) on contiguous ``(bs, c, inner)`` data.

    ``y = fma(alpha, x - zp, beta)``.  torch walks channels-last pixels: the
    channels of full 64-channel blocks quantize with scale 1 as ``quant_vec``,
    the others as ``zp + lrint(y)`` in int64.  Only the channel decides, so
    the NCHW data need no transposition.  Fused ReLU clamps at the zero point.
    """
    nv = (c // 64) * 64
    lo_q = yzp if relu else qmin
    one = np.float32(1.0)
    for r in prange(bs * c):
        ch = r % c
        a = alpha[ch]
        b = beta[ch]
        xr = x[r * inner:r * inner + inner]
        yr = out[r * inner:r * inner + inner]
        if ch < nv:
            for i in range(np.uint64(0), np.uint64(inner)):
                y = fma32(a, np.float32(_value(xr[i], sgn) - xzp), b)
                yr[i] = np.uint8(max(quant_vec(y, one, yzp, qmin, qmax), lo_q) & 0xFF)
        else:
            for i in range(np.uint64(0), np.uint64(inner)):
                y = fma32(a, np.float32(_value(xr[i], sgn) - xzp), b)
                v = np.rint(np.float64(y))
                if v != v or v >= _TWO63 or v < -_TWO63:
                    # lrintf gives INT64_MIN; adding a negative zero point wraps
                    q = np.int64(qmax) if yzp < 0 else np.int64(qmin)
                else:
                    q = _clamp(np.int64(v) + yzp, qmin, qmax)
                yr[i] = np.uint8(max(q, lo_q) & 0xFF)


# --------------------------------------------------------------------------
# reference profile: float64 on the dequantized values, one rounding
# --------------------------------------------------------------------------


@njit(**CPU_INLINE)
def _ref_quant(y, ys, yzp, qmin, qmax):
    if y != y:
        return yzp
    v = np.rint(y / ys)
    if v > 4.0e18:
        return qmax
    if v < -4.0e18:
        return qmin
    return _clamp(np.int64(v) + yzp, qmin, qmax)


@njit(**CPU_INLINE)
def _ref_moments(x, lo, hi, step, sgn, xzp):
    """Mean and (biased) variance of ``x[lo:hi:step] - zp`` in float64, two passes."""
    cnt = 0
    s = 0.0
    for i in range(lo, hi, step):
        s += np.float64(_value(x[i], sgn) - xzp)
        cnt += 1
    mean = s / cnt
    v = 0.0
    for i in range(lo, hi, step):
        e = np.float64(_value(x[i], sgn) - xzp) - mean
        v += e * e
    return mean, v / cnt


@njit(**CPU_PARALLEL)
def layer_norm_ref(x, sgn, m_rows, n, gamma, beta, xs, xzp, eps, ys, yzp, qmin, qmax, out):
    for r in prange(m_rows):
        base = r * n
        mean, var = _ref_moments(x, base, base + n, 1, sgn, xzp)
        den = np.sqrt(var * xs * xs + eps)
        for k in range(n):
            t = (np.float64(_value(x[base + k], sgn) - xzp) - mean) * xs / den
            t = t * np.float64(gamma[k]) + np.float64(beta[k])
            out[base + k] = np.uint8(_ref_quant(t, ys, yzp, qmin, qmax) & 0xFF)


@njit(**CPU_PARALLEL)
def group_norm_ref(x, sgn, rows, groups, cpg, hw, gamma, beta, xs, xzp, eps, ys, yzp, qmin, qmax,
                   out):
    """Reference group norm on contiguous NCHW data (``rows = Bs * groups``)."""
    n = cpg * hw
    for r in prange(rows):
        base = r * n
        mean, var = _ref_moments(x, base, base + n, 1, sgn, xzp)
        den = np.sqrt(var * xs * xs + eps)
        for c in range(cpg):
            ch = (r % groups) * cpg + c
            for e in range(hw):
                i = base + c * hw + e
                t = (np.float64(_value(x[i], sgn) - xzp) - mean) * xs / den
                t = t * np.float64(gamma[ch]) + np.float64(beta[ch])
                out[i] = np.uint8(_ref_quant(t, ys, yzp, qmin, qmax) & 0xFF)


@njit(**CPU_PARALLEL)
def batch_norm_ref(x, sgn, bs, c, inner, weight, bias, mean, var, eps, xs, xzp, ys, yzp, relu,
                   qmin, qmax, out):
    """Reference batch norm on contiguous ``(bs, c, inner)`` data."""
    lo_q = yzp if relu else qmin
    for r in prange(bs * c):
        ch = r % c
        for i in range(r * inner, r * inner + inner):
            d = np.float64(_value(x[i], sgn) - xzp) * xs
            t = (d - np.float64(mean[ch])) / np.sqrt(np.float64(var[ch]) + eps)
            t = t * np.float64(weight[ch]) + np.float64(bias[ch])
            q = _ref_quant(t, ys, yzp, qmin, qmax)
            if q < lo_q:
                q = lo_q
            out[i] = np.uint8(q & 0xFF)
