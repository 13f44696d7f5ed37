"""CPU kernels for quantized embeddings: rowwise prepack / unpack, bag sums.

The packed rowwise format (torch's and fbgemm's) is a ``(N, W)`` uint8 array,
one row per embedding row: the quantized values (8-bit: one byte each;
4-bit / 2-bit: two / four values a byte, the first in the low bits) followed
by the row's scale and bias, float32 for 8-bit (``W = D + 8``) and float16
for 4-bit and 2-bit (``W = D * bits / 8 + 4``), little-endian.  A value
dequantizes to ``fma(scale, q, bias)``.

Kernels take C-contiguous arrays and a preallocated ``out``; the API
(:mod:`qops._embedding`) validates.
"""

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from .._options import CPU, CPU_INLINE, CPU_PARALLEL
from .._split import (CompiledJob, args_of, array1, array2, claim, contiguous, finish, launch, part_bounds,
                      put_array, run_compiled, run_ranges)
from ._avx512 import MINMAX_BLOCK, bag8rows64, bagacc64, minmax64, rowq64
from ._llvm import fma32, fma64
from .scalar import round_dd_to_f32

__all__ = [
    "prepack_rows",
    "prepack_rows_fast",
    "unpack_rows",
    "bag_sum",
    "bag_sum_exact",
]

_FLT_MAX = np.float32(3.4028234663852886e38)
_F32_INF = np.float32(np.inf)
#: fbgemm's AVX2 row kernels (FloatOrHalfToFused*RowwiseQuantized*Avx2) work
#: in vectors of this many floats; the columns past the last whole vector
#: are the scalar tail.
VLEN = 8


@intrinsic
def _bitcast_f32(typingctx, u):
    """The float32 whose bits are the uint32 ``u``."""
    sig = types.float32(types.uint32)

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return sig, codegen


@intrinsic
def _bits_f32(typingctx, f):
    """The bits of the float32 ``f`` as a uint32."""
    sig = types.uint32(types.float32)

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.uint32))

    return sig, codegen


@intrinsic
def _load_u32(typingctx, arr, r, k):
    """The 4 little-endian bytes at ``arr[r, k:k+4]`` of the 2-D C-contiguous
    uint8 ``arr`` as a uint32 (one unaligned load; no bounds check)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and arr.layout == "C"
            and arr.ndim == 2):
        return None
    sig = types.uint32(arr, types.intp, types.intp)

    def codegen(context, builder, sig, args):
        from llvmlite import ir

        a = context.make_array(sig.args[0])(context, builder, args[0])
        off = builder.add(builder.mul(args[1], builder.extract_value(a.strides, 0)), args[2])
        ptr = builder.bitcast(builder.gep(a.data, [off]), ir.IntType(32).as_pointer())
        return builder.load(ptr, align=1)

    return sig, codegen


@intrinsic
def _store32(typingctx, arr, k, v):
    """Store the float32 or uint32 ``v`` as 4 little-endian bytes at
    ``arr[k:k+4]`` of the contiguous uint8 ``arr`` (one unaligned store, the
    bits unchanged; no bounds check)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and arr.layout == "C"):
        return None
    if v not in (types.float32, types.uint32):
        return None
    sig = types.void(arr, types.intp, v)

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), args[2].type.as_pointer())
        builder.store(args[2], ptr, align=1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _f16_bits_hw(typingctx, f):
    """:func:`_f16_bits` of a non-NaN float32 by the hardware (LLVM's
    ``fptrunc`` to half: ``vcvtps2ph`` on F16C hosts, the AVX-512 kernels'
    only callers), rounding to nearest even with overflow to infinity, as
    IEEE 754 defines the conversion."""
    if f != types.float32:
        return None
    sig = types.uint32(types.float32)

    def codegen(context, builder, sig, args):
        from llvmlite import ir

        h = builder.fptrunc(args[0], ir.HalfType())
        return builder.zext(builder.bitcast(h, ir.IntType(16)), ir.IntType(32))

    return sig, codegen


@intrinsic
def _prefetch(typingctx, arr, row, col):
    """Hint the CPU to fetch ``arr[row, col]`` of the 2-D C-contiguous uint8
    ``arr`` (``llvm.prefetch``, read, high locality); no effect on results."""
    if not isinstance(arr, types.Array) or arr.ndim != 2:
        return None
    sig = types.void(arr, types.int64, types.int64)

    def codegen(context, builder, sig, args):
        from llvmlite import ir

        a = context.make_array(sig.args[0])(context, builder, args[0])
        stride = builder.extract_value(a.strides, 0)
        offset = builder.add(builder.mul(args[1], stride), args[2])
        i8p = ir.IntType(8).as_pointer()
        ptr = builder.gep(builder.bitcast(a.data, i8p), [offset])
        i32 = ir.IntType(32)
        fn = builder.module.declare_intrinsic("llvm.prefetch", (), ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]))
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


