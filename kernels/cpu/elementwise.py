"""CPU kernels of the quantized elementwise ops (add, mul, add_scalar, softmax, matmul).

torch 2.13's ATen kernels (``qadd_kernel``, ``qmul_kernel``,
``qadd_scalar_kernel`` in ``QuantizedOpKernels.cpp``) run through
``cpu_kernel_vec``: along each inner row of the TensorIterator, blocks of
``2 * Vectorized<T>::size()`` elements (128 for the 8-bit types, 32 for
qint32) take the AVX512 vector lambda and the rest of the row the scalar
lambda, whose float arithmetic differs.  The API layer
(:mod:`qops._elementwise`) reproduces the iterator's geometry and passes it
here as rows: a base offset per row for each operand, the inner length and
inner strides, and whether the rows are vectorisable at all.  Each element
then gets the arithmetic of the path torch gives it:

vector add   ``d = fma(s, float(q), fl(s * -zp))``, ``c = fl(da + db)``,
             ``t = min(fl(c * inv), 2147483520)``, ``cvtps`` (NaN and
             overflow give INT32_MIN), ``+ zo`` wrapping, saturate
             (qint32: ``rne(fl(fl(c * inv) + zo))``).
scalar add   ``d = fl(float(q - zp) * s)``, ``c = fl(da + db)``,
             ``rne(fl(fl(c * inv) + zo))`` (two float32 roundings), saturate.
vector mul   ``c = int32((qa - za) * (qb - zb))``, ``cvtps(fl(float(c) * m))``
             ``+ zo`` wrapping, saturate (qint32: no saturation).
scalar mul   ``zo + lrintf(fl(float(c) * m))`` in int64, saturate.
add_scalar   as mul with ``c = int32(q - z + c_q)``.
"""

import threading

import numpy as np
from numba import njit, prange

from .._options import CHUNK, CPU, CPU_INLINE, CPU_PARALLEL
from .._split import (CompiledJob, args_of, array1, array3, claim, compiled_pool, contiguous, finish, float_at,
                      launch, part_bounds, parts, put_array, put_float, run_parts, run_ranges)
from ..modes import DQ_TORCH_TENSOR
from ._avx512 import qadd64, qmul64, sgemm4x64
from ._llvm import add_i32, fma32, fma64
from .quantize import _dequantize_span, _quantize_range
from .scalar import (
    clamp_int,
    clamp_rint,
    expf_libm,
    expf_sleef,
    lrint64,
    rne_div_exact,
    wrap32,
)

OP_ADD = 0
OP_MUL = 1
OP_ADD_SCALAR = 2

_INT32_MIN = -2147483648
_CVT_LIMIT = 2147483648.0
_F32_INT32_MAX = np.float32(2147483520.0)  # largest float32 below 2**31
_F32_ZERO = np.float32(0.0)
_F32_ONE = np.float32(1.0)


@njit(**CPU_INLINE)
def cvtps32(t):
    """x86 ``cvtps2dq``: rne to int32, NaN and overflow give INT32_MIN (as int64)."""
    if t != t or t >= _CVT_LIMIT or t < -_CVT_LIMIT:
        return np.int64(_INT32_MIN)
    return np.int64(np.rint(t))


@njit(**CPU_INLINE)
def _vec_store(v, qmin, qmax, wide):
    """Vector epilogue: the int32 value after ``+ zo``, packed with saturation."""
    if wide:
        return v
    return clamp_int(v, qmin, qmax)


@njit(**CPU_INLINE)
def elem_torch(op, vec, relu, wide, qa, qb, sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax):
    """One output integer of torch's add / mul / add_scalar on the given path."""
    if op == OP_ADD:
        if vec:
            da = fma32(sa, np.float32(qa), pa)
            db = fma32(sb, np.float32(qb), pb)
            c = da + db
            if relu and not (c >= _F32_ZERO):  # std::max(c, 0): NaN stays
                c = _F32_ZERO if c == c else c
            if wide:
                # qint32 quantize_vec: fbgemm's scalar Quantize, fl(fl(c*inv) + zo)
                t = c * inv + np.float32(zo)
                if t != t:
                    return np.int64(qmax)
                return clamp_rint(np.float64(t), qmin, qmax)
            t = c * inv
            if not (t <= _F32_INT32_MAX):  # _mm512_min_ps(t, max): NaN gives max
                t = _F32_INT32_MAX
            return _vec_store(wrap32(cvtps32(t) + zo), qmin, qmax, wide)
        da = np.float32(wrap32(np.int64(qa) - za)) * sa
        db = np.float32(wrap32(np.int64(qb) - zb)) * sb
        c = da + db
        if relu and not (c >= _F32_ZERO):
            c = _F32_ZERO if c == c else c
        v = c * inv + np.float32(zo)  # two float32 roundings, as torch's quantize_val
        if v != v:
            return np.int64(qmax)
        return clamp_rint(np.float64(v), qmin, qmax)
    if op == OP_MUL:
        c = wrap32((np.int64(qa) - za) * (np.int64(qb) - zb))
    else:
        c = wrap32(np.int64(qa) - za + cq)
    t = np.float32(c) * m
    if vec:
        r = _vec_store(wrap32(cvtps32(t) + zo), qmin, qmax, wide)
    else:
        r = clamp_int(lrint64(np.float64(t)) + zo, qmin, qmax)
    if relu and r < zo:
        r = np.int64(zo)
    return r


@njit(**CPU_INLINE)
def _rows(t0, t1, nb, op, relu, wide, a, b, out, ra, rb, ro, n0, ia, ib, io, nv,
          sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax):
    for t in range(t0, t1):
        r = t // nb
        j0 = (t - r * nb) * CHUNK
        j1 = min(j0 + CHUNK, n0)
        oa = ra[r]
        ob = rb[r]
        oo = ro[r]
        for j in range(j0, j1):
            out[oo + j * io] = elem_torch(op, j < nv, relu, wide, a[oa + j * ia], b[ob + j * ib],
                                          sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax)


# ------------------------------------------------------------------ 8-bit tables
@njit(**CPU)
def build_table(op, relu, signed, sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax, table):
    """``table[p, (ua << 8) | ub]``: the result for the stored bytes ``ua``, ``ub``
    (int8 values read from their two's-complement bytes) on the vector
    (``p = 0``) and scalar (``p = 1``) path.  Every 8-bit result is one of
    these 2 * 65536 values, so large tensors look them up instead."""
    for p in range(2):
        for ua in range(256):
            qa = ua - 256 if signed and ua >= 128 else ua
            for ub in range(256):
                qb = ub - 256 if signed and ub >= 128 else ub
                table[p, (ua << 8) | ub] = elem_torch(op, p == 0, relu, False, qa, qb, sa, za, pa,
                                                      sb, zb, pb, inv, zo, m, cq, qmin, qmax)


@njit(**CPU_INLINE)
def _lookup_span(tab, a, b, out, oa, ob, oo, j0, j1, ia, ib, io):
    # unsigned indices: Numba's negative-index wrap would cost several times
    # the lookup inside prange (offsets and strides are never negative here)
    oa, ob, oo = np.uint64(oa), np.uint64(ob), np.uint64(oo)
    if ia == 1 and ib == 1 and io == 1:
        for j in range(np.uint64(j0), np.uint64(j1)):
            out[oo + j] = tab[(np.uint64(a[oa + j]) << np.uint64(8)) | np.uint64(b[ob + j])]
    else:
        iau, ibu, iou = np.uint64(ia), np.uint64(ib), np.uint64(io)
        for j in range(np.uint64(j0), np.uint64(j1)):
            out[oo + j * iou] = tab[(np.uint64(a[oa + j * iau]) << np.uint64(8)) | np.uint64(b[ob + j * ibu])]


@njit(**CPU_PARALLEL)
def lookup_rows(table, a, b, out, ra, rb, ro, n0, ia, ib, io, nv):
    """:func:`binary_torch` for 8-bit data through :func:`build_table`'s table
    (``a``, ``b``, ``out`` are the uint8 bytes)."""
    nb = (n0 + CHUNK - 1) // CHUNK
    vt = table[0]
    st = table[1]
    for t in prange(ra.size * nb):
        r = t // nb
        j0 = (t - r * nb) * CHUNK
        j1 = min(j0 + CHUNK, n0)
        jv = min(max(nv, j0), j1)
        _lookup_span(vt, a, b, out, ra[r], rb[r], ro[r], j0, jv, ia, ib, io)
        _lookup_span(st, a, b, out, ra[r], rb[r], ro[r], jv, j1, ia, ib, io)


