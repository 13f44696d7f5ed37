"""Convolution helpers on the GPU: im2col and the depthwise kernel.

The CUDA twins of ``kernels/cpu/conv.py``, with the same names, argument
order and layouts: activations are channels-last ``(N, D, H, W, C)`` uint8
device arrays (1-D and 2-D convolutions with unit ``D``/``H``), weights of the
depthwise kernel a ``(T, O)`` int8 table.  Both are grid-stride loops over
their outputs, one element (im2col) or one accumulator (depthwise) per
iteration, every index checked against its bounds.
"""

import numpy as np
from numba import cuda

from . import DEVICE, KERNEL, config

__all__ = ["im2col", "depthwise"]


@cuda.jit(**KERNEL)
def _im2col_kernel(x, zx, c0, cg, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw,
                   od, oh, ow, out, kp):
    n_, d_, h_, w_, c_ = x.shape
    ktot = kd * kh * kw * cg
    rows = n_ * od * oh * ow
    for e in range(cuda.grid(1), rows * ktot, cuda.gridsize(1)):
        r = e // ktot
        col = e - r * ktot
        tap = col // cg
        ch = col - tap * cg
        c = tap % kw
        t = tap // kw
        b = t % kh
        a = t // kh
        ox = r % ow
        t = r // ow
        oy = t % oh
        t = t // oh
        oz = t % od
        n = t // od
        iz = oz * sd - pd + a * dd
        iy = oy * sh - ph + b * dh
        ix = ox * sw - pw + c * dw
        if 0 <= iz and iz < d_ and 0 <= iy and iy < h_ and 0 <= ix and ix < w_:
            out[r * kp + col] = x[n, iz, iy, ix, c0 + ch]
        else:
            out[r * kp + col] = zx


@cuda.jit(**DEVICE)
def _sat16(v):
    if v < -32768:
        return np.int64(-32768)
    if v > 32767:
        return np.int64(32767)
    return np.int64(v)


@cuda.jit(**DEVICE)
def _wrap32(v):
    w = np.int64(v) & 0xFFFFFFFF
    if w >= 0x80000000:
        w -= 0x100000000
    return w


@cuda.jit(**KERNEL)
def _depthwise_kernel(x, zx, w, zw, mult, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw,
                      od, oh, ow, fbgemm_pairs, out):
    n_, d_, h_, w_, c_ = x.shape
    o_ = w.shape[1]
    rows = n_ * od * oh * ow
    for e in range(cuda.grid(1), rows * o_, cuda.gridsize(1)):
        r = e // o_
        o = e - r * o_
        ci = o // mult
        ox = r % ow
        q = r // ow
        oy = q % oh
        q = q // oh
        oz = q % od
        n = q // od
        zwo = np.int64(zw[o])
        acc = np.int64(0)
        pend = np.int64(0)
        xsum = np.int64(0)
        wsum = np.int64(0)
        t = 0
        for a in range(kd):
            iz = oz * sd - pd + a * dd
            for b in range(kh):
                iy = oy * sh - ph + b * dh
                for c in range(kw):
                    ix = ox * sw - pw + c * dw
                    inside = 0 <= iz and iz < d_ and 0 <= iy and iy < h_ and 0 <= ix and ix < w_
                    wv = np.int64(w[t, o])
                    if fbgemm_pairs:
                        # raw products of consecutive taps added in pairs, int16-saturated
                        xv = np.int64(x[n, iz, iy, ix, ci]) if inside else zx
                        p = xv * wv
                        if t % 2 == 0:
                            pend = p
                        else:
                            acc = _wrap32(acc + _sat16(pend + p))
                        xsum = _wrap32(xsum + xv)
                        wsum = _wrap32(wsum + wv)
                    elif inside:  # padded taps add exactly 0
                        acc = _wrap32(acc + (np.int64(x[n, iz, iy, ix, ci]) - zx) * (wv - zwo))
                    t += 1
        if fbgemm_pairs:
            if t % 2 == 1:  # the last tap is paired with 0
                acc = _wrap32(acc + pend)
            # fbgemm sums the activations in saturating int16 lanes (>128 taps)
            xsum = xsum if xsum < 32767 else np.int64(32767)
            acc = _wrap32(acc - zx * wsum - zwo * xsum + t * zx * zwo)
        out[e] = acc


def im2col(x, zx, c0, cg, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow, out, kp):
    """Fill ``out`` (flat uint8 device array, row stride ``kp``) with the
    patches of group channels ``c0 : c0 + cg`` of ``x`` (``(N, D, H, W, C)``
    uint8 device array); padded taps read ``zx``.  Columns beyond the
    receptive field and rows beyond the output pixels are left as they are."""
    n_ = x.shape[0]
    total = n_ * od * oh * ow * kd * kh * kw * cg
    if total:
        i = np.int64
        _im2col_kernel[config.blocks(total), config.threads_per_block](
            x, i(zx), i(c0), i(cg), i(kd), i(kh), i(kw), i(sd), i(sh), i(sw), i(pd), i(ph), i(pw),
            i(dd), i(dh), i(dw), i(od), i(oh), i(ow), out, i(kp))


def depthwise(x, zx, w, zw, mult, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw,
              od, oh, ow, fbgemm_pairs, out):
    """Depthwise convolution accumulators (see the CPU function): ``out``
    (flat int32 device array, ``(N*od*oh*ow, O)``) receives
    ``sum_t (x - zx)(w - zw)`` with int32 wraparound, or with
    ``fbgemm_pairs`` fbgemm's int16-saturating paired accumulation and its
    zero-point corrections."""
    total = x.shape[0] * od * oh * ow * w.shape[1]
    if total:
        i = np.int64
        _depthwise_kernel[config.blocks(total), config.threads_per_block](
            x, i(zx), w, zw, i(mult), i(kd), i(kh), i(kw), i(sd), i(sh), i(sw), i(pd), i(ph),
            i(pw), i(dd), i(dh), i(dw), i(od), i(oh), i(ow), bool(fbgemm_pairs), out)


# --------------------------------------------------------------------------
# layout helpers of the API layer
# --------------------------------------------------------------------------


@cuda.jit(**KERNEL)
def _to_channels_last_kernel(x, flip, out):
    n_, c_, s_ = x.shape
    for e in range(cuda.grid(1), n_ * c_ * s_, cuda.gridsize(1)):
        n = e // (s_ * c_)
        r = e - n * s_ * c_
        s = r // c_
        c = r - s * c_
        out[e] = (np.int64(x[n, c, s]) & 0xFF) ^ flip


@cuda.jit(**KERNEL)
def _to_channels_first_kernel(y, out):
    n_, s_, c_ = y.shape
    for e in range(cuda.grid(1), n_ * c_ * s_, cuda.gridsize(1)):
        n = e // (c_ * s_)
        r = e - n * c_ * s_
        c = r // s_
        s = r - c * s_
        out[e] = y[n, s, c]


def to_channels_last(x, flip, out):
    """``(N, C, S)`` 8-bit device array -> flat uint8 ``out`` holding
    ``(N, S, C)``; ``flip`` adds 128 (int8 as uint8)."""
    total = x.shape[0] * x.shape[1] * x.shape[2]
    if total:
        _to_channels_last_kernel[config.blocks(total), config.threads_per_block](
            x, np.int64(0x80 if flip else 0), out)


def to_channels_first(y, out):
    """``(N, S, C)`` device array -> flat ``out`` (same dtype) holding ``(N, C, S)``."""
    total = y.shape[0] * y.shape[1] * y.shape[2]
    if total:
        _to_channels_first_kernel[config.blocks(total), config.threads_per_block](y, out)
