"""Pooling kernels: max and average pooling over precomputed windows.

Two layouts, as torch's quantized CPU kernels have them:

* ``*_nc``: planes first, ``x`` of shape ``(P, D, H, W)`` (``P = N*C``), C
  order; torch's NCHW paths (and qops's ``reference`` profile).
* ``*_cl``: channels last, ``x`` of shape ``(N, D, H, W, C)``, C order;
  torch's NHWC / NDHWC paths.

2-D pooling uses ``D = 1``.  The API layer computes the windows once per
dimension: for output index ``o`` the taps ``lo[o] <= i < hi[o]`` (clipped to
the input) and, for average pooling, ``ext[o]``, the window's extent over the
zero-padded input (``count_include_pad``'s divisor).  Max pooling steps
through ``lo[o], lo[o] + dil, ...``.  Adaptive average pooling passes
``ext = hi - lo``.

Average pooling rounds with one of the ``AVG_*`` recipes below (torch 2.13.0
measured on an AVX512 machine); ``s`` is the window sum minus ``size * zp``
(int32 wraparound, as torch), ``m = fl(1/d)`` for the divisor ``d``:

``AVG_REF``
    exact: ``zp + rne(s / d)``, saturated.
``AVG_TORCH_NCHW``
    avg_pool2d's NCHW loop: ``r = rne(fl(fl(fl(s) * m) + fl(zp)))``, the
    float32 converted to int32 (overflow gives INT32_MIN), then clamped.
``AVG_TORCH_NHWC``
    avg_pool2d/3d's NHWC loop: channels ``c < cvec`` (the AVX512 part,
    ``C // 16 * 16`` for 8-bit types) ``rne(fl(fl(s) * m)) + zp``; the other
    channels ``rne(fl(fl(fl(s) * m) + fl(zp)))`` (fbgemm's scalar
    ``Quantize``), clamped.
``AVG_ADAPTIVE_NCHW``
    adaptive pooling's NCHW loop: the raw window sum ``t`` (no zero point),
    ``rne(fl(fl(t) * r))`` with ``r = fl(fl(fl(1/kD)/kH)/kW)``, converted to
    int32 and truncated to the storage type (torch does not clamp).
``AVG_ADAPTIVE_NHWC``
    adaptive pooling's NDHWC loop: channels ``c < cvec`` (``C // 8 * 8``: the
    AVX512 part and the compiler-vectorised part of the tail)
    ``rne(fma(fl(s), m, fl(zp)))``; the other channels
    ``rne(fl(fl(fl(s) * m) + fl(zp)))``, clamped.
"""

import numba
import numpy as np
from numba import njit, prange

from .._options import CPU, CPU_INLINE, CPU_PARALLEL
from .._split import (CompiledJob, args_of, array1, array2, claim, finish, launch, part_bounds, put_array, put_ints,
                      run_compiled, run_ranges)
from ._avx512 import avx512bw_available, maxtaps64, sumtaps64
from ._llvm import add_i32, fma32
from .scalar import clamp_int, div_rne

__all__ = [
    "AVG_REF", "AVG_TORCH_NCHW", "AVG_TORCH_NHWC", "AVG_ADAPTIVE_NCHW", "AVG_ADAPTIVE_NHWC",
    "max_pool_nc", "max_pool_cl", "avg_pool_nc", "avg_pool_cl",
]

AVG_REF = 0
AVG_TORCH_NCHW = 1
AVG_TORCH_NHWC = 2
AVG_ADAPTIVE_NCHW = 3
AVG_ADAPTIVE_NHWC = 4

_INT32_MIN = -2147483648
_TWO31 = 2147483648.0
#: the largest float32 below 2**31 (torch's vector quantize clips to it)
_F32_INT32_MAX = 2147483520.0


# --------------------------------------------------------------------------
# element recipes
# --------------------------------------------------------------------------


@njit(**CPU_INLINE)
def _cvt32_lane(r):
    """:func:`_cvt32` of an integral float32, as an int32 select."""
    ok = r >= np.float32(-_TWO31) and r < np.float32(_TWO31)  # False for NaN
    return np.int32(r if ok else np.float32(-_TWO31))


@njit(**CPU_INLINE)
def _cvt32(r):
    """x86 float -> int32 conversion of an integral float: NaN or overflow
    gives INT32_MIN."""
    if r != r or r >= _TWO31 or r < -_TWO31:
        return np.int64(_INT32_MIN)
    return np.int64(r)


@njit(**CPU_INLINE)
def _wrap_storage(v, qmin):
    """int32 ``v`` truncated to the storage type (C's narrowing cast)."""
    if qmin == 0:
        return v & 0xFF
    if qmin == -128:
        return ((v + 128) & 0xFF) - 128
    return v


