"""Convolution as GEMM: im2col from channels-last input, for 1-D, 2-D and 3-D.

Activations are channels-last ``(N, D, H, W, C)`` uint8 (1-D and 2-D
convolutions use ``D = H = 1`` / ``D = 1``).  :func:`im2col` writes, for
every output pixel, the receptive field of one group: ``kd*kh*kw`` taps of
``cg`` channels each, tap-major, padded taps filled with the input zero point
(so they add exactly 0 to ``sum (x - zx)(w - zw)``).  Rows are written into
the ``(Mp, Kp)`` buffer that :func:`kernels.cpu.gemm.gemm_raw` consumes
(columns beyond ``K`` and rows beyond ``M`` stay zero).
"""

import numpy as np
from numba import njit, prange

from .._options import CPU, CPU_PARALLEL

__all__ = ["im2col", "depthwise"]


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
