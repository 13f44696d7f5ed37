"""CUDA kernels for quantized embeddings: bag sums over packed rowwise tables.

Siblings of ``kernels/cpu/embedding.py`` (same names, same argument order,
same packed-row layout).  One thread per output element ``(bag, column)``
(grid-stride): it walks the bag's indices in order and accumulates exactly
as the CPU loop does, through the one-rounding primitives of
``kernels/cuda/scalar.py``, so both devices give the same bits.  The row
scale and bias are decoded from their bytes with exact integer and
power-of-two arithmetic.

The prepack and unpack kernels of the CPU module have no CUDA twins: the
API runs them on the host.
"""

import math

import numpy as np
from numba import cuda

from . import DEVICE, KERNEL, config
from .scalar import add32, div32, fma32, fma64, mul32, mul64, round_dd_to_f32, two_sum

__all__ = ["bag_sum", "bag_sum_exact"]


@cuda.jit(**DEVICE)
def _f32_from_bits(u):
    """The float32 with IEEE bits ``u`` (an int64 holding a uint32)."""
    sign = (u >> 31) & 1
    e = (u >> 23) & 0xFF
    m = u & 0x7FFFFF
    if e == 255:
        v = np.float64(np.inf) if m == 0 else np.float64(np.nan)
    elif e == 0:
        v = math.ldexp(np.float64(m), -149)
    else:
        v = math.ldexp(np.float64(m + 8388608), int(e) - 150)
    return np.float32(-v if sign else v)


@cuda.jit(**DEVICE)
def _f32_from_half(h):
    """The float32 value of the IEEE binary16 bits ``h`` (an int64)."""
    sign = (h >> 15) & 1
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 31:
        v = np.float64(np.inf) if m == 0 else np.float64(np.nan)
    elif e == 0:
        v = math.ldexp(np.float64(m), -24)
    else:
        v = math.ldexp(np.float64(m + 1024), int(e) - 25)
    return np.float32(-v if sign else v)


@cuda.jit(**DEVICE)
def _scale_bias(w, r, bits):
    W = w.shape[1]
    if bits == 8:
        s = (np.int64(w[r, W - 8]) | (np.int64(w[r, W - 7]) << 8) | (np.int64(w[r, W - 6]) << 16)
             | (np.int64(w[r, W - 5]) << 24))
        b = (np.int64(w[r, W - 4]) | (np.int64(w[r, W - 3]) << 8) | (np.int64(w[r, W - 2]) << 16)
             | (np.int64(w[r, W - 1]) << 24))
        return _f32_from_bits(s), _f32_from_bits(b)
    s = np.int64(w[r, W - 4]) | (np.int64(w[r, W - 3]) << 8)
    b = np.int64(w[r, W - 2]) | (np.int64(w[r, W - 1]) << 8)
    return _f32_from_half(s), _f32_from_half(b)


@cuda.jit(**DEVICE)
def _q(w, r, j, bits):
    if bits == 8:
        return np.int64(w[r, j])
    per = 8 // bits
    return (np.int64(w[r, j // per]) >> ((j % per) * bits)) & ((1 << bits) - 1)


@cuda.jit(**KERNEL)
def _bag_sum_kernel(w, D, bits, indices, offsets, psw, has_psw, padding_idx, mean, out):
    B = out.shape[0]
    for i in range(cuda.grid(1), B * D, cuda.gridsize(1)):
        bag = i // D
        j = i - bag * D
        acc = np.float32(0.0)
        n = 0
        for p in range(offsets[bag], offsets[bag + 1]):
            r = indices[p]
            if r == padding_idx:
                continue
            n += 1
            s, b = _scale_bias(w, r, bits)
            if has_psw:
                s = mul32(psw[p], s)
                b = mul32(psw[p], b)
            acc = fma32(s, np.float32(_q(w, r, j, bits)), add32(acc, b))
        if mean and n > 0:
            acc = div32(acc, np.float32(n))
        out[bag, j] = acc


@cuda.jit(**KERNEL)
def _bag_sum_exact_kernel(w, D, bits, indices, offsets, psw, has_psw, padding_idx, mean, out):
    B = out.shape[0]
    for i in range(cuda.grid(1), B * D, cuda.gridsize(1)):
        bag = i // D
        j = i - bag * D
        h = 0.0
        e = 0.0
        n = 0
        for p in range(offsets[bag], offsets[bag + 1]):
            r = indices[p]
            if r == padding_idx:
                continue
            n += 1
            s32, b32 = _scale_bias(w, r, bits)
            wt = np.float64(psw[p]) if has_psw else 1.0
            t1 = mul64(np.float64(s32), np.float64(_q(w, r, j, bits)))  # exact
            v, ve = two_sum(t1, np.float64(b32))
            p1 = mul64(v, wt)
            p1e = fma64(v, wt, -p1)
            p2 = mul64(ve, wt)
            sh, se = two_sum(h, p1)
            se = se + e + p1e + p2
            h, e = two_sum(sh, se)
        if mean and n > 0:
            fn = np.float64(n)
            q1 = h / fn
            rem = fma64(-q1, fn, h) + e
            q2 = rem / fn
            a, c = two_sum(q1, q2)
            out[bag, j] = round_dd_to_f32(a, c)
        else:
            out[bag, j] = round_dd_to_f32(h, e)


def _grid(n):
    return config.blocks(n), config.threads_per_block


def bag_sum(w, D, bits, indices, offsets, psw, has_psw, padding_idx, mean, out):
    """Bag sums (fbgemm's arithmetic); arguments as the CPU ``bag_sum``, device arrays."""
    n = out.shape[0] * D
    if n:
        _bag_sum_kernel[_grid(n)](w, np.int64(D), np.int64(bits), indices, offsets, psw, bool(has_psw),
                                  np.int64(padding_idx), bool(mean), out)


def bag_sum_exact(w, D, bits, indices, offsets, psw, has_psw, padding_idx, mean, out, hi=None, lo=None):
    """The ``reference`` bag sums; as the CPU ``bag_sum_exact`` (the float64
    work arrays are per-thread registers here, so ``hi``/``lo`` are unused)."""
    n = out.shape[0] * D
    if n:
        _bag_sum_exact_kernel[_grid(n)](w, np.int64(D), np.int64(bits), indices, offsets, psw, bool(has_psw),
                                        np.int64(padding_idx), bool(mean), out)
