"""CUDA kernels: nearest and bilinear resampling, channel shuffle.

The CUDA twins of ``kernels/cpu/resample.py``: same names, argument order,
layouts and arithmetic (see that module's docstring).  Each kernel is a 1-D
grid-stride loop over the output elements; the float32 blends go through the
explicit round-to-nearest primitives of ``kernels/cuda/scalar.py`` (``mul32``,
``add32``, ``fma32``) so that NVVM fuses exactly the products torch fuses and
no others.  Host launchers take device arrays and return without
synchronising.
"""

import numpy as np
from numba import cuda

from . import DEVICE, KERNEL, config
from .scalar import add32, fma32, mul32, mul64, rint, rint32, sub32

__all__ = ["nearest", "bilinear_nchw", "bilinear_nhwc", "bilinear_reference", "channel_shuffle"]


def _grid(n):
    return config.blocks(n), config.threads_per_block


def _i(v):
    return np.int64(v)


@cuda.jit(**DEVICE)
def _requant_f32(r, zpf, qmin, qmax):
    """fbgemm's legacy ``Quantize`` at scale 1 of ``r = result - zp``: ``clamp(rne(fl(r + zp)))``."""
    v = rint32(add32(r, zpf))
    if v <= qmin:
        return np.int64(qmin)
    if v >= qmax:
        return np.int64(qmax)
    return np.int64(v)


# --------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------


@cuda.jit(**KERNEL)
def _nearest_kernel(x, di, hi, wi, out, D, H, W, K, OD, OH, OW):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        k = i % K
        t = i // K
        ow = t % OW
        t = t // OW
        oh = t % OH
        t = t // OH
        od = t % OD
        b = t // OD
        out[i] = x[(((b * D + di[od]) * H + hi[oh]) * W + wi[ow]) * K + k]


@cuda.jit(**KERNEL)
def _bilinear_nchw_kernel(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, out, H, W, OH, OW):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        ow = i % OW
        t = i // OW
        oh = t % OH
        b = t // OH
        base0 = (b * H + hidx[oh]) * W
        base1 = base0 + hp[oh] * W
        w = widx[ow]
        wq = w + wp[ow]
        w0 = wl0[ow]
        w1 = wl1[ow]
        t0 = add32(mul32(w0, np.float32(x[base0 + w])), mul32(w1, np.float32(x[base0 + wq])))
        t1 = add32(mul32(w0, np.float32(x[base1 + w])), mul32(w1, np.float32(x[base1 + wq])))
        r = add32(mul32(hl0[oh], t0), mul32(hl1[oh], t1))
        out[i] = _requant_f32(sub32(r, zpf), zpf, qmin, qmax)


@cuda.jit(**KERNEL)
def _bilinear_nhwc_kernel(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, nvec, out, H, W, C, OH, OW):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        c = i % C
        t = i // C
        ow = t % OW
        t = t // OW
        oh = t % OH
        b = t // OH
        r0 = b * H + hidx[oh]
        r1 = r0 + hp[oh]
        w = widx[ow]
        wq = w + wp[ow]
        w0 = wl0[ow]
        w1 = wl1[ow]
        h0 = hl0[oh]
        h1 = hl1[oh]
        p0 = np.float32(x[(r0 * W + w) * C + c])
        p1 = np.float32(x[(r0 * W + wq) * C + c])
        p2 = np.float32(x[(r1 * W + w) * C + c])
        p3 = np.float32(x[(r1 * W + wq) * C + c])
        if c < nvec:  # torch's vector code
            t0 = fma32(w1, p1, mul32(w0, p0))
            t1 = fma32(w1, p3, mul32(w0, p2))
            r = fma32(h1, t1, mul32(h0, t0))
        else:  # torch's scalar code
            t0 = fma32(w0, p0, mul32(w1, p1))
            t1 = fma32(w0, p2, mul32(w1, p3))
            r = fma32(h0, t0, mul32(h1, t1))
        out[i] = _requant_f32(sub32(r, zpf), zpf, qmin, qmax)