@njit(**CPU)
def binary_torch(op, relu, wide, a, b, out, ra, rb, ro, n0, ia, ib, io, nv,
                 sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax):
    """torch's add / mul / add_scalar over ``len(ra)`` rows of ``n0`` elements.

    ``a``, ``b``, ``out`` are flat buffers; row ``r`` element ``j`` lives at
    ``ra[r] + j*ia`` (likewise b, out).  Elements ``j < nv`` of every row take
    the vector path (``nv`` is 0 when the rows are not vectorisable).
    """
    nb = (n0 + CHUNK - 1) // CHUNK
    _rows(0, ra.size * nb, nb, op, relu, wide, a, b, out, ra, rb, ro, n0, ia, ib, io, nv,
          sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax)


@njit(**CPU_PARALLEL)
def binary_torch_parallel(op, relu, wide, a, b, out, ra, rb, ro, n0, ia, ib, io, nv,
                          sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax):
    """:func:`binary_torch` with ``prange`` over (row, CHUNK) work items."""
    nb = (n0 + CHUNK - 1) // CHUNK
    for t in prange(ra.size * nb):
        _rows(t, t + 1, nb, op, relu, wide, a, b, out, ra, rb, ro, n0, ia, ib, io, nv,
              sa, za, pa, sb, zb, pb, inv, zo, m, cq, qmin, qmax)


# ------------------------------------------------------------------ flat 8-bit
_F32_INT32_MIN = np.float32(-2147483648.0)
_I32_MIN = np.int32(-2147483648)
_F32_CVT_LIMIT = np.float32(2147483648.0)  # 2**31, exact in float32


@njit(**CPU_INLINE)
def _add_span8(relu, a, b, out, j0, j1, sa, pa, sb, pb, inv, zo, qmin, qmax):
    # int32 lanes throughout (add_i32, int32 clamps): int64 lanes would halve
    # the vector width LLVM picks
    zo32 = np.int32(zo)
    lo = np.int32(qmin)
    hi = np.int32(qmax)
    for j in range(np.uint64(j0), np.uint64(j1)):
        c = fma32(sa, np.float32(a[j]), pa) + fma32(sb, np.float32(b[j]), pb)
        if relu:
            c = max(c, _F32_ZERO)
        t = min(max(c * inv, _F32_INT32_MIN), _F32_INT32_MAX)
        v = add_i32(np.int32(np.rint(t)), zo32)
        v = v if v > lo else lo
        out[j] = v if v < hi else hi


@njit(**CPU_INLINE)
def _mul_span8(relu, a, b, out, j0, j1, za, zb, zo, m, qmin, qmax):
    # (a - za) * (b - zb) is below 2**24 in magnitude for 8-bit data, so the
    # float32 product is torch's int32 product converted exactly
    zaf = np.float32(za)
    zbf = np.float32(zb)
    zo32 = np.int32(zo)
    lo = np.int32(qmin)
    hi = np.int32(qmax)
    for j in range(np.uint64(j0), np.uint64(j1)):
        t = ((np.float32(a[j]) - zaf) * (np.float32(b[j]) - zbf)) * m
        v = np.int32(np.rint(min(max(t, _F32_INT32_MIN), _F32_INT32_MAX)))
        if t >= _F32_CVT_LIMIT:
            v = _I32_MIN
        v = add_i32(v, zo32)
        v = v if v > lo else lo
        v = v if v < hi else hi
        if relu:
            v = v if v > zo32 else zo32
        out[j] = v


@njit(**CPU_INLINE)
def _vector_span8(op, relu, a, b, out, j0, j1, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax):
    """:func:`elem_torch`'s vector path for 8-bit add / mul over contiguous
    ``[j0, j1)``, in loops LLVM vectorises.  Valid when every float formed is
    finite (the API checks the scales): then clamping ``t`` to
    [-2**31, 2147483520] before converting is ``cvtps2dq``, except that
    ``t >= 2**31`` gives INT32_MIN (mul; add clamps first, as torch's
    ``_mm512_min_ps`` does)."""
    if op == OP_ADD:
        _add_span8(relu, a, b, out, j0, j1, sa, pa, sb, pb, inv, zo, qmin, qmax)
    else:
        _mul_span8(relu, a, b, out, j0, j1, za, zb, zo, m, qmin, qmax)


@njit(**CPU_INLINE)
def _scalar_tail8(op, relu, a, b, out, j0, j1, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax):
    for j in range(j0, j1):
        out[j] = elem_torch(op, False, relu, False, a[j], b[j], sa, za, pa, sb, zb, pb, inv, zo, m, 0,
                            qmin, qmax)


@njit(**CPU_INLINE)
def _flat8(t, op, relu, a, b, out, n, nv, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax):
    j0 = t * CHUNK
    j1 = min(j0 + CHUNK, n)
    jv = min(max(nv, j0), j1)
    _vector_span8(op, relu, a, b, out, j0, jv, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax)
    _scalar_tail8(op, relu, a, b, out, jv, j1, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax)


