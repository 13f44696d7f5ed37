"""CUDA kernels of the quantized elementwise ops, siblings of
``kernels/cpu/elementwise.py`` (same names, argument order and integers).

Every float operation whose rounding matters goes through the primitives of
``kernels/cuda/scalar.py`` (never contracted).  Kernels are 1-D grid-stride
loops; the launchers return without synchronising.
"""

import math

import numpy as np
from numba import cuda

from . import DEVICE, KERNEL, config
from .scalar import (
    add32,
    clamp_int,
    clamp_rint,
    div32,
    expf_libm,
    expf_sleef,
    fma32,
    fma64,
    lrint64,
    mul32,
    mul64,
    rint,
    rne_div_exact,
    sub32,
    wrap32,
)

OP_ADD = 0
OP_MUL = 1
OP_ADD_SCALAR = 2

_INT32_MIN = -2147483648
_CVT_LIMIT = 2147483648.0
_F32_INT32_MAX = np.float32(2147483520.0)
_F32_ZERO = np.float32(0.0)
_F32_ONE = np.float32(1.0)


def _grid(n):
    return config.blocks(n), config.threads_per_block


@cuda.jit(**DEVICE)
def cvtps32(t):
    if t != t or t >= _CVT_LIMIT or t < -_CVT_LIMIT:
        return np.int64(_INT32_MIN)
    return np.int64(rint(np.float64(t)))