@njit(**CPU_INLINE)
def _divisor(size, a, b, c, ext_d, ext_h, ext_w, cip, divisor):
    """Window ``(a, b, c)``'s divisor: ``divisor_override``, else its extent
    over the padded input (``count_include_pad``), else its ``size`` taps."""
    if divisor != 0:
        return divisor
    if cip:
        return ext_d[a] * ext_h[b] * ext_w[c]
    return size


@njit(**CPU_INLINE)
def _mults(mode, d, kd, kh, kw):
    """The per-window float32 multiplier of ``mode``."""
    if mode == AVG_ADAPTIVE_NCHW:
        r = np.float32(1.0 / np.float64(kd))
        r = np.float32(np.float64(r) / np.float64(np.float32(kh)))
        return np.float32(np.float64(r) / np.float64(np.float32(kw)))
    if mode == AVG_TORCH_NCHW:
        return np.float32(1.0 / np.float64(d))
    # NHWC kernels: 1.0f / float(d) (float32 operands, correctly rounded)
    return np.float32(1.0 / np.float64(np.float32(d)))


@njit(**CPU_INLINE)
def _avg_one(mode, s, t, d, m, vec, zp, zpf, qmin, qmax):
    """One output of average pooling; ``s`` = sum - size*zp, ``t`` = raw sum."""
    if mode == AVG_REF:
        if d < 0:
            return clamp_int(zp + div_rne(-s, -d), qmin, qmax)
        return clamp_int(zp + div_rne(s, d), qmin, qmax)
    s32 = np.int64(np.int32(s))
    if mode == AVG_ADAPTIVE_NCHW:
        v = np.float32(np.float64(np.float32(t)) * np.float64(m))
        return _wrap_storage(_cvt32(np.rint(np.float64(v))), qmin)
    sf = np.float32(s32)
    if vec:
        if mode == AVG_ADAPTIVE_NHWC:
            v = np.float64(fma32(sf, m, zpf))
            v = min(v, _F32_INT32_MAX) if v == v else _F32_INT32_MAX
            return clamp_int(_cvt32(np.rint(v)), qmin, qmax)
        v = np.float64(np.float32(np.float64(sf) * np.float64(m)))
        v = min(v, _F32_INT32_MAX) if v == v else _F32_INT32_MAX
        r = np.int64(np.int32(_cvt32(np.rint(v)) + zp))
        return clamp_int(r, qmin, qmax)
    p = np.float32(np.float64(sf) * np.float64(m))
    v = np.float32(np.float64(p) + np.float64(zpf))
    r = np.rint(np.float64(v))
    if mode == AVG_TORCH_NCHW:
        return clamp_int(_cvt32(r), qmin, qmax)
    # fbgemm's scalar Quantize clamps the float in double
    if r <= qmin:
        return np.int64(qmin)
    if r >= qmax:
        return np.int64(qmax)
    return np.int64(r)


# --------------------------------------------------------------------------
# planes first: x (P, D, H, W) -> out (P, oD, oH, oW)
# --------------------------------------------------------------------------


@njit(**CPU)
def _regular_columns(lo_w, hi_w):
    """``(c0, c1, step)``: the output columns ``c0:c1`` whose windows are
    whole (the widest span) and start ``step`` apart, ``step`` 1 or 2;
    ``step`` 0 when there are fewer than two such columns or they are not
    evenly spaced by 1 or 2."""
    ow = lo_w.size
    span = 0
    for c in range(ow):
        span = max(span, hi_w[c] - lo_w[c])
    c0 = 0
    while c0 < ow and hi_w[c0] - lo_w[c0] != span:
        c0 += 1
    c1 = c0
    while c1 < ow and hi_w[c1] - lo_w[c1] == span:
        c1 += 1
    if c1 - c0 < 2:
        return c0, c0, 0
    step = lo_w[c0 + 1] - lo_w[c0]
    if step != 1 and step != 2:
        return c0, c0, 0
    for c in range(c0, c1):
        if lo_w[c] != lo_w[c0] + (c - c0) * step:
            return c0, c0, 0
    return c0, c1, step


@njit(**CPU_INLINE)
def _max_row_strided(xrow, hrow, c0, c1, first, ntaps, dw, step, lowest):
    """``hrow[c] = max(xrow[first + (c - c0) * step + t * dw] for t < ntaps)``
    for ``c0 <= c < c1``, tap by tap; ``step`` a literal 1 or 2 in each loop,
    so that the loops vectorise."""
    n = c1 - c0
    for c in range(c0, c1):
        hrow[c] = lowest
    for t in range(ntaps):
        off = first + t * dw
        if step == 1:
            for c in range(n):
                hrow[c0 + c] = max(hrow[c0 + c], xrow[off + c])
        else:
            for c in range(n):
                hrow[c0 + c] = max(hrow[c0 + c], xrow[off + 2 * c])


