"""Transposed convolution on the GPU: col2im with the zero-point corrections.

The CUDA twin of ``kernels/cpu/conv_transpose.py`` (same name, argument
order and layouts): a grid-stride loop over the accumulators of one group,
one ``(output pixel, output channel)`` per iteration, each gathering the GEMM
products of the (input pixel, tap) pairs that land on it, with int32
wraparound.
"""

import numpy as np
from numba import cuda

from . import DEVICE, KERNEL, config
from .conv import to_channels_last  # the CPU module's layout helper has this twin

__all__ = ["col2im", "to_channels_last"]


@cuda.jit(**DEVICE)
def _wrap32(v):
    w = np.int64(v) & 0xFFFFFFFF
    if w >= 0x80000000:
        w -= 0x100000000
    return w


@cuda.jit(**KERNEL)
def _col2im_kernel(raw, raw_stride, rowsum, wcz, zw, og, o0, o_total, n_, d_, h_, w_, kd, kh, kw,
                   sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow, acc):
    pixels = n_ * od * oh * ow
    for e in range(cuda.grid(1), pixels * og, cuda.gridsize(1)):
        r = e // og
        o = e - r * og
        ox = r % ow
        q = r // ow
        oy = q % oh
        q = q // oh
        oz = q % od
        n = q // od
        zwo = np.int64(zw[o])
        total = np.int64(0)
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
                    total = _wrap32(total + np.int64(raw[i * raw_stride + t * og + o])
                                    - np.int64(wcz[t * og + o]) - zwo * np.int64(rowsum[i]))
        acc[r * o_total + o0 + o] = total


def col2im(raw, raw_stride, rowsum, wcz, zw, og, o0, o_total, n_, d_, h_, w_, kd, kh, kw,
           sd, sh, sw, pd, ph, pw, dd, dh, dw, od, oh, ow, acc):
    """Gather one group's GEMM rows into the int32 accumulators ``acc`` (see
    the CPU function for the layouts); device arrays throughout."""
    total = n_ * od * oh * ow * og
    if total:
        i = np.int64
        _col2im_kernel[config.blocks(total), config.threads_per_block](
            raw, i(raw_stride), rowsum, wcz, zw, i(og), i(o0), i(o_total), i(n_), i(d_), i(h_),
            i(w_), i(kd), i(kh), i(kw), i(sd), i(sh), i(sw), i(pd), i(ph), i(pw), i(dd), i(dh),
            i(dw), i(od), i(oh), i(ow), acc)