@cuda.jit(**KERNEL)
def _bilinear_reference_kernel(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zp, qmin, qmax, out, H, W, OH, OW):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        ow = i % OW
        t = i // OW
        oh = t % OH
        b = t // OH
        base0 = (b * H + hidx[oh]) * W
        base1 = base0 + hp[oh] * W
        w = widx[ow]
        wq = w + wp[ow]
        w0 = wl0[ow]
        w1 = wl1[ow]
        t0 = mul64(w0, np.float64(np.int64(x[base0 + w]) - zp)) + mul64(w1, np.float64(np.int64(x[base0 + wq]) - zp))
        t1 = mul64(w0, np.float64(np.int64(x[base1 + w]) - zp)) + mul64(w1, np.float64(np.int64(x[base1 + wq]) - zp))
        v = rint(mul64(hl0[oh], t0) + mul64(hl1[oh], t1)) + zp
        if v <= qmin:
            out[i] = qmin
        elif v >= qmax:
            out[i] = qmax
        else:
            out[i] = np.int64(v)


@cuda.jit(**KERNEL)
def _shuffle_kernel(x, out, G, Cg, S):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        s = i % S
        t = i // S
        g = t % G
        t = t // G
        cg = t % Cg
        b = t // Cg
        out[i] = x[((b * G + g) * Cg + cg) * S + s]


# --------------------------------------------------------------------------
# host launchers (the CPU kernels' names and argument order)
# --------------------------------------------------------------------------


def _flat(a):
    return a.reshape(a.size)


def nearest(x, di, hi, wi, out):
    """``out[b, od, oh, ow, :] = x[b, di[od], hi[oh], wi[ow], :]`` (5-D device arrays)."""
    if out.size:
        _, D, H, W, K = x.shape
        _, OD, OH, OW, _ = out.shape
        _nearest_kernel[_grid(out.size)](_flat(x), di, hi, wi, _flat(out), _i(D), _i(H), _i(W), _i(K),
                                         _i(OD), _i(OH), _i(OW))


def bilinear_nchw(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, out):
    """torch's NCHW quantized bilinear on ``(B, H, W)`` planes (see the CPU kernel)."""
    if out.size:
        _, H, W = x.shape
        _, OH, OW = out.shape
        _bilinear_nchw_kernel[_grid(out.size)](_flat(x), hidx, hp, hl0, hl1, widx, wp, wl0, wl1, np.float32(zpf),
                                               _i(qmin), _i(qmax), _flat(out), _i(H), _i(W), _i(OH), _i(OW))


def bilinear_nhwc(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, nvec, out):
    """torch's channels-last quantized bilinear on ``(N, H, W, C)`` (see the CPU kernel)."""
    if out.size:
        _, H, W, C = x.shape
        _, OH, OW, _ = out.shape
        _bilinear_nhwc_kernel[_grid(out.size)](_flat(x), hidx, hp, hl0, hl1, widx, wp, wl0, wl1, np.float32(zpf),
                                               _i(qmin), _i(qmax), _i(nvec), _flat(out), _i(H), _i(W), _i(C),
                                               _i(OH), _i(OW))


def bilinear_reference(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zp, qmin, qmax, out):
    """The ideal bilinear on ``(B, H, W)`` planes: float64, one rounding."""
    if out.size:
        _, H, W = x.shape
        _, OH, OW = out.shape
        _bilinear_reference_kernel[_grid(out.size)](_flat(x), hidx, hp, hl0, hl1, widx, wp, wl0, wl1, _i(zp),
                                                    _i(qmin), _i(qmax), _flat(out), _i(H), _i(W), _i(OH), _i(OW))


def channel_shuffle(x, out):
    """``out[b, cg, g, :] = x[b, g, cg, :]`` (4-D device arrays)."""
    if out.size:
        _, G, Cg, S = x.shape
        _shuffle_kernel[_grid(out.size)](_flat(x), _flat(out), _i(G), _i(Cg), _i(S))