#: rows ahead of the one being summed whose loads are started early (as
#: fbgemm's prefetch distance, 16)
PREFETCH = 16
#: rows per parallel work item of the prepack kernels
_ROWS = 64
#: rows per parallel work item of :func:`prepack_rows_fast`, and rows of one
#: of its passes (16 rows of 64 float32 ran 3.1 ms for 256k rows on the
#: reference machine, one thread; 32 rows 3.2 ms, 64 rows 4.8 ms)
_FAST_ROWS = 1024
_PASS_ROWS = 16
#: bags per parallel work item of bag_sum
_BAGS = 32
#: rows of a bag gathered (row, scale, bias) before their values are summed
_GROUP = 8


@njit(**CPU_INLINE)
def _half_to_f32(h):
    """IEEE binary16 bits ``h`` (uint32, low 16 bits) to float32, exactly."""
    sign = (h >> np.uint32(15)) & np.uint32(1)
    e = (h >> np.uint32(10)) & np.uint32(0x1F)
    m = h & np.uint32(0x3FF)
    if e == 0:
        v = np.float32(m) * np.float32(5.960464477539063e-08)  # m * 2**-24, exact
        return -v if sign else v
    if e == 0x1F:
        bits = (sign << np.uint32(31)) | np.uint32(0x7F800000) | (m << np.uint32(13))
    else:
        bits = (sign << np.uint32(31)) | ((e + np.uint32(112)) << np.uint32(23)) | (m << np.uint32(13))
    return _bitcast_f32(bits)


@njit(**CPU_INLINE)
def _row_scale_bias(w, r, D, bits):
    """The float32 (scale, bias) stored at the end of packed row ``r``."""
    W = w.shape[1]
    if bits == 8:
        return _bitcast_f32(_load_u32(w, r, W - 8)), _bitcast_f32(_load_u32(w, r, W - 4))
    u = _load_u32(w, r, W - 4)
    return _half_to_f32(u & np.uint32(0xFFFF)), _half_to_f32(u >> np.uint32(16))


# ------------------------------------------------------------------ prepack
@njit(**CPU_INLINE)
def _row_minmax(xr, C, nv):
    """The minimum and maximum of the float32 row ``xr`` in the order fbgemm's
    AVX2 prepack takes them (so that signed zeros and NaN come out as there).

    Lane ``l`` of an 8-float vector keeps ``min(lane, x)`` over the whole
    vectors (``vminps``: the new element unless the lane is smaller), the
    lanes then fold into ``FLT_MAX`` with ``std::min`` (the earlier unless
    the later is smaller), and the tail columns fold in the same way; the
    maxima alike from ``-FLT_MAX``.  ``nv`` is ``C`` rounded down to whole
    vectors.
    """
    # the 8 lanes as scalars (registers): lane l holds columns l, l+8, ...
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = _FLT_MAX
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = -_FLT_MAX
    for c0 in range(np.uint64(0), np.uint64(nv), np.uint64(VLEN)):
        v = xr[c0]
        a0 = a0 if a0 < v else v
        b0 = b0 if b0 > v else v
        v = xr[c0 + np.uint64(1)]
        a1 = a1 if a1 < v else v
        b1 = b1 if b1 > v else v
        v = xr[c0 + np.uint64(2)]
        a2 = a2 if a2 < v else v
        b2 = b2 if b2 > v else v
        v = xr[c0 + np.uint64(3)]
        a3 = a3 if a3 < v else v
        b3 = b3 if b3 > v else v
        v = xr[c0 + np.uint64(4)]
        a4 = a4 if a4 < v else v
        b4 = b4 if b4 > v else v
        v = xr[c0 + np.uint64(5)]
        a5 = a5 if a5 < v else v
        b5 = b5 if b5 > v else v
        v = xr[c0 + np.uint64(6)]
        a6 = a6 if a6 < v else v
        b6 = b6 if b6 > v else v
        v = xr[c0 + np.uint64(7)]
        a7 = a7 if a7 < v else v
        b7 = b7 if b7 > v else v
    # std::min / std::max over the lanes in order, then over the tail
    a = _FLT_MAX
    b = -_FLT_MAX
    a = a0 if a0 < a else a
    a = a1 if a1 < a else a
    a = a2 if a2 < a else a
    a = a3 if a3 < a else a
    a = a4 if a4 < a else a
    a = a5 if a5 < a else a
    a = a6 if a6 < a else a
    a = a7 if a7 < a else a
    b = b0 if b < b0 else b
    b = b1 if b < b1 else b
    b = b2 if b < b2 else b
    b = b3 if b < b3 else b
    b = b4 if b < b4 else b
    b = b5 if b < b5 else b
    b = b6 if b < b6 else b
    b = b7 if b < b7 else b
    for c in range(np.uint64(nv), np.uint64(C)):
        v = xr[c]
        a = v if v < a else a
        b = v if b < v else b
    return a, b


