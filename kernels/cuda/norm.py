"""CUDA kernels: quantized layer, group, instance and batch normalisation.

The CUDA twins of ``kernels/cpu/norm.py`` (same launcher names and argument
order, same layouts: flat uint8 device arrays, ``sgn = 1`` for qint8 bytes).
torch's CPU reduction order is emulated, not parallelised: one thread per
normalised row (or group) computes its sums and statistics exactly as the CPU
kernel does, one thread per (torch thread, image, channel) for the float32
running sums of the large channels-last group norm; the elementwise passes are
1-D grid-stride loops.  Every float32 operation whose rounding matters goes
through the rounding primitives of ``kernels/cuda/scalar.py`` (NVVM would
otherwise contract ``a*b + c`` into an FMA).
"""

import math

import numpy as np
from numba import cuda

from . import DEVICE, KERNEL, config
from .scalar import add32, div32, fma32, mul32, mul64, rint, sub32

__all__ = [
    "layer_norm",
    "group_norm_nchw",
    "group_norm_nhwc_rows",
    "group_norm_nhwc_sums",
    "group_norm_nhwc_apply",
    "batch_norm",
    "layer_norm_ref",
    "group_norm_ref",
    "batch_norm_ref",
]

_CVT_MAX = 2147483520.0
_TWO31 = 2147483648.0
_TWO63 = 9223372036854775808.0


# --------------------------------------------------------------------------
# device functions (the CPU element functions, operation for operation)
# --------------------------------------------------------------------------


@cuda.jit(**DEVICE)
def _value(b, sgn):
    if sgn:
        return np.int64(b ^ np.uint8(0x80)) - 128
    return np.int64(b)


@cuda.jit(**DEVICE)
def _clamp(q, qmin, qmax):
    if q < qmin:
        return np.int64(qmin)
    if q > qmax:
        return np.int64(qmax)
    return np.int64(q)


@cuda.jit(**DEVICE)
def _wrap32(v):
    """Two's-complement wrap of an int64 to int32 (as int64)."""
    return ((v + 2147483648) & 0xFFFFFFFF) - 2147483648


@cuda.jit(**DEVICE)
def quant_vec(y, inv, zp, qmin, qmax):
    t = mul32(y, inv)
    if not (t <= _CVT_MAX):
        t = np.float32(_CVT_MAX)
    if t < -_TWO31:
        r = np.int64(-2147483648)
    else:
        r = np.int64(rint(np.float64(t)))
    return _clamp(_wrap32(r + zp), qmin, qmax)


@cuda.jit(**DEVICE)
def quant_scalar(y, inv, zpf, qmin, qmax):
    v = add32(mul32(y, inv), zpf)
    r = rint(np.float64(v))
    if r != r:
        return np.int64(0)
    if r < qmin:
        return np.int64(qmin)
    if r > qmax:
        return np.int64(qmax)
    return np.int64(r)


