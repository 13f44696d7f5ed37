"""Convolution as GEMM: im2col from channels-last input, for 1-D, 2-D and 3-D.

Activations are channels-last ``(N, D, H, W, C)`` uint8 (1-D and 2-D
convolutions use ``D = H = 1`` / ``D = 1``).  :func:`im2col` writes, for
every output pixel, the receptive field of one group: ``kd*kh*kw`` taps of
``cg`` channels each, tap-major, padded taps filled with the input zero point
(so they add exactly 0 to ``sum (x - zx)(w - zw)``).  Rows are written into
the ``(Mp, Kp)`` buffer that :func:`kernels.cpu.gemm.gemm_raw` consumes
(columns beyond ``K`` and rows beyond ``M`` stay zero).

The fused kernels give the same integers with fewer passes over memory:
:func:`conv_requantized_vnni` / :func:`conv_requantized_portable` run
im2col, the GEMM and the requantization epilogue block by block of output
pixels; :func:`depthwise_requantized` accumulates and requantizes depthwise
convolutions from the zero-point-bordered channels-last copy that
:func:`pad_channels_last` makes.
"""

import numpy as np
from numba import njit, prange

from .._options import CPU, CPU_INLINE, CPU_PARALLEL
from .._split import (CompiledJob, args_of, array1, array2, array5, claim, contiguous, finish, float_at,
                      launch, part_bounds, put_array, put_float, put_ints, run_compiled, run_ranges)
from ._llvm import copy_bytes, fill_bytes, load_u64
from .gemm import KG, block_portable, block_vnni
from .requant import _block

__all__ = ["im2col", "depthwise", "pad_channels_last", "pad_channels_last_serial",
           "depthwise_requantized", "depthwise_requantized_serial",
           "conv_requantized_vnni", "conv_requantized_portable", "conv_block_rows"]

_I16 = np.int16
_I32 = np.int32
_U64 = np.uint64


@njit(**CPU_PARALLEL)
def im2col(x, zx, c0, cg, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow, out, kp):
    """Fill ``out`` (flat uint8, row stride ``kp``) with the patches of group
    channels ``c0 : c0 + cg`` of ``x`` (``(N, D, H, W, C)`` uint8)."""
    n_, d_, h_, w_, c_ = x.shape
    xf = x.reshape(x.size)
    zb = np.uint8(zx)
    rows = n_ * od * oh * ow
    for r in prange(rows):
        ox = r % ow
        t = r // ow
        oy = t % oh
        t = t // oh
        oz = t % od
        n = t // od
        dst = np.uint64(r * kp)
        for a in range(kd):
            iz = oz * sd - pd + a * dd
            for b in range(kh):
                iy = oy * sh - ph + b * dh
                for c in range(kw):
                    ix = ox * sw - pw + c * dw
                    # unsigned offsets: no negative-index handling, so the copy vectorises
                    if 0 <= iz < d_ and 0 <= iy < h_ and 0 <= ix < w_:
                        src = np.uint64((((n * d_ + iz) * h_ + iy) * w_ + ix) * c_ + c0)
                        for ch in range(np.uint64(0), np.uint64(cg)):
                            out[dst + ch] = xf[src + ch]
                    else:
                        for ch in range(np.uint64(0), np.uint64(cg)):
                            out[dst + ch] = zb
                    dst += np.uint64(cg)


@njit(**CPU)
def _sat16(v):
    return -32768 if v < -32768 else (32767 if v > 32767 else v)


