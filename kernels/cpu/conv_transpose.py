"""Transposed convolution: col2im with the zero-point corrections (CPU).

A transposed convolution of one group is a GEMM followed by a scatter:
``raw[i, t*og + o] = sum_c x[i, c] * w[c, o, t]`` for every input pixel
``i`` (channels-last rows, :func:`kernels.cpu.gemm.gemm_raw`) and every
kernel tap ``t``, then every product row goes to the output pixel
``p = i*stride - padding + t*dilation``.  :func:`col2im` does that scatter
in gather form (each output row sums what lands on it, so threads own
what they write) and applies the zero-point corrections on the way, giving
the accumulator of ``shared NUMERICS.md`` section 3:

    A[p, o] = sum_{(i, t) -> p} raw[i, t*og + o] - zx*wc[t, o] - zw[o]*rowsum[i]
            = sum_{(i, t) -> p} sum_c (x[i, c] - zx)(w[c, o, t] - zw[o])

with ``wc[t, o] = sum_c (w[c, o, t] - zw[o])`` and ``rowsum[i] = sum_c x[i, c]``
(int32, wrapping: the sum is the peers' int32 accumulator whatever the
order).  Output pixels no pair reaches get ``A = 0``, as in every backend
(they read the input zero point).
"""

import numpy as np
from numba import njit, prange

from .._options import CPU, CPU_PARALLEL

__all__ = ["col2im", "to_channels_last"]

TILE = 32  # channels and pixels per block of the layout transpose


@njit(**CPU)
def _col2im_pixel(raw, raw_stride, rowsum, wcz, zw, og, o0, o_total, r, n_, d_, h_, w_,
                  kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow, acc):
    """Output pixel ``r`` (row-major over ``(n_, od, oh, ow)``) of :func:`col2im`."""
    ox = r % ow
    q = r // ow
    oy = q % oh
    q = q // oh
    oz = q % od
    n = q // od
    dst = np.uint64(r * o_total + o0)
    for o in range(np.uint64(0), np.uint64(og)):
        acc[dst + o] = 0
    for a in range(kd):
        tz = oz + pd - a * dd
        if tz < 0 or tz % sd != 0 or tz // sd >= d_:
            continue
        for b in range(kh):
            ty = oy + ph - b * dh
            if ty < 0 or ty % sh != 0 or ty // sh >= h_:
                continue
            for c in range(kw):
                tx = ox + pw - c * dw
                if tx < 0 or tx % sw != 0 or tx // sw >= w_:
                    continue
                i = ((n * d_ + tz // sd) * h_ + ty // sh) * w_ + tx // sw
                t = (a * kh + b) * kw + c
                src = np.uint64(i * raw_stride + t * og)
                wrow = np.uint64(t * og)
                rs = rowsum[i]
                for o in range(np.uint64(0), np.uint64(og)):
                    acc[dst + o] = np.int32(
                        acc[dst + o] + np.int32(raw[src + o] - wcz[wrow + o]) - np.int32(zw[o] * rs)
                    )


@njit(**CPU_PARALLEL)
def col2im(raw, raw_stride, rowsum, wcz, zw, og, o0, o_total, n_, d_, h_, w_, kd, kh, kw,
           sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow, acc):
    """Gather one group's GEMM rows into the int32 accumulators ``acc``.

    Parameters
    ----------
    raw : int32, flat ``(Mp, raw_stride)``
        ``raw[i, t*og + o]``: input pixel ``i`` (``(n, z, y, x)`` row-major
        over ``(n_, d_, h_, w_)``) times tap ``t`` (row-major over
        ``(kd, kh, kw)``) of output channel ``o`` of the group.
    rowsum : int32 ``(n_*d_*h_*w_,)``
        Sum of the group's input channels per pixel (zeros when every weight
        zero point is 0).
    wcz : int32 ``(kd*kh*kw*og,)``
        ``zx * sum_c (w[c, o, t] - zw[o])`` at ``t*og + o`` (wrapped).
    zw : int32 ``(og,)``
        The group's weight zero points.
    o0, o_total : int
        The group's first output channel and the output channel count.
    acc : int32, flat ``(n_, od, oh, ow, o_total)``
        Columns ``o0 : o0 + og`` are overwritten.
    """
    for r in prange(n_ * od * oh * ow):
        _col2im_pixel(raw, raw_stride, rowsum, wcz, zw, og, o0, o_total, r, n_, d_, h_, w_,
                      kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow, acc)


@njit(**CPU_PARALLEL)
def to_channels_last(x, flip, out):
    """``(N, C, S)`` uint8 ``x`` (any strides) -> flat ``out`` holding
    ``(N, S, C)``; ``flip`` adds 128 (int8 bytes as uint8).

    Blocked ``TILE x TILE`` so both sides stay in cache; parallel over the
    pixel blocks of every image.
    """
    n_, c_, s_ = x.shape
    sb = (s_ + TILE - 1) // TILE
    f = np.uint8(0x80) if flip else np.uint8(0)
    for t in prange(n_ * sb):
        n = t // sb
        s0 = (t - n * sb) * TILE
        s1 = min(s0 + TILE, s_)
        for c0 in range(0, c_, TILE):
            c1 = min(c0 + TILE, c_)
            for s in range(s0, s1):
                base = np.uint64((n * s_ + s) * c_)
                for c in range(c0, c1):
                    out[base + np.uint64(c)] = x[n, c, s] ^ f
