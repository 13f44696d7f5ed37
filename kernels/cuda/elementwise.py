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


_F32_0 = np.float32(0.0)


@cuda.jit(**DEVICE)
def _sgemm_kc(k):
    if k <= 192:
        return k
    if k <= 384:
        return k // 2
    return 192


@cuda.jit(**DEVICE)
def _madd(acc, a, b, i, r, p, j):
    return add32(acc, mul32(a[i, r, p], b[i, p, j]))


@cuda.jit(**DEVICE)
def _sgemm_tree8(a, b, i, r, j, k):
    acc = _F32_0
    g = k // 8 * 8
    p = 0
    while p < g:
        for q in range(p, p + 4):
            acc = _madd(acc, a, b, i, r, q, j)
        t = _F32_0
        for q in range(p + 4, p + 8):
            t = _madd(t, a, b, i, r, q, j)
        acc = add32(acc, t)
        p += 8
    for q in range(g, k):
        acc = _madd(acc, a, b, i, r, q, j)
    return acc


@cuda.jit(**DEVICE)
def _sgemm_dot(a, b, i, r, m, k):
    l0 = l1 = l2 = l3 = l4 = l5 = l6 = l7 = _F32_0
    m4 = m // 4 * 4
    if m == 1 or k <= 4:
        for p in range(k):
            l0 = _madd(l0, a, b, i, r, p, 0)
        return l0
    if r < m4:
        h = k % 4
        if h == 0:
            h = 4
        for p in range(h):
            l0 = _madd(l0, a, b, i, r, p, 0)
        p = h
        while p + 4 <= k:
            l0 = _madd(l0, a, b, i, r, p, 0)
            l1 = _madd(l1, a, b, i, r, p + 1, 0)
            l2 = _madd(l2, a, b, i, r, p + 2, 0)
            l3 = _madd(l3, a, b, i, r, p + 3, 0)
            p += 4
        return add32(add32(l0, l2), add32(l1, l3))
    for p in range(4):
        l0 = _madd(l0, a, b, i, r, p, 0)
    body = (k - 4) // 8 * 8
    p = 4
    acc = l0
    if r - m4 == 1:
        while p < 4 + body:
            l0 = _madd(l0, a, b, i, r, p, 0)
            l1 = _madd(l1, a, b, i, r, p + 1, 0)
            l2 = _madd(l2, a, b, i, r, p + 2, 0)
            l3 = _madd(l3, a, b, i, r, p + 3, 0)
            p += 4
        if body:
            acc = add32(add32(l0, l2), add32(l1, l3))
    else:
        while p < 4 + body:
            l0 = _madd(l0, a, b, i, r, p, 0)
            l1 = _madd(l1, a, b, i, r, p + 1, 0)
            l2 = _madd(l2, a, b, i, r, p + 2, 0)
            l3 = _madd(l3, a, b, i, r, p + 3, 0)
            l4 = _madd(l4, a, b, i, r, p + 4, 0)
            l5 = _madd(l5, a, b, i, r, p + 5, 0)
            l6 = _madd(l6, a, b, i, r, p + 6, 0)
            l7 = _madd(l7, a, b, i, r, p + 7, 0)
            p += 8
        if body:
            acc = add32(add32(add32(l0, l4), add32(l2, l6)), add32(add32(l1, l5), add32(l3, l7)))
    for q in range(p, k):
        acc = _madd(acc, a, b, i, r, q, 0)
    return acc


@cuda.jit(**DEVICE)
def _sgemm_one(a, b, i, r, j, m, n, k, rows, naive):
    """One output of :func:`qops.kernels.cpu.elementwise.matmul_sgemm`."""
    if not naive and n == 1:
        return _sgemm_dot(a, b, i, r, m, k)
    r0 = r // rows * rows
    if not naive and min(m, r0 + rows) - r0 >= 4 and n >= 12:
        kc = _sgemm_kc(k)
        c = _F32_0
        k0 = 0
        while k0 < k:
            acc = _F32_0
            for p in range(k0, min(k0 + kc, k)):
                acc = fma32(a[i, r, p], b[i, p, j], acc)
            c = acc if k0 == 0 else add32(c, acc)
            k0 += kc
        return c
    if not naive:
        lead = -(i * m * n + r * n) % 4
        if j < lead and n - lead >= 4:
            return _sgemm_tree8(a, b, i, r, j, k)
    c = _F32_0
    for p in range(k):
        c = _madd(c, a, b, i, r, p, j)
    return c


@cuda.jit(**KERNEL)
def _matmul_sgemm_kernel(a, b, out, rows, naive):
    nbat, m, k = a.shape
    n = b.shape[2]
    for t in range(cuda.grid(1), nbat * m * n, cuda.gridsize(1)):
        i = t // (m * n)
        r = (t // n) % m
        j = t % n
        out[i, r, j] = _sgemm_one(a, b, i, r, j, m, n, k, rows, naive)


def matmul_sgemm(a, b, out, rows, naive):
    """CUDA twin of :func:`qops.kernels.cpu.elementwise.matmul_sgemm`."""
    if out.size:
        bl, t = _grid(out.size)
        _matmul_sgemm_kernel[bl, t](a, b, out, rows, naive)


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