@njit(**CPU)
def _max_nc_plane(x, out, p, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest, hm):
    """Plane ``p``; ``hm`` is scratch of shape ``(D, H, oW)``."""
    xp = x[p]
    op = out[p]
    d_, h_ = x.shape[1], x.shape[2]
    od, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    # maxima along W first (max is separable); whole windows at a regular
    # step by tap (vectorised), the others one window at a time
    c0, c1, step = _regular_columns(lo_w, hi_w)
    if step:
        first = lo_w[c0]
        ntaps = (hi_w[c0] - first + dw - 1) // dw
    for i in range(d_):
        for j in range(h_):
            xrow = xp[i, j]
            hrow = hm[i, j]
            if step:
                _max_row_strided(xrow, hrow, c0, c1, first, ntaps, dw, step, lowest)
            for c in range(ow):
                if c0 <= c < c1:
                    continue
                best = lowest
                for k in range(lo_w[c], hi_w[c], dw):
                    best = max(best, xrow[k])  # a select: random data mispredicts a branch
                hrow[c] = best
    for a in range(od):
        for b in range(oh):
            orow = op[a, b]
            for c in range(ow):
                orow[c] = lowest
            for i in range(lo_d[a], hi_d[a], dd):
                for j in range(lo_h[b], hi_h[b], dh):
                    hrow = hm[i, j]
                    for c in range(ow):
                        orow[c] = max(orow[c], hrow[c])


@njit(**CPU)
def _max_nc_serial(x, out, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest):
    hm = np.empty((x.shape[1], x.shape[2], out.shape[3]), x.dtype)
    for p in range(x.shape[0]):
        _max_nc_plane(x, out, p, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest, hm)


@njit(**CPU)
def _max_nc_range(x, out, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest, p0, p1):
    """Planes ``p0:p1`` (one part of :func:`max_pool_nc`), one scratch for all."""
    hm = np.empty((x.shape[1], x.shape[2], out.shape[3]), x.dtype)
    for p in range(p0, p1):
        _max_nc_plane(x, out, p, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest, hm)


@njit(**CPU)
def _avg_nc_plane(x, out, p, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                  cip, divisor, mode, cvec, nch, zp, qmin, qmax, vs):
    """Plane ``p``; ``vs`` is scratch of ``W`` integers (int32 for 8-bit data:
    exact below 2**23 rows per window)."""
    zpf = np.float32(zp)
    vec = (p % nch) < cvec
    xp = x[p]
    op = out[p]
    w_ = x.shape[3]
    wu = np.uint64(w_)
    od, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    last_d = np.int64(0)
    m = np.float32(0)
    for a in range(od):
        kd = hi_d[a] - lo_d[a]
        for b in range(oh):
            kh = hi_h[b] - lo_h[b]
            # the window's rows summed column by column first (vectorised;
            # integer sums are exact in any order), then each W window
            for k in range(wu):
                vs[k] = 0
            for i in range(lo_d[a], hi_d[a]):
                for j in range(lo_h[b], hi_h[b]):
                    xrow = xp[i, j]
                    for k in range(wu):
                        vs[k] += xrow[k]
            orow = op[a, b]
            for c in range(ow):
                kw = hi_w[c] - lo_w[c]
                size = kd * kh * kw
                d = _divisor(size, a, b, c, ext_d, ext_h, ext_w, cip, divisor)
                if mode == AVG_ADAPTIVE_NCHW or d != last_d:
                    m = _mults(mode, d, kd, kh, kw)
                    last_d = d
                t = np.int64(0)
                for k in range(lo_w[c], hi_w[c]):
                    t += np.int64(vs[k])
                orow[c] = _avg_one(mode, t - size * zp, t, d, m, vec, zp, zpf, qmin, qmax)


@njit(**CPU)
def _avg_nc_range(x, out, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                  cip, divisor, mode, cvec, nch, zp, qmin, qmax, proto, p0, p1):
    """Planes ``p0 : p1`` of the planes-first average pool (one part of it),
    with a scratch row like ``proto``."""
    scratch = np.empty_like(proto)
    for p in range(p0, p1):
        _avg_nc_plane(x, out, p, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                      cip, divisor, mode, cvec, nch, zp, qmin, qmax, scratch)


# --------------------------------------------------------------------------
# channels last: x (N, D, H, W, C) -> out (N, oD, oH, oW, C), viewed as rows
# x2 (N*D*H*W, C) and out2 (N*oD*oH*oW, C)
# --------------------------------------------------------------------------


