"""Pooling kernels on the GPU: the CUDA twins of ``kernels/cpu/pool.py``.

Same names, argument order, layouts and ``AVG_*`` recipes; one thread per
output element in a grid-stride loop.  Every float32 operation whose rounding
matters goes through the primitives of ``kernels/cuda/scalar.py`` (never
contracted into an FMA by NVVM; exact in the simulator).
"""

import numpy as np
from numba import cuda

from ..cpu.pool import (
    AVG_ADAPTIVE_NCHW,
    AVG_ADAPTIVE_NHWC,
    AVG_REF,
    AVG_TORCH_NCHW,
)
from . import DEVICE, KERNEL, config
from .scalar import add32, clamp_int, div32, div_rne, fma32, mul32, rint, wrap32

__all__ = ["max_pool_nc", "max_pool_cl", "avg_pool_nc", "avg_pool_cl"]

_INT32_MIN = -2147483648
_TWO31 = 2147483648.0
_F32_INT32_MAX = 2147483520.0


@cuda.jit(**DEVICE)
def _cvt32(r):
    if r != r or r >= _TWO31 or r < -_TWO31:
        return np.int64(_INT32_MIN)
    return np.int64(r)


@cuda.jit(**DEVICE)
def _wrap_storage(v, qmin):
    if qmin == 0:
        return v & 0xFF
    if qmin == -128:
        return ((v + 128) & 0xFF) - 128
    return v


@cuda.jit(**DEVICE)
def _mults(mode, d, kd, kh, kw):
    one = np.float32(1.0)
    if mode == AVG_ADAPTIVE_NCHW:
        r = np.float32(1.0 / np.float64(kd))
        r = div32(r, np.float32(kh))
        return div32(r, np.float32(kw))
    if mode == AVG_TORCH_NCHW:
        return np.float32(1.0 / np.float64(d))
    return div32(one, np.float32(d))


@cuda.jit(**DEVICE)
def _avg_one(mode, s, t, d, m, vec, zp, zpf, qmin, qmax):
    if mode == AVG_REF:
        if d < 0:
            return clamp_int(zp + div_rne(-s, -d), qmin, qmax)
        return clamp_int(zp + div_rne(s, d), qmin, qmax)
    s32 = wrap32(s)
    if mode == AVG_ADAPTIVE_NCHW:
        v = mul32(np.float32(t), m)
        return _wrap_storage(_cvt32(rint(np.float64(v))), qmin)
    sf = np.float32(s32)
    if vec:
        if mode == AVG_ADAPTIVE_NHWC:
            v = np.float64(fma32(sf, m, zpf))
            if v != v or v > _F32_INT32_MAX:
                v = _F32_INT32_MAX
            return clamp_int(_cvt32(rint(v)), qmin, qmax)
        v = np.float64(mul32(sf, m))
        if v != v or v > _F32_INT32_MAX:
            v = _F32_INT32_MAX
        r = wrap32(_cvt32(rint(v)) + zp)
        return clamp_int(r, qmin, qmax)
    v = add32(mul32(sf, m), zpf)
    r = rint(np.float64(v))
    if mode == AVG_TORCH_NCHW:
        return clamp_int(_cvt32(r), qmin, qmax)
    if r <= qmin:
        return np.int64(qmin)
    if r >= qmax:
        return np.int64(qmax)
    return np.int64(r)


@cuda.jit(**KERNEL)
def _max_nc_kernel(x, out, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest):
    p_, od, oh, ow = out.shape
    total = p_ * od * oh * ow
    for e in range(cuda.grid(1), total, cuda.gridsize(1)):
        c = e % ow
        t = e // ow
        b = t % oh
        t = t // oh
        a = t % od
        p = t // od
        best = np.int64(lowest)
        for i in range(lo_d[a], hi_d[a], dd):
            for j in range(lo_h[b], hi_h[b], dh):
                for k in range(lo_w[c], hi_w[c], dw):
                    v = np.int64(x[p, i, j, k])
                    if v > best:
                        best = v
        out[p, a, b, c] = best


@cuda.jit(**KERNEL)
def _max_cl_kernel(x, out, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest):
    n_, od, oh, ow, nc = out.shape
    total = n_ * od * oh * ow * nc
    for e in range(cuda.grid(1), total, cuda.gridsize(1)):
        ch = e % nc
        t = e // nc
        c = t % ow
        t = t // ow
        b = t % oh
        t = t // oh
        a = t % od
        n = t // od
        best = np.int64(lowest)
        for i in range(lo_d[a], hi_d[a], dd):
            for j in range(lo_h[b], hi_h[b], dh):
                for k in range(lo_w[c], hi_w[c], dw):
                    v = np.int64(x[n, i, j, k, ch])
                    if v > best:
                        best = v
        out[n, a, b, c, ch] = best