@cuda.jit(**DEVICE)
def _vec_end(n):
    nv = (n // 64) * 64
    if n - nv >= 32:
        return nv + 32
    return nv


@cuda.jit(**DEVICE)
def row_stats(s, ss, n, xzpf, xs, eps):
    nf = np.float32(n)
    m = div32(s, nf)
    mean = sub32(m, xzpf)
    a = div32(ss, nf)
    var = fma32(-m, m, a)
    if var < np.float32(0.0):
        var = np.float32(0.0)
    t = mul32(mul32(var, xs), xs)
    rstd = np.float32(np.float64(xs) / math.sqrt(np.float64(t) + eps))
    return mean, rstd


@cuda.jit(**DEVICE)
def _int_sums(x, lo, hi, sgn):
    s = np.int64(0)
    ss = np.int64(0)
    for i in range(lo, hi):
        v = _value(x[i], sgn)
        s += v
        ss += v * v
    return s, ss


# --------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------


@cuda.jit(**KERNEL)
def _row_stats_kernel(x, sgn, rows, n, xzp, xs, eps, mean, rstd):
    for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
        s, ss = _int_sums(x, r * n, r * n + n, sgn)
        mean[r], rstd[r] = row_stats(np.float32(s), np.float32(ss), n, np.float32(xzp), xs, eps)


@cuda.jit(**KERNEL)
def _layer_norm_kernel(x, sgn, n, gamma, beta, xzp, inv, yzp, qmin, qmax,
                       mean, rstd, out):
    a_end = _vec_end(n)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        r = i // n
        k = i - r * n
        d = np.float32(_value(x[i], sgn) - xzp)
        p = mul32(sub32(d, mean[r]), rstd[r])
        y = fma32(p, gamma[k], beta[k])
        if k < a_end:
            q = quant_vec(y, inv, yzp, qmin, qmax)
        else:
            q = quant_scalar(y, inv, np.float32(yzp), qmin, qmax)
        out[i] = np.uint8(q & 0xFF)


@cuda.jit(**KERNEL)
def _gn_nchw_kernel(x, sgn, groups, cpg, hw, gamma, beta, xzp, inv, yzp, qmin,
                    qmax, mean, rstd, out):
    n = cpg * hw
    nch = groups * cpg
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        r = i // n
        c = (i - r * n) // hw
        ch = ((r % groups) * cpg + c) % nch
        gp = mul32(rstd[r], gamma[ch])
        b = beta[ch]
        d = np.float32(_value(x[i], sgn) - xzp)
        y = fma32(sub32(d, mean[r]), gp, b)
        out[i] = np.uint8(quant_vec(y, inv, yzp, qmin, qmax) & 0xFF)


@cuda.jit(**KERNEL)
def _gn_nhwc_stats_kernel(x, sgn, bs, groups, cpg, hw, xzp, xs, eps, gamma, beta,
                          sc, bi):
    """One thread per (image, group): exact integer sums, statistics, and the
    per-channel scale and bias."""
    c = groups * cpg
    for r in range(cuda.grid(1), bs * groups, cuda.gridsize(1)):
        b = r // groups
        g = r % groups
        s = np.int64(0)
        ss = np.int64(0)
        for p in range(hw):
            lo = (b * hw + p) * c + g * cpg
            s1, ss1 = _int_sums(x, lo, lo + cpg, sgn)
            s += s1
            ss += ss1
        mean, rstd = row_stats(np.float32(s), np.float32(ss), cpg * hw, np.float32(xzp), xs, eps)
        _scale_bias(b * c + g * cpg, g * cpg, cpg, mean, rstd, gamma, beta, sc, bi)


@cuda.jit(**DEVICE)
def _scale_bias(o, g0, cpg, mean, rstd, gamma, beta, sc, bi):
    for d in range(cpg):
        s = mul32(rstd, gamma[g0 + d])
        sc[o + d] = s
        bi[o + d] = fma32(-s, mean, beta[g0 + d])


@cuda.jit(**KERNEL)
def _gn_nhwc_apply_kernel(x, sgn, groups, cpg, hw, span, xzp, inv, yzp, qmin, qmax, sc, bi, out):
    """``y = fma(x - zp, scale, bias)``; the vector/scalar split runs along
    ``span`` channels (the group's for H*W < 512, all of them otherwise)."""
    c = groups * cpg
    a_end = _vec_end(span)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        pix = i // c
        ch = i - pix * c
        b = pix // hw
        d = np.float32(_value(x[i], sgn) - xzp)
        y = fma32(d, sc[b * c + ch], bi[b * c + ch])
        if ch % span < a_end:
            q = quant_vec(y, inv, yzp, qmin, qmax)
        else:
            q = quant_scalar(y, inv, np.float32(yzp), qmin, qmax)
        out[i] = np.uint8(q & 0xFF)


@cuda.jit(**KERNEL)
def _gn_nhwc_sums_kernel(x, sgn, bs, hw, c, nt, chunk, buf):
    """One thread per (torch thread, image, channel): float32 running sums in
    pixel order over that torch thread's pixels of the image."""
    for j in range(cuda.grid(1), nt * bs * c, cuda.gridsize(1)):
        t = j // (bs * c)
        b = (j // c) % bs
        ch = j % c
        lo = max(t * chunk, b * hw)
        hi = min(min(bs * hw, t * chunk + chunk), b * hw + hw)
        s1 = np.float32(0.0)
        s2 = np.float32(0.0)
        for pix in range(lo, hi):
            v = _value(x[pix * c + ch], sgn)
            s1 = add32(s1, np.float32(v))
            s2 = add32(s2, np.float32(v * v))
        buf[t, b, 0, ch] = s1
        buf[t, b, 1, ch] = s2


@cuda.jit(**KERNEL)
def _gn_nhwc_fold_kernel(bs, groups, cpg, hw, buf, xzp, xs, eps, gamma, beta, sc, bi):
    """One thread per (image, group): fold the per-thread sums (thread, then
    channel order), statistics, scale and bias."""
    c = groups * cpg
    nthreads = buf.shape[0]
    for r in range(cuda.grid(1), bs * groups, cuda.gridsize(1)):
        b = r // groups
        g = r % groups
        sm = np.float32(0.0)
        sq = np.float32(0.0)
        for t in range(nthreads):
            for d in range(cpg):
                sm = add32(sm, buf[t, b, 0, g * cpg + d])
                sq = add32(sq, buf[t, b, 1, g * cpg + d])
        mean, rstd = row_stats(sm, sq, cpg * hw, np.float32(xzp), xs, eps)
        _scale_bias(b * c + g * cpg, g * cpg, cpg, mean, rstd, gamma, beta, sc, bi)


@cuda.jit(**KERNEL)
def _batch_norm_kernel(x, sgn, c, inner, alpha, beta, xzp, yzp, relu, qmin, qmax, out):
    nv = (c // 64) * 64
    lo_q = yzp if relu else qmin
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        ch = (i // inner) % c
        d = np.float32(_value(x[i], sgn) - xzp)
        y = fma32(alpha[ch], d, beta[ch])
        if ch < nv:
            q = quant_vec(y, np.float32(1.0), yzp, qmin, qmax)
        else:
            v = rint(np.float64(y))
            if v != v or v >= _TWO63 or v < -_TWO63:
                q = np.int64(qmax) if yzp < 0 else np.int64(qmin)
            else:
                q = _clamp(np.int64(v) + yzp, qmin, qmax)
        if q < lo_q:
            q = np.int64(lo_q)
        out[i] = np.uint8(q & 0xFF)


# --------------------------------------------------------------------------
# reference kernels
# --------------------------------------------------------------------------


@cuda.jit(**DEVICE)
def _ref_quant(y, ys, yzp, qmin, qmax):
    if y != y:
        return np.int64(yzp)
    v = rint(y / ys)
    if v > 4.0e18:
        return np.int64(qmax)
    if v < -4.0e18:
        return np.int64(qmin)
    return _clamp(np.int64(v) + yzp, qmin, qmax)


@cuda.jit(**KERNEL)
def _ref_moments_kernel(x, sgn, rows, n, xzp, xs, eps, mean, den):
    for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
        s = 0.0
        for i in range(r * n, r * n + n):
            s += np.float64(_value(x[i], sgn) - xzp)
        m = s / n
        v = 0.0
        for i in range(r * n, r * n + n):
            e = np.float64(_value(x[i], sgn) - xzp) - m
            v += mul64(e, e)
        mean[r] = m
        den[r] = math.sqrt(mul64(mul64(v / n, xs), xs) + eps)


@cuda.jit(**KERNEL)
def _ref_apply_kernel(x, sgn, n, inner, nch, gamma, beta, xs, xzp, ys, yzp, qmin,
                      qmax, mean, den, out):
    """Row ``r = i // n``; the affine index is ``(i // inner) % nch``."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        r = i // n
        k = (i // inner) % nch
        t = mul64(np.float64(_value(x[i], sgn) - xzp) - mean[r], xs) / den[r]
        t = mul64(t, np.float64(gamma[k])) + np.float64(beta[k])
        out[i] = np.uint8(_ref_quant(t, ys, yzp, qmin, qmax) & 0xFF)


@cuda.jit(**KERNEL)
def _bn_ref_kernel(x, sgn, c, inner, weight, bias, mean, var, eps, xs, xzp, ys, yzp, relu, qmin,
                   qmax, out):
    lo_q = yzp if relu else qmin
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        ch = (i // inner) % c
        d = mul64(np.float64(_value(x[i], sgn) - xzp), xs)
        t = (d - np.float64(mean[ch])) / math.sqrt(np.float64(var[ch]) + eps)
        t = mul64(t, np.float64(weight[ch])) + np.float64(bias[ch])
        q = _ref_quant(t, ys, yzp, qmin, qmax)
        if q < lo_q:
            q = np.int64(lo_q)
        out[i] = np.uint8(q & 0xFF)


# --------------------------------------------------------------------------
# host launchers (the CPU kernels' names and argument order)
# --------------------------------------------------------------------------


def _grid(n):
    return config.blocks(n), config.threads_per_block


def layer_norm(x, sgn, m_rows, n, gamma, beta, xs, xzp, eps, inv, yzp, qmin, qmax,
               out):
    mean = cuda.device_array(m_rows, np.float32)
    rstd = cuda.device_array(m_rows, np.float32)
    _row_stats_kernel[_grid(m_rows)](x, sgn, m_rows, n, xzp, np.float32(xs), eps, mean, rstd)
    _layer_norm_kernel[_grid(x.size)](x, sgn, n, gamma, beta, xzp, np.float32(inv),
                                      yzp, qmin, qmax, mean, rstd, out)


def group_norm_nchw(x, sgn, rows, groups, cpg, hw, gamma, beta, xs, xzp, eps, inv,
                    yzp, qmin, qmax, out):
    mean = cuda.device_array(rows, np.float32)
    rstd = cuda.device_array(rows, np.float32)
    _row_stats_kernel[_grid(rows)](x, sgn, rows, cpg * hw, xzp, np.float32(xs), eps, mean, rstd)
    _gn_nchw_kernel[_grid(x.size)](x, sgn, groups, cpg, hw, gamma, beta, xzp,
                                   np.float32(inv), yzp, qmin, qmax, mean, rstd, out)


def group_norm_nhwc_rows(x, sgn, bs, groups, cpg, hw, gamma, beta, xs, xzp, eps,
                         inv, yzp, qmin, qmax, sc, bi, out):
    _gn_nhwc_stats_kernel[_grid(bs * groups)](x, sgn, bs, groups, cpg, hw, xzp, np.float32(xs),
                                              eps, gamma, beta, sc, bi)
    _gn_nhwc_apply_kernel[_grid(x.size)](x, sgn, groups, cpg, hw, cpg, xzp, np.float32(inv), yzp,
                                         qmin, qmax, sc, bi, out)


def group_norm_nhwc_sums(x, sgn, bs, hw, c, nthreads, buf):
    total = bs * hw
    nt = min(nthreads, total)
    chunk = (total + nt - 1) // nt
    _gn_nhwc_sums_kernel[_grid(nt * bs * c)](x, sgn, bs, hw, c, nt, chunk, buf)


def group_norm_nhwc_apply(x, sgn, bs, groups, cpg, hw, buf, gamma, beta, xs, xzp,
                          eps, inv, yzp, qmin, qmax, sc, bi, out):
    _gn_nhwc_fold_kernel[_grid(bs * groups)](bs, groups, cpg, hw, buf, xzp, np.float32(xs), eps,
                                             gamma, beta, sc, bi)
    _gn_nhwc_apply_kernel[_grid(x.size)](x, sgn, groups, cpg, hw, groups * cpg, xzp,
                                         np.float32(inv), yzp, qmin, qmax, sc, bi, out)


def batch_norm(x, sgn, bs, c, inner, alpha, beta, xzp, yzp, relu, qmin, qmax, out):
    _batch_norm_kernel[_grid(x.size)](x, sgn, c, inner, alpha, beta, xzp, yzp, relu, qmin, qmax,
                                      out)


def layer_norm_ref(x, sgn, m_rows, n, gamma, beta, xs, xzp, eps, ys, yzp, qmin,
                   qmax, out):
    mean = cuda.device_array(m_rows, np.float64)
    den = cuda.device_array(m_rows, np.float64)
    _ref_moments_kernel[_grid(m_rows)](x, sgn, m_rows, n, xzp, xs, eps, mean, den)
    _ref_apply_kernel[_grid(x.size)](x, sgn, n, 1, n, gamma, beta, xs, xzp, ys, yzp,
                                     qmin, qmax, mean, den, out)


def group_norm_ref(x, sgn, rows, groups, cpg, hw, gamma, beta, xs, xzp, eps, ys,
                   yzp, qmin, qmax, out):
    n = cpg * hw
    mean = cuda.device_array(rows, np.float64)
    den = cuda.device_array(rows, np.float64)
    _ref_moments_kernel[_grid(rows)](x, sgn, rows, n, xzp, xs, eps, mean, den)
    _ref_apply_kernel[_grid(x.size)](x, sgn, n, hw, groups * cpg, gamma, beta, xs,
                                     xzp, ys, yzp, qmin, qmax, mean, den, out)


def batch_norm_ref(x, sgn, bs, c, inner, weight, bias, mean, var, eps, xs, xzp, ys, yzp, relu,
                   qmin, qmax, out):
    _bn_ref_kernel[_grid(x.size)](x, sgn, c, inner, weight, bias, mean, var, eps, xs, xzp, ys, yzp,
                                  relu, qmin, qmax, out)