@njit(**CPU)
def binary8_flat(op, relu, a, b, out, n, nv, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax):
    """torch's add / mul of two contiguous 8-bit arrays of ``n`` elements, the
    first ``nv`` on the vector path (one flat TensorIterator row)."""
    for t in range((n + CHUNK - 1) // CHUNK):
        _flat8(t, op, relu, a, b, out, n, nv, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax)


@njit(**CPU_INLINE)
def _rows8(r0, r1, op, relu, a, b, out, ra, rb, ro, n0, nv, sa, za, pa, sb, zb, pb, inv, zo, m,
           qmin, qmax):
    for r in range(r0, r1):
        av = a[ra[r]:ra[r] + n0]
        bv = b[rb[r]:rb[r] + n0]
        ov = out[ro[r]:ro[r] + n0]
        _vector_span8(op, relu, av, bv, ov, 0, nv, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax)
        _scalar_tail8(op, relu, av, bv, ov, nv, n0, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax)


@njit(**CPU)
def binary8_rows(op, relu, a, b, out, ra, rb, ro, n0, nv, sa, za, pa, sb, zb, pb, inv, zo, m,
                 qmin, qmax):
    """torch's add / mul of 8-bit rows contiguous in every operand (row ``r``
    at offsets ``ra[r]``, ``rb[r]``, ``ro[r]``; a broadcast row repeats its
    offset), the first ``nv`` elements of each row on the vector path: the
    loops of :func:`binary8_flat` per row."""
    _rows8(0, ra.size, op, relu, a, b, out, ra, rb, ro, n0, nv, sa, za, pa, sb, zb, pb, inv, zo, m,
           qmin, qmax)


# ------------------------------------------------------------------ AVX-512 8-bit
# The same two drivers with the vector path through qadd64 / qmul64 (AVX512F +
# BW hosts only: LLVM cannot compile those intrinsics elsewhere, so they live
# in kernels of their own).
@njit(**CPU_INLINE)
def _simd_span8(op, relu, a, oa, b, ob, out, oo, nvec, sa, za, pa, sb, zb, pb, inv, zo, m):
    if op == OP_ADD:
        qadd64(a, oa, b, ob, out, oo, nvec, relu, sa, pa, sb, pb, inv, zo)
    else:
        qmul64(a, oa, b, ob, out, oo, nvec, relu, np.float32(za), np.float32(zb), m, zo)


@njit(**CPU_INLINE)
def _flat8_simd(t, op, relu, a, b, out, n, nv, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax):
    j0 = t * CHUNK
    j1 = min(j0 + CHUNK, n)
    jv = min(max(nv, j0), j1)
    _simd_span8(op, relu, a, j0, b, j0, out, j0, (jv - j0) // 64, sa, za, pa, sb, zb, pb, inv, zo, m)
    _scalar_tail8(op, relu, a, b, out, jv, j1, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax)


@njit(**CPU)
def binary8_flat_simd(op, relu, a, b, out, n, nv, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax):
    """:func:`binary8_flat` on AVX512F + BW hosts (``nv`` a multiple of 64)."""
    for t in range((n + CHUNK - 1) // CHUNK):
        _flat8_simd(t, op, relu, a, b, out, n, nv, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax)


@njit(**CPU_INLINE)
def _rows8_simd(r0, r1, op, relu, a, b, out, ra, rb, ro, n0, nv, sa, za, pa, sb, zb, pb, inv, zo, m,
                qmin, qmax):
    for r in range(r0, r1):
        _simd_span8(op, relu, a, ra[r], b, rb[r], out, ro[r], nv // 64, sa, za, pa, sb, zb, pb, inv,
                    zo, m)
        _scalar_tail8(op, relu, a[ra[r]:ra[r] + n0], b[rb[r]:rb[r] + n0], out[ro[r]:ro[r] + n0], nv,
                      n0, sa, za, pa, sb, zb, pb, inv, zo, m, qmin, qmax)


@njit(**CPU)
def binary8_rows_simd(op, relu, a, b, out, ra, rb, ro, n0, nv, sa, za, pa, sb, zb, pb, inv, zo, m,
                      qmin, qmax):
    """:func:`binary8_rows` on AVX512F + BW hosts (``nv`` a multiple of 64)."""
    _rows8_simd(0, ra.size, op, relu, a, b, out, ra, rb, ro, n0, nv, sa, za, pa, sb, zb, pb, inv, zo,
                m, qmin, qmax)


# ------------------------------------------------------------------ in parts
# Large 8-bit add / mul runs the serial drivers above on parts of the work at
# once (:mod:`qops.kernels._split`): 16M elements took 1.15-1.30 ms that way,
# 1.27-2.53 ms on workqueue's prange and 2.2 ms on one thread (measured).
def _flat_parts(fn, op, relu, a, b, out, n, nv, *params):
    k = parts()
    per = -(-n // k)
    per += -per % 64  # whole vector blocks: each part's vector prefix stays a multiple of 64
    jobs = []
    for i in range(k):
        lo, hi = min(n, i * per), min(n, (i + 1) * per)
        jobs.append((op, relu, a[lo:hi], b[lo:hi], out[lo:hi], hi - lo, min(max(nv - lo, 0), hi - lo))
                    + params)
    run_parts(fn, jobs)


def _rows_parts(fn, op, relu, a, b, out, ra, rb, ro, *rest):
    k = parts()
    per = -(-ra.size // k)
    run_parts(fn, [(op, relu, a, b, out, ra[i * per:(i + 1) * per], rb[i * per:(i + 1) * per],
                    ro[i * per:(i + 1) * per]) + rest for i in range(k)])


def binary8_flat_parts(*args):
    """:func:`binary8_flat` in ``parts()`` slices of whole 64-element blocks."""
    _flat_parts(binary8_flat, *args)


def binary8_flat_simd_parts(*args):
    """:func:`binary8_flat_simd` in ``parts()`` slices of whole 64-element blocks."""
    _flat_parts(binary8_flat_simd, *args)


def binary8_rows_parts(*args):
    """:func:`binary8_rows` in ``parts()`` sets of rows."""
    _rows_parts(binary8_rows, *args)


def binary8_rows_simd_parts(*args):
    """:func:`binary8_rows_simd` in ``parts()`` sets of rows."""
    _rows_parts(binary8_rows_simd, *args)


# ------------------------------------------------------------------ reference
@njit(**CPU_INLINE)
def elem_reference(op, relu, qa, qb, sa, za, sb, zb, so, zo, cst, qmin, qmax):
    """Exact-as-float64 value of add / mul / add_scalar rounded once (rne)."""
    if op == OP_ADD:
        xa = np.float64(np.int64(qa) - za) * sa
        x = fma64(np.float64(np.int64(qb) - zb), sb, xa)
    elif op == OP_MUL:
        x = np.float64((np.int64(qa) - za) * (np.int64(qb) - zb)) * sa * sb
    else:
        x = fma64(np.float64(np.int64(qa) - za), sa, cst)
    if relu and x < 0.0:
        x = 0.0
    return clamp_rint(rne_div_exact(x, so) + zo, qmin, qmax)


@njit(**CPU_PARALLEL)
def binary_reference(op, relu, a, b, out, ra, rb, ro, n0, ia, ib, io,
                     sa, za, sb, zb, so, zo, cst, qmin, qmax):
    """The reference profile over the same row geometry as :func:`binary_torch`."""
    nb = (n0 + CHUNK - 1) // CHUNK
    for t in prange(ra.size * nb):
        r = t // nb
        j0 = (t - r * nb) * CHUNK
        j1 = min(j0 + CHUNK, n0)
        for j in range(j0, j1):
            out[ro[r] + j * io] = elem_reference(op, relu, a[ra[r] + j * ia], b[rb[r] + j * ib],
                                                 sa, za, sb, zb, so, zo, cst, qmin, qmax)


# ------------------------------------------------------------------ matmul
# torch's quantized matmul multiplies the dequantized float32 inputs with
# ``at::matmul``, i.e. MKL's sgemm (or torch's own loop for tiny batches),
# whose float32 summation order decides the last bit.  The functions below
# reproduce the order measured for MKL 2024.2 (torch 2.13.0's wheel) on an
# AVX-512 AMD EPYC host; ``docs/ops_elementwise.md`` says how it was measured.
# Torch's row-major ``C = A @ B`` is MKL's column-major ``C^T = B^T A^T``:
# "rows" below are torch's rows (MKL's columns) and "columns" torch's.


@njit(**CPU_INLINE)
def sgemm_kc(k):
    """MKL's K blocking for the blocked (FMA) path: one block up to 192,
    two halves up to 384 (``k // 2`` each and a remainder), then 192."""
    if k <= 192:
        return k
    if k <= 384:
        return k // 2
    return 192


@njit(**CPU_INLINE)
def sgemm_tree8(a, b, i, r, j, k):
    """One unaligned leading element of a small-path row: per 8 products,
    four added to the sum in order and four summed apart then added; the
    ``k % 8`` last products in order.  Multiply then add, no FMA."""
    acc = np.float32(0.0)
    g = k // 8 * 8
    p = 0
    while p < g:
        for q in range(p, p + 4):
            acc = acc + a[i, r, q] * b[i, q, j]
        t = np.float32(0.0)
        for q in range(p + 4, p + 8):
            t = t + a[i, r, q] * b[i, q, j]
        acc = acc + t
        p += 8
    for q in range(g, k):
        acc = acc + a[i, r, q] * b[i, q, j]
    return acc


@njit(**CPU_INLINE)
def sgemm_dot(a, b, i, r, m, k):
    """One output of a single-column product (``n == 1``, MKL's dot kernels).

    Rows in whole groups of 4: the first ``h`` products (``h = k % 4``, or 4)
    in order into lane 0, then lane ``(p - h) % 4`` takes product ``p``;
    result ``(l0 + l2) + (l1 + l3)``.  The ``m % 4`` rows after them: the
    first 4 products in order, then ``(k - 4) // 8 * 8`` products over 8
    lanes (4 for the second of those rows), reduced ``((l0+l4) + (l2+l6)) +
    ((l1+l5) + (l3+l7))``, then the rest in order.  ``m == 1``: in order.
    Multiply then add, no FMA."""
    l0 = l1 = l2 = l3 = l4 = l5 = l6 = l7 = np.float32(0.0)
    m4 = m // 4 * 4
    if m == 1 or k <= 4:
        for p in range(k):
            l0 = l0 + a[i, r, p] * b[i, p, 0]
        return l0
    if r < m4:
        h = k % 4
        if h == 0:
            h = 4
        for p in range(h):
            l0 = l0 + a[i, r, p] * b[i, p, 0]
        p = h
        while p + 4 <= k:
            l0 = l0 + a[i, r, p] * b[i, p, 0]
            l1 = l1 + a[i, r, p + 1] * b[i, p + 1, 0]
            l2 = l2 + a[i, r, p + 2] * b[i, p + 2, 0]
            l3 = l3 + a[i, r, p + 3] * b[i, p + 3, 0]
            p += 4
        return (l0 + l2) + (l1 + l3)
    for p in range(4):
        l0 = l0 + a[i, r, p] * b[i, p, 0]
    body = (k - 4) // 8 * 8
    p = 4
    if r - m4 == 1:
        while p < 4 + body:
            l0 = l0 + a[i, r, p] * b[i, p, 0]
            l1 = l1 + a[i, r, p + 1] * b[i, p + 1, 0]
            l2 = l2 + a[i, r, p + 2] * b[i, p + 2, 0]
            l3 = l3 + a[i, r, p + 3] * b[i, p + 3, 0]
            p += 4
        acc = (l0 + l2) + (l1 + l3) if body else l0
    else:
        while p < 4 + body:
            l0 = l0 + a[i, r, p] * b[i, p, 0]
            l1 = l1 + a[i, r, p + 1] * b[i, p + 1, 0]
            l2 = l2 + a[i, r, p + 2] * b[i, p + 2, 0]
            l3 = l3 + a[i, r, p + 3] * b[i, p + 3, 0]
            l4 = l4 + a[i, r, p + 4] * b[i, p + 4, 0]
            l5 = l5 + a[i, r, p + 5] * b[i, p + 5, 0]
            l6 = l6 + a[i, r, p + 6] * b[i, p + 6, 0]
            l7 = l7 + a[i, r, p + 7] * b[i, p + 7, 0]
            p += 8
        acc = ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) if body else l0
    for q in range(p, k):
        acc = acc + a[i, r, q] * b[i, q, 0]
    return acc


@njit(**CPU_INLINE)
def sgemm_path(r, m, n, rows, naive):
    """Which summation one output row takes: 0 in order (multiply, add),
    1 in order with MKL's unaligned leading columns, 2 blocked FMA, 3 dot.

    ``rows`` is MKL's share of rows per thread: a part of fewer than 4 rows,
    or fewer than 12 columns, takes MKL's small path."""
    if naive:
        return 0
    if n == 1:
        return 3
    r0 = r // rows * rows
    if min(m, r0 + rows) - r0 >= 4 and n >= 12:
        return 2
    return 1


@njit(**CPU_INLINE)
def sgemm_lead(i, r, m, n):
    """Leading columns of a small-path row computed apart: those before the
    row's output reaches a 16-byte boundary (the output buffer aligned, one
    batch after another), when at least 4 columns remain after them."""
    lead = -(i * m * n + r * n) % 4
    return lead if n - lead >= 4 else 0


@njit(**CPU_INLINE)
def _sgemm_blocked_cols(a, b, o, i, r, k, kc, j0, n):
    """MKL's blocked path for row ``r``, columns ``j0:n``: FMA chains over
    each K block (``kc``) from 0, the block sums added in order."""
    acc = np.empty(n - j0, np.float32)
    for k0 in range(0, k, kc):
        acc[:] = 0.0
        for p in range(k0, min(k0 + kc, k)):
            av = a[i, r, p]
            bp = b[i, p]
            for j in range(j0, n):
                acc[j - j0] = fma32(av, bp[j], acc[j - j0])
        if k0 == 0:
            for j in range(j0, n):
                o[j] = acc[j - j0]
        else:
            for j in range(j0, n):
                o[j] = o[j] + acc[j - j0]


#: Multiply-adds from which :func:`matmul_sgemm` runs in parts
#: (:mod:`qops.kernels._split`; a ``prange`` on the ``workqueue`` layer cost
#: 50-65 us a launch).  Measured on the reference machine: 8 products of
#: (128, 64) @ (64, 128), 8.4M multiply-adds, 150 us on one thread, 85 us in
#: two parts.
MATMUL_PARTS_MIN = 1 << 19


def matmul_sgemm(a, b, out, rows, naive):
    """``out[i] = a[i] @ b[i]`` in float32, summed in the order torch 2.13's
    ``at::matmul`` sums on the reference host.

    ``naive``: torch's own loop (batched products under 400 multiply-adds
    per matrix, and batched single columns): each output summed in order,
    multiply then add.  Otherwise MKL's sgemm per matrix with ``rows`` rows
    per thread, each row by :func:`sgemm_path`.  Rows go four at a time: on
    the blocked path (2) whole 64-column tiles by
    :func:`~qops.kernels.cpu._avx512.sgemm4x64` (the sums of 4 rows in
    registers, each ``b`` load shared by them), the other columns and paths
    row by row; each row's sums are the same either way, and so is the split
    of the groups of 4 rows into parts."""
    nbat, m, k = a.shape
    n = b.shape[2]
    if k == 0:  # empty sums
        out.reshape(-1)[:] = 0.0
        return
    units = nbat * ((m + 3) // 4)
    if nbat * m * k * n >= MATMUL_PARTS_MIN:
        run_ranges(_matmul_sgemm_range, units, a, b, out, rows, naive, align=1)
    else:
        _matmul_sgemm_range(a, b, out, rows, naive, 0, units)


#: float32 elements of work space that :func:`_scratch` keeps between calls.
SCRATCH_KEEP = 1 << 22
_scratch_local = threading.local()


def _scratch(n):
    """A float32 work array of ``n`` elements, reused by the next call on this
    thread when ``n <= SCRATCH_KEEP``.  Fresh arrays of a few hundred KB cost
    page faults on every call: glibc returns freed memory above its trim
    threshold to the system, and the next array faults it back in (a
    (8, 128, 64) @ (8, 64, 128) matmul: 128 faults, 0.4 ms instead of
    0.17)."""
    if n > SCRATCH_KEEP:
        return np.empty(n, np.float32)
    buf = getattr(_scratch_local, "buf", None)
    if buf is None or buf.size < n:
        buf = _scratch_local.buf = np.empty(n, np.float32)
    return buf[:n]


def matmul_q8(aq, bq, sa, za, sb, zb, rows, naive, out, mode, s, inv, zpf, zpi, qmin, qmax, nanq):
    """torch's quantized matmul of 8-bit ``aq`` ``(B, M, K)`` and ``bq``
    ``(B, K, N)`` into ``out`` ``(B, M, N)`` (same dtype), fused: the same
    integers as dequantizing both inputs, :func:`matmul_sgemm` and
    quantizing the float32 products, with one launch instead of three.

    ``sa``, ``za`` / ``sb``, ``zb``: the inputs' float32 scales and zero
    points, dequantized as torch's per-tensor ``dequantize`` (the
    ``DQ_TORCH_TENSOR`` recipe of :func:`qops.kernels.cpu.quantize.dequantize`);
    ``mode`` ... ``nanq``: the output's per-tensor quantization, as
    :func:`qops.kernels.cpu.quantize.quantize` takes them.  Each part of the
    4-row groups dequantizes ``bq`` into a buffer of its own (the parts
    dequantize it at the same time, and no core writes lines that the
    other's cache holds from the previous call: one shared buffer, written
    by the caller before the parts, took 30 of a 256^3 product's 200 us),
    then dequantizes its rows of ``aq``, sums them
    (:func:`_matmul_sgemm_range`) and quantizes its output rows while they
    are in cache."""
    nbat, m, k = aq.shape
    n = bq.shape[2]
    na, nb, nc = nbat * m * k, nbat * k * n, nbat * m * n
    if k == 0:  # empty sums
        fc = _scratch(nc).reshape(nbat, m, n)
        fc[...] = 0.0
        _quantize_range(fc.reshape(-1), out.reshape(-1), 0, fc.size, max(fc.size, 1), 1, mode, s, inv,
                        zpf, zpi, qmin, qmax, nanq)
        return
    units = nbat * ((m + 3) // 4)
    use = None
    if nbat * m * k * n >= MATMUL_PARTS_MIN and contiguous(aq, bq, out, s, inv, zpf, zpi):
        use = compiled_pool()
    nparts = 1 if use is None else use[1] + 1
    work = _scratch(na + nc + nb * nparts)
    fa = work[:na].reshape(nbat, m, k)
    fc = work[na:na + nc].reshape(nbat, m, n)
    fbs = work[na + nc:].reshape(nparts, nbat, k, n)
    if use is not None:
        pool, nworkers = use
        mask = _matmul_q8_parts(aq.reshape(-1), sa, za, fa, fbs, fc, rows, naive, out.reshape(-1), mode, s,
                                inv, zpf, zpi, qmin, qmax, nanq, units, _Q8_KIND[aq.dtype], bq.reshape(-1), sb,
                                zb, pool.ctl, nworkers, _MATMUL_Q8_JOB.address or _MATMUL_Q8_JOB.compile())
        if mask >= 0:
            if mask:
                pool.wake(mask)
            return
    fb = fbs[0]
    _dequantize_span(bq.reshape(-1), fb.reshape(-1), 0, fb.size, DQ_TORCH_TENSOR, sb, sb, np.float32(zb), zb)
    _matmul_q8_range(aq.reshape(-1), sa, za, fa, fb, fc, rows, naive, out.reshape(-1), mode, s, inv, zpf, zpi,
                     qmin, qmax, nanq, 0, units)


_Q8_KIND = {np.dtype(np.uint8): 0, np.dtype(np.int8): 1}


@njit(**CPU_INLINE)
def _dq_b(bq, sb, zb, fb):
    """``bq`` dequantized into this part's own buffer ``fb``."""
    _dequantize_span(bq, fb.reshape(-1), 0, fb.size, DQ_TORCH_TENSOR, sb, sb, np.float32(zb), zb)


def _matmul_q8_job(p):
    """One part of :func:`matmul_q8` on a pool worker; the slots as
    :func:`_matmul_q8_parts` writes them."""
    fa, fb, fc = array3(p, 4, np.float32), array3(p, 8, np.float32), array3(p, 12, np.float32)
    s, inv, zpf = array1(p, 22, np.float32), array1(p, 24, np.float32), array1(p, 26, np.float32)
    zpi = array1(p, 28, np.int64)
    sa = np.float32(float_at(p, 2))
    sb = np.float32(float_at(p, 38))
    if p[35] == 0:
        _dq_b(array1(p, 36, np.uint8), sb, p[39], fb)
        _matmul_q8_range(array1(p, 0, np.uint8), sa, p[3], fa, fb, fc, p[16], p[17] != 0,
                         array1(p, 18, np.uint8), p[20], s, inv, zpf, zpi, p[30], p[31], p[32], p[33], p[34])
    else:
        _dq_b(array1(p, 36, np.int8), sb, p[39], fb)
        _matmul_q8_range(array1(p, 0, np.int8), sa, p[3], fa, fb, fc, p[16], p[17] != 0,
                         array1(p, 18, np.int8), p[20], s, inv, zpf, zpi, p[30], p[31], p[32], p[33], p[34])


_MATMUL_Q8_JOB = CompiledJob(_matmul_q8_job)


@njit(**CPU)
def _matmul_q8_parts(aq, sa, za, fa, fbs, fc, rows, naive, out, mode, s, inv, zpf, zpi, qmin, qmax, nanq,
                     units, kind, bq, sb, zb, ctl, nworkers, job):
    """:func:`matmul_q8`'s groups of 4 rows in ``nworkers + 1`` parts on the
    pool (:func:`qops.kernels._split.compiled_pool`), part ``w`` with its own
    B buffer ``fbs[w]``."""
    if not claim(ctl):
        return -1
    for w in range(nworkers):
        i = args_of(ctl, w)
        put_array(ctl, i, aq)
        put_float(ctl, i + 2, sa)
        ctl[i + 3] = za
        put_array(ctl, put_array(ctl, put_array(ctl, i + 4, fa), fbs[w + 1]), fc)
        ctl[i + 16] = rows
        ctl[i + 17] = naive
        put_array(ctl, i + 18, out)
        ctl[i + 20] = mode
        put_array(ctl, put_array(ctl, put_array(ctl, put_array(ctl, i + 22, s), inv), zpf), zpi)
        ctl[i + 30] = qmin
        ctl[i + 31] = qmax
        ctl[i + 32] = nanq
        ctl[i + 33], ctl[i + 34] = part_bounds(units, nworkers + 1, w + 1, 1)
        ctl[i + 35] = kind
        put_array(ctl, i + 36, bq)
        put_float(ctl, i + 38, sb)
        ctl[i + 39] = zb
    seq = launch(ctl, nworkers, job)
    fb = fbs[0]
    _dq_b(bq, sb, zb, fb)
    _matmul_q8_range(aq, sa, za, fa, fb, fc, rows, naive, out, mode, s, inv, zpf, zpi, qmin, qmax, nanq,
                     0, part_bounds(units, nworkers + 1, 0, 1)[1])
    return finish(ctl, nworkers, seq, job)


@njit(**CPU)
def _matmul_q8_range(aq, sa, za, fa, fb, fc, rows, naive, out, mode, s, inv, zpf, zpi, qmin, qmax, nanq,
                     t0, t1):
    """Groups of 4 rows ``t0 : t1`` of :func:`matmul_q8`: consecutive groups
    are consecutive rows over the batch, ``r0 : r1``."""
    nbat, m, k = fa.shape
    n = fb.shape[2]
    ng = (m + 3) // 4
    r0 = (t0 // ng) * m + (t0 % ng) * 4
    r1 = (t1 // ng) * m + (t1 % ng) * 4
    _dequantize_span(aq, fa.reshape(-1), r0 * k, r1 * k, DQ_TORCH_TENSOR, sa, sa, np.float32(za), za)
    _matmul_sgemm_range(fa, fb, fc, rows, naive, t0, t1)
    _quantize_range(fc.reshape(-1), out, r0 * n, r1 * n, fc.size, 1, mode, s, inv, zpf, zpi, qmin, qmax,
                    nanq)


@njit(**CPU)
def _matmul_sgemm_range(a, b, out, rows, naive, t0, t1):
    """Groups of 4 rows ``t0 : t1`` (over all matrices) of :func:`matmul_sgemm`."""
    nbat, m, k = a.shape
    n = b.shape[2]
    kc = max(sgemm_kc(k), 1)
    ng = (m + 3) // 4
    af = a.reshape(-1)
    bf = b.reshape(-1)
    of = out.reshape(-1)
    n64 = n // 64 * 64
    for t in range(t0, t1):
        i = t // ng
        g0 = (t - i * ng) * 4
        g1 = min(m, g0 + 4)
        if sgemm_path(g0, m, n, rows, naive) == 2 and sgemm_path(g1 - 1, m, n, rows, naive) == 2:
            for j0 in range(0, n64, 64):
                for k0 in range(0, k, kc):
                    sgemm4x64(af, (i * m + g0) * k, k, g1 - g0, bf, i * k * n + j0, n, of,
                              (i * m + g0) * n + j0, n, k0, min(k0 + kc, k), k0 == 0)
            if n64 < n:
                for r in range(g0, g1):
                    _sgemm_blocked_cols(a, b, out[i, r], i, r, k, kc, n64, n)
            continue
        for r in range(g0, g1):
            path = sgemm_path(r, m, n, rows, naive)
            if path == 3:
                out[i, r, 0] = sgemm_dot(a, b, i, r, m, k)
                continue
            o = out[i, r]
            if path == 2:
                _sgemm_blocked_cols(a, b, o, i, r, k, kc, 0, n)
                continue
            o[:] = 0.0
            for p in range(k):
                av = a[i, r, p]
                bp = b[i, p]
                for j in range(n):
                    o[j] = o[j] + av * bp[j]
            if path == 1:
                for j in range(sgemm_lead(i, r, m, n)):
                    o[j] = sgemm_tree8(a, b, i, r, j, k)


@njit(**CPU_PARALLEL)
def matmul_reference(a, b, za, zb, scale, so, zo, qmin, qmax, out):
    """Exact integer accumulation ``sum (a - za)(b - zb)`` (int64), scaled by
    ``scale = sa * sb`` and rounded once into ``(so, zo)``."""
    nbat, m, k = a.shape
    n = b.shape[2]
    for t in prange(nbat * m):
        i = t // m
        r = t - i * m
        for j in range(n):
            acc = np.int64(0)
            for p in range(k):
                acc += (np.int64(a[i, r, p]) - za) * (np.int64(b[i, p, j]) - zb)
            x = np.float64(acc) * scale
            out[i, r, j] = clamp_rint(rne_div_exact(x, so) + zo, qmin, qmax)


# ------------------------------------------------------------------ QNNPACK add
@njit(**CPU_INLINE)
def q8add_one(a, b, am, bm, zpp, mask, thr, shift, zo, ymin, ymax):
    """QNNPACK's ``q8vadd`` on one quint8 pair: ``acc = zpp + a*am + b*bm``
    (int32, no overflow for multipliers below 2**22), shifted right by
    ``shift`` rounding half away from zero (``rem`` against ``thr``), plus the
    output zero point, clamped to ``[ymin, ymax]``."""
    acc = zpp + np.int64(a) * am + np.int64(b) * bm
    rem = (acc & mask) - (1 if acc < 0 else 0)
    acc = (acc >> shift) + (1 if rem > thr else 0)
    return min(max(acc + zo, ymin), ymax)


@njit(**CPU)
def q8add(a, b, out, am, bm, zpp, mask, thr, shift, zo, ymin, ymax):
    """:func:`q8add_one` over the flat uint8 arrays ``a`` and ``b``."""
    for i in range(np.uint64(a.size)):
        out[i] = q8add_one(a[i], b[i], am, bm, zpp, mask, thr, shift, zo, ymin, ymax)


@njit(**CPU_PARALLEL)
def q8add_parallel(a, b, out, am, bm, zpp, mask, thr, shift, zo, ymin, ymax):
    """:func:`q8add` in chunks on every thread."""
    n = a.size
    nc = (n + CHUNK - 1) // CHUNK
    for c in prange(nc):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            out[i] = q8add_one(a[i], b[i], am, bm, zpp, mask, thr, shift, zo, ymin, ymax)


# ------------------------------------------------------------------ softmax
# torch 2.13's float32 softmax (``SoftMaxKernel.cpp``), which the quantized
# softmax runs between dequantize and quantize:
#
# last dim   per row: ``m = max``, ``e = exp_sleef(x - m)``, ``s`` = the
#            ``vec::reduce_all`` sum (16 lanes, then a 8/4/2/1 lane tree),
#            ``y = e * fl(1 / s)``.
# other dim  per column of the ``(outer, n, inner)`` view, the columns split
#            over torch's threads; groups of 16 adjacent columns inside one
#            thread's range and one row take the vector path (``exp_sleef``),
#            the rest the scalar path (glibc ``expf``); both sum the column
#            in order from 0 in float32 and divide: ``y = e / s``.
@njit(**CPU_PARALLEL)
def softmax_reference(x, out, outer, n, inner):
    """The reference softmax: float64 (max subtracted, exp, sum, one division)
    of the flat float64 ``x`` viewed as ``(outer, n, inner)``, along the middle
    axis, into the float64 ``out``."""
    for t in prange(outer * inner):
        o = t // inner
        base = o * n * inner + (t - o * inner)
        mx = -np.inf
        for j in range(n):
            v = np.float64(x[base + j * inner])
            if v > mx:
                mx = v
        s = 0.0
        for j in range(n):
            s += np.exp(np.float64(x[base + j * inner]) - mx)
        for j in range(n):
            out[base + j * inner] = np.exp(np.float64(x[base + j * inner]) - mx) / s


@njit(**CPU)
def softmax_vector_columns(outer, n, inner, threads, flags):
    """``flags[c] = 1`` where column ``c`` (of ``outer * inner``) takes torch's
    vector path in a softmax over a non-last dim with ``threads`` intra-op
    threads (``_vec_softmax``: ``parallel_for`` with grain ``min(32768 // n,
    1)``, each thread's range walked in blocks of 16 columns of one row)."""
    total = outer * inner
    grain = min(32768 // n, 1)
    nt = 1
    if total > grain and total > 1 and threads > 1:
        nt = threads if grain == 0 else min(threads, (total + grain - 1) // grain)
    chunk = (total + nt - 1) // nt
    for b in range(0, total, chunk):
        end = min(total, b + chunk)
        idx = b
        while idx < end:
            ii = idx % inner
            if ii + 16 <= inner and idx + 16 <= end:
                for c in range(idx, idx + 16):
                    flags[c] = 1
                idx += 16
            else:
                tail = end - idx if idx + 16 > end else inner - ii
                for c in range(idx, idx + tail):
                    flags[c] = 0
                idx += tail


@njit(**CPU_INLINE)
def _max_nan(m, v):
    """``vec::maximum``: the larger value, NaN once either is NaN."""
    return v if (v > m or v != v) else m


@njit(**CPU_INLINE)
def _lanes_total(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15):
    """``vec_reduce_all``'s sum of 16 float32 lanes (AVX-512 shuffles): lanes
    ``i + (i ^ 8)``, then ``i ^ 4``, ``i ^ 2``, ``i ^ 1``."""
    b0, b1, b2, b3 = a0 + a8, a1 + a9, a2 + a10, a3 + a11
    b4, b5, b6, b7 = a4 + a12, a5 + a13, a6 + a14, a7 + a15
    c0, c1, c2, c3 = b0 + b4, b1 + b5, b2 + b6, b3 + b7
    return (c0 + c2) + (c1 + c3)


@njit(**CPU_INLINE)
def vec_sum(e, n):
    """torch's ``vec::reduce_all`` float32 sum of ``e[:n]`` (AVX-512): below 16
    values in order; otherwise 16 lane sums (a tail of ``n % 16`` values into
    the first lanes) reduced as lanes ``i + (i ^ 8)``, ``i ^ 4``, ``i ^ 2``,
    ``i ^ 1``.  The lanes are 16 scalars, which LLVM keeps in registers (an
    array of lanes would be stored and reloaded every step: 4x slower)."""
    if n < 16:
        s = e[0]
        for j in range(1, n):
            s = s + e[j]
        return s
    a0 = e[0]
    a1 = e[1]
    a2 = e[2]
    a3 = e[3]
    a4 = e[4]
    a5 = e[5]
    a6 = e[6]
    a7 = e[7]
    a8 = e[8]
    a9 = e[9]
    a10 = e[10]
    a11 = e[11]
    a12 = e[12]
    a13 = e[13]
    a14 = e[14]
    a15 = e[15]
    full = n - n % 16
    for d in range(16, full, 16):
        a0 = a0 + e[d + 0]
        a1 = a1 + e[d + 1]
        a2 = a2 + e[d + 2]
        a3 = a3 + e[d + 3]
        a4 = a4 + e[d + 4]
        a5 = a5 + e[d + 5]
        a6 = a6 + e[d + 6]
        a7 = a7 + e[d + 7]
        a8 = a8 + e[d + 8]
        a9 = a9 + e[d + 9]
        a10 = a10 + e[d + 10]
        a11 = a11 + e[d + 11]
        a12 = a12 + e[d + 12]
        a13 = a13 + e[d + 13]
        a14 = a14 + e[d + 14]
        a15 = a15 + e[d + 15]
    r = n - full
    if r > 0:
        a0 = a0 + e[full + 0]
    if r > 1:
        a1 = a1 + e[full + 1]
    if r > 2:
        a2 = a2 + e[full + 2]
    if r > 3:
        a3 = a3 + e[full + 3]
    if r > 4:
        a4 = a4 + e[full + 4]
    if r > 5:
        a5 = a5 + e[full + 5]
    if r > 6:
        a6 = a6 + e[full + 6]
    if r > 7:
        a7 = a7 + e[full + 7]
    if r > 8:
        a8 = a8 + e[full + 8]
    if r > 9:
        a9 = a9 + e[full + 9]
    if r > 10:
        a10 = a10 + e[full + 10]
    if r > 11:
        a11 = a11 + e[full + 11]
    if r > 12:
        a12 = a12 + e[full + 12]
    if r > 13:
        a13 = a13 + e[full + 13]
    if r > 14:
        a14 = a14 + e[full + 14]
    return _lanes_total(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15)


@njit(**CPU_INLINE)
def _softmax_row(x, e, n):
    """One last-dim row: float32 ``x[:n]`` -> ``e[:n]``."""
    m = x[0]
    for j in range(1, n):
        m = _max_nan(m, x[j])
    for j in range(n):
        e[j] = expf_sleef(x[j] - m)
    inv = _F32_ONE / vec_sum(e, n)
    for j in range(n):
        e[j] = e[j] * inv


@njit(**CPU_PARALLEL)
def softmax_rows(x, out, rows, n):
    """torch's last-dim softmax of the float32 ``x`` viewed as ``(rows, n)``."""
    per = max(1, 16384 // n)
    for c in prange((rows + per - 1) // per):
        for r in range(c * per, min(rows, (c + 1) * per)):
            _softmax_row(x[r * n:(r + 1) * n], out[r * n:(r + 1) * n], n)


@njit(**CPU_INLINE)
def _divide_columns(out, base, n, inner, w, s):
    """``y = e / s`` over ``w`` adjacent columns from ``base`` (``n`` rows of
    stride ``inner``; ``s[lane]`` the column sums)."""
    for d in range(n):
        row = base + d * inner
        for lane in range(w):
            out[row + lane] = out[row + lane] / s[lane]


@njit(**CPU_PARALLEL)
def softmax_columns(x, flags, out, outer, n, inner):
    """torch's softmax of the float32 ``x`` viewed as ``(outer, n, inner)``
    along the middle axis; ``flags`` from :func:`softmax_vector_columns`.
    Blocks of 16 adjacent columns, so that each step reads 16 neighbours."""
    nb = (inner + 15) // 16
    for t in prange(outer * nb):
        o = t // nb
        c0 = (t - o * nb) * 16
        w = min(16, inner - c0)
        base = o * n * inner + c0
        fl = flags[o * inner + c0:o * inner + c0 + w]
        m = np.empty(16, np.float32)
        s = np.zeros(16, np.float32)
        for lane in range(w):
            m[lane] = x[base + lane]
        for d in range(1, n):
            row = base + d * inner
            for lane in range(w):
                m[lane] = _max_nan(m[lane], x[row + lane])
        for d in range(n):
            row = base + d * inner
            for lane in range(w):
                v = x[row + lane] - m[lane]
                e = expf_sleef(v) if fl[lane] else expf_libm(v)
                out[row + lane] = e
                s[lane] = s[lane] + e
        _divide_columns(out, base, n, inner, w, s)


@njit(**CPU)
def _softmax_max_levels(q, outer, n, inner, mlev):
    """The largest level (the byte with the largest dequantized value) of
    every softmax row of the 8-bit ``q``; ``mlev`` is ``(outer * inner,)``."""
    if inner == 1:  # contiguous rows: unsigned indices, a vectorised maximum
        nu = np.uint64(n)
        for o in range(outer):
            qr = q[o * n:(o + 1) * n]
            m = qr[0]
            for j in range(np.uint64(1), nu):
                v = qr[j]
                m = v if v > m else m
            mlev[o] = np.int64(m)
        return
    for t in range(outer * inner):
        o = t // inner
        base = o * n * inner + (t - o * inner)
        m = q[base]
        for j in range(1, n):
            v = q[base + j * inner]
            m = v if v > m else m
        mlev[t] = np.int64(m)


@njit(**CPU)
def _softmax_tables(xv, used, sleef, tables):
    """``tables[m, k] = exp(xv[k] - xv[m])`` in float32 (``expf_sleef`` or
    ``expf_libm``) for the used maxima ``m``: at most 65536 exponentials."""
    for m in range(256):
        if used[m]:
            mx = xv[m]
            for k in range(256):
                tables[m, k] = expf_sleef(xv[k] - mx) if sleef else expf_libm(xv[k] - mx)


@njit(**CPU_INLINE)
def _lks(tab, qr, e, i, offu):
    """``e[i] = tab[byte qr[i] ^ off]``, returned (unsigned ``i``)."""
    v = tab[np.uint64(np.uint8(qr[i])) ^ offu]
    e[i] = v
    return v


@njit(**CPU_INLINE)
def _lookup_sum(tab, qr, e, n, offu):
    """``e[j] = tab[qr[j]]`` and the :func:`vec_sum` of ``e`` in one pass, the
    16 lanes in registers, indices unsigned (no negative-index fix-ups)."""
    nu = np.uint64(n)
    if nu < np.uint64(16):
        s = _lks(tab, qr, e, np.uint64(0), offu)
        for j in range(np.uint64(1), nu):
            s = s + _lks(tab, qr, e, j, offu)
        return s
    a0, a1, a2, a3 = (_lks(tab, qr, e, np.uint64(0), offu), _lks(tab, qr, e, np.uint64(1), offu),
                      _lks(tab, qr, e, np.uint64(2), offu), _lks(tab, qr, e, np.uint64(3), offu))
    a4, a5, a6, a7 = (_lks(tab, qr, e, np.uint64(4), offu), _lks(tab, qr, e, np.uint64(5), offu),
                      _lks(tab, qr, e, np.uint64(6), offu), _lks(tab, qr, e, np.uint64(7), offu))
    a8, a9, a10, a11 = (_lks(tab, qr, e, np.uint64(8), offu), _lks(tab, qr, e, np.uint64(9), offu),
                        _lks(tab, qr, e, np.uint64(10), offu), _lks(tab, qr, e, np.uint64(11), offu))
    a12, a13, a14, a15 = (_lks(tab, qr, e, np.uint64(12), offu), _lks(tab, qr, e, np.uint64(13), offu),
                          _lks(tab, qr, e, np.uint64(14), offu), _lks(tab, qr, e, np.uint64(15), offu))
    full = nu - nu % np.uint64(16)
    for d in range(np.uint64(16), full, np.uint64(16)):
        a0 = a0 + _lks(tab, qr, e, d + np.uint64(0), offu)
        a1 = a1 + _lks(tab, qr, e, d + np.uint64(1), offu)
        a2 = a2 + _lks(tab, qr, e, d + np.uint64(2), offu)
        a3 = a3 + _lks(tab, qr, e, d + np.uint64(3), offu)
        a4 = a4 + _lks(tab, qr, e, d + np.uint64(4), offu)
        a5 = a5 + _lks(tab, qr, e, d + np.uint64(5), offu)
        a6 = a6 + _lks(tab, qr, e, d + np.uint64(6), offu)
        a7 = a7 + _lks(tab, qr, e, d + np.uint64(7), offu)
        a8 = a8 + _lks(tab, qr, e, d + np.uint64(8), offu)
        a9 = a9 + _lks(tab, qr, e, d + np.uint64(9), offu)
        a10 = a10 + _lks(tab, qr, e, d + np.uint64(10), offu)
        a11 = a11 + _lks(tab, qr, e, d + np.uint64(11), offu)
        a12 = a12 + _lks(tab, qr, e, d + np.uint64(12), offu)
        a13 = a13 + _lks(tab, qr, e, d + np.uint64(13), offu)
        a14 = a14 + _lks(tab, qr, e, d + np.uint64(14), offu)
        a15 = a15 + _lks(tab, qr, e, d + np.uint64(15), offu)
    r = nu - full
    if r > 0:
        a0 = a0 + _lks(tab, qr, e, full + np.uint64(0), offu)
    if r > 1:
        a1 = a1 + _lks(tab, qr, e, full + np.uint64(1), offu)
    if r > 2:
        a2 = a2 + _lks(tab, qr, e, full + np.uint64(2), offu)
    if r > 3:
        a3 = a3 + _lks(tab, qr, e, full + np.uint64(3), offu)
    if r > 4:
        a4 = a4 + _lks(tab, qr, e, full + np.uint64(4), offu)
    if r > 5:
        a5 = a5 + _lks(tab, qr, e, full + np.uint64(5), offu)
    if r > 6:
        a6 = a6 + _lks(tab, qr, e, full + np.uint64(6), offu)
    if r > 7:
        a7 = a7 + _lks(tab, qr, e, full + np.uint64(7), offu)
    if r > 8:
        a8 = a8 + _lks(tab, qr, e, full + np.uint64(8), offu)
    if r > 9:
        a9 = a9 + _lks(tab, qr, e, full + np.uint64(9), offu)
    if r > 10:
        a10 = a10 + _lks(tab, qr, e, full + np.uint64(10), offu)
    if r > 11:
        a11 = a11 + _lks(tab, qr, e, full + np.uint64(11), offu)
    if r > 12:
        a12 = a12 + _lks(tab, qr, e, full + np.uint64(12), offu)
    if r > 13:
        a13 = a13 + _lks(tab, qr, e, full + np.uint64(13), offu)
    if r > 14:
        a14 = a14 + _lks(tab, qr, e, full + np.uint64(14), offu)
    return _lanes_total(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15)


#: Rows per block of the 8-bit last-dim softmax: the block's ``e`` values
#: are all stored before any is scaled, so the vectorised scaling loads never
#: wait on the element-wise stores still in flight (that stall doubled the
#: time when each row was scaled right after its lookups).
_ROWS8_BLOCK = 8


@njit(**CPU_INLINE)
def _quantize_fma(y, inv, zpf, fmin, fmax):
    """torch's ``quantize_per_tensor`` of a float32 (fbgemm, 8-bit):
    ``rne(fma(y, inv, zp))`` saturated to the float32 bounds, NaN giving
    ``fmax`` (strict selects: ``vminps`` / ``vmaxps`` when the loops vectorise,
    as in :func:`qops.kernels.cpu.quantize._quantize_span`)."""
    v = fma32(y, inv, zpf)
    v = v if v < fmax else fmax  # NaN -> qmax
    v = v if v > fmin else fmin
    return np.int32(np.rint(v))


@njit(**CPU_INLINE)
def _softmax_rows8(q, off, xv, tables, built, n, e_buf, qout, raw, inv_o, zpf, fmin, fmax, r0, r1):
    """Last-dim rows ``[r0, r1)`` of 8-bit data: the row's largest level,
    ``e`` from that level's table (``tables[m, k] = expf_sleef(xv[k] -
    xv[m])``, built on first use: ``built[m]``), the :func:`vec_sum` of ``e``
    and ``y = e * fl(1 / sum)`` as in :func:`_softmax_row`, quantized straight
    into ``qout`` (the float32 ``e`` of a block of rows stays in ``e_buf``,
    in cache); ``raw``: ``qout`` is float32 and takes ``y`` itself."""
    nu = np.uint64(n)
    offu = np.uint64(off)
    inv = np.empty(_ROWS8_BLOCK, np.float32)
    for b0 in range(r0, r1, _ROWS8_BLOCK):
        b1 = min(r1, b0 + _ROWS8_BLOCK)
        for o in range(b0, b1):
            k = o - b0
            qr = q[o * n:(o + 1) * n]
            m = qr[0]
            for j in range(np.uint64(1), nu):  # the row is in cache for the lookups next
                v = qr[j]
                m = v if v > m else m
            lev = np.int64(m) + off
            if not built[lev]:
                mx = xv[lev]
                for c in range(256):
                    tables[lev, c] = expf_sleef(xv[c] - mx)
                built[lev] = True
            inv[k] = _F32_ONE / _lookup_sum(tables[lev], qr, e_buf[k * n:(k + 1) * n], n, offu)
        for o in range(b0, b1):
            k = o - b0
            e = e_buf[k * n:(k + 1) * n]
            y = qout[o * n:(o + 1) * n]
            s = inv[k]
            if raw:
                for j in range(nu):
                    y[j] = e[j] * s
            else:
                for j in range(nu):
                    y[j] = _quantize_fma(e[j] * s, inv_o, zpf, fmin, fmax)


@njit(**CPU_INLINE)
def _softmax_columns8(q, off, tv, ts, flags, mlev, outer, n, inner, buf, qout, raw, inv_o, zpf, fmin,
                      fmax, b0, b1):
    """Column blocks ``[b0, b1)`` (16 adjacent columns of one outer index) of
    8-bit data, as :func:`softmax_columns` with the exponentials from the
    tables (``tv``: vector path, ``ts``: scalar path), quantized into
    ``qout`` (``raw``: float32, ``y`` itself); ``buf`` (``16 * n`` float32)
    holds a block's ``e``."""
    nb = (inner + 15) // 16
    s = np.empty(16, np.float32)
    for t in range(b0, b1):
        o = t // nb
        c0 = (t - o * nb) * 16
        w = min(16, inner - c0)
        base = o * n * inner + c0
        col = o * inner + c0
        for lane in range(w):
            s[lane] = _F32_ZERO
        for d in range(n):
            row = base + d * inner
            for lane in range(w):
                k = mlev[col + lane] + off
                tab = tv[k] if flags[col + lane] else ts[k]
                e = tab[np.int64(q[row + lane]) + off]
                buf[d * 16 + lane] = e
                s[lane] = s[lane] + e
        for d in range(n):  # y = e / s, as _divide_columns
            row = base + d * inner
            for lane in range(w):
                y = buf[d * 16 + lane] / s[lane]
                if raw:
                    qout[row + lane] = y
                else:
                    qout[row + lane] = _quantize_fma(y, inv_o, zpf, fmin, fmax)


@njit(**CPU)
def _softmax_levels_span(q, off, xv, tv, ts, flags, mlev, outer, n, inner, lastdim, qout, raw, inv_o, zpf,
                         fmin, fmax, u0, u1):
    """Units ``[u0, u1)``: rows (``lastdim``; this part's own tables, built
    as the rows need them) or 16-column blocks."""
    if lastdim:
        e_buf = np.empty(_ROWS8_BLOCK * n, np.float32)
        tables = np.empty((256, 256), np.float32)
        built = np.zeros(256, np.bool_)
        _softmax_rows8(q, off, xv, tables, built, n, e_buf, qout, raw, inv_o, zpf, fmin, fmax, u0, u1)
    else:
        buf = np.empty(16 * n, np.float32)
        _softmax_columns8(q, off, tv, ts, flags, mlev, outer, n, inner, buf, qout, raw, inv_o, zpf,
                          fmin, fmax, u0, u1)


#: Elements from which the 8-bit softmax runs in parts on several threads
#: (:mod:`qops.kernels._split`), over the last dim and over another one.
#: Measured on the reference machine (whole call, median of 40 back to back,
#: one thread / two parts): rows of 256, 256K elements 0.158 / 0.145 ms,
#: 512K 0.29 / 0.18 ms, 1M 0.545 / 0.303 ms; 16 columns over dim 1, 256K
#: 1.25 / 0.88 ms, 1M 5.0 / 3.3 ms.
SOFTMAX_PARALLEL_MIN = 1 << 19
SOFTMAX_COLUMNS_PARALLEL_MIN = 1 << 18


def softmax_levels(q, xv, flags, qout, outer, n, inner, lastdim, inv_o, zpf, qmin, qmax):
    """torch's float32 softmax (:func:`softmax_rows` if ``lastdim``, else
    :func:`softmax_columns` with ``flags``) of 8-bit data from its 256 levels,
    quantized into ``qout`` as torch's ``quantize_per_tensor`` (fbgemm: inverse
    scale ``inv_o``, float32 zero point ``zpf``, bounds ``qmin``/``qmax``):
    ``xv[k]`` is the dequantized float32 value of level ``k`` (byte ``k``, or
    ``k - 128`` for int8), increasing with the level.  ``exp(x - max)`` comes
    from a table per row maximum (at most 256 tables of 256 float32 values,
    the same function of the same operands), so the result is the same.  The
    quantization follows each block of rows while its floats are in cache
    (a separate pass over a float32 array took 90 us of 0.62 ms for 1M).  A
    float32 ``qout`` receives the float softmax itself (the quantization
    arguments are then unused)."""
    off = 128 if q.dtype == np.int8 else 0
    rows = outer * inner
    if lastdim:  # row maxima and their tables inside the row pass
        mlev = np.empty(0, np.int64)
        tv = ts = np.empty((0, 256), np.float32)
    else:
        mlev = np.empty(rows, np.int64)
        _softmax_max_levels(q, outer, n, inner, mlev)
        vec = flags.view(np.bool_)
        used_v = np.zeros(256, np.bool_)
        used_v[mlev[vec] + off] = True
        used_s = np.zeros(256, np.bool_)
        used_s[mlev[~vec] + off] = True
        tv = np.empty((256, 256), np.float32)
        ts = np.empty((256, 256), np.float32)
        _softmax_tables(xv, used_v, True, tv)
        _softmax_tables(xv, used_s, False, ts)
    units = outer if lastdim else outer * ((inner + 15) // 16)
    args = (q, off, xv, tv, ts, flags, mlev, outer, n, inner, lastdim, qout, qout.dtype == np.float32,
            np.float32(inv_o), np.float32(zpf), np.float32(qmin), np.float32(qmax))
    if q.size >= (SOFTMAX_PARALLEL_MIN if lastdim else SOFTMAX_COLUMNS_PARALLEL_MIN):
        run_ranges(_softmax_levels_span, units, *args, align=1)
    else:
        _softmax_levels_span(*args, 0, units)


@njit(**CPU_PARALLEL)
def quantize_exact(y, so, zo, qmin, qmax, out):
    """Reference rounding of float64 ``y``: ``rne(y / so) + zo``, saturated."""
    for i in prange(y.size):
        out[i] = clamp_rint(rne_div_exact(y[i], so) + zo, qmin, qmax)


# ------------------------------------------------------------------ data movement
@njit(**CPU_PARALLEL)
def copy_slab(src, dst, outer, src_n, dst_n, offset):
    """``dst.reshape(outer, dst_n)[:, offset:offset + src_n] = src.reshape(outer, src_n)``
    (one input of a concatenation)."""
    for o in prange(outer):
        for j in range(src_n):
            dst[o * dst_n + offset + j] = src[o * src_n + j]


@njit(**CPU_PARALLEL)
def flip(src, dst, total):
    """``dst = total - src`` (mul_scalar by a negative number: ``qmax + qmin - q``)."""
    for i in prange(src.size):
        dst[i] = total - np.int64(src[i])


@njit(**CPU_PARALLEL)
def fill_zero(dst):
    """``dst[:] = 0`` (mul_scalar by zero)."""
    for i in prange(dst.size):
        dst[i] = 0
