"""CPU kernels: quantize, dequantize, requantize, fake-quantize, sub-byte packing.

Layout contract (the API layer canonicalises to it): every array is flat and
C-contiguous.  A tensor of ``rows * inner`` elements is viewed as ``rows``
rows of ``inner`` elements; row ``r`` uses the quantization parameters of
channel ``r % nch`` (``nch == 1`` for per-tensor).  Parameter arrays have one
entry per channel.
"""

import numpy as np
from numba import njit, prange

from .._options import CHUNK, CPU, CPU_PARALLEL, PARALLEL_MIN
from ..modes import (
    DQ_TORCH_TENSOR,
    Q_FMA,
    Q_TWO,
    RQ_REF,
    RQ_TFLITE,
    RQ_TFLITE_SINGLE,
    RQ_TWO_STEP,
)
from ._llvm import fma32
from .scalar import (
    clamp_int,
    dequantize_one,
    fake_quantize_one,
    quantize_one,
    rescale_exact,
    tflite_requant,
    tflite_requant_single,
    wrap32,
)

__all__ = [
    "quantize",
    "dequantize",
    "requantize",
    "fake_quantize",
    "pack_subbyte",
    "unpack_subbyte",
]


# --------------------------------------------------------------------------
# spans: one contiguous run of elements sharing one channel's parameters
# --------------------------------------------------------------------------


@njit(**CPU)
def _quantize_span(x, out, lo, hi, mode, s, inv, zpf, zpi, qmin, qmax, nanq):
    if mode == Q_FMA:
        # the hot path, written so that LLVM vectorises it (vfmadd + clamps)
        fmin = np.float32(qmin)
        fmax = np.float32(qmax)
        # unsigned indices: no negative-index wraparound, so stores vectorise
        for i in range(np.uint64(lo), np.uint64(hi)):
            v = fma32(x[i], inv, zpf)
            v = v if v <= fmax else fmax  # NaN -> qmax
            v = v if v >= fmin else fmin
            out[i] = np.int32(np.rint(v))
    elif mode == Q_TWO:
        # torch per-channel / qint32: two float32 roundings, clamp in float64
        dmin = np.float64(qmin)
        dmax = np.float64(qmax)
        dnan = np.float64(nanq)
        for i in range(np.uint64(lo), np.uint64(hi)):
            v = np.float64(x[i] * inv + zpf)
            v = dnan if v != v else (v if v <= dmax else dmax)
            v = v if v >= dmin else dmin
            out[i] = np.int64(np.rint(v))
    else:
        for i in range(lo, hi):
            out[i] = quantize_one(mode, x[i], s, inv, zpf, zpi, qmin, qmax, nanq)


@njit(**CPU)
def _dequantize_span(q, out, lo, hi, mode, s, s64, zpf, zpi):
    if mode == DQ_TORCH_TENSOR and q.itemsize == 1:
        # 8-bit q - zp never wraps: a plain vectorisable loop
        z = np.int32(zpi)
        for i in range(np.uint64(lo), np.uint64(hi)):
            out[i] = np.float32(np.int32(q[i]) - z) * s
    else:
        for i in range(lo, hi):
            out[i] = dequantize_one(mode, q[i], s, s64, zpf, zpi)


@njit(**CPU)
def _requantize_span(
    q, out, lo, hi, mode, dq_mode, q_mode,
    s1, s1_64, zpf1, zpi1, mult, shift,
    s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq,
):
    if mode == RQ_TWO_STEP:
        for i in range(lo, hi):
            f = dequantize_one(dq_mode, q[i], s1, s1_64, zpf1, zpi1)
            out[i] = quantize_one(q_mode, f, s2, inv2, zpf2, zpi2, qmin, qmax, nanq)
    elif mode == RQ_TFLITE:
        for i in range(lo, hi):
            r = tflite_requant(wrap32(np.int64(q[i]) - zpi1), mult, shift)
            out[i] = clamp_int(wrap32(r + zpi2), qmin, qmax)  # int32 + zp wraps
    elif mode == RQ_TFLITE_SINGLE:
        for i in range(lo, hi):
            r = tflite_requant_single(wrap32(np.int64(q[i]) - zpi1), mult, shift)
            out[i] = clamp_int(wrap32(r + zpi2), qmin, qmax)  # int32 + zp wraps
    else:  # RQ_REF: mult = 24-bit mantissa of s1, shift = exponent difference
        for i in range(lo, hi):
            r = rescale_exact(np.int64(q[i]) - zpi1, mult, m2, shift)
            out[i] = clamp_int(r + zpi2, qmin, qmax)