@cuda.jit(**DEVICE)
def elem_torch(op, vec, relu, wide, qa, qb, sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.elem_torch`."""
    if op == OP_ADD:
        if vec:
            da = fma32(sa, np.float32(qa), pa)
            db = fma32(sb, np.float32(qb), pb)
            c = add32(da, db)
            if relu and not (c >= _F32_ZERO):
                c = _F32_ZERO if c == c else c
            if wide:
                t = add32(mul32(c, inv), np.float32(zo))
                if t != t:
                    return np.int64(qmax)
                return clamp_rint(np.float64(t), qmin, qmax)
            t = mul32(c, inv)
            if not (t <= _F32_INT32_MAX):
                t = _F32_INT32_MAX
            v = wrap32(cvtps32(t) + zo)
            if wide:
                return v
            return clamp_int(v, qmin, qmax)
        da = mul32(np.float32(wrap32(np.int64(qa) - za)), sa)
        db = mul32(np.float32(wrap32(np.int64(qb) - zb)), sb)
        c = add32(da, db)
        if relu and not (c >= _F32_ZERO):
            c = _F32_ZERO if c == c else c
        v = add32(mul32(c, inv), np.float32(zo))  # two float32 roundings, as torch's quantize_val
        if v != v:
            return np.int64(qmax)
        return clamp_rint(np.float64(v), qmin, qmax)
    if op == OP_MUL:
        c = wrap32((np.int64(qa) - za) * (np.int64(qb) - zb))
    else:
        c = wrap32(np.int64(qa) - za + cq)
    t = mul32(np.float32(c), m)
    if vec:
        r = wrap32(cvtps32(t) + zo)
        if not wide:
            r = clamp_int(r, qmin, qmax)
    else:
        r = clamp_int(lrint64(np.float64(t)) + zo, qmin, qmax)
    if relu and r < zo:
        r = np.int64(zo)
    return r


@cuda.jit(**KERNEL)
def _binary_kernel(op, relu, wide, a, b, out, ra, rb, ro, n0, ia, ib, io, nv,
                   sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax):
    total = ra.size * n0
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        r = i // n0
        j = i - r * n0
        out[ro[r] + j * io] = elem_torch(op, j < nv, relu, wide, a[ra[r] + j * ia], b[rb[r] + j * ib],
                                         sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax)


def binary_torch(op, relu, wide, a, b, out, ra, rb, ro, n0, ia, ib, io, nv,
                 sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.binary_torch`."""
    total = ra.size * n0
    if total:
        bl, t = _grid(total)
        _binary_kernel[bl, t](op, relu, wide, a, b, out, ra, rb, ro, n0, ia, ib, io, nv,
                              np.float32(sa), za, np.float32(pa), np.float32(sb), zb, np.float32(pb),
                              np.float32(inv), zo, np.float32(m), cq, qmin, qmax)


binary_torch_parallel = binary_torch


@cuda.jit(**DEVICE)
def elem_reference(op, relu, qa, qb, sa, za, sb, zb, so, zo, cst, qmin, qmax):
    if op == OP_ADD:
        xa = mul64(np.float64(np.int64(qa) - za), sa)
        x = fma64(np.float64(np.int64(qb) - zb), sb, xa)
    elif op == OP_MUL:
        x = mul64(mul64(np.float64((np.int64(qa) - za) * (np.int64(qb) - zb)), sa), sb)
    else:
        x = fma64(np.float64(np.int64(qa) - za), sa, cst)
    if relu and x < 0.0:
        x = 0.0
    return clamp_rint(rne_div_exact(x, so) + zo, qmin, qmax)


@cuda.jit(**KERNEL)
def _reference_kernel(op, relu, a, b, out, ra, rb, ro, n0, ia, ib, io, sa, za, sb, zb, so, zo, cst,
                      qmin, qmax):
    total = ra.size * n0
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        r = i // n0
        j = i - r * n0
        out[ro[r] + j * io] = elem_reference(op, relu, a[ra[r] + j * ia], b[rb[r] + j * ib],
                                             sa, za, sb, zb, so, zo, cst, qmin, qmax)


def binary_reference(op, relu, a, b, out, ra, rb, ro, n0, ia, ib, io, sa, za, sb, zb, so, zo, cst,
                     qmin, qmax):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.binary_reference`."""
    total = ra.size * n0
    if total:
        bl, t = _grid(total)
        _reference_kernel[bl, t](op, relu, a, b, out, ra, rb, ro, n0, ia, ib, io, sa, za, sb, zb,
                                 so, zo, cst, qmin, qmax)


@cuda.jit(**KERNEL)
def _matmul_f32_kernel(a, b, out):
    nbat, m, k = a.shape
    n = b.shape[2]
    for t in range(cuda.grid(1), nbat * m * n, cuda.gridsize(1)):
        i = t // (m * n)
        r = (t // n) % m
        j = t % n
        acc = 0.0
        for p in range(k):
            # products of two float32 are exact in float64: fused or not, one rounding
            acc = fma64(np.float64(a[i, r, p]), np.float64(b[i, p, j]), acc)
        out[i, r, j] = np.float32(acc)


def matmul_f32(a, b, out):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.matmul_f32`."""
    if out.size:
        bl, t = _grid(out.size)
        _matmul_f32_kernel[bl, t](a, b, out)


@cuda.jit(**KERNEL)
def _matmul_reference_kernel(a, b, za, zb, scale, so, zo, qmin, qmax, out):
    nbat, m, k = a.shape
    n = b.shape[2]
    for t in range(cuda.grid(1), nbat * m * n, cuda.gridsize(1)):
        i = t // (m * n)
        r = (t // n) % m
        j = t % n
        acc = np.int64(0)
        for p in range(k):
            acc += (np.int64(a[i, r, p]) - za) * (np.int64(b[i, p, j]) - zb)
        x = mul64(np.float64(acc), scale)
        out[i, r, j] = clamp_rint(rne_div_exact(x, so) + zo, qmin, qmax)


def matmul_reference(a, b, za, zb, scale, so, zo, qmin, qmax, out):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.matmul_reference`."""
    if out.size:
        bl, t = _grid(out.size)
        _matmul_reference_kernel[bl, t](a, b, za, zb, scale, so, zo, qmin, qmax, out)


@cuda.jit(**DEVICE)
def _q8add_one(a, b, am, bm, zpp, mask, thr, shift, zo, ymin, ymax):
    acc = zpp + np.int64(a) * am + np.int64(b) * bm
    rem = (acc & mask) - (1 if acc < 0 else 0)
    acc = (acc >> shift) + (1 if rem > thr else 0)
    return min(max(acc + zo, ymin), ymax)


@cuda.jit(**KERNEL)
def _q8add_kernel(a, b, out, am, bm, zpp, mask, thr, shift, zo, ymin, ymax):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        out[i] = _q8add_one(a[i], b[i], am, bm, zpp, mask, thr, shift, zo, ymin, ymax)


def q8add(a, b, out, am, bm, zpp, mask, thr, shift, zo, ymin, ymax):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.q8add`."""
    if a.size:
        bl, t = _grid(a.size)
        _q8add_kernel[bl, t](a, b, out, am, bm, zpp, mask, thr, shift, zo, ymin, ymax)


q8add_parallel = q8add


@cuda.jit(**KERNEL)
def _softmax_reference_kernel(x, out, outer, n, inner):
    for t in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
        o = t // inner
        base = o * n * inner + (t - o * inner)
        mx = -np.inf
        for j in range(n):
            v = np.float64(x[base + j * inner])
            if v > mx:
                mx = v
        s = 0.0
        for j in range(n):
            s += math.exp(np.float64(x[base + j * inner]) - mx)
        for j in range(n):
            out[base + j * inner] = math.exp(np.float64(x[base + j * inner]) - mx) / s


def softmax_reference(x, out, outer, n, inner):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.softmax_reference` (its
    float64 ``exp`` is libdevice's: it may differ from the CPU's libm in the
    last float64 bit, which can move a rounding in rare cases)."""
    if outer * inner:
        bl, t = _grid(outer * inner)
        _softmax_reference_kernel[bl, t](x, out, outer, n, inner)


@cuda.jit(**DEVICE)
def _max_nan(m, v):
    return v if (v > m or v != v) else m


@cuda.jit(**KERNEL)
def _softmax_rows_kernel(x, out, rows, n):
    acc = cuda.local.array(16, np.float32)
    for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
        base = r * n
        m = x[base]
        for j in range(1, n):
            m = _max_nan(m, x[base + j])
        for j in range(n):
            out[base + j] = expf_sleef(sub32(x[base + j], m))
        # vec::reduce_all, as kernels/cpu/elementwise.vec_sum
        if n < 16:
            s = out[base]
            for j in range(1, n):
                s = add32(s, out[base + j])
        else:
            for lane in range(16):
                acc[lane] = out[base + lane]
            full = n - n % 16
            for d in range(16, full, 16):
                for lane in range(16):
                    acc[lane] = add32(acc[lane], out[base + d + lane])
            for lane in range(n - full):
                acc[lane] = add32(acc[lane], out[base + full + lane])
            for lane in range(8):
                acc[lane] = add32(acc[lane], acc[lane + 8])
            for lane in range(4):
                acc[lane] = add32(acc[lane], acc[lane + 4])
            s = add32(add32(acc[0], acc[2]), add32(acc[1], acc[3]))
        inv = div32(_F32_ONE, s)
        for j in range(n):
            out[base + j] = mul32(out[base + j], inv)


def softmax_rows(x, out, rows, n):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.softmax_rows`."""
    if rows:
        bl, t = _grid(rows)
        _softmax_rows_kernel[bl, t](x, out, rows, n)


@cuda.jit(**KERNEL)
def _softmax_columns_kernel(x, flags, out, outer, n, inner):
    for t in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
        o = t // inner
        base = o * n * inner + (t - o * inner)
        vec = flags[t] != 0
        m = x[base]
        for j in range(1, n):
            m = _max_nan(m, x[base + j * inner])
        s = _F32_ZERO
        for j in range(n):
            v = sub32(x[base + j * inner], m)
            e = expf_sleef(v) if vec else expf_libm(v)
            out[base + j * inner] = e
            s = add32(s, e)
        for j in range(n):
            out[base + j * inner] = div32(out[base + j * inner], s)


def softmax_columns(x, flags, out, outer, n, inner):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.softmax_columns` (one
    thread per column)."""
    if outer * inner:
        bl, t = _grid(outer * inner)
        _softmax_columns_kernel[bl, t](x, flags, out, outer, n, inner)


@cuda.jit(**KERNEL)
def _quantize_exact_kernel(y, so, zo, qmin, qmax, out):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        out[i] = clamp_rint(rne_div_exact(y[i], so) + zo, qmin, qmax)


def quantize_exact(y, so, zo, qmin, qmax, out):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.quantize_exact`."""
    if y.size:
        bl, t = _grid(y.size)
        _quantize_exact_kernel[bl, t](y, so, zo, qmin, qmax, out)


@cuda.jit(**KERNEL)
def _copy_slab_kernel(src, dst, outer, src_n, dst_n, offset):
    for i in range(cuda.grid(1), outer * src_n, cuda.gridsize(1)):
        o = i // src_n
        dst[o * dst_n + offset + (i - o * src_n)] = src[i]


def copy_slab(src, dst, outer, src_n, dst_n, offset):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.copy_slab`."""
    if outer * src_n:
        bl, t = _grid(outer * src_n)
        _copy_slab_kernel[bl, t](src, dst, outer, src_n, dst_n, offset)


@cuda.jit(**KERNEL)
def _flip_kernel(src, dst, total):
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        dst[i] = total - np.int64(src[i])


def flip(src, dst, total):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.flip`."""
    if src.size:
        bl, t = _grid(src.size)
        _flip_kernel[bl, t](src, dst, total)


@cuda.jit(**KERNEL)
def _fill_zero_kernel(dst):
    for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        dst[i] = 0


def fill_zero(dst):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.fill_zero`."""
    if dst.size:
        bl, t = _grid(dst.size)
        _fill_zero_kernel[bl, t](dst)


@cuda.jit(**KERNEL)
def _build_table_kernel(op, relu, signed, sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax, table):
    for i in range(cuda.grid(1), 2 * 65536, cuda.gridsize(1)):
        p = i // 65536
        ua = (i // 256) % 256
        ub = i % 256
        qa = ua - 256 if signed and ua >= 128 else ua
        qb = ub - 256 if signed and ub >= 128 else ub
        table[p, (ua << 8) | ub] = elem_torch(op, p == 0, relu, False, qa, qb, sa, za, pa, sb, zb, pb,
                                              inv, zo, m, cq, qmin, qmax)


def build_table(op, relu, signed, sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax, table):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.build_table`."""
    bl, t = _grid(2 * 65536)
    _build_table_kernel[bl, t](op, relu, signed, np.float32(sa), za, np.float32(pa), np.float32(sb), zb,
                               np.float32(pb), np.float32(inv), zo, np.float32(m), cq, qmin, qmax, table)


@cuda.jit(**KERNEL)
def _lookup_kernel(table, a, b, out, ra, rb, ro, n0, ia, ib, io, nv):
    total = ra.size * n0
    for i in range(cuda.grid(1), total, cuda.gridsize(1)):
        r = i // n0
        j = i - r * n0
        p = 0 if j < nv else 1
        out[ro[r] + j * io] = table[p, (np.int64(a[ra[r] + j * ia]) << 8) | np.int64(b[rb[r] + j * ib])]


def lookup_rows(table, a, b, out, ra, rb, ro, n0, ia, ib, io, nv):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.lookup_rows`."""
    total = ra.size * n0
    if total:
        bl, t = _grid(total)
        _lookup_kernel[bl, t](table, a, b, out, ra, rb, ro, n0, ia, ib, io, nv)
