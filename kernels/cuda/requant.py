"""Requantization epilogues of linear and convolution on the GPU.

The CUDA twin of ``kernels/cpu/requant.py``: the same zero-point corrections
(int32, wrapping)

    A = raw - zw[j] * rowsum[i] + cc[j]

and the same per-profile scalar epilogues ``ep_*``, as device functions that
give the same integers.  The parameter layout (``ip``, ``fp``, ``cf0``,
``cf1``, ``ci0``) is the CPU module's; see its docstring.

Every float32 operation whose rounding matters goes through the primitives of
``kernels/cuda/scalar.py`` (``add32``, ``mul32``, ``fma32``, ``rint``): NVVM
contracts a plain ``a*b + c`` into a fused multiply-add, which would change
the result of the profiles that round twice; fbgemm's bias term is the one
explicitly fused operation (``fma32``).
"""

import numpy as np
from numba import cuda

from ..modes import (
    EP_FBGEMM,
    EP_ONEDNN,
    EP_ONNXRUNTIME,
    EP_QNNPACK,
    EP_TFLITE,
    EP_TFLITE_SINGLE,
)
from . import DEVICE, KERNEL, config
from .scalar import add32, fma32, mul32, rint32, tflite_requant, tflite_requant_single, wrap32

__all__ = [
    "ep_fbgemm",
    "ep_qnnpack",
    "ep_onednn",
    "ep_onnxruntime",
    "ep_tflite",
    "ep_tflite_single",
    "ep_reference",
    "reference_round",
    "requantize_accumulators",
]

_TWO31F = np.float32(2147483648.0)
_LB = 62
_REF_SAT = 1 << 20  # |rne| beyond this saturates every 8-bit output


# ---------------------------------------------------------------------------
# one device function per profile: corrected accumulator -> output integer
# ---------------------------------------------------------------------------


@cuda.jit(**DEVICE)
def _torch_store(v, zo, lo, hi):
    """fbgemm / qnnpack output stage for float32 ``v`` (see the CPU twin):
    NaN or outside int32 gives the low clamp, else ``clamp(rne(v) + zo)``."""
    if not (v > -_TWO31F and v < _TWO31F):
        return np.int64(lo)
    y = add32(rint32(v), zo)
    if y < lo:
        y = lo
    if y > hi:
        y = hi
    return np.int64(y)


@cuda.jit(**DEVICE)
def ep_fbgemm(a, p, q, m, zo, lo, hi):
    """fbgemm: ``v = fl(fl(p*q + fl(A)) * M)`` (one fused rounding, then one), stored."""
    t = fma32(p, q, np.float32(a))
    return _torch_store(mul32(t, m), zo, lo, hi)


@cuda.jit(**DEVICE)
def ep_qnnpack(a, bq, rs, zo, lo, hi):
    """qnnpack: ``v = fl(fl(A + bq) * rs)`` (int32 wrap), stored as fbgemm."""
    a2 = wrap32(np.int64(a) + bq)
    return _torch_store(mul32(np.float32(a2), rs), zo, lo, hi)


@cuda.jit(**DEVICE)
def ep_onednn(a, sw, b, s_src, inv_dst, zo, lo, hi, nan_out):
    """oneDNN: ``t = fl(fl(fl(A)*s_src)*s_w) + b``, ``v = fl(fl(t*inv_dst) + zo)``,
    ``clamp(rne(v), lo, hi)``; a NaN gives ``nan_out``."""
    t = mul32(mul32(np.float32(a), s_src), sw)
    t = add32(t, b)
    v = add32(mul32(t, inv_dst), zo)
    if v != v:
        return np.int64(nan_out)
    if v < lo:
        v = lo
    if v > hi:
        v = hi
    return np.int64(rint32(v))


@cuda.jit(**DEVICE)
def ep_onnxruntime(a, bias, m, zo, lo, hi):
    """onnxruntime (MLAS): ``clamp(rne(fl(fl(A + bias) * M)) + zo, lo, hi)``."""
    a2 = wrap32(np.int64(a) + bias)
    v = mul32(np.float32(a2), m)
    y = add32(rint32(v), zo)
    if y < lo:
        y = lo
    if y > hi:
        y = hi
    return np.int64(y)


@cuda.jit(**DEVICE)
def _clamp64(y, lo, hi):
    if y < lo:
        return np.int64(lo)
    if y > hi:
        return np.int64(hi)
    return np.int64(y)