@njit(**CPU_INLINE)
def _cl_row(r, dims):
    """``(n, a, b, c)``: the image and output position of output row ``r``."""
    od, oh, ow = dims[3], dims[4], dims[5]
    c_ = r % ow
    t = r // ow
    b = t % oh
    t = t // oh
    return t // od, t % od, b, c_


@njit(**CPU)
def _max_cl_rows(x2, out2, r0, r1, dims, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest):
    d_, h_, w_ = dims[0], dims[1], dims[2]
    ncu = np.uint64(out2.shape[1])
    for r in range(r0, r1):
        n, a, b, c_ = _cl_row(r, dims)
        # 1-D row views and unsigned channel indices: the channel loop
        # vectorises (2-D signed indexing kept it scalar)
        orow = out2[r]
        for ch in range(ncu):
            orow[ch] = lowest
        for i in range(lo_d[a], hi_d[a], dd):
            for j in range(lo_h[b], hi_h[b], dh):
                base = ((n * d_ + i) * h_ + j) * w_
                for k in range(lo_w[c_], hi_w[c_], dw):
                    xrow = x2[base + k]
                    for ch in range(ncu):
                        orow[ch] = max(orow[ch], xrow[ch])


# The AVX-512 drivers (maxtaps64 / sumtaps64: the window's running maximum or
# sum in registers, 64 channels at a time; AVX512-BW hosts only, so kernels of
# their own) work on the flat arrays through each window's tap offsets.
@njit(**CPU_INLINE)
def _cl_next(n, a, b, c_, dims):
    """The position of the output row after ``(n, a, b, c_)``: counters
    instead of :func:`_cl_row`'s divisions."""
    c_ += 1
    if c_ == dims[5]:
        c_ = 0
        b += 1
        if b == dims[4]:
            b = 0
            a += 1
            if a == dims[3]:
                a = 0
                n += 1
    return n, a, b, c_


@njit(**CPU_INLINE)
def _cl_taps(offs, n, a, b, c_, dims, nc, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw):
    """The flat offsets of window ``(a, b, c_)``'s taps in image ``n`` (their
    channel rows of ``nc``) into ``offs``, in the portable loops' order;
    returns their count.  While loops: ``range`` with a run-time step divides
    to find its length, three times per window here."""
    d_, h_, w_ = dims[0], dims[1], dims[2]
    k = 0
    i = lo_d[a]
    while i < hi_d[a]:
        j = lo_h[b]
        while j < hi_h[b]:
            base = ((n * d_ + i) * h_ + j) * w_
            q = lo_w[c_]
            while q < hi_w[c_]:
                offs[k] = (base + q) * nc
                k += 1
                q += dw
            j += dh
        i += dd
    return k


@njit(**CPU)
def _max_cl_rows_simd(xf, outf, nc, r0, r1, dims, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw,
                      lowest, maxtaps):
    offs = np.empty(max(maxtaps, 1), np.int64)
    nblk = nc // 64
    n, a, b, c_ = _cl_row(r0, dims)
    k = 0
    first = -1  # the column whose window ``offs`` holds, in this output row
    for r in range(r0, r1):
        if c_ == 0:
            first = -1
        if first >= 0 and hi_w[c_] - lo_w[c_] == hi_w[first] - lo_w[first]:
            # the same taps as column ``first``'s window, moved along W
            shift = (lo_w[c_] - lo_w[first]) * nc
        else:
            k = _cl_taps(offs, n, a, b, c_, dims, nc, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw)
            first = c_
            shift = 0
        o = r * nc
        xs = xf[shift:]
        maxtaps64(xs, offs, k, nblk, outf, o, lowest)
        for ch in range(nblk * 64, nc):
            v = lowest
            for t in range(k):
                v = max(v, np.int64(xs[offs[t] + ch]))
            outf[o + ch] = v
        n, a, b, c_ = _cl_next(n, a, b, c_, dims)