@njit(**CPU_INLINE)
def _f16_bits(f):
    """IEEE binary16 bits (uint32) of the float32 ``f``, rounded to nearest
    even, overflow to infinity; NaN stays NaN (quieted, as ``vcvtps2ph``)."""
    u = _bits_f32(f)
    sign = (u >> np.uint32(16)) & np.uint32(0x8000)
    exp = np.int64((u >> np.uint32(23)) & np.uint32(0xFF))
    mant = u & np.uint32(0x7FFFFF)
    if exp == 0xFF:
        if mant:
            return sign | np.uint32(0x7E00) | (mant >> np.uint32(13))
        return sign | np.uint32(0x7C00)
    e = exp - 112  # the half-precision biased exponent
    if e >= 31:
        return sign | np.uint32(0x7C00)
    if e <= 0:  # a half subnormal (or zero): round mant * 2**(e - 14) to units of 2**-24
        if e < -10:
            return sign
        m = mant | np.uint32(0x800000)
        shift = np.uint32(14 - e)
        h = m >> shift
        rem = m & ((np.uint32(1) << shift) - np.uint32(1))
        half = np.uint32(1) << (shift - np.uint32(1))
        if rem > half or (rem == half and (h & np.uint32(1))):
            h += np.uint32(1)
        return sign | h
    h = (np.uint32(e) << np.uint32(10)) | (mant >> np.uint32(13))
    rem = mant & np.uint32(0x1FFF)
    if rem > np.uint32(0x1000) or (rem == np.uint32(0x1000) and (h & np.uint32(1))):
        h += np.uint32(1)  # a carry into the exponent is the right result (up to infinity)
    return sign | h


@njit(**CPU_INLINE)
def _cvt32(v):
    """x86 ``cvtps2dq``: rne to int32, NaN or overflow giving INT32_MIN."""
    r = np.rint(v)
    ok = r > np.float32(-2147483904.0) and r < np.float32(2147483648.0)
    return np.int64(np.int32(r if ok else np.float32(-2147483648.0)))


@njit(**CPU_INLINE)
def _cvt32_i32(v):
    """:func:`_cvt32` as an int32 (a select LLVM vectorises)."""
    r = np.rint(v)
    ok = r > np.float32(-2147483904.0) and r < np.float32(2147483648.0)
    return np.int32(r if ok else np.float32(-2147483648.0))


@njit(**CPU_INLINE)
def _lrintf(v):
    """``std::lrintf`` on x86-64: rne to int64, NaN or overflow INT64_MIN."""
    r = np.rint(v)
    if not (r >= -9.223372036854775808e18 and r < 9.223372036854775808e18):
        return np.int64(-9223372036854775807 - 1)
    return np.int64(r)


@njit(**CPU_INLINE)
def _sat_u8(i):
    """``packs_epi32`` then ``packus_epi16``: an int32 saturated to [0, 255]."""
    return max(np.int64(0), min(i, np.int64(255)))


@njit(**CPU_INLINE)
def _quantize_row8(xr, m, s, orow, c0, C, nsat, nvec):
    """The 8-bit part of :func:`_quantize_row` from column ``c0`` on, straight
    into the row."""
    zero32 = np.int32(0)
    top32 = np.int32(255)
    # unsigned columns and int32 lanes: the loops vectorise
    for c in range(np.uint64(c0), np.uint64(nsat)):
        i = _cvt32_i32((xr[c] - m) * s)
        i = i if i > zero32 else zero32
        orow[c] = np.uint8(i if i < top32 else top32)
    for c in range(np.uint64(max(c0, nsat)), np.uint64(nvec)):
        orow[c] = np.uint8(_cvt32_i32((xr[c] - m) * s) & np.int32(0xFF))
    for c in range(max(c0, nvec), C):
        orow[c] = np.uint8(_lrintf((xr[c] - m) * s) & 0xFF)