@cuda.jit(**DEVICE)
def ep_tflite(a, bias, mult, shift, zo, lo, hi):
    """TFLite reference kernels: ``clamp(MBQM(A + bias) + zo, lo, hi)``, double rounding."""
    r = tflite_requant(wrap32(np.int64(a) + bias), mult, shift)
    return _clamp64(wrap32(r + zo), lo, hi)


@cuda.jit(**DEVICE)
def ep_tflite_single(a, bias, mult, shift, zo, lo, hi):
    """TFLite with single rounding (ruy, TOSA SINGLE_ROUND)."""
    r = tflite_requant_single(wrap32(np.int64(a) + bias), mult, shift)
    return _clamp64(wrap32(r + zo), lo, hi)


# ---------------------------------------------------------------------------
# reference: exact rounding on a two-limb integer (value = h * 2**62 + l),
# operation for operation the CPU code
# ---------------------------------------------------------------------------


@cuda.jit(**DEVICE)
def _norm(h, l):
    c = l >> _LB
    return h + c, l - (c << _LB)


@cuda.jit(**DEVICE)
def _add_shifted(h, l, t, s):
    th = t >> (_LB - s)
    tl = (t - (th << (_LB - s))) << s
    return _norm(h + th, l + tl)


@cuda.jit(**DEVICE)
def _shl(h, l, s):
    while s > 0:
        k = s if s < 30 else 30
        h = (h << k) + (l >> (_LB - k))
        l = (l & ((np.int64(1) << (_LB - k)) - 1)) << k
        s -= k
    return h, l


@cuda.jit(**DEVICE)
def _sar(h, l, s):
    if s <= 0:
        return h, l, False
    if s < _LB:
        sticky = (l & ((np.int64(1) << s) - 1)) != 0
        nl = (l >> s) | ((h & ((np.int64(1) << s) - 1)) << (_LB - s))
        return h >> s, nl, sticky
    s2 = s - _LB
    sticky = l != 0
    if s2 >= 63:
        if h != 0:
            sticky = True
        v = np.int64(-1) if h < 0 else np.int64(0)
    else:
        if (h & ((np.int64(1) << s2) - 1)) != 0:
            sticky = True
        v = h >> s2
    vh = v >> _LB
    return vh, v - (vh << _LB), sticky


@cuda.jit(**DEVICE)
def _bitlen(v):
    """Bit length of ``0 <= v < 2**63`` (integer binary search)."""
    n = np.int64(0)
    x = np.int64(v)
    for s in (32, 16, 8, 4, 2, 1):
        if (x >> s) != 0:
            x = x >> s
            n += s
    if x != 0:
        n += 1
    return n


@cuda.jit(**DEVICE)
def _bitlen2(h, l):
    if h < 0:
        h, l = _norm(-h, -l)
    if h > 0:
        return _LB + _bitlen(h)
    return _bitlen(l)


@cuda.jit(**DEVICE)
def _sign2(h, l):
    if h < 0:
        return -1
    if h == 0 and l == 0:
        return 0
    return 1


@cuda.jit(**DEVICE)
def reference_round(a, mx, mw, e1, mb, e2, mo):
    """``rne((a*mx*mw * 2**e1 + mb * 2**e2) / mo)`` exactly, saturated to
    +-2**20 (the CPU function, line for line)."""
    a = np.int64(a)
    t = a * mx
    t1 = t >> 31
    t0 = t - (t1 << 31)
    ph, pl = _norm(np.int64(0), t0 * mw)
    ph, pl = _add_shifted(ph, pl, t1 * mw, 31)
    neg = np.int64(-(1 << 30))
    top1 = e1 + _bitlen2(ph, pl) if (ph != 0 or pl != 0) else neg
    top2 = e2 + _bitlen(abs(mb)) if mb != 0 else neg
    tmax = max(top1, top2)
    if tmax <= 21:
        return np.int64(0)
    mbh = mb >> _LB
    mbl = mb - (mbh << _LB)
    if tmax >= 40:
        if top1 >= top2 + 2:
            return np.int64(_REF_SAT * _sign2(ph, pl))
        if top2 >= top1 + 2:
            return np.int64(_REF_SAT if mb > 0 else -_REF_SAT)
        elo = min(e1, e2)
        sh, sl = _shl(ph, pl, e1 - elo)
        bh, bl = _shl(mbh, mbl, e2 - elo)
        sh, sl = _norm(sh + bh, sl + bl)
        if sh == 0 and sl == 0:
            return np.int64(0)
        if _bitlen2(sh, sl) + elo >= 40:
            return np.int64(_REF_SAT * _sign2(sh, sl))
        fh, fl = _shl(sh, sl, elo + 60)
        sticky = False
    else:
        if e1 + 60 >= 0:
            fh, fl = _shl(ph, pl, e1 + 60)
            s1 = False
        else:
            fh, fl, s1 = _sar(ph, pl, -(e1 + 60))
        if e2 + 60 >= 0:
            gh, gl = _shl(mbh, mbl, e2 + 60)
            s2 = False
        else:
            gh, gl, s2 = _sar(mbh, mbl, -(e2 + 60))
        fh, fl = _norm(fh + gh, fl + gl)
        sticky = s1 or s2
    wh, wl, s3 = _sar(fh, fl, 59)
    sticky = sticky or s3
    w = (wh << _LB) + wl
    d = 2 * mo
    q = w // d
    r = w - q * d
    if r > mo or (r == mo and (sticky or (q & 1) != 0)):
        q += 1
    return np.int64(q)