@cuda.jit(**DEVICE)
def _divisor(a, b, c, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w, cip, divisor):
    size = (hi_d[a] - lo_d[a]) * (hi_h[b] - lo_h[b]) * (hi_w[c] - lo_w[c])
    if divisor != 0:
        return size, np.int64(divisor)
    if cip:
        return size, np.int64(ext_d[a] * ext_h[b] * ext_w[c])
    return size, np.int64(size)


@cuda.jit(**KERNEL)
def _avg_nc_kernel(x, out, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                   cip, divisor, mode, cvec, nch, zp, qmin, qmax):
    p_, od, oh, ow = out.shape
    total = p_ * od * oh * ow
    zpf = np.float32(zp)
    for e in range(cuda.grid(1), total, cuda.gridsize(1)):
        c = e % ow
        t = e // ow
        b = t % oh
        t = t // oh
        a = t % od
        p = t // od
        size, d = _divisor(a, b, c, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                           cip, divisor)
        m = _mults(mode, d, hi_d[a] - lo_d[a], hi_h[b] - lo_h[b], hi_w[c] - lo_w[c])
        acc = np.int64(0)
        for i in range(lo_d[a], hi_d[a]):
            for j in range(lo_h[b], hi_h[b]):
                for k in range(lo_w[c], hi_w[c]):
                    acc += np.int64(x[p, i, j, k])
        out[p, a, b, c] = _avg_one(mode, acc - size * zp, acc, d, m, (p % nch) < cvec, zp, zpf,
                                   qmin, qmax)


@cuda.jit(**KERNEL)
def _avg_cl_kernel(x, out, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                   cip, divisor, mode, cvec, zp, qmin, qmax):
    n_, od, oh, ow, nc = out.shape
    total = n_ * od * oh * ow * nc
    zpf = np.float32(zp)
    for e in range(cuda.grid(1), total, cuda.gridsize(1)):
        ch = e % nc
        t = e // nc
        c = t % ow
        t = t // ow
        b = t % oh
        t = t // oh
        a = t % od
        n = t // od
        size, d = _divisor(a, b, c, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                           cip, divisor)
        m = _mults(mode, d, hi_d[a] - lo_d[a], hi_h[b] - lo_h[b], hi_w[c] - lo_w[c])
        acc = np.int64(0)
        for i in range(lo_d[a], hi_d[a]):
            for j in range(lo_h[b], hi_h[b]):
                for k in range(lo_w[c], hi_w[c]):
                    acc += np.int64(x[n, i, j, k, ch])
        out[n, a, b, c, ch] = _avg_one(mode, acc - size * zp, acc, d, m, ch < cvec, zp, zpf,
                                       qmin, qmax)


def _launch(kernel, n, *args):
    tpb = config.threads_per_block
    kernel[config.blocks(n), tpb](*args)


def max_pool_nc(x, out, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest):
    """See :func:`qops.kernels.cpu.pool.max_pool_nc`."""
    _launch(_max_nc_kernel, out.size, x, out, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest)


def max_pool_cl(x, out, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest):
    """See :func:`qops.kernels.cpu.pool.max_pool_cl`."""
    _launch(_max_cl_kernel, out.size, x, out, lo_d, hi_d, lo_h, hi_h, lo_w, hi_w, dd, dh, dw, lowest)


def avg_pool_nc(x, out, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                cip, divisor, mode, cvec, nch, zp, qmin, qmax):
    """See :func:`qops.kernels.cpu.pool.avg_pool_nc`."""
    _launch(_avg_nc_kernel, out.size, x, out, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w,
            ext_w, cip, divisor, mode, cvec, nch, zp, qmin, qmax)


def avg_pool_cl(x, out, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w, ext_w,
                cip, divisor, mode, cvec, zp, qmin, qmax):
    """See :func:`qops.kernels.cpu.pool.avg_pool_cl`."""
    _launch(_avg_cl_kernel, out.size, x, out, lo_d, hi_d, ext_d, lo_h, hi_h, ext_h, lo_w, hi_w,
            ext_w, cip, divisor, mode, cvec, zp, qmin, qmax)


@cuda.jit(**KERNEL)
def _avg_qnnpack_kernel(x, out, lo_h, hi_h, lo_w, hi_w, zp, scale):
    oh, ow = out.shape[1], out.shape[2]
    for t in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        p = t // (oh * ow)
        i = (t // ow) % oh
        j = t % ow
        acc = np.int64(0)
        for y in range(lo_h[i], hi_h[i]):
            for c in range(lo_w[j], hi_w[j]):
                acc += np.int64(x[p, y, c]) - zp
        v = np.int64(rint(mul32(np.float32(acc), scale)))
        out[p, i, j] = min(max(v + zp, 0), 255)


def avg_pool_qnnpack(x, out, lo_h, hi_h, lo_w, hi_w, zp, scale):
    """See :func:`qops.kernels.cpu.pool.avg_pool_qnnpack`."""
    _launch(_avg_qnnpack_kernel, out.size, x, out, lo_h, hi_h, lo_w, hi_w, zp, scale)
