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
def _depthwise_pixel(xf, zx, wt, wsum, zw, mult, c_, base_n, d_, h_, w_, oz, oy, ox,
                     kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, fbgemm_pairs,
                     acc, xsum, pend, out, obase):
    """One output pixel, every output channel (see :func:`depthwise`)."""
    o_ = c_ * mult
    zxi = np.int32(zx)
    for o in range(o_):
        acc[o] = 0
    if fbgemm_pairs:
        for o in range(o_):
            xsum[o] = 0
    t = 0
    for a in range(kd):
        iz = oz * sd - pd + a * dd
        for b in range(kh):
            iy = oy * sh - ph + b * dh
            for c in range(kw):
                ix = ox * sw - pw + c * dw
                inside = 0 <= iz < d_ and 0 <= iy < h_ and 0 <= ix < w_
                # unsigned offsets (only read when inside): loops vectorise
                xb = np.uint64(base_n + ((iz * h_ + iy) * w_ + ix) * c_) if inside else np.uint64(0)
                wb = np.uint64(t * o_)
                if mult == 1 and not fbgemm_pairs:
                    if inside:  # the common case, vectorised across channels
                        for o in range(np.uint64(0), np.uint64(o_)):
                            acc[o] = np.int32(acc[o] + (np.int32(xf[xb + o]) - zxi) * wt[wb + o])
                elif mult == 1 and t % 2 == 0:
                    for o in range(np.uint64(0), np.uint64(o_)):
                        xv = np.int32(xf[xb + o]) if inside else zxi
                        pend[o] = xv * wt[wb + o]
                        xsum[o] = np.int32(xsum[o] + xv)
                elif mult == 1:
                    for o in range(np.uint64(0), np.uint64(o_)):
                        xv = np.int32(xf[xb + o]) if inside else zxi
                        acc[o] = np.int32(acc[o] + _sat16(pend[o] + xv * wt[wb + o]))
                        xsum[o] = np.int32(xsum[o] + xv)
                elif fbgemm_pairs:
                    # raw products, paired taps, int16 saturation (padded taps read zx)
                    for ci in range(c_):
                        xv = np.int32(xf[xb + ci]) if inside else zxi
                        for mm in range(mult):
                            o = ci * mult + mm
                            p = xv * np.int32(wt[wb + o])
                            if t % 2 == 0:
                                pend[o] = p
                            else:
                                acc[o] = np.int32(acc[o] + _sat16(pend[o] + p))
                            xsum[o] = np.int32(xsum[o] + xv)
                elif inside:  # padded taps add exactly 0
                    for ci in range(c_):
                        xv = np.int32(xf[xb + ci]) - zxi
                        for mm in range(mult):
                            o = ci * mult + mm
                            acc[o] = np.int32(acc[o] + xv * np.int32(wt[wb + o]))
                t += 1
    if fbgemm_pairs:
        for o in range(o_):
            s = acc[o]
            if t % 2 == 1:  # the last tap is paired with 0
                s = np.int32(s + pend[o])
            out[obase + o] = np.int32(s - zxi * wsum[o] - zw[o] * xsum[o] + np.int32(t) * zxi * zw[o])
    else:
        for o in range(o_):
            out[obase + o] = acc[o]


@njit(**CPU)
def _depthwise_rows(xf, zx, wt, wsum, zw, mult, n_, d_, h_, w_, c_, r0, r1,
                    kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow, fbgemm_pairs, out):
    o_ = c_ * mult
    acc = np.empty(o_, np.int32)
    xsum = np.empty(o_, np.int32)
    pend = np.empty(o_, np.int32)
    for r in range(r0, r1):
        ox = r % ow
        q = r // ow
        oy = q % oh
        q = q // oh
        oz = q % od
        n = q // od
        _depthwise_pixel(xf, zx, wt, wsum, zw, mult, c_, n * d_ * h_ * w_ * c_, d_, h_, w_,
                         oz, oy, ox, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw,
                         fbgemm_pairs, acc, xsum, pend, out, r * o_)


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
    corrections ``- zx*sum(w) - zw*sum(x) + T*zx*zw``.
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
    rows = n_ * od * oh * ow
    step = 64
    for t in prange((rows + step - 1) // step):
        _depthwise_rows(xf, zx, wt, wsum, zw, mult, n_, d_, h_, w_, c_, t * step,
                        min(rows, (t + 1) * step), kd, kh, kw, sd, sh, sw, pd, ph, pw,
                        dd, dh, dw, od, oh, ow, fbgemm_pairs, out)