@njit(**CPU_INLINE)
def _finish_cl(mode, acc, o, nc, cvec, size, d, m, zp, zpf, qmin, qmax):
    off = size * zp
    # the vector channels in int32 / float32 lanes (the same bits as the
    # int64 / float64 steps of the tails: the products are exact in float64,
    # the int32 wraps commute with the truncation), so the loops vectorise
    noff32 = np.int32(-off)
    zp32, lo32, hi32 = np.int32(zp), np.int32(qmin), np.int32(qmax)
    if mode == AVG_TORCH_NHWC:
        for ch in range(np.uint64(cvec)):
            s32 = add_i32(np.int32(acc[ch]), noff32)
            r = add_i32(_cvt32_lane(np.rint(np.float32(s32) * m)), zp32)
            r = r if r > lo32 else lo32
            o[ch] = r if r < hi32 else hi32
        for ch in range(cvec, nc):
            s32 = np.int64(np.int32(acc[ch] - off))
            pr = np.float32(np.float64(np.float32(s32)) * np.float64(m))
            v = np.rint(np.float64(np.float32(np.float64(pr) + np.float64(zpf))))
            o[ch] = np.int64(min(max(v, np.float64(qmin)), np.float64(qmax)))
    elif mode == AVG_ADAPTIVE_NHWC:
        for ch in range(np.uint64(cvec)):
            s32 = add_i32(np.int32(acc[ch]), noff32)
            r = _cvt32_lane(np.rint(fma32(np.float32(s32), m, zpf)))
            r = r if r > lo32 else lo32
            o[ch] = r if r < hi32 else hi32
        for ch in range(cvec, nc):
            s32 = np.int64(np.int32(acc[ch] - off))
            pr = np.float32(np.float64(np.float32(s32)) * np.float64(m))
            v = np.rint(np.float64(np.float32(np.float64(pr) + np.float64(zpf))))
            o[ch] = np.int64(min(max(v, np.float64(qmin)), np.float64(qmax)))
    else:
        for ch in range(nc):
            t = acc[ch]
            o[ch] = _avg_one(mode, t - off, t, d, m, ch < cvec, zp, zpf, qmin, qmax)


@njit(**CPU_INLINE)
def _avg_window(a, b, c_, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w, cip, divisor,
                mode):
    """``(size, d, m)`` of window ``(a, b, c_)``: its tap count, divisor and
    the divisor's multiplier for ``mode``."""
    kd = hi_d[a] - lo_d[a]
    kh = hi_h[b] - lo_h[b]
    kw = hi_w[c_] - lo_w[c_]
    size = kd * kh * kw
    d = _divisor(size, a, b, c_, ext_d, ext_h, ext_w, cip, divisor)
    return size, d, _mults(mode, d, kd, kh, kw)


@njit(**CPU)
def _avg_cl_rows(x2, out2, acc, r0, r1, dims, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w,
                 ext_w, cip, divisor, mode, cvec, zp, qmin, qmax):
    d_, h_, w_ = dims[0], dims[1], dims[2]
    nc = out2.shape[1]
    zpf = np.float32(zp)
    for r in range(r0, r1):
        n, a, b, c_ = _cl_row(r, dims)
        size, d, m = _avg_window(a, b, c_, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                                 cip, divisor, mode)
        for ch in range(nc):
            acc[ch] = 0
        for i in range(lo_d[a], hi_d[a]):
            for j in range(lo_h[b], hi_h[b]):
                base = ((n * d_ + i) * h_ + j) * w_
                for k in range(lo_w[c_], hi_w[c_]):
                    row = base + k
                    for ch in range(nc):
                        acc[ch] += x2[row, ch]
        _finish_cl(mode, acc, out2[r], nc, cvec, size, d, m, zp, zpf, qmin, qmax)


@njit(**CPU)
def _avg_cl_rows_simd(xf, out2, acc, r0, r1, dims, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w,
                      hi_w, ext_w, cip, divisor, mode, cvec, zp, qmin, qmax, maxtaps):
    nc = out2.shape[1]
    nblk = nc // 64
    zpf = np.float32(zp)
    offs = np.empty(max(maxtaps, 1), np.int64)
    n, a, b, c_ = _cl_row(r0, dims)
    k = 0
    first = -1  # the column whose window ``offs`` holds, in this output row
    for r in range(r0, r1):
        size, d, m = _avg_window(a, b, c_, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                                 cip, divisor, mode)
        if c_ == 0:
            first = -1
        if first >= 0 and hi_w[c_] - lo_w[c_] == hi_w[first] - lo_w[first]:
            shift = (lo_w[c_] - lo_w[first]) * nc  # the same taps, moved along W
        else:
            k = _cl_taps(offs, n, a, b, c_, dims, nc, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, 1, 1, 1)
            first = c_
            shift = 0
        xs = xf[shift:]
        sumtaps64(xs, offs, k, nblk, acc)
        for ch in range(nblk * 64, nc):
            t = np.int32(0)
            for q in range(k):
                t = add_i32(t, np.int32(xs[offs[q] + ch]))
            acc[ch] = t
        _finish_cl(mode, acc, out2[r], nc, cvec, size, d, m, zp, zpf, qmin, qmax)
        n, a, b, c_ = _cl_next(n, a, b, c_, dims)


def _dims(x, out):
    return np.array([x.shape[1], x.shape[2], x.shape[3], out.shape[1], out.shape[2], out.shape[3]],
                    np.int64)


@njit(**CPU)
def _max_cl_serial(x2, out2, dims, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest):
    _max_cl_rows(x2, out2, 0, out2.shape[0], dims, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw,
                 lowest)