@cuda.jit(**DEVICE)
def ep_reference(a, ib, mx, mw, e1, mb, e2, bclass, mo, zo, lo, hi):
    """Exact ``clamp(rne((A*sx*sw + b)/so) + zo, lo, hi)`` (see the CPU twin)."""
    if bclass == 0:
        q = reference_round(np.int64(a) + ib, mx, mw, e1, mb, e2, mo)
    elif bclass == 2:
        q = np.int64(0)
    else:
        q = np.int64(_REF_SAT * bclass)
    return _clamp64(q + zo, lo, hi)


# ---------------------------------------------------------------------------
# the fused pass
# ---------------------------------------------------------------------------


@cuda.jit(**DEVICE)
def _one(mode, a, c, ip, fp, cf0, cf1, ci0, zo, zof, lo, lof, hi, hif):
    if mode == EP_FBGEMM:
        return ep_fbgemm(a, fp[0, c], fp[1, c], fp[2, c], zof, lof, hif)
    if mode == EP_QNNPACK:
        return ep_qnnpack(a, ip[0, c], fp[0, c], zof, lof, hif)
    if mode == EP_ONEDNN:
        return ep_onednn(a, fp[0, c], fp[1, c], cf0, cf1, zof, lof, hif, ci0)
    if mode == EP_ONNXRUNTIME:
        return ep_onnxruntime(a, ip[0, c], fp[0, c], zof, lof, hif)
    if mode == EP_TFLITE:
        return ep_tflite(a, ip[0, c], ip[1, c], ip[2, c], zo, lo, hi)
    if mode == EP_TFLITE_SINGLE:
        return ep_tflite_single(a, ip[0, c], ip[1, c], ip[2, c], zo, lo, hi)
    return ep_reference(a, ip[0, c], ci0, ip[1, c], ip[2, c], ip[3, c], ip[4, c], ip[5, c],
                        ip[6, c], zo, lo, hi)


@cuda.jit(**KERNEL)
def _requant_kernel(mode, raw, raw_off, raw_stride, m, n, rowsum, zw, cc, ip, fp,
                    cf0, cf1, ci0, zo, lo, hi, out, out_off, out_stride, pcol):
    zof = np.float32(zo)
    lof = np.float32(lo)
    hif = np.float32(hi)
    for e in range(cuda.grid(1), m * n, cuda.gridsize(1)):
        i = e // n
        j = e - i * n
        c = pcol + j
        a = wrap32(np.int64(raw[raw_off + i * raw_stride + j]) - np.int64(zw[c]) * rowsum[i]
                   + cc[c])
        out[out_off + i * out_stride + j] = _one(mode, a, c, ip, fp, cf0, cf1, ci0, zo, zof,
                                                 lo, lof, hi, hif)


def requantize_accumulators(mode, raw, raw_off, raw_stride, m, n, rowsum, zw, cc, ip, fp,
                            cf0, cf1, ci0, zo, lo, hi, out, out_off, out_stride, pcol):
    """Zero-point corrections and requantization of an ``m x n`` block, fused.

    The arguments are those of the CPU function, with device arrays for
    ``raw``, ``rowsum``, ``zw``, ``cc``, ``ip``, ``fp`` and ``out`` (uint8 or
    int8).  The launch is not synchronised.
    """
    if m <= 0 or n <= 0:
        return
    i64 = np.int64
    _requant_kernel[config.blocks(m * n), config.threads_per_block](
        i64(mode), raw, i64(raw_off), i64(raw_stride), i64(m), i64(n), rowsum, zw, cc, ip, fp,
        np.float32(cf0), np.float32(cf1), i64(ci0), i64(zo), i64(lo), i64(hi), out,
        i64(out_off), i64(out_stride), i64(pcol),
    )