@njit(**CPU)
def _x_range(off, sw, w_, ow):
    """Output columns ``ox`` whose input column ``ox*sw + off`` lies in ``[0, w_)``."""
    lo = 0 if off >= 0 else (-off + sw - 1) // sw
    hi = 0 if w_ - 1 - off < 0 else min(ow, (w_ - 1 - off) // sw + 1)
    return lo, max(lo, hi)


@njit(**CPU)
def _depthwise_outrow(xf, zx, wt, wsum, zw, mult, c_, d_, h_, w_, n, oz, oy, kd, kh, kw,
                      sd, sh, sw, pd, ph, pw, dd, dh, dw, ow, fbgemm_pairs, acc, xsum, pend,
                      out, obase):
    """One output row (``ow`` pixels, every output channel) of :func:`depthwise`.

    Taps run outermost, so each inner loop walks a contiguous run of input
    pixels and channels (unsigned offsets: the loops vectorise).
    """
    o_ = c_ * mult
    length = ow * o_
    zxi = np.int32(zx)
    for j in range(length):
        acc[j] = 0
        xsum[j] = 0
    t = 0
    for a in range(kd):
        iz = oz * sd - pd + a * dd
        for b in range(kh):
            iy = oy * sh - ph + b * dh
            row_inside = 0 <= iz < d_ and 0 <= iy < h_
            rb = ((n * d_ + iz) * h_ + iy) * w_ * c_ if row_inside else 0
            for c in range(kw):
                off = c * dw - pw  # input column of output column ox: ox*sw + off
                lo, hi = _x_range(off, sw, w_, ow) if row_inside else (0, 0)
                wb = np.uint64(t * o_)
                if fbgemm_pairs and mult == 1:
                    even = t % 2 == 0
                    for ox in range(ow):  # padded taps read zx here
                        ab = np.uint64(ox * o_)
                        inside = lo <= ox < hi
                        xb = np.uint64(rb + (ox * sw + off) * c_) if inside else np.uint64(0)
                        if inside and even:
                            for o in range(np.uint64(0), np.uint64(o_)):
                                xv = np.int32(xf[xb + o])
                                pend[ab + o] = xv * wt[wb + o]
                                xsum[ab + o] = np.int32(xsum[ab + o] + xv)
                        elif inside:
                            for o in range(np.uint64(0), np.uint64(o_)):
                                xv = np.int32(xf[xb + o])
                                acc[ab + o] = np.int32(acc[ab + o] + _sat16(pend[ab + o] + xv * wt[wb + o]))
                                xsum[ab + o] = np.int32(xsum[ab + o] + xv)
                        elif even:
                            for o in range(np.uint64(0), np.uint64(o_)):
                                pend[ab + o] = zxi * wt[wb + o]
                                xsum[ab + o] = np.int32(xsum[ab + o] + zxi)
                        else:
                            for o in range(np.uint64(0), np.uint64(o_)):
                                acc[ab + o] = np.int32(acc[ab + o] + _sat16(pend[ab + o] + zxi * wt[wb + o]))
                                xsum[ab + o] = np.int32(xsum[ab + o] + zxi)
                elif fbgemm_pairs:
                    even = t % 2 == 0
                    for ox in range(ow):  # padded taps read zx here
                        inside = lo <= ox < hi
                        xb = np.uint64(rb + (ox * sw + off) * c_) if inside else np.uint64(0)
                        ab = np.uint64(ox * o_)
                        for ci in range(np.uint64(0), np.uint64(c_)):
                            xv = np.int32(xf[xb + ci]) if inside else zxi
                            for mm in range(np.uint64(0), np.uint64(mult)):
                                o = ci * np.uint64(mult) + mm
                                p = xv * np.int32(wt[wb + o])
                                if even:
                                    pend[ab + o] = p
                                else:
                                    acc[ab + o] = np.int32(acc[ab + o] + _sat16(pend[ab + o] + p))
                                xsum[ab + o] = np.int32(xsum[ab + o] + xv)
                elif mult == 1:  # padded taps add exactly 0: only the inside columns
                    for ox in range(lo, hi):
                        xb = np.uint64(rb + (ox * sw + off) * c_)
                        ab = np.uint64(ox * o_)
                        for o in range(np.uint64(0), np.uint64(o_)):
                            acc[ab + o] = np.int32(acc[ab + o] + (np.int32(xf[xb + o]) - zxi) * wt[wb + o])
                else:
                    for ox in range(lo, hi):
                        xb = np.uint64(rb + (ox * sw + off) * c_)
                        ab = np.uint64(ox * o_)
                        for ci in range(np.uint64(0), np.uint64(c_)):
                            xv = np.int32(xf[xb + ci]) - zxi
                            for mm in range(np.uint64(0), np.uint64(mult)):
                                o = ci * np.uint64(mult) + mm
                                acc[ab + o] = np.int32(acc[ab + o] + xv * np.int32(wt[wb + o]))
                t += 1
    if fbgemm_pairs:
        odd = t % 2 == 1  # the last tap is paired with 0
        for j in range(length):
            o = j % o_
            s = acc[j] + pend[j] if odd else acc[j]
            # fbgemm sums the activations in int16 lanes with saturating adds
            # (vpaddsw): only kernels of more than 128 taps (7x7x7) reach it
            xs = xsum[j] if xsum[j] < 32767 else np.int32(32767)
            out[obase + j] = np.int32(s - zxi * wsum[o] - zw[o] * xs + np.int32(t) * zxi * zw[o])
    else:
        for j in range(length):
            out[obase + j] = acc[j]


@njit(**CPU)
def _depthwise_outrows(xf, zx, wt, wsum, zw, mult, n_, d_, h_, w_, c_, r0, r1,
                       kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow,
                       fbgemm_pairs, out):
    length = ow * c_ * mult
    acc = np.empty(length, np.int32)
    xsum = np.empty(length, np.int32)
    pend = np.empty(length, np.int32)
    for r in range(r0, r1):
        oy = r % oh
        q = r // oh
        oz = q % od
        n = q // od
        _depthwise_outrow(xf, zx, wt, wsum, zw, mult, c_, d_, h_, w_, n, oz, oy, kd, kh, kw,
                          sd, sh, sw, pd, ph, pw, dd, dh, dw, ow, fbgemm_pairs, acc, xsum, pend,
                          out, r * length)


@njit(**CPU_PARALLEL)
def depthwise(x, zx, w, zw, mult, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw,
              od, oh, ow, fbgemm_pairs, out):
    """Depthwise convolution accumulators, vectorised across channels.

    ``x`` is ``(N, D, H, W, C)`` uint8, ``w`` is ``(T, O)`` int8 (taps in
    row-major ``kd, kh, kw`` order, ``O = C * mult``; output channel ``o``
    reads input channel ``o // mult``), ``zw`` int32 per output channel.
    ``out`` (flat int32, ``(N*od*oh*ow, O)``) receives the full accumulator
    ``sum_t (x - zx)(w - zw)`` with int32 wraparound.

    With ``fbgemm_pairs`` it is fbgemm's depthwise accumulator instead: raw
    products of consecutive taps added in pairs with int16 saturation (the
    last tap paired with 0), padded taps reading ``zx``, then the zero-point
    corrections ``- zx*sum(w) - zw*min(sum(x), 32767) + T*zx*zw`` (fbgemm
    accumulates the activation sum in saturating int16).
    """
    n_, d_, h_, w_, c_ = x.shape
    t_, o_ = w.shape
    xf = x.reshape(x.size)
    if fbgemm_pairs:  # raw weights; their per-channel sums for the correction
        wt = np.empty(t_ * o_, np.int32)
        for i in range(t_ * o_):
            wt[i] = w[i // o_, i % o_]
    else:  # weights minus their zero point
        wt = np.empty(t_ * o_, np.int32)
        for i in range(t_ * o_):
            wt[i] = np.int32(w[i // o_, i % o_]) - zw[i % o_]
    wsum = np.zeros(o_, np.int32)
    for i in range(t_ * o_):
        wsum[i % o_] += np.int32(w[i // o_, i % o_])
    rows = n_ * od * oh  # output rows of ow pixels
    for r in prange(rows):
        _depthwise_outrows(xf, zx, wt, wsum, zw, mult, n_, d_, h_, w_, c_, r, r + 1,
                           kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow,
                           fbgemm_pairs, out)


# ------------------------------------------------- padded input, fused depthwise
@njit(**CPU_INLINE)
def _swap_blocks(a, b, s, m):
    """One step of an 8x8 byte transpose: exchange the ``s``-byte blocks
    selected by ``~m`` of ``a`` with those selected by ``m`` of ``b``."""
    sh = _U64(8 * s)
    return (a & m) | ((b & m) << sh), ((a >> sh) & m) | (b & ~m)


@njit(**CPU_INLINE)
def _transpose_8x8(src, b, stride, out64, o, ow, f):
    """8 channels x 8 pixels: rows of 8 bytes at ``src[b + k*stride]`` (one
    channel each) to 8 words ``out64[o + k*ow]`` (one pixel each), XOR ``f``."""
    st = _U64(stride)
    r0 = load_u64(src, b)
    r1 = load_u64(src, b + st)
    r2 = load_u64(src, b + _U64(2) * st)
    r3 = load_u64(src, b + _U64(3) * st)
    r4 = load_u64(src, b + _U64(4) * st)
    r5 = load_u64(src, b + _U64(5) * st)
    r6 = load_u64(src, b + _U64(6) * st)
    r7 = load_u64(src, b + _U64(7) * st)
    m = _U64(0x00000000FFFFFFFF)
    r0, r4 = _swap_blocks(r0, r4, 4, m)
    r1, r5 = _swap_blocks(r1, r5, 4, m)
    r2, r6 = _swap_blocks(r2, r6, 4, m)
    r3, r7 = _swap_blocks(r3, r7, 4, m)
    m = _U64(0x0000FFFF0000FFFF)
    r0, r2 = _swap_blocks(r0, r2, 2, m)
    r1, r3 = _swap_blocks(r1, r3, 2, m)
    r4, r6 = _swap_blocks(r4, r6, 2, m)
    r5, r7 = _swap_blocks(r5, r7, 2, m)
    m = _U64(0x00FF00FF00FF00FF)
    r0, r1 = _swap_blocks(r0, r1, 1, m)
    r2, r3 = _swap_blocks(r2, r3, 1, m)
    r4, r5 = _swap_blocks(r4, r5, 1, m)
    r6, r7 = _swap_blocks(r6, r7, 1, m)
    w = _U64(ow)
    out64[o] = r0 ^ f
    out64[o + w] = r1 ^ f
    out64[o + _U64(2) * w] = r2 ^ f
    out64[o + _U64(3) * w] = r3 ^ f
    out64[o + _U64(4) * w] = r4 ^ f
    out64[o + _U64(5) * w] = r5 ^ f
    out64[o + _U64(6) * w] = r6 ^ f
    out64[o + _U64(7) * w] = r7 ^ f


#: Output rows per tile of the planes-first transpose: each 8-channel group
#: reads ``_TILE`` consecutive rows of its planes (contiguous bytes) before
#: the next group, instead of one row of 64 planes at a time.  16M bytes
#: (2 x 64 x 51 x 51 x 50), one thread: 8.3 ms row by row, 3.1 ms in tiles
#: of 8 or 16 rows.
_TILE = 16


@njit(**CPU_INLINE)
def _interior(r, n_, d_, h_, w_, c_, pd, ph, pw):
    """Output row ``r``: whether it holds input pixels, the offset of its
    first input pixel (``ob``, after the left padding) and the offset of its
    input row's first byte, in the planes-first source (``sb``: channel 0,
    pixel 0) or, with ``cl``, the channels-last one (``sbc``)."""
    dp, hp, wp = d_ + 2 * pd, h_ + 2 * ph, w_ + 2 * pw
    y = r % hp
    q = r // hp
    z = q % dp
    n = q // dp
    inside = not (z < pd or z >= pd + d_ or y < ph or y >= ph + h_)
    ob = _U64(r * wp * c_ + pw * c_)
    if not inside:
        return False, ob, _U64(0), _U64(0)
    sb = _U64((n * c_ * d_ + z - pd) * h_ * w_ + (y - ph) * w_)
    sbc = _U64((((n * d_ + z - pd) * h_ + y - ph) * w_) * c_)
    return True, ob, sb, sbc


@njit(**CPU)
def _pad_rows(src, cl, flip, zx, n_, c_, d_, h_, w_, pd, ph, pw, out, r0, r1):
    """Rows ``r0 : r1`` (of ``N * Dp * Hp``) of :func:`pad_channels_last`."""
    wp = w_ + 2 * pw
    of = out.reshape(out.size)
    zb = np.uint8(zx)
    fb = np.uint8(flip)
    f64 = _U64(flip) * _U64(0x0101010101010101)
    blocks = c_ % 8 == 0 and w_ >= 8 and not cl
    out64 = of.view(np.uint64) if c_ % 8 == 0 else np.empty(0, np.uint64)
    hw = d_ * h_ * w_
    for t0 in range(r0, r1, _TILE):
        t1 = min(r1, t0 + _TILE)
        # the padding, and whatever the 8x8 blocks do not cover, row by row
        for r in range(t0, t1):
            inside, ob, sb, sbc = _interior(r, n_, d_, h_, w_, c_, pd, ph, pw)
            if not inside:
                for i in range(_U64(r * wp * c_), _U64((r + 1) * wp * c_)):
                    of[i] = zb
                continue
            for i in range(_U64(0), _U64(pw * c_)):
                of[ob - _U64(pw * c_) + i] = zb
                of[ob + _U64(w_ * c_) + i] = zb
            if cl:
                for i in range(_U64(0), _U64(w_ * c_)):
                    of[ob + i] = src[sbc + i] ^ fb
            elif not blocks:
                for c in range(_U64(0), _U64(c_)):
                    for i in range(_U64(0), _U64(w_)):
                        of[ob + i * _U64(c_) + c] = src[sb + c * _U64(hw) + i] ^ fb
        if not blocks:
            continue
        # 8-pixel blocks of 8 channels, the last one overlapping its
        # neighbour when W is not a multiple of 8 (a copy: writing bytes
        # twice is harmless); one 8-channel group over the tile's rows at a time
        cw = c_ // 8
        for c0 in range(0, c_, 8):
            for r in range(t0, t1):
                inside, ob, sb, _ = _interior(r, n_, d_, h_, w_, c_, pd, ph, pw)
                if not inside:
                    continue
                for k in range((w_ + 7) // 8):
                    i = min(8 * k, w_ - 8)
                    _transpose_8x8(src, sb + _U64(c0 * hw + i), hw, out64,
                                   (ob + _U64(i * c_ + c0)) // _U64(8), cw, f64)


def pad_channels_last(src, cl, flip, zx, n_, c_, d_, h_, w_, pd, ph, pw, out):
    """Channels-last copy of an input with a border of ``zx``, for
    :func:`depthwise_requantized`.

    ``src`` is the flat uint8 input, ``(N, C, D, H, W)`` order, or
    ``(N, D, H, W, C)`` with ``cl``; ``out`` is ``(N, D + 2*pd, H + 2*ph,
    W + 2*pw, C)`` uint8 (C-contiguous).  ``flip`` (0 or 0x80) is XORed into
    every copied byte (int8 activations become uint8; ``zx`` is their moved
    zero point).  The rows run in parts of whole tiles, handed to the pool's
    workers in compiled code (:func:`qops.kernels._split.run_compiled`; the
    pool busy: as Python calls): a ``prange`` over tiles on the
    ``workqueue`` layer took 0.35 ms for 1M bytes, longer than one thread
    (0.27 ms).
    """
    rows = n_ * (d_ + 2 * pd) * (h_ + 2 * ph)
    if rows < 2 * _TILE:  # fewer than two tiles: one part
        _pad_rows(src, cl, flip, zx, n_, c_, d_, h_, w_, pd, ph, pw, out, 0, rows)
    elif not (contiguous(src, out) and run_compiled(_pad_parts, _PAD_JOB, src, cl, flip, zx, n_, c_, d_, h_,
                                                  w_, pd, ph, pw, out, rows)):
        run_ranges(_pad_rows, rows, src, cl, flip, zx, n_, c_, d_, h_, w_, pd, ph, pw, out, align=_TILE)


def _pad_job(p):
    """One part of :func:`pad_channels_last` on a pool worker (compiled
    job): the slots as :func:`_pad_parts` writes them."""
    _pad_rows(array1(p, 0, np.uint8), p[2] != 0, p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11],
              p[12], array5(p, 13, np.uint8), p[19], p[20])


_PAD_JOB = CompiledJob(_pad_job)


@njit(**CPU)
def _pad_parts(src, cl, flip, zx, n_, c_, d_, h_, w_, pd, ph, pw, out, rows, ctl, nworkers, job):
    """:func:`pad_channels_last`'s rows in ``nworkers + 1`` parts of whole
    tiles on the pool (:func:`qops.kernels._split.run_compiled`)."""
    if not claim(ctl):
        return -1
    for k in range(nworkers):
        i = put_ints(ctl, put_array(ctl, args_of(ctl, k), src), (cl, flip, zx, n_, c_, d_, h_, w_, pd, ph, pw))
        put_ints(ctl, put_array(ctl, i, out), part_bounds(rows, nworkers + 1, k + 1, _TILE))
    seq = launch(ctl, nworkers, job)
    _pad_rows(src, cl, flip, zx, n_, c_, d_, h_, w_, pd, ph, pw, out, 0, part_bounds(rows, nworkers + 1, 0, _TILE)[1])
    return finish(ctl, nworkers, seq, job)


@njit(**CPU)
def pad_channels_last_serial(src, cl, flip, zx, n_, c_, d_, h_, w_, pd, ph, pw, out):
    """:func:`pad_channels_last` on one thread (small inputs)."""
    _pad_rows(src, cl, flip, zx, n_, c_, d_, h_, w_, pd, ph, pw, out, 0,
              n_ * (d_ + 2 * pd) * (h_ + 2 * ph))


@njit(**CPU_INLINE)
def _sat16_32(v):
    return _I32(-32768) if v < _I32(-32768) else (_I32(32767) if v > _I32(32767) else v)


@njit(**CPU)
def _dw_run_fbgemm(xf, xb, toff, t_, wt, acc, xs, ab, ln, need_xs):
    """fbgemm's pair sums over every tap, for ``ln`` consecutive accumulators
    ``acc[ab:]`` whose tap-0 inputs start at ``xf[xb + toff[0]]``.

    Weight row ``t`` of ``wt`` (int16, tiled to the accumulator layout) at
    ``wt[t, ab:]``.  As fbgemm's ``vpmaddubsw``: each product ``x * w``
    (uint8 times int8) is exact in int16, the products of taps ``2i`` and
    ``2i + 1`` are added with int16 saturation, and the sum goes to the int32
    accumulator; a last odd tap is added alone.
    """
    z = _U64(0)
    n = _U64(ln)
    a0 = _U64(ab)
    for j in range(z, n):
        acc[a0 + j] = 0
    if need_xs:
        for j in range(z, n):
            xs[a0 + j] = 0
    t = 0
    while t + 4 <= t_:  # two pairs per pass
        p0 = _U64(xb + toff[t])
        p1 = _U64(xb + toff[t + 1])
        p2 = _U64(xb + toff[t + 2])
        p3 = _U64(xb + toff[t + 3])
        w0 = wt[t]
        w1 = wt[t + 1]
        w2 = wt[t + 2]
        w3 = wt[t + 3]
        for j in range(z, n):
            q = a0 + j
            m0 = _I16(_I16(xf[p0 + j]) * w0[q])
            m1 = _I16(_I16(xf[p1 + j]) * w1[q])
            m2 = _I16(_I16(xf[p2 + j]) * w2[q])
            m3 = _I16(_I16(xf[p3 + j]) * w3[q])
            s01 = _sat16_32(_I32(_I32(m0) + _I32(m1)))
            s23 = _sat16_32(_I32(_I32(m2) + _I32(m3)))
            acc[q] = _I32(acc[q] + _I32(s01 + s23))
        if need_xs:
            for j in range(z, n):
                xs[a0 + j] = _I32(xs[a0 + j] + _I32(_I32(xf[p0 + j]) + _I32(xf[p1 + j])
                                                   + _I32(xf[p2 + j]) + _I32(xf[p3 + j])))
        t += 4
    if t + 2 <= t_:
        p0 = _U64(xb + toff[t])
        p1 = _U64(xb + toff[t + 1])
        w0 = wt[t]
        w1 = wt[t + 1]
        for j in range(z, n):
            q = a0 + j
            m0 = _I16(_I16(xf[p0 + j]) * w0[q])
            m1 = _I16(_I16(xf[p1 + j]) * w1[q])
            acc[q] = _I32(acc[q] + _sat16_32(_I32(_I32(m0) + _I32(m1))))
        if need_xs:
            for j in range(z, n):
                xs[a0 + j] = _I32(xs[a0 + j] + _I32(_I32(xf[p0 + j]) + _I32(xf[p1 + j])))
        t += 2
    if t < t_:
        p0 = _U64(xb + toff[t])
        w0 = wt[t]
        for j in range(z, n):
            q = a0 + j
            acc[q] = _I32(acc[q] + _I32(_I16(_I16(xf[p0 + j]) * w0[q])))
        if need_xs:
            for j in range(z, n):
                xs[a0 + j] = _I32(xs[a0 + j] + _I32(xf[p0 + j]))


@njit(**CPU)
def _dw_run_plain(xf, xb, toff, t_, wt, zx, acc, ab, ln):
    """``acc[ab + j] = sum_t (x - zx) * (w - zw)`` (int32 wrap) over every tap,
    ``wt`` holding ``w - zw`` tiled to the accumulator layout."""
    z = _U64(0)
    n = _U64(ln)
    a0 = _U64(ab)
    zxi = _I32(zx)
    for j in range(z, n):
        acc[a0 + j] = 0
    t = 0
    while t + 2 <= t_:
        p0 = _U64(xb + toff[t])
        p1 = _U64(xb + toff[t + 1])
        w0 = wt[t]
        w1 = wt[t + 1]
        for j in range(z, n):
            q = a0 + j
            d0 = _I32(_I32(xf[p0 + j]) - zxi)
            d1 = _I32(_I32(xf[p1 + j]) - zxi)
            acc[q] = _I32(acc[q] + _I32(_I32(d0 * w0[q]) + _I32(d1 * w1[q])))
        t += 2
    if t < t_:
        p0 = _U64(xb + toff[t])
        w0 = wt[t]
        for j in range(z, n):
            q = a0 + j
            acc[q] = _I32(acc[q] + _I32(_I32(_I32(xf[p0 + j]) - zxi) * w0[q]))


@njit(**CPU)
def _dw_setup(xp, zx, w, zw, kd, kh, kw, dd, dh, dw, ow, fbgemm_pairs, ip, fp):
    """Per-call tables of :func:`depthwise_requantized`: tap offsets, weights
    and constants tiled to one run of pixels."""
    n_, dp, hp, wp, c_ = xp.shape
    t_ = kd * kh * kw
    run_px = min(max(1, 512 // c_), ow)
    lc = run_px * c_
    toff = np.empty(t_, np.int64)
    t = 0
    for a in range(kd):
        for b in range(kh):
            for c in range(kw):
                toff[t] = ((a * dd * hp + b * dh) * wp + c * dw) * c_
                t += 1
    zxi = _I32(zx)
    wt = np.empty((t_, lc), np.int32)  # w - zw
    wt16 = np.empty((t_, lc), np.int16)  # w, for fbgemm's pairs
    corr = np.zeros(lc, np.int32)
    zwt = np.empty(lc, np.int32)
    any_zw = False
    for j in range(lc):
        o = j % c_
        ws = _I32(0)
        for t in range(t_):
            wv = _I32(w[t, o])
            ws = _I32(ws + wv)
            wt[t, j] = _I32(wv - zw[o])
            wt16[t, j] = _I16(wv)
        zwt[j] = zw[o]
        any_zw = any_zw or zw[o] != 0
        if fbgemm_pairs:
            corr[j] = _I32(_I32(_I32(t_) * zxi * zw[o]) - _I32(zxi * ws))
    need_xs = fbgemm_pairs and any_zw
    ipt = np.empty((ip.shape[0], lc), ip.dtype)
    fpt = np.empty((fp.shape[0], lc), fp.dtype)
    for j in range(lc):
        for i in range(ip.shape[0]):
            ipt[i, j] = ip[i, j % c_]
        for i in range(fp.shape[0]):
            fpt[i, j] = fp[i, j % c_]
    zeros = np.zeros(lc, np.int32)
    rs0 = np.zeros(1, np.int32)
    return run_px, lc, toff, wt, wt16, corr, zwt, need_xs, ipt, fpt, zeros, rs0


@njit(**CPU)
def _dw_rows(xp, zx, kd, kh, kw, sd, sh, sw, od, oh, ow, fbgemm_pairs, mode, cf0, cf1, ci0, zo, lo,
             hi, out, r0, r1, run_px, lc, toff, wt, wt16, corr, zwt, need_xs, ipt, fpt, zeros, rs0):
    """Output rows ``r0 : r1`` of :func:`depthwise_requantized`."""
    n_, dp, hp, wp, c_ = xp.shape
    t_ = kd * kh * kw
    xf = xp.reshape(xp.size)
    acc = np.empty(lc, np.int32)
    xs = np.empty(lc, np.int32)
    for r in range(r0, r1):
        oy = r % oh
        q = r // oh
        oz = q % od
        n = q // od
        rowbase = ((n * dp + oz * sd) * hp + oy * sh) * wp * c_
        for ox0 in range(0, ow, run_px):
            npx = min(run_px, ow - ox0)
            xb = rowbase + ox0 * sw * c_
            if sw == 1:  # one contiguous run of npx pixels
                if fbgemm_pairs:
                    _dw_run_fbgemm(xf, xb, toff, t_, wt16, acc, xs, 0, npx * c_, need_xs)
                else:
                    _dw_run_plain(xf, xb, toff, t_, wt, zx, acc, 0, npx * c_)
            else:
                for p in range(npx):
                    if fbgemm_pairs:
                        _dw_run_fbgemm(xf, xb + p * sw * c_, toff, t_, wt16, acc, xs, p * c_, c_,
                                       need_xs)
                    else:
                        _dw_run_plain(xf, xb + p * sw * c_, toff, t_, wt, zx, acc, p * c_, c_)
            ln = npx * c_
            if fbgemm_pairs:
                for j in range(_U64(0), _U64(ln)):
                    acc[j] = _I32(acc[j] + corr[j])
                if need_xs:
                    # fbgemm sums the activations in saturating int16 (vpaddsw)
                    for j in range(_U64(0), _U64(ln)):
                        xv = xs[j] if xs[j] < 32767 else _I32(32767)
                        acc[j] = _I32(acc[j] - _I32(zwt[j] * xv))
            _block(mode, acc, 0, lc, 0, 1, 0, ln, rs0, zeros, zeros, ipt, fpt, cf0, cf1, ci0,
                   zo, lo, hi, out, (r * ow + ox0) * c_, 0, 0)


def depthwise_requantized(xp, zx, w, zw, kd, kh, kw, sd, sh, sw, dd, dh, dw, od, oh, ow,
                          fbgemm_pairs, mode, ip, fp, cf0, cf1, ci0, zo, lo, hi, out):
    """Depthwise convolution (one output channel per input channel), its
    zero-point corrections and the requantization epilogue, fused.

    ``xp`` is the padded channels-last input ``(N, Dp, Hp, Wp, C)`` uint8 of
    :func:`pad_channels_last` (so no tap reads outside it), ``w`` the ``(T,
    C)`` int8 weight table of :func:`depthwise` (``mult == 1``), ``zw`` int32
    per channel; the geometry is :func:`depthwise`'s with the padding already
    applied.  The accumulators equal :func:`depthwise`'s, ``fbgemm_pairs``
    included (padded taps read ``zx`` from the border); they are requantized
    as :func:`kernels.cpu.requant.requantize_accumulators` does (``mode``,
    ``ip``, ``fp``, ``cf0``, ``cf1`` float32, ``ci0``, ``zo``, ``lo``,
    ``hi``) into ``out`` (flat uint8 ``(N*od*oh*ow, C)``; int8 outputs as
    their uint8 view).

    Each output row is cut into runs of pixels whose accumulators fit in
    the first-level cache; the per-channel constants are tiled to a run's
    length once, so every inner loop is a contiguous, vectorised pass.
    Output rows run in parts, handed to the pool's workers in compiled code
    (:mod:`qops.kernels._split`; the pool busy: as Python calls; before, a
    ``prange`` on the ``workqueue`` layer).
    """
    rows = xp.shape[0] * od * oh
    if not (contiguous(xp, w, zw, ip, fp, out)
            and run_compiled(_dw_parts, _DW_JOB, xp, zx, w, zw, kd, kh, kw, sd, sh, sw, dd, dh, dw, od, oh, ow,
                             fbgemm_pairs, mode, ip, fp, cf0, cf1, ci0, zo, lo, hi, out, rows)):
        run_ranges(_depthwise_rows, rows, xp, zx, w, zw, kd, kh, kw, sd, sh, sw, dd, dh, dw, od, oh, ow,
                   fbgemm_pairs, mode, ip, fp, cf0, cf1, ci0, zo, lo, hi, out, align=1)


def _dw_job(p):
    """One part of :func:`depthwise_requantized` on a pool worker (compiled
    job): the slots as :func:`_dw_parts` writes them."""
    _depthwise_rows(array5(p, 0, np.uint8), p[6], array2(p, 7, np.int8), array1(p, 10, np.int32), p[12],
                    p[13], p[14], p[15], p[16], p[17], p[18], p[19], p[20], p[21], p[22], p[23], p[24] != 0,
                    p[25], array2(p, 26, np.int64), array2(p, 29, np.float32), np.float32(float_at(p, 32)),
                    np.float32(float_at(p, 33)), p[34], p[35], p[36], p[37], array1(p, 38, np.uint8), p[40],
                    p[41])


_DW_JOB = CompiledJob(_dw_job)


@njit(**CPU)
def _dw_parts(xp, zx, w, zw, kd, kh, kw, sd, sh, sw, dd, dh, dw, od, oh, ow, fbgemm_pairs, mode, ip, fp,
              cf0, cf1, ci0, zo, lo, hi, out, rows, ctl, nworkers, job):
    """:func:`depthwise_requantized`'s output rows in ``nworkers + 1`` parts
    on the pool (:func:`qops.kernels._split.run_compiled`): 42 slots."""
    if not claim(ctl):
        return -1
    for k in range(nworkers):
        i = put_ints(ctl, put_array(ctl, args_of(ctl, k), xp), (zx,))  # slots 0-5, 6
        i = put_array(ctl, put_array(ctl, i, w), zw)  # 7-9, 10-11
        i = put_ints(ctl, i, (kd, kh, kw, sd, sh, sw, dd, dh, dw, od, oh, ow, fbgemm_pairs, mode))  # 12-25
        i = put_array(ctl, put_array(ctl, i, ip), fp)  # 26-28, 29-31
        put_float(ctl, i, cf0)
        put_float(ctl, i + 1, cf1)
        i = put_array(ctl, put_ints(ctl, i + 2, (ci0, zo, lo, hi)), out)  # 34-37, 38-39
        put_ints(ctl, i, part_bounds(rows, nworkers + 1, k + 1, 1))  # 40-41
    seq = launch(ctl, nworkers, job)
    _depthwise_rows(xp, zx, w, zw, kd, kh, kw, sd, sh, sw, dd, dh, dw, od, oh, ow, fbgemm_pairs, mode, ip, fp,
                    cf0, cf1, ci0, zo, lo, hi, out, 0, part_bounds(rows, nworkers + 1, 0, 1)[1])
    return finish(ctl, nworkers, seq, job)


@njit(**CPU)
def _depthwise_rows(xp, zx, w, zw, kd, kh, kw, sd, sh, sw, dd, dh, dw, od, oh, ow,
                    fbgemm_pairs, mode, ip, fp, cf0, cf1, ci0, zo, lo, hi, out, r0, r1):
    """Output rows ``r0 : r1`` of :func:`depthwise_requantized`."""
    (run_px, lc, toff, wt, wt16, corr, zwt, need_xs, ipt, fpt, zeros,
     rs0) = _dw_setup(xp, zx, w, zw, kd, kh, kw, dd, dh, dw, ow, fbgemm_pairs, ip, fp)
    _dw_rows(xp, zx, kd, kh, kw, sd, sh, sw, od, oh, ow, fbgemm_pairs, mode, cf0, cf1, ci0, zo,
             lo, hi, out, r0, r1, run_px, lc, toff, wt, wt16, corr, zwt, need_xs, ipt, fpt,
             zeros, rs0)


def depthwise_requantized_serial(xp, zx, w, zw, kd, kh, kw, sd, sh, sw, dd, dh, dw, od, oh, ow,
                                 fbgemm_pairs, mode, ip, fp, cf0, cf1, ci0, zo, lo, hi, out):
    """:func:`depthwise_requantized` on one thread (small convolutions, where
    a parallel launch costs more than it saves)."""
    _depthwise_rows(xp, zx, w, zw, kd, kh, kw, sd, sh, sw, dd, dh, dw, od, oh, ow, fbgemm_pairs,
                    mode, ip, fp, cf0, cf1, ci0, zo, lo, hi, out, 0, xp.shape[0] * od * oh)


# ------------------------------------------------ fused im2col, GEMM, epilogue
@njit(**CPU)
def _im2col_rows(xf, n_, d_, h_, w_, c_, zb, c0, cg, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh,
                 dw, od, oh, ow, r0, r1, out, kp):
    """Rows ``r0 : r1`` of :func:`im2col` into ``out`` (row ``r`` at
    ``(r - r0) * kp``); the columns from ``kd*kh*kw*cg`` to ``kp`` are zeroed.

    The bytes move by ``copy_bytes`` / ``fill_bytes`` (``llvm.memcpy`` and
    ``memset``): with undilated taps over all the channels, the taps of a
    kernel row inside the input are one run of the input.  (With a byte loop
    per tap a 3x3 64->64 conv on 56x56 took 0.784 ms on one thread, 0.750
    ms so.)"""
    ktot = kd * kh * kw * cg
    whole = dw == 1 and cg == c_  # a kernel row's taps: consecutive pixels, one run
    for r in range(r0, r1):
        ox = r % ow
        t = r // ow
        oy = t % oh
        t = t // oh
        oz = t % od
        n = t // od
        dst = _U64((r - r0) * kp)
        ix0 = ox * sw - pw
        for a in range(kd):
            iz = oz * sd - pd + a * dd
            for b in range(kh):
                iy = oy * sh - ph + b * dh
                if not (0 <= iz < d_ and 0 <= iy < h_):
                    fill_bytes(out, dst, zb, _U64(kw * cg))
                    dst += _U64(kw * cg)
                    continue
                row = ((n * d_ + iz) * h_ + iy) * w_  # the input pixel (iz, iy, 0)
                if whole:
                    lo = min(kw, max(0, -ix0))  # taps [lo, hi) lie inside
                    hi = max(lo, min(kw, w_ - ix0))
                    if lo > 0:
                        fill_bytes(out, dst, zb, _U64(lo * cg))
                    if hi > lo:
                        copy_bytes(out, dst + _U64(lo * cg), xf, _U64((row + ix0 + lo) * c_ + c0),
                                   _U64((hi - lo) * cg))
                    if hi < kw:
                        fill_bytes(out, dst + _U64(hi * cg), zb, _U64((kw - hi) * cg))
                    dst += _U64(kw * cg)
                    continue
                for c in range(kw):
                    ix = ix0 + c * dw
                    if 0 <= ix < w_:
                        copy_bytes(out, dst, xf, _U64((row + ix) * c_ + c0), _U64(cg))
                    else:
                        fill_bytes(out, dst, zb, _U64(cg))
                    dst += _U64(cg)
        fill_bytes(out, dst, np.uint8(0), _U64(kp - ktot))


@njit(**CPU)
def _block_row_sums(cols, rows, kp, rowsum):
    for i in range(rows):
        s = _I32(0)
        for j in range(_U64(i * kp), _U64((i + 1) * kp)):
            s = _I32(s + _I32(cols[j]))
        rowsum[i] = s


def conv_block_rows(kp, np_):
    """Output pixels per work item of the fused convolution kernels: a
    multiple of 4 whose patches (``kp`` bytes each) and raw products fit in
    the first-level cache."""
    return max(4, min(256, (32768 // max(kp + 4 * np_, 1)) // 4 * 4))


def _conv_fused(block_gemm):
    def fused(x, zx, c0, cg, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow,
              wpack, np_, kp, mb, any_zw, direct, mode, zw, cc, ip, fp, cf0, cf1, ci0, zo, lo,
              hi, out, out_off, out_stride, pcol, n_out, b0, b1):
        n_, d_, h_, w_, c_ = x.shape
        xf = x.reshape(x.size)
        zb = np.uint8(zx)
        m = n_ * od * oh * ow
        kg = kp // KG
        for blk in range(b0, b1):
            r0 = blk * mb
            r1 = min(r0 + mb, m)
            rows = r1 - r0
            raw = np.empty(mb * np_, np.int32)
            rowsum = np.zeros(mb, np.int32)
            if direct:  # pointwise: the input rows are the patches
                xr = xf[r0 * kp:r1 * kp]
                if any_zw:
                    _block_row_sums(xr, rows, kp, rowsum)
                block_gemm(xr.view(np.int32), wpack, raw, rows, np_, kg)
            else:
                cols = np.empty(mb * kp, np.uint8)
                _im2col_rows(xf, n_, d_, h_, w_, c_, zb, c0, cg, kd, kh, kw, sd, sh, sw, pd, ph,
                             pw, dd, dh, dw, od, oh, ow, r0, r1, cols, kp)
                if any_zw:
                    _block_row_sums(cols, rows, kp, rowsum)
                block_gemm(cols.view(np.int32), wpack, raw, rows, np_, kg)
            _block(mode, raw, 0, np_, 0, rows, 0, n_out, rowsum, zw, cc, ip, fp, cf0, cf1, ci0,
                   zo, lo, hi, out, out_off + r0 * out_stride, out_stride, pcol)

    return fused


def _blocks_in_parts(fn, parts, job, args):
    """Run the fused convolution ``fn`` over all its blocks of ``mb`` output
    pixels, in parts when there are several: handed to the pool's workers in
    compiled code by ``parts`` (:func:`_conv_parts`, posting ``job``), or
    (the pool busy, an input not contiguous) as Python calls.  A ``prange``
    on the ``workqueue`` layer cost 50-65 us a launch and shared the second
    core badly."""
    x, mb = args[0], args[22]
    od, oh, ow = args[16], args[17], args[18]
    m = x.shape[0] * od * oh * ow
    nblk = (m + mb - 1) // mb
    if nblk > 1:
        arrays = (x, args[19], args[26], args[27], args[28], args[29], args[36])
        if not (contiguous(*arrays) and run_compiled(parts, job, *args, nblk)):
            run_ranges(fn, nblk, *args, align=1)
    else:
        fn(*args, 0, nblk)


def _conv_parts(fused):
    """The compiled driver that runs ``fused``'s blocks in ``nworkers + 1``
    parts on the pool (:func:`qops.kernels._split.run_compiled`): the
    arguments go into 56 slots, as :func:`_conv_job_args` reads them."""

    def parts(x, zx, c0, cg, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow, wpack,
              np_, kp, mb, any_zw, direct, mode, zw, cc, ip, fp, cf0, cf1, ci0, zo, lo, hi, out,
              out_off, out_stride, pcol, n_out, nblk, ctl, nworkers, job):
        if not claim(ctl):
            return -1
        for k in range(nworkers):
            i = put_array(ctl, args_of(ctl, k), x)  # slots 0-5
            i = put_ints(ctl, i, (zx, c0, cg, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow))
            i = put_ints(ctl, put_array(ctl, i, wpack), (np_, kp, mb, any_zw, direct, mode))  # 24-25, 26-31
            i = put_array(ctl, put_array(ctl, put_array(ctl, put_array(ctl, i, zw), cc), ip), fp)
            put_float(ctl, i, cf0)  # slot 42
            put_float(ctl, i + 1, cf1)
            i = put_array(ctl, put_ints(ctl, i + 2, (ci0, zo, lo, hi)), out)  # 44-47, 48-49
            i = put_ints(ctl, i, (out_off, out_stride, pcol, n_out))
            put_ints(ctl, i, part_bounds(nblk, nworkers + 1, k + 1, 1))  # 54-55
        seq = launch(ctl, nworkers, job)
        fused(x, zx, c0, cg, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow, wpack, np_,
              kp, mb, any_zw, direct, mode, zw, cc, ip, fp, cf0, cf1, ci0, zo, lo, hi, out, out_off,
              out_stride, pcol, n_out, 0, part_bounds(nblk, nworkers + 1, 0, 1)[1])
        return finish(ctl, nworkers, seq, job)

    return parts


_DOC = """Convolution of one group, fused: im2col (:func:`im2col`'s patches),
    the raw GEMM (:mod:`kernels.cpu.gemm`, {path} path) and the zero-point
    corrections and requantization of
    :func:`kernels.cpu.requant.requantize_accumulators`, per block of ``mb``
    output pixels (:func:`conv_block_rows`) in the first-level cache.

    ``x`` is channels-last ``(N, D, H, W, C)`` uint8, group channels
    ``c0 : c0 + cg``; ``wpack`` the group's panels (``np_`` padded columns,
    ``kp`` bytes per patch, a multiple of 4); ``any_zw`` whether the row sums
    are needed; ``direct`` for a pointwise convolution (1 x 1 x 1 kernel,
    stride 1, no padding, one group, ``C == kp``): the input rows are the
    patches, read in place; ``mode`` .. ``hi`` and ``out``, ``out_off``, ``out_stride``,
    ``pcol`` as in ``requantize_accumulators``, ``n_out`` the group's output
    channels.  Same results as the unfused pipeline.  Blocks run in parts,
    handed to the pool's workers in compiled code (:mod:`qops.kernels._split`)."""

# two copies: the VNNI one only compiles where the host has VNNI
_fused_vnni = _conv_fused(block_vnni)
_fused_vnni.__name__ = _fused_vnni.__qualname__ = "_conv_blocks_vnni"
_conv_blocks_vnni = njit(**CPU)(_fused_vnni)
_fused_portable = _conv_fused(block_portable)
_fused_portable.__name__ = _fused_portable.__qualname__ = "_conv_blocks_portable"
_conv_blocks_portable = njit(**CPU)(_fused_portable)


@njit(**CPU_INLINE)
def _conv_job_args(p):
    """The arguments of a fused conv's blocks from the slots that
    :func:`_conv_parts` writes."""
    return (array5(p, 0, np.uint8), p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15], p[16],
            p[17], p[18], p[19], p[20], p[21], p[22], p[23], array1(p, 24, np.int32), p[26], p[27], p[28],
            p[29] != 0, p[30] != 0, p[31], array1(p, 32, np.int32), array1(p, 34, np.int32),
            array2(p, 36, np.int64), array2(p, 39, np.float32), np.float32(float_at(p, 42)),
            np.float32(float_at(p, 43)), p[44], p[45], p[46], p[47], array1(p, 48, np.uint8), p[50], p[51],
            p[52], p[53], p[54], p[55])


def _conv_job_vnni(p):
    """One part of :func:`conv_requantized_vnni` on a pool worker (compiled
    job)."""
    _conv_blocks_vnni(*_conv_job_args(p))


def _conv_job_portable(p):
    """One part of :func:`conv_requantized_portable` on a pool worker."""
    _conv_blocks_portable(*_conv_job_args(p))


_CONV_JOB_VNNI = CompiledJob(_conv_job_vnni)
_CONV_JOB_PORTABLE = CompiledJob(_conv_job_portable)
_conv_parts_vnni = njit(**CPU)(_conv_parts(_conv_blocks_vnni))
_conv_parts_portable = njit(**CPU)(_conv_parts(_conv_blocks_portable))


def conv_requantized_vnni(*args):
    _blocks_in_parts(_conv_blocks_vnni, _conv_parts_vnni, _CONV_JOB_VNNI, args)


def conv_requantized_portable(*args):
    _blocks_in_parts(_conv_blocks_portable, _conv_parts_portable, _CONV_JOB_PORTABLE, args)


conv_requantized_vnni.__doc__ = _DOC.format(path="VNNI")
conv_requantized_portable.__doc__ = _DOC.format(path="portable")