@njit(**CPU_PARALLEL)
def _max_cl_par(x2, out2, dims, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest):
    rows = out2.shape[0]
    step = max(1, 4096 // max(1, out2.shape[1]))
    for t in prange((rows + step - 1) // step):
        _max_cl_rows(x2, out2, t * step, min(rows, (t + 1) * step), dims,
                     lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest)


@njit(**CPU)
def _avg_cl_serial(x2, out2, acc2, step, dims, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w,
                   ext_w, cip, divisor, mode, cvec, zp, qmin, qmax):
    _avg_cl_rows(x2, out2, acc2[0], 0, out2.shape[0], dims, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h,
                 lo_w, hi_w, ext_w, cip, divisor, mode, cvec, zp, qmin, qmax)


@njit(**CPU_PARALLEL)
def _avg_cl_par(x2, out2, acc2, step, dims, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w,
                ext_w, cip, divisor, mode, cvec, zp, qmin, qmax):
    rows = out2.shape[0]
    for t in prange((rows + step - 1) // step):
        _avg_cl_rows(x2, out2, acc2[t], t * step, min(rows, (t + 1) * step), dims,
                     lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                     cip, divisor, mode, cvec, zp, qmin, qmax)


@njit(**CPU)
def _avg_cl_simd_range(xf, out2, dims, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                       cip, divisor, mode, cvec, zp, qmin, qmax, maxtaps, r0, r1):
    """AVX-512 channels-last average pooling of output rows ``[r0, r1)`` (the
    whole call, or one part of it)."""
    acc = np.zeros(out2.shape[1], np.int32)
    _avg_cl_rows_simd(xf, out2, acc, r0, r1, dims, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h,
                      lo_w, hi_w, ext_w, cip, divisor, mode, cvec, zp, qmin, qmax, maxtaps)


def _avg_cl_simd_job(p):
    """One part of the AVX-512 channels-last average pool on a pool worker;
    the slots as :func:`_avg_cl_simd_parts` writes them."""
    w = (array1(p, 5, np.int64), array1(p, 7, np.int64), array1(p, 9, np.int64),
         array1(p, 11, np.int64), array1(p, 13, np.int64), array1(p, 15, np.int64),
         array1(p, 17, np.int64), array1(p, 19, np.int64), array1(p, 21, np.int64),
         array1(p, 23, np.int64))
    if p[35] == 0:
        _avg_cl_simd_range(array1(p, 0, np.uint8), array2(p, 2, np.uint8), *w, p[25] != 0, p[26], p[27],
                           p[28], p[29], p[30], p[31], p[32], p[33], p[34])
    else:
        _avg_cl_simd_range(array1(p, 0, np.int8), array2(p, 2, np.int8), *w, p[25] != 0, p[26], p[27],
                           p[28], p[29], p[30], p[31], p[32], p[33], p[34])


_AVG_CL_SIMD_JOB = CompiledJob(_avg_cl_simd_job)


@njit(**CPU)
def _avg_cl_simd_parts(xf, out2, dims, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                       cip, divisor, mode, cvec, zp, qmin, qmax, maxtaps, rows, kind, ctl, nworkers, job):
    """:func:`_avg_cl_simd_range` in ``nworkers + 1`` parts of output rows on
    the pool (:func:`qops.kernels._split.run_compiled`)."""
    if not claim(ctl):
        return -1
    for w in range(nworkers):
        i = put_array(ctl, put_array(ctl, put_array(ctl, args_of(ctl, w), xf), out2), dims)
        i = put_array(ctl, put_array(ctl, put_array(ctl, i, lo_d), hi_d), ext_d)
        i = put_array(ctl, put_array(ctl, put_array(ctl, i, lo_h), hi_h), ext_h)
        i = put_array(ctl, put_array(ctl, put_array(ctl, i, lo_w), hi_w), ext_w)
        i = put_ints(ctl, i, (cip, divisor, mode, cvec, zp, qmin, qmax, maxtaps))
        put_ints(ctl, put_ints(ctl, i, part_bounds(rows, nworkers + 1, w + 1, 1)), (kind,))
    seq = launch(ctl, nworkers, job)
    _avg_cl_simd_range(xf, out2, dims, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w, cip,
                       divisor, mode, cvec, zp, qmin, qmax, maxtaps, 0, part_bounds(rows, nworkers + 1, 0, 1)[1])
    return finish(ctl, nworkers, seq, job)


# --------------------------------------------------------------------------
# public kernels (same names and argument order as kernels/cuda/pool.py)
# --------------------------------------------------------------------------


#: Work (input elements + 16 per output element) from which pooling runs in
#: parallel.  Measured on the reference machine: one thread reads about 14 GB/s
#: through the window sums and finishes an output element in a few ns, and
#: waking the workqueue layer's threads costs 0.1-0.3 ms, so a global average
#: pool of 1M bytes (0.26 ms on one thread) ran slower on two (0.62 ms).
POOL_PARALLEL_WORK = 1 << 22


def _big(x, out):
    return x.size + 16 * out.size >= POOL_PARALLEL_WORK


#: Work (as for ``POOL_PARALLEL_WORK``) from which planes-first average
#: pooling runs in parts on Python threads (:mod:`qops.kernels._split`).
#: Measured on the reference machine, whole calls, median of 100 back to
#: back, one thread / two parts, 1M bytes (4 images, 64 channels of 64x64):
#: adaptive pooling to 7x7 0.33 / 0.13 ms; a 3x3 / stride 1 average pool
#: 6.1 / 3.0 ms (the ``workqueue`` layer's ``prange`` had taken 3.0-3.2 ms).
NC_PARTS_WORK = 1 << 18


#: Bytes the windows read (output bytes x taps per window) from which the
#: AVX-512 channels-last pools run in parts (:mod:`qops.kernels._split`).
#: Measured on the reference machine, whole calls, median of 200 back to
#: back: a 3x3 / stride 2 max pool of 1M bytes (2.4M read) 78 us on one
#: thread, 55 us in two parts; a 2x2x2 average pool of 1M bytes (1M read)
#: 81 us on one thread.
SIMD_CL_PARTS_MIN = 1 << 19


def _items():
    """Work items of the planes-first drivers: a few per thread."""
    return 4 * numba.get_num_threads()


def max_pool_nc(x, out, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest):
    """Max pooling, planes first: ``out[p, a, b, c]`` is the largest tap of
    window ``(a, b, c)`` (``lowest`` for a window without taps).  Large
    inputs run in parts of consecutive planes on Python threads
    (:mod:`qops.kernels._split`): on the ``workqueue`` layer a ``prange``
    over planes gained nothing on 1M bytes (2.5 ms on two threads, 2.3 ms
    on one), the parts 1.2 ms."""
    if _big(x, out) and x.shape[0] > 1:
        run_ranges(_max_nc_range, x.shape[0], x, out, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw,
                   lowest, align=1)
    else:
        _max_nc_serial(x, out, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest)


@njit(**CPU_INLINE)
def _span(lo, hi):
    m = 0
    for i in range(lo.size):
        m = max(m, hi[i] - lo[i])
    return m


@njit(**CPU)
def _max_taps(lo_d, hi_d, lo_h, hi_h, lo_w, hi_w):
    """An upper bound of any window's tap count (one compiled call: three
    NumPy reductions cost 7 us a call)."""
    return _span(lo_d, hi_d) * _span(lo_h, hi_h) * _span(lo_w, hi_w)


def _simd_cl(x):
    """Whether the AVX-512 channels-last drivers apply: 8-bit data, 64+ channels."""
    return x.itemsize == 1 and x.shape[4] >= 64 and avx512bw_available()


def max_pool_cl(x, out, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest):
    """Max pooling, channels last (``x`` of shape ``(N, D, H, W, C)``)."""
    c = x.shape[4]
    if _simd_cl(x):
        taps = _max_taps(lo_d, hi_d, lo_h, hi_h, lo_w, hi_w)
        xf, of, rows = x.reshape(-1), out.reshape(-1), out.size // c
        rest = (_dims(x, out), lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest, taps)
        if out.size * taps >= SIMD_CL_PARTS_MIN:
            run_ranges(_max_cl_rows_simd, rows, xf, of, c, align=1, tail=rest)
        else:
            _max_cl_rows_simd(xf, of, c, 0, rows, *rest)
        return
    f = _max_cl_par if _big(x, out) else _max_cl_serial
    f(x.reshape(-1, c), out.reshape(-1, c), _dims(x, out), lo_d, hi_d, lo_h, hi_h, lo_w, hi_w,
      dd, dh, dw, lowest)


def avg_pool_nc(x, out, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                cip, divisor, mode, cvec, nch, zp, qmin, qmax):
    """Average pooling, planes first, with recipe ``mode`` (an ``AVG_*`` code).

    ``divisor`` is ``divisor_override`` (0: none); ``cip`` is
    ``count_include_pad``.  Plane ``p`` is channel ``p % nch``; channels
    ``c < cvec`` take the vector branch of an NHWC ``mode`` (so the NHWC
    recipes can run on planes-first data too, as the CUDA path does).
    """
    # column sums of a window's rows: int32 for 8-bit data (exact below 2**23 rows)
    proto = np.empty(x.shape[3], np.int32 if x.itemsize == 1 else np.int64)
    args = (x, out, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w, cip, divisor, mode,
            cvec, nch, zp, qmin, qmax, proto)
    if x.size + 16 * out.size >= NC_PARTS_WORK and x.shape[0] > 1:
        run_ranges(_avg_nc_range, x.shape[0], *args, align=1)
    else:
        _avg_nc_range(*args, 0, x.shape[0])


def avg_pool_cl(x, out, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                cip, divisor, mode, cvec, zp, qmin, qmax):
    """Average pooling, channels last; channels ``c < cvec`` take the vector
    branch of ``mode``."""
    c = x.shape[4]
    rows = out.size // c
    big = _big(x, out)
    # a few work items per thread even when the rows are few and heavy
    # (adaptive pooling to 7x7 has 49 output rows per image)
    step = max(1, min(4096 // c, rows // _items())) if big else rows
    # exact int32 sums for byte inputs (at most 2**23 taps), int64 otherwise;
    # torch's own kernels wrap at int32, the recipes reproduce that
    taps = _max_taps(lo_d, hi_d, lo_h, hi_h, lo_w, hi_w) if rows else 0
    small = x.itemsize == 1 and taps <= 2**23
    if small and _simd_cl(x):
        # in parts on Python threads, not prange: under the workqueue layer a
        # 3x3 / stride 1 pool of 1M bytes took 0.81 ms with prange against
        # 0.42 ms in two parts, and 16M the same either way (5.3-5.5 ms)
        args = (x.reshape(-1), out.reshape(-1, c), _dims(x, out), lo_d, hi_d, ext_d, lo_h, hi_h,
                ext_h, lo_w, hi_w, ext_w, cip, divisor, mode, cvec, zp, qmin, qmax, int(taps))
        if out.size * taps < SIMD_CL_PARTS_MIN or not run_compiled(
                _avg_cl_simd_parts, _AVG_CL_SIMD_JOB, *args, rows, 0 if x.dtype == np.uint8 else 1):
            _avg_cl_simd_range(*args, 0, rows)
        return
    acc2 = np.zeros(((rows + step - 1) // step, c), np.int32 if small else np.int64)
    f = _avg_cl_par if big else _avg_cl_serial
    f(x.reshape(-1, c), out.reshape(-1, c), acc2, step, _dims(x, out), lo_d, hi_d, ext_d,
      lo_h, hi_h, ext_h, lo_w, hi_w, ext_w, cip, divisor, mode, cvec, zp, qmin, qmax)


# --------------------------------------------------------------------------
# QNNPACK's average pooling (torch's engine qnnpack, quint8)
# --------------------------------------------------------------------------
@njit(**CPU_INLINE)
def _qnnpack_avg_rows(x, out, lo_h, hi_h, lo_w, hi_w, zp, scale, t0, t1):
    oh, ow = out.shape[1], out.shape[2]
    for t in range(t0, t1):
        p = t // oh
        i = t - p * oh
        for j in range(ow):
            acc = np.int64(0)
            for y in range(lo_h[i], hi_h[i]):
                for c in range(lo_w[j], hi_w[j]):
                    acc += np.int64(x[p, y, c]) - zp
            # cvtepi32_ps, mulps, cvtps2dq (half to even), +zp with saturation
            v = np.int64(np.rint(np.float32(acc) * scale))
            out[p, i, j] = min(max(v + zp, 0), 255)


@njit(**CPU)
def _qnnpack_avg_serial(x, out, lo_h, hi_h, lo_w, hi_w, zp, scale):
    _qnnpack_avg_rows(x, out, lo_h, hi_h, lo_w, hi_w, zp, scale, 0, out.shape[0] * out.shape[1])


@njit(**CPU_PARALLEL)
def _qnnpack_avg_par(x, out, lo_h, hi_h, lo_w, hi_w, zp, scale):
    rows = out.shape[0] * out.shape[1]
    nb = (rows + 63) // 64
    for b in prange(nb):
        _qnnpack_avg_rows(x, out, lo_h, hi_h, lo_w, hi_w, zp, scale, b * 64, min(rows, b * 64 + 64))


def avg_pool_qnnpack(x, out, lo_h, hi_h, lo_w, hi_w, zp, scale):
    """QNNPACK's ``q8avgpool`` over planes ``x`` ``(P, H, W)`` (uint8) into
    ``out`` ``(P, OH, OW)``: per window the sum of ``q - zp`` over the taps
    inside the input (QNNPACK reads padding taps from a buffer of zero
    points, so they add nothing), times the float32 ``scale`` (``s / (s *
    kh * kw)``: the divisor is always the window area), rounded half to even
    (``cvtps2dq``), plus ``zp``, saturated to ``[0, 255]``."""
    f = _qnnpack_avg_par if _big(x, out) else _qnnpack_avg_serial
    f(x, out, lo_h, hi_h, lo_w, hi_w, zp, scale)