@njit(**CPU_INLINE)
def _quantize_row(xr, m, s, bits, q, orow, c0, C, nsat, nvec, nb):
    """Quantize the float32 row ``xr`` into the value bytes of the packed row
    ``orow``: ``v = (x - m) * s`` in float32, rounded to nearest even, then
    stored as fbgemm's AVX2 prepack stores it.

    8-bit: the columns in whole blocks of 32 saturate the int32 to
    ``[0, 255]`` (``packs``/``packus``); the next whole 8-float vectors keep
    the low byte of the int32 (a byte shuffle); the tail keeps the low byte
    of ``lrintf``'s int64.  4-bit / 2-bit: whole blocks of 32 saturate to
    ``[0, 255]`` then to ``2**bits - 1``; the rest clamp ``lrintf`` (cast
    to int) to ``[0, 2**bits - 1]``.  NaN gives 0 everywhere.  ``q`` is ``C``
    bytes of scratch; ``nsat``/``nvec``: ``C`` rounded down to 32 / 8.  Only
    the columns from ``c0`` (0, or a multiple of 64) are written.
    """
    qmax = np.int64((1 << bits) - 1)
    qmax32 = np.int32(qmax)
    zero32 = np.int32(0)
    per = 8 // bits
    if bits == 8:
        _quantize_row8(xr, m, s, orow, c0, C, nsat, nvec)
        return
    for c in range(np.uint64(c0), np.uint64(nsat)):
        i = _cvt32_i32((xr[c] - m) * s)
        i = i if i > zero32 else zero32
        q[c] = np.uint8(i if i < qmax32 else qmax32)
    for c in range(max(c0, nsat), C):
        i = np.int64(np.int32(_lrintf((xr[c] - m) * s)))  # std::min<int>(long, ...) truncates
        q[c] = np.uint8(max(np.int64(0), min(i, qmax)))
    if bits == 4:
        for k in range(np.uint64(c0 // 2), np.uint64(nb)):  # C is a multiple of per
            orow[k] = q[2 * k] | (q[2 * k + np.uint64(1)] << np.uint8(4))
    else:
        for k in range(c0 // per, nb):
            byte = np.uint8(0)
            for e in range(per):
                byte |= np.uint8(q[k * per + e] << np.uint8(e * bits))
            orow[k] = byte


@njit(**CPU_INLINE)
def _f16_bits_fast(f):
    """:func:`_f16_bits` by the hardware, but for NaN (AVX-512 hosts only)."""
    return _f16_bits_hw(f) if f == f else _f16_bits(f)


@njit(**CPU_INLINE)
def _nbit_params(mn, mx, bits, f16):
    """4-bit / 2-bit row parameters (``FloatOrHalfToFusedNBitRowwiseQuantizedSBHalf``):
    ``(bias, inv, word)``, the bias rounded through float16, the inverse
    scale, and the stored float16 pair (scale low, bias high).

    The bias is rounded to float16 first, the scale
    ``(max - bias16) / (2**bits - 1)`` (1 for a zero range) from it, rounded
    to float16 (0 becomes 1), and only then inverted (an infinite inverse
    makes scale and inverse 1).  ``f16``: :func:`_f16_bits` or, where the
    hardware converts, :func:`_f16_bits_fast`.
    """
    f32 = np.float32
    bias16 = f16(mn)
    qmin = _half_to_f32(bias16)
    rng = mx - qmin
    scale = f32(1.0) if rng == f32(0.0) else rng / f32((1 << bits) - 1)
    scale = _half_to_f32(f16(scale))
    if scale == f32(0.0):
        scale = f32(1.0)
    inv = f32(1.0) / scale
    if inv == _F32_INF or inv == -_F32_INF:
        scale = inv = f32(1.0)
    return qmin, inv, np.uint32(f16(scale) | (bias16 << np.uint32(16)))


@njit(**CPU_INLINE)
def _prepack_row(xr, orow, mn, mx, bits, q, C, nsat, nvec, nb):
    """Scale, bias and values of one packed row from its minimum and maximum.

    8-bit (``FloatOrHalfToFused8BitRowwiseQuantizedSBFloat``):
    ``scale = (max - min) / 255``, ``inv = 255 / (max - min + 1e-8)``,
    bias ``min``, both stored as float32.  4-bit / 2-bit: :func:`_nbit_params`,
    both stored as float16.  Values by :func:`_quantize_row`.
    """
    f32 = np.float32
    W = orow.size
    if bits == 8:
        rng = mx - mn
        inv = f32(255.0) / (rng + f32(1e-8))
        _quantize_row(xr, mn, inv, bits, q, orow, 0, C, nsat, nvec, nb)
        _store32(orow, W - 8, rng / f32(255.0))
        _store32(orow, W - 4, mn)
        return
    qmin, inv, word = _nbit_params(mn, mx, bits, _f16_bits)
    _quantize_row(xr, qmin, inv, bits, q, orow, 0, C, nsat, nvec, nb)
    _store32(orow, W - 4, word)


@njit(**CPU_PARALLEL)
def prepack_rows(x, bits, out):
    """fbgemm's rowwise prepack of the float32 ``(R, C)`` rows ``x`` into the
    packed ``(R, W)`` rows ``out`` (:func:`_prepack_row`), one pass per row:
    the row stays in cache from its minimum (:func:`_row_minmax`) to its last
    byte."""
    R, C = x.shape
    nsat = (C // (4 * VLEN)) * (4 * VLEN)
    nvec = (C // VLEN) * VLEN
    nb = (C * bits + 7) // 8
    for ch in prange((R + _ROWS - 1) // _ROWS):
        q = np.empty(C, dtype=np.uint8)
        for r in range(ch * _ROWS, min(R, (ch + 1) * _ROWS)):
            mn, mx = _row_minmax(x[r], C, nvec)
            _prepack_row(x[r], out[r], mn, mx, bits, q, C, nsat, nvec, nb)


def prepack_rows_fast(x, bits, out):
    """:func:`prepack_rows` on AVX-512 hosts (F and BW, ``C >= 64``), in two passes over
    each chunk of rows, which stays in cache between them.

    The first takes every row's minimum and maximum with
    :func:`~qops.kernels.cpu._avx512.minmax64` (rows independent of each
    other, so their loads and folds overlap); they equal :func:`_row_minmax`'s
    unless a NaN or a zero result is involved, and then :func:`_row_minmax`
    decides.  The second quantizes: 8-bit whole 64-column blocks with
    :func:`~qops.kernels.cpu._avx512.rowq64`, the rest
    as :func:`_quantize_row`.  Chunks of ``_FAST_ROWS`` rows run in parts on
    Python threads (:mod:`qops.kernels._split`) when there are several.
    """
    nch = (x.shape[0] + _FAST_ROWS - 1) // _FAST_ROWS
    if nch > 1:
        if not (contiguous(x, out) and run_compiled(_prepack_parts, _PREPACK_JOB, x, bits, out, nch)):
            run_ranges(_prepack_fast_chunks, nch, x, bits, out, align=1)
    else:
        _prepack_fast_chunks(x, bits, out, 0, nch)


def _prepack_job(p):
    """One part of :func:`prepack_rows_fast` on a pool worker (compiled job):
    the slots as :func:`_prepack_parts` writes them."""
    _prepack_fast_chunks(array2(p, 0, np.float32), p[6], array2(p, 3, np.uint8), p[7], p[8])


_PREPACK_JOB = CompiledJob(_prepack_job)


@njit(**CPU)
def _prepack_parts(x, bits, out, nch, ctl, nworkers, job):
    """:func:`prepack_rows_fast`'s chunks in ``nworkers + 1`` parts on the
    pool (:func:`qops.kernels._split.run_compiled`)."""
    if not claim(ctl):
        return -1
    for w in range(nworkers):
        i = put_array(ctl, put_array(ctl, args_of(ctl, w), x), out)
        ctl[i] = bits
        ctl[i + 1], ctl[i + 2] = part_bounds(nch, nworkers + 1, w + 1, 1)
    seq = launch(ctl, nworkers, job)
    a, b = part_bounds(nch, nworkers + 1, 0, 1)
    _prepack_fast_chunks(x, bits, out, a, b)
    return finish(ctl, nworkers, seq, job)


@njit(**CPU)
def _prepack_fast_chunks(x, bits, out, c0, c1):
    """Chunks ``c0 : c1`` of ``_FAST_ROWS`` rows of :func:`prepack_rows_fast`."""
    R, C = x.shape
    W = out.shape[1]
    nsat = (C // (4 * VLEN)) * (4 * VLEN)
    nvec = (C // VLEN) * VLEN
    nb = (C * bits + 7) // 8
    nblk = C // MINMAX_BLOCK
    flat = x.reshape(-1)
    oflat = out.reshape(-1)
    for ch in range(c0, c1):
        q = np.empty(C, dtype=np.uint8)
        buf = np.empty(3, np.float32)
        mns = np.empty(_PASS_ROWS, np.float32)
        mxs = np.empty(_PASS_ROWS, np.float32)
        for r0 in range(ch * _FAST_ROWS, min(R, (ch + 1) * _FAST_ROWS), _PASS_ROWS):
            r1 = min(R, r0 + _PASS_ROWS)
            for r in range(r0, r1):
                minmax64(flat, r * C, nblk, buf)
                mn, mx, nan = buf[0], buf[1], buf[2] != 0
                for c in range(r * C + nblk * MINMAX_BLOCK, r * C + C):
                    v = flat[c]
                    nan = nan or v != v
                    mn = v if v < mn else mn
                    mx = v if v > mx else mx
                if nan or mn == np.float32(0.0) or mx == np.float32(0.0):
                    mn, mx = _row_minmax(x[r], C, nvec)
                mns[r - r0] = mn
                mxs[r - r0] = mx
            for r in range(r0, r1):
                mn = mns[r - r0]
                mx = mxs[r - r0]
                if bits == 8:
                    rng = mx - mn
                    inv = np.float32(255.0) / (rng + np.float32(1e-8))
                    rowq64(flat, r * C, oflat, r * W, nblk, mn, inv, bits)
                    if nblk * MINMAX_BLOCK < C:
                        _quantize_row8(x[r], mn, inv, out[r], nblk * MINMAX_BLOCK, C, nsat, nvec)
                    _store32(oflat, r * W + W - 8, rng / np.float32(255.0))
                    _store32(oflat, r * W + W - 4, mn)
                else:
                    qmin, inv, word = _nbit_params(mn, mx, bits, _f16_bits_fast)
                    c0 = 0
                    if bits == 4:
                        rowq64(flat, r * C, oflat, r * W, nblk, qmin, inv, bits)
                        c0 = nblk * MINMAX_BLOCK
                    if c0 < C:
                        _quantize_row(x[r], qmin, inv, bits, q, out[r], c0, C, nsat, nvec, nb)
                    _store32(oflat, r * W + W - 4, word)


@njit(**CPU)
def unpack_rows(w, D, bits, out):
    """Dequantize packed rows: ``out[r, j] = fma(q, scale, bias)`` (float32),
    as fbgemm's ``Fused*RowwiseQuantizedSB*ToFloat``."""
    R = w.shape[0]
    per = 8 // bits
    mask = (1 << bits) - 1
    for r in range(R):
        s, b = _row_scale_bias(w, r, D, bits)
        if bits == 8:
            for j in range(D):
                out[r, j] = fma32(np.float32(w[r, j]), s, b)
        else:
            for j in range(D):
                q = (w[r, j // per] >> ((j % per) * bits)) & mask
                out[r, j] = fma32(np.float32(q), s, b)


# --------------------------------------------------------------- bag sums
def bag_sum(w, D, bits, indices, offsets, psw, has_psw, padding_idx, mean, out):
    """Bag sums over packed rows, fbgemm's ``EmbeddingSpMDM`` arithmetic
    (:func:`_bag_sum_chunks`).  Many bags run in parts of consecutive chunks,
    handed to the pool's workers in compiled code (or, the pool busy, as
    Python calls): a ``prange`` over the chunks on the ``workqueue`` layer
    left the second thread mostly idle.

    Validates as it goes, so that the caller need not read the indices
    first: returns 0, or :data:`BAD_OFFSETS` (an offset below the one before
    it, or outside the indices) or :data:`BAD_INDEX` (an index outside
    ``[0, w.shape[0])``), found before a read through it (a chunk's
    offsets before its bags, an index before its row, as fbgemm tests
    them); the output is then incomplete.  That
    ``offsets[0]`` is 0 is the caller's to require."""
    nchunks = (out.shape[0] + _BAGS - 1) // _BAGS
    args = (w, D, bits, indices, offsets, psw, has_psw, padding_idx, mean, out)
    if nchunks >= 8:
        res = np.zeros(1, np.int64)
        if contiguous(w, indices, offsets, psw, out) and run_compiled(_bag_sum_parts, _BAG_SUM_JOB, *args,
                                                                      nchunks, res):
            return int(res[0])
        return max(run_ranges(_bag_sum_chunks, nchunks, *args, align=1))
    return _bag_sum_chunks(*args, 0, nchunks)


#: :func:`bag_sum`'s results: an offset below the one before it or outside
#: the indices; an index outside the table
BAD_OFFSETS = 1
BAD_INDEX = 2


def _bag_sum_job(p):
    """One part of :func:`bag_sum` on a pool worker (compiled job): the slots
    as :func:`_bag_sum_parts` writes them, the part's result into slot 19."""
    p[19] = _bag_sum_chunks(array2(p, 0, np.uint8), p[12], p[13], array1(p, 3, np.int64), array1(p, 5, np.int64),
                            array1(p, 7, np.float32), p[14] != 0, p[15], p[16] != 0, array2(p, 9, np.float32),
                            p[17], p[18])


_BAG_SUM_JOB = CompiledJob(_bag_sum_job)


@njit(**CPU)
def _bag_sum_parts(w, D, bits, indices, offsets, psw, has_psw, padding_idx, mean, out, nchunks, res,
                   ctl, nworkers, job):
    """:func:`bag_sum`'s chunks in ``nworkers + 1`` parts on the pool
    (:func:`qops.kernels._split.run_compiled`); ``res[0]``: the largest of
    the parts' results."""
    if not claim(ctl):
        return -1
    for k in range(nworkers):
        i = put_array(ctl, put_array(ctl, put_array(ctl, args_of(ctl, k), w), indices), offsets)
        i = put_array(ctl, put_array(ctl, i, psw), out)
        ctl[i] = D
        ctl[i + 1] = bits
        ctl[i + 2] = has_psw
        ctl[i + 3] = padding_idx
        ctl[i + 4] = mean
        ctl[i + 5], ctl[i + 6] = part_bounds(nchunks, nworkers + 1, k + 1, 1)
    seq = launch(ctl, nworkers, job)
    a, b = part_bounds(nchunks, nworkers + 1, 0, 1)
    r = _bag_sum_chunks(w, D, bits, indices, offsets, psw, has_psw, padding_idx, mean, out, a, b)
    mask = finish(ctl, nworkers, seq, job)
    for k in range(nworkers):
        r = max(r, ctl[args_of(ctl, k) + 19])
    res[0] = r
    return mask


@njit(**CPU_INLINE)
def _bag_offsets(indices, offsets, b0, b1):
    """0 if ``offsets[b0 : b1 + 1]`` never decreases and stays within the
    indices, else :data:`BAD_OFFSETS`: bags that pass read only their own
    indices, whatever the other bags' offsets hold.  (Each index is tested
    where its row is read.)"""
    if offsets[b0] < 0 or offsets[b1] > indices.size:
        return BAD_OFFSETS
    for b in range(b0, b1):
        if offsets[b + 1] < offsets[b]:
            return BAD_OFFSETS
    return 0


@njit(**CPU)
def _bag8_chunks(w, D, indices, offsets, psw, has_psw, padding_idx, mean, out, c0, c1):
    """:func:`_bag_sum_chunks` for 8-bit rows of whole 64-column blocks:
    each bag through :func:`~qops.kernels.cpu._avx512.bag8rows64` (the row
    loop of fbgemm's JIT kernel), into its output row.  ``w`` has at least
    one row (the intrinsic reads row 0 in place of an index outside)."""
    B = out.shape[0]
    nidx = indices.shape[0]
    oflat = out.reshape(-1)
    for ch in range(c0, c1):
        if _bag_offsets(indices, offsets, ch * _BAGS, min(B, (ch + 1) * _BAGS)):
            return BAD_OFFSETS
        for bag in range(ch * _BAGS, min(B, (ch + 1) * _BAGS)):
            end = offsets[bag + 1]
            if bag8rows64(w, w.shape[1], indices, offsets[bag], end, nidx, psw, has_psw, padding_idx,
                          oflat, bag * D, D // 64, PREFETCH):
                return BAD_INDEX
            if mean:
                n = 0
                for p in range(offsets[bag], end):
                    n += indices[p] != padding_idx
                if n > 0:
                    o = out[bag]
                    fn = np.float32(n)
                    for j in range(D):
                        o[j] = o[j] / fn
    return 0


@njit(**CPU)
def _bag_sum_chunks(w, D, bits, indices, offsets, psw, has_psw, padding_idx, mean, out, c0, c1):
    """Chunks ``c0:c1`` (``_BAGS`` bags each) of the bag sums, fbgemm's
    ``EmbeddingSpMDM`` arithmetic.

    Bag ``b`` sums rows ``indices[offsets[b]:offsets[b + 1]]`` (int64;
    ``offsets`` has ``B + 1`` entries) skipping ``padding_idx`` (``-1``:
    none).  Per row, in index order: ``scale' = psw * scale``,
    ``bias' = psw * bias`` (float32; without ``has_psw`` the stored values),
    then ``acc[j] = fma(scale', q[j], acc[j] + bias')`` from ``acc = 0``.
    ``mean`` divides each sum by the number of rows taken (float32 division;
    empty bags stay 0).  8-bit rows of whole 64-column blocks run each bag
    through :func:`~qops.kernels.cpu._avx512.bag8rows64` (the row loop of
    fbgemm's JIT kernel); the others gather ``_GROUP`` rows at a time and
    sum them by :func:`_add_group`.

    Returns 0, or :data:`BAD_OFFSETS` or :data:`BAD_INDEX` for the first
    bad chunk of offsets (:func:`_bag_offsets`) or index found, before any
    read through it (the bags before it summed, the rest not).
    """
    if bits == 8 and D % 64 == 0 and w.shape[0] > 0:
        return _bag8_chunks(w, D, indices, offsets, psw, has_psw, padding_idx, mean, out, c0, c1)
    B = out.shape[0]
    nidx = indices.shape[0]
    per = 8 // bits
    nb = D // per  # bytes of values per row (D is a multiple of per)
    last_col = np.int64(w.shape[1] - 1)
    # 8-bit rows accumulate into acc; 4-bit into lo / hi (the low and high
    # nibbles, each stream contiguous so that the loops vectorise); 2-bit
    # into acc deinterleaved (value m*4 + k at acc[k*nb + m]).  Rows are
    # taken four at a time (rb/sb/bb) in one pass over the columns, in index
    # order: the operations per element are unchanged.
    acc = np.empty(D, dtype=np.float32)
    lo = np.empty(nb, dtype=np.float32)
    hi = np.empty(nb, dtype=np.float32)
    rb = np.empty(_GROUP, dtype=np.int64)
    sb = np.empty(_GROUP, dtype=np.float32)
    bb = np.empty(_GROUP, dtype=np.float32)
    nrows = np.uint64(w.shape[0])
    for ch in range(c0, c1):
        if _bag_offsets(indices, offsets, ch * _BAGS, min(B, (ch + 1) * _BAGS)):
            return BAD_OFFSETS
        for bag in range(ch * _BAGS, min(B, (ch + 1) * _BAGS)):
            for j in range(D):
                acc[j] = np.float32(0.0)
            for m in range(nb):
                lo[m] = np.float32(0.0)
                hi[m] = np.float32(0.0)
            n = 0
            k = 0
            end = offsets[bag + 1]
            for p in range(offsets[bag], end):
                if p + PREFETCH < nidx:  # both ends of the row: it may span two cache lines
                    ahead = indices[p + PREFETCH]
                    _prefetch(w, ahead, np.int64(0))
                    _prefetch(w, ahead, last_col)
                r = indices[p]
                if np.uint64(r) >= nrows:  # (a negative index wraps to a large one)
                    return BAD_INDEX
                if r == padding_idx:
                    continue
                n += 1
                s, b = _row_scale_bias(w, r, D, bits)
                if has_psw:
                    s = psw[p] * s
                    b = psw[p] * b
                rb[k] = r
                sb[k] = s
                bb[k] = b
                k += 1
                if k == _GROUP:
                    _add_group(w, rb, sb, bb, k, bits, D, nb, acc, lo, hi)
                    k = 0
            _add_group(w, rb, sb, bb, k, bits, D, nb, acc, lo, hi)
            o = out[bag]
            if bits == 8:
                for j in range(D):
                    o[j] = acc[j]
            elif bits == 4:
                for m in range(nb):
                    o[2 * m] = lo[m]
                    o[2 * m + 1] = hi[m]
            else:
                for e in range(per):
                    for m in range(nb):
                        o[m * per + e] = acc[e * nb + m]
            if mean and n > 0:
                fn = np.float32(n)
                for j in range(D):
                    o[j] = o[j] / fn
    return 0


@njit(**CPU_INLINE)
def _add_group(w, rb, sb, bb, n, bits, D, nb, acc, lo, hi):
    """:func:`_add_row` for rows ``rb[:n]`` in order: 8-bit and 4-bit whole
    64-column blocks by :func:`~qops.kernels.cpu._avx512.bagacc64` (the sums
    in registers across the rows), the other columns four rows a pass."""
    c0 = 0
    if bits == 8 or bits == 4:
        nblk = D // 64
        bagacc64(w, w.shape[1], rb, sb, bb, n, acc, lo, hi, nblk, bits)
        c0 = nblk * 64
    if c0 == D:
        return
    m0 = c0 * bits // 8
    i = 0
    while i + 4 <= n:
        _add_rows4(w, rb[i:i + 4], sb[i:i + 4], bb[i:i + 4], bits, nb, acc, lo, hi, m0)
        i += 4
    while i < n:
        _add_row(w, rb[i], sb[i], bb[i], bits, nb, acc, lo, hi, m0)
        i += 1


@njit(**CPU_INLINE)
def _add_row(w, r, s, b, bits, nb, acc, lo, hi, m0):
    """``acc = fma(s, q, acc + b)`` for the values of row ``r`` from value
    byte ``m0`` on (0, or a whole 64-column block for 8-bit and 4-bit)."""
    row = w[r]
    if bits == 8:
        for j in range(m0, nb):
            acc[j] = fma32(s, np.float32(row[j]), acc[j] + b)
    elif bits == 4:
        for m in range(m0, nb):
            v = row[m]
            lo[m] = fma32(s, np.float32(v & np.uint8(15)), lo[m] + b)
            hi[m] = fma32(s, np.float32(v >> np.uint8(4)), hi[m] + b)
    else:
        per = 8 // bits
        mk = np.uint8((1 << bits) - 1)
        for e in range(per):
            sh = np.uint8(e * bits)
            base = e * nb
            for m in range(nb):
                acc[base + m] = fma32(s, np.float32((row[m] >> sh) & mk), acc[base + m] + b)


@njit(**CPU_INLINE)
def _add_rows4(w, rb, sb, bb, bits, nb, acc, lo, hi, m0):
    """:func:`_add_row` for rows ``rb[0..3]`` in order, in one pass."""
    if bits == 8 or bits == 4:
        w0 = w[rb[0]]
        w1 = w[rb[1]]
        w2 = w[rb[2]]
        w3 = w[rb[3]]
        s0, s1, s2, s3 = sb[0], sb[1], sb[2], sb[3]
        b0, b1, b2, b3 = bb[0], bb[1], bb[2], bb[3]
        if bits == 8:
            for j in range(m0, nb):
                a = fma32(s0, np.float32(w0[j]), acc[j] + b0)
                a = fma32(s1, np.float32(w1[j]), a + b1)
                a = fma32(s2, np.float32(w2[j]), a + b2)
                acc[j] = fma32(s3, np.float32(w3[j]), a + b3)
        else:
            m4 = np.uint8(15)
            f4 = np.uint8(4)
            for m in range(m0, nb):
                a = fma32(s0, np.float32(w0[m] & m4), lo[m] + b0)
                a = fma32(s1, np.float32(w1[m] & m4), a + b1)
                a = fma32(s2, np.float32(w2[m] & m4), a + b2)
                lo[m] = fma32(s3, np.float32(w3[m] & m4), a + b3)
                a = fma32(s0, np.float32(w0[m] >> f4), hi[m] + b0)
                a = fma32(s1, np.float32(w1[m] >> f4), a + b1)
                a = fma32(s2, np.float32(w2[m] >> f4), a + b2)
                hi[m] = fma32(s3, np.float32(w3[m] >> f4), a + b3)
    else:
        for i in range(4):
            _add_row(w, rb[i], sb[i], bb[i], bits, nb, acc, lo, hi, m0)


@njit(**CPU_INLINE)
def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(**CPU)
def bag_sum_exact(w, D, bits, indices, offsets, psw, has_psw, padding_idx, mean, out, hi, lo):
    """The ``reference`` bag sums: ``sum psw * (scale * q + bias)`` (the mean
    divides by the count) in double-double arithmetic (error-free products
    and sums, about 106 bits) rounded once to float32.

    ``hi`` and ``lo`` are float64 ``(B, D)`` work arrays.
    """
    B = out.shape[0]
    per = 8 // bits
    mask = (1 << bits) - 1
    for bag in range(B):
        h = hi[bag]
        e = lo[bag]
        for j in range(D):
            h[j] = 0.0
            e[j] = 0.0
        n = 0
        for p in range(offsets[bag], offsets[bag + 1]):
            r = indices[p]
            if r == padding_idx:
                continue
            n += 1
            s32, b32 = _row_scale_bias(w, r, D, bits)
            s = np.float64(s32)
            b = np.float64(b32)
            wt = np.float64(psw[p]) if has_psw else 1.0
            for j in range(D):
                if bits == 8:
                    q = np.float64(w[r, j])
                else:
                    q = np.float64((w[r, j // per] >> ((j % per) * bits)) & mask)
                t1 = s * q  # exact: 24 x 8 bits
                v, ve = _two_sum(t1, b)  # v + ve = scale*q + bias exactly
                p1 = v * wt
                p1e = fma64(v, wt, -p1)
                p2 = ve * wt  # rounding here is below 2**-100 relative
                # (h, e) += (p1, p1e + p2)
                sh, se = _two_sum(h[j], p1)
                se += e[j] + p1e + p2
                h[j], e[j] = _two_sum(sh, se)
        for j in range(D):
            if mean and n > 0:
                fn = np.float64(n)
                q1 = h[j] / fn
                rem = fma64(-q1, fn, h[j]) + e[j]
                q2 = rem / fn
                a, c = _two_sum(q1, q2)
                out[bag, j] = round_dd_to_f32(a, c)
            else:
                out[bag, j] = round_dd_to_f32(h[j], e[j])