@njit(**CPU)
def _fake_quantize_span(x, out, mask, lo, hi, variant, s, inv, zp, qmin, qmax):
    for i in range(lo, hi):
        out[i], mask[i] = fake_quantize_one(variant, x[i], s, inv, zp, qmin, qmax)


# --------------------------------------------------------------------------
# drivers: rows of ``inner`` elements, cut into chunks of CHUNK elements
# --------------------------------------------------------------------------


@njit(**CPU_PARALLEL)
def _quantize_rows(x, out, inner, nch, mode, s, inv, zpf, zpi, qmin, qmax, nanq):
    rows = x.size // inner
    per_row = (inner + CHUNK - 1) // CHUNK
    for t in prange(rows * per_row):
        r = t // per_row
        lo = r * inner + (t - r * per_row) * CHUNK
        hi = min(lo + CHUNK, (r + 1) * inner)
        c = r % nch
        _quantize_span(x, out, lo, hi, mode, s[c], inv[c], zpf[c], zpi[c], qmin, qmax, nanq)


@njit(**CPU)
def _quantize_rows_serial(x, out, inner, nch, mode, s, inv, zpf, zpi, qmin, qmax, nanq):
    for r in range(x.size // inner):
        c = r % nch
        _quantize_span(x, out, r * inner, (r + 1) * inner, mode,
                       s[c], inv[c], zpf[c], zpi[c], qmin, qmax, nanq)


@njit(**CPU_PARALLEL)
def _dequantize_rows(q, out, inner, nch, mode, s, s64, zpf, zpi):
    rows = q.size // inner
    per_row = (inner + CHUNK - 1) // CHUNK
    for t in prange(rows * per_row):
        r = t // per_row
        lo = r * inner + (t - r * per_row) * CHUNK
        hi = min(lo + CHUNK, (r + 1) * inner)
        c = r % nch
        _dequantize_span(q, out, lo, hi, mode, s[c], s64[c], zpf[c], zpi[c])


@njit(**CPU)
def _dequantize_rows_serial(q, out, inner, nch, mode, s, s64, zpf, zpi):
    for r in range(q.size // inner):
        c = r % nch
        _dequantize_span(q, out, r * inner, (r + 1) * inner, mode, s[c], s64[c], zpf[c], zpi[c])


@njit(**CPU_PARALLEL)
def _requantize_rows(q, out, inner, nch, mode, dq_mode, q_mode, s1, s1_64, zpf1, zpi1,
                     mult, shift, s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq):
    rows = q.size // inner
    per_row = (inner + CHUNK - 1) // CHUNK
    for t in prange(rows * per_row):
        r = t // per_row
        lo = r * inner + (t - r * per_row) * CHUNK
        hi = min(lo + CHUNK, (r + 1) * inner)
        c = r % nch
        _requantize_span(q, out, lo, hi, mode, dq_mode, q_mode, s1[c], s1_64[c], zpf1[c],
                         zpi1[c], mult[c], shift[c], s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq)


@njit(**CPU)
def _requantize_rows_serial(q, out, inner, nch, mode, dq_mode, q_mode, s1, s1_64, zpf1, zpi1,
                            mult, shift, s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq):
    for r in range(q.size // inner):
        c = r % nch
        _requantize_span(q, out, r * inner, (r + 1) * inner, mode, dq_mode, q_mode, s1[c],
                         s1_64[c], zpf1[c], zpi1[c], mult[c], shift[c], s2, inv2, zpf2, zpi2, m2,
                         qmin, qmax, nanq)


@njit(**CPU_PARALLEL)
def _fake_quantize_rows(x, out, mask, inner, nch, variant, s, inv, zp, qmin, qmax):
    rows = x.size // inner
    per_row = (inner + CHUNK - 1) // CHUNK
    for t in prange(rows * per_row):
        r = t // per_row
        lo = r * inner + (t - r * per_row) * CHUNK
        hi = min(lo + CHUNK, (r + 1) * inner)
        c = r % nch
        _fake_quantize_span(x, out, mask, lo, hi, variant, s[c], inv[c], zp[c], qmin, qmax)


@njit(**CPU)
def _fake_quantize_rows_serial(x, out, mask, inner, nch, variant, s, inv, zp, qmin, qmax):
    for r in range(x.size // inner):
        c = r % nch
        _fake_quantize_span(x, out, mask, r * inner, (r + 1) * inner, variant,
                            s[c], inv[c], zp[c], qmin, qmax)


@njit(**CPU_PARALLEL)
def _gather_rows(q, out, inner, nch, table, offset):
    """``out[i] = table[channel, q[i] - offset]`` with 256-entry rows."""
    rows = q.size // inner
    per_row = (inner + CHUNK - 1) // CHUNK
    for t in prange(rows * per_row):
        r = t // per_row
        lo = r * inner + (t - r * per_row) * CHUNK
        hi = min(lo + CHUNK, (r + 1) * inner)
        base = (r % nch) * 256 - offset
        for i in range(np.uint64(lo), np.uint64(hi)):
            out[i] = table[base + np.int64(q[i])]


def _byte_table(q, nch, out_dtype):
    """Every possible input byte, ``nch`` rows of 256, and the table to fill."""
    offset = -128 if q.dtype == np.int8 else 0
    levels = np.arange(offset, offset + 256).astype(q.dtype)
    return np.tile(levels, nch), np.empty(256 * nch, out_dtype), offset


def _use_table(q, nch):
    # 8-bit input with many more elements than table entries: compute each of
    # the 256 * nch possible results once (with the same recipe), then gather.
    return q.itemsize == 1 and q.size >= PARALLEL_MIN and q.size >= 64 * 256 * nch


# --------------------------------------------------------------------------
# public kernels (same names and argument order as kernels/cuda/quantize.py)
# --------------------------------------------------------------------------


def quantize(x, out, inner, mode, s, inv, zpf, zpi, qmin, qmax, nanq):
    """Quantize flat float32 ``x`` into the flat integer array ``out``.

    ``s``/``inv``/``zpf`` are float32 arrays, ``zpi`` int64, one entry per
    channel; ``mode`` is a ``Q_*`` code from ``kernels.modes``.
    """
    f = _quantize_rows if x.size >= PARALLEL_MIN else _quantize_rows_serial
    f(x, out, inner, s.size, mode, s, inv, zpf, zpi, qmin, qmax, nanq)


def dequantize(q, out, inner, mode, s, s64, zpf, zpi):
    """Dequantize flat integers ``q`` into the flat float32 array ``out``."""
    nch = s.size
    if _use_table(q, nch) and not (mode == DQ_TORCH_TENSOR and nch == 1):
        levels, table, offset = _byte_table(q, nch, out.dtype)
        _dequantize_rows_serial(levels, table, 256, nch, mode, s, s64, zpf, zpi)
        _gather_rows(q, out, inner, nch, table, offset)
        return
    f = _dequantize_rows if q.size >= PARALLEL_MIN else _dequantize_rows_serial
    f(q, out, inner, nch, mode, s, s64, zpf, zpi)


def requantize(q, out, inner, mode, dq_mode, q_mode, s1, s1_64, zpf1, zpi1, mult, shift,
               s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq):
    """Requantize flat integers ``q`` (per-channel parameters ``*1``, ``mult``,
    ``shift``) to per-tensor output parameters ``*2`` in ``out``.

    ``mult``/``shift`` are TFLite's fixed-point multipliers for the tflite
    modes; for ``RQ_REF`` they are the 24-bit mantissa of each input scale and
    the exponent difference to the output scale, whose mantissa is ``m2``.
    """
    nch = s1.size
    if _use_table(q, nch):
        levels, table, offset = _byte_table(q, nch, out.dtype)
        _requantize_rows_serial(levels, table, 256, nch, mode, dq_mode, q_mode, s1, s1_64, zpf1,
                                zpi1, mult, shift, s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq)
        _gather_rows(q, out, inner, nch, table, offset)
        return
    f = _requantize_rows if q.size >= PARALLEL_MIN else _requantize_rows_serial
    f(q, out, inner, nch, mode, dq_mode, q_mode, s1, s1_64, zpf1, zpi1, mult, shift,
      s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq)


def fake_quantize(x, out, mask, inner, variant, s, inv, zp, qmin, qmax):
    """torch's fake quantization forward plus its straight-through mask.

    ``variant`` is an ``FQ_*`` code; ``zp`` is float64 (integer or float32
    zero points).
    """
    f = _fake_quantize_rows if x.size >= PARALLEL_MIN else _fake_quantize_rows_serial
    f(x, out, mask, inner, s.size, variant, s, inv, zp, qmin, qmax)


@njit(**CPU)
def pack_subbyte(vals, bits, out):
    """Pack ``vals`` (one value per byte) ``8 // bits`` to a byte, first value
    in the low bits, as torch stores quint4x2 / quint2x4."""
    per = 8 // bits
    n = vals.size
    for j in range(out.size):
        b = 0
        for k in range(per):
            i = j * per + k
            if i < n:
                b |= np.int64(vals[i]) << (k * bits)
        out[j] = b


@njit(**CPU)
def unpack_subbyte(packed, bits, out):
    """Inverse of :func:`pack_subbyte`; fills ``out.size`` values."""
    per = 8 // bits
    m = (1 << bits) - 1
    for i in range(out.size):
        out[i] = (np.int64(packed[i // per]) >> ((i % per) * bits)) & m
