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

from .._options import CPU, CPU_INLINE, CPU_PARALLEL
from .._split import run_ranges

__all__ = ["col2im", "to_channels_last"]

TILE = 32  # channels and pixels per block of the layout transpose


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

    The output pixels run in parts on Python threads
    (:mod:`qops.kernels._split`; a ``prange`` on the ``workqueue`` layer
    gained little), a few thousand pixels at least per part.
    """
    pixels = n_ * od * oh * ow
    args = (raw, raw_stride, rowsum, wcz, zw, og, o0, o_total, n_, d_, h_, w_, kd, kh, kw,
            sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow, acc)
    if pixels * og >= 1 << 16:
        run_ranges(_col2im_range, pixels, *args, align=64)
    else:
        _col2im_range(*args, 0, pixels)


@njit(**CPU_INLINE)
def _taps_1d(o_len, k, s, p, d, i_len):
    """For each output coordinate of one dimension, the taps that reach it:
    ``cnt[o]`` of them, tap ``tap[o, j]`` from input coordinate ``src[o, j]``
    (``o + p - tap * d = src * s``, inside the input)."""
    cnt = np.zeros(o_len, np.int64)
    tap = np.zeros((o_len, max(k, 1)), np.int64)
    src = np.zeros((o_len, max(k, 1)), np.int64)
    for o in range(o_len):
        for a in range(k):
            t = o + p - a * d
            if t < 0 or t % s != 0 or t // s >= i_len:
                continue
            tap[o, cnt[o]] = a
            src[o, cnt[o]] = t // s
            cnt[o] += 1
    return cnt, tap, src


@njit(**CPU)
def _col2im_range(raw, raw_stride, rowsum, wcz, zw, og, o0, o_total, n_, d_, h_, w_, kd, kh, kw,
                  sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow, acc, r0, r1):
    """Output pixels ``r0:r1`` (row-major over ``(n_, od, oh, ow)``) of
    :func:`col2im`: each pixel's accumulators cleared, then for every
    (input pixel, tap) pair that lands on it, in tap order,
    ``acc += (raw - wcz) - zw * rowsum`` (int32, wrapping).  The taps of each
    output coordinate are listed once per dimension and the coordinates
    counted up, instead of integer divisions to decompose every pixel and to
    test every tap."""
    cz, tz_, iz = _taps_1d(od, kd, sd, pd, dd, d_)
    cy, ty_, iy = _taps_1d(oh, kh, sh, ph, dh, h_)
    cx, tx_, ix = _taps_1d(ow, kw, sw, pw, dw, w_)
    if r0 >= r1:
        return
    ox = r0 % ow
    q = r0 // ow
    oy = q % oh
    q = q // oh
    oz = q % od
    n = q // od
    ogu = np.uint64(og)
    for r in range(r0, r1):
        dst = np.uint64(r * o_total + o0)
        for o in range(np.uint64(0), ogu):
            acc[dst + o] = 0
        for ja in range(cz[oz]):
            a = tz_[oz, ja]
            zi = (n * d_ + iz[oz, ja]) * h_
            for jb in range(cy[oy]):
                b = ty_[oy, jb]
                yi = (zi + iy[oy, jb]) * w_
                for jc in range(cx[ox]):
                    i = yi + ix[ox, jc]
                    t = (a * kh + b) * kw + tx_[ox, jc]
                    src = np.uint64(i * raw_stride + t * og)
                    wrow = np.uint64(t * og)
                    rs = rowsum[i]
                    for o in range(np.uint64(0), ogu):
                        acc[dst + o] = np.int32(
                            acc[dst + o] + np.int32(raw[src + o] - wcz[wrow + o]) - np.int32(zw[o] * rs)
                        )
        ox += 1
        if ox == ow:
            ox = 0
            oy += 1
            if oy == oh:
                oy = 0
                oz += 1
                if oz == od:
                    oz = 0
                    n += 1


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
