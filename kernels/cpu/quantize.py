"""CPU kernels: quantize, dequantize, requantize, fake-quantize, sub-byte packing.

Layout contract (the API layer canonicalises to it): every array is flat and
C-contiguous.  A tensor of ``rows * inner`` elements is viewed as ``rows``
rows of ``inner`` elements; row ``r`` uses the quantization parameters of
channel ``r % nch`` (``nch == 1`` for per-tensor).  Parameter arrays have one
entry per channel.
"""

import numpy as np
from numba import njit

from .._options import BYTE_TABLE_MIN, CHUNK, CPU, PARALLEL_MIN
from .._split import (CompiledJob, args_of, array1, claim, contiguous, finish, launch, line_start,
                      part_bounds, put_array, run_compiled, run_ranges)
from ..modes import (
    DQ_TORCH_TENSOR,
    Q_FMA,
    Q_ONNX,
    Q_TFLITE,
    Q_TWO,
    RQ_TFLITE,
    RQ_TFLITE_SINGLE,
    RQ_TWO_STEP,
)
from ._avx512 import vbmi_available
from ._llvm import fma32
from .activation import lut_apply
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
        # the hot path, written so that LLVM vectorises it (vfmadd + clamps).
        # Strict comparisons: "v < fmax ? v : fmax" is vminps's own rule
        # (NaN -> fmax), one instruction where "<=" took a compare and a
        # blend; a value equal to a bound is the bound either way (128K
        # values: 11.6 -> 8.8 us).
        fmin = np.float32(qmin)
        fmax = np.float32(qmax)
        # unsigned indices: no negative-index wraparound, so stores vectorise
        for i in range(np.uint64(lo), np.uint64(hi)):
            v = fma32(x[i], inv, zpf)
            v = v if v < fmax else fmax  # NaN -> qmax
            v = v if v > fmin else fmin
            out[i] = np.int32(np.rint(v))
    elif mode == Q_TWO:
        # torch per-channel / qint32: two float32 roundings, clamp in float64
        dmin = np.float64(qmin)
        dmax = np.float64(qmax)
        dnan = np.float64(nanq)
        for i in range(np.uint64(lo), np.uint64(hi)):
            v = np.float64(x[i] * inv + zpf)
            v = dnan if v != v else (v if v < dmax else dmax)
            v = v if v > dmin else dmin
            out[i] = np.int64(np.rint(v))
    elif mode == Q_ONNX:
        # onnxruntime: rne(fl(x / s)), then + zp, saturating; NaN -> qmin
        dmin = np.float64(qmin - zpi)
        dmax = np.float64(qmax - zpi)
        for i in range(np.uint64(lo), np.uint64(hi)):
            v = np.float64(x[i] / s)
            v = dmin if v != v else (v if v < dmax else dmax)
            v = v if v > dmin else dmin
            out[i] = np.int64(np.rint(v)) + zpi
    elif mode == Q_TFLITE:
        # tflite: round half away from zero of fl(x / s), then + zp; NaN -> qmin
        dmin = np.float64(qmin - zpi)
        dmax = np.float64(qmax - zpi)
        for i in range(np.uint64(lo), np.uint64(hi)):
            v = np.float64(x[i] / s)
            a = np.floor(np.abs(v) + 0.5)
            v = dmin if v != v else (a if v >= 0 else -a)
            v = v if v < dmax else dmax
            v = v if v > dmin else dmin
            out[i] = np.int64(v) + zpi
    else:
        for i in range(lo, hi):
            out[i] = quantize_one(mode, x[i], s, inv, zpf, zpi, qmin, qmax, nanq)


@njit(**CPU)
def _dequantize_span(q, out, lo, hi, mode, s, s64, zpf, zpi):
    if mode == DQ_TORCH_TENSOR and q.itemsize == 1:
        # 8-bit q - zp is exact in float32: a loop in float32 lanes
        zf = np.float32(zpi)
        m = line_start(out, lo, hi)  # whole-line stores from m: 128K values 7.7 -> 6.6 us
        for i in range(np.uint64(lo), np.uint64(m)):
            out[i] = (np.float32(q[i]) - zf) * s
        for i in range(np.uint64(m), np.uint64(hi)):
            out[i] = (np.float32(q[i]) - zf) * s
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
# ranges: elements lo..hi of the flat array, split at row boundaries so that
# each span shares one channel's parameters; short rows (channels on one of
# the last axes) go element by element instead
# --------------------------------------------------------------------------

_SHORT_ROW = 64


@njit(**CPU)
def _quantize_range(x, out, lo, hi, inner, nch, mode, s, inv, zpf, zpi, qmin, qmax, nanq):
    if inner == 1 and mode == Q_TWO and lo % nch == 0:
        # channels on the last axis (torch per-channel): vectorise across them
        dmin = np.float64(qmin)
        dmax = np.float64(qmax)
        dnan = np.float64(nanq)
        i = lo
        while i < hi:
            m = min(nch, hi - i)
            for c in range(np.uint64(0), np.uint64(m)):
                v = np.float64(x[i + c] * inv[c] + zpf[c])
                v = dnan if v != v else (v if v < dmax else dmax)
                v = v if v > dmin else dmin
                out[i + c] = np.int64(np.rint(v))
            i += m
        return
    if inner < _SHORT_ROW and nch > 1:
        r = lo // inner
        k = lo - r * inner
        c = r % nch
        for i in range(lo, hi):
            out[i] = quantize_one(mode, x[i], s[c], inv[c], zpf[c], zpi[c], qmin, qmax, nanq)
            k += 1
            if k == inner:  # next row, next channel (no division per element)
                k = 0
                c = c + 1 if c + 1 < nch else 0
        return
    i = lo
    while i < hi:
        r = i // inner
        end = min(hi, (r + 1) * inner)
        c = r % nch
        _quantize_span(x, out, i, end, mode, s[c], inv[c], zpf[c], zpi[c], qmin, qmax, nanq)
        i = end


@njit(**CPU)
def _dequantize_range(q, out, lo, hi, inner, nch, mode, s, s64, zpf, zpi):
    if inner < _SHORT_ROW and nch > 1:
        r = lo // inner
        k = lo - r * inner
        c = r % nch
        for i in range(lo, hi):
            out[i] = dequantize_one(mode, q[i], s[c], s64[c], zpf[c], zpi[c])
            k += 1
            if k == inner:
                k = 0
                c = c + 1 if c + 1 < nch else 0
        return
    i = lo
    while i < hi:
        r = i // inner
        end = min(hi, (r + 1) * inner)
        c = r % nch
        _dequantize_span(q, out, i, end, mode, s[c], s64[c], zpf[c], zpi[c])
        i = end


@njit(**CPU)
def _requantize_range(q, out, lo, hi, inner, nch, mode, dq_mode, q_mode, s1, s1_64, zpf1, zpi1,
                      mult, shift, s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq):
    i = lo
    while i < hi:
        r = i // inner
        end = min(hi, (r + 1) * inner)
        c = r % nch
        _requantize_span(q, out, i, end, mode, dq_mode, q_mode, s1[c], s1_64[c], zpf1[c],
                         zpi1[c], mult[c], shift[c], s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq)
        i = end


@njit(**CPU)
def _fake_quantize_range(x, out, mask, lo, hi, inner, nch, variant, s, inv, zp, qmin, qmax):
    i = lo
    while i < hi:
        r = i // inner
        end = min(hi, (r + 1) * inner)
        c = r % nch
        _fake_quantize_span(x, out, mask, i, end, variant, s[c], inv[c], zp[c], qmin, qmax)
        i = end


@njit(**CPU)
def _gather_range(q, out, lo, hi, inner, nch, table, offset):
    """``out[i] = table[channel * 256 + q[i] - offset]``."""
    if inner < _SHORT_ROW and nch > 1:
        r = lo // inner
        k = lo - r * inner
        base = (r % nch) * 256 - offset
        last = (nch - 1) * 256 - offset
        for i in range(lo, hi):
            out[i] = table[base + np.int64(q[i])]
            k += 1
            if k == inner:
                k = 0
                base = base + 256 if base < last else -offset
        return
    i = lo
    while i < hi:
        r = i // inner
        end = min(hi, (r + 1) * inner)
        base = (r % nch) * 256 - offset
        for k in range(np.uint64(i), np.uint64(end)):
            out[k] = table[base + np.int64(q[k])]
        i = end


# --------------------------------------------------------------------------
# parallel drivers: chunks of CHUNK elements of the flat array
# --------------------------------------------------------------------------


# Parallel drivers: chunks of CHUNK elements (per-channel quantization with
# short rows: whole periods of channels), consecutive chunks in parts on
# Python threads (:mod:`qops.kernels._split`; before, a ``prange`` on the
# ``workqueue`` layer, which cost 50-65 us a launch).  Each element's result
# does not depend on the split.
def _in_parts(fn, n, step, *args):
    run_ranges(fn, (n + step - 1) // step, *args, step, align=1)


def _quantize_par(x, out, inner, nch, mode, s, inv, zpf, zpi, qmin, qmax, nanq):
    step = max(1, CHUNK // (nch * inner)) * nch * inner if inner < _SHORT_ROW else CHUNK
    _in_parts(_quantize_units, x.size, step, x, out, inner, nch, mode, s, inv, zpf, zpi, qmin, qmax,
              nanq)


@njit(**CPU)
def _quantize_units(x, out, inner, nch, mode, s, inv, zpf, zpi, qmin, qmax, nanq, step, u0, u1):
    _quantize_range(x, out, u0 * step, min(x.size, u1 * step), inner, nch, mode, s, inv, zpf, zpi,
                    qmin, qmax, nanq)


def _dequantize_par(q, out, inner, nch, mode, s, s64, zpf, zpi):
    _in_parts(_dequantize_units, q.size, CHUNK, q, out, inner, nch, mode, s, s64, zpf, zpi)


@njit(**CPU)
def _dequantize_units(q, out, inner, nch, mode, s, s64, zpf, zpi, step, u0, u1):
    _dequantize_range(q, out, u0 * step, min(q.size, u1 * step), inner, nch, mode, s, s64, zpf, zpi)


def _requantize_par(q, out, inner, nch, mode, dq_mode, q_mode, s1, s1_64, zpf1, zpi1,
                    mult, shift, s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq):
    _in_parts(_requantize_units, q.size, CHUNK, q, out, inner, nch, mode, dq_mode, q_mode, s1, s1_64,
              zpf1, zpi1, mult, shift, s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq)


@njit(**CPU)
def _requantize_units(q, out, inner, nch, mode, dq_mode, q_mode, s1, s1_64, zpf1, zpi1,
                      mult, shift, s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq, step, u0, u1):
    _requantize_range(q, out, u0 * step, min(q.size, u1 * step), inner, nch, mode,
                      dq_mode, q_mode, s1, s1_64, zpf1, zpi1, mult, shift,
                      s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq)


def _fake_quantize_par(x, out, mask, inner, nch, variant, s, inv, zp, qmin, qmax):
    _in_parts(_fake_quantize_units, x.size, CHUNK, x, out, mask, inner, nch, variant, s, inv, zp,
              qmin, qmax)


@njit(**CPU)
def _fake_quantize_units(x, out, mask, inner, nch, variant, s, inv, zp, qmin, qmax, step, u0, u1):
    _fake_quantize_range(x, out, mask, u0 * step, min(x.size, u1 * step), inner, nch,
                         variant, s, inv, zp, qmin, qmax)


def _gather_par(q, out, inner, nch, table, offset):
    _in_parts(_gather_units, q.size, CHUNK, q, out, inner, nch, table, offset)


@njit(**CPU)
def _gather_units(q, out, inner, nch, table, offset, step, u0, u1):
    _gather_range(q, out, u0 * step, min(q.size, u1 * step), inner, nch, table, offset)


# Compiled jobs (:func:`qops.kernels._split.run_compiled`): the per-tensor and
# per-channel quantize and dequantize loops in parts without the GIL.  The
# element type codes: 0 uint8, 1 int8, 2 int32.
_KIND = {np.dtype(np.uint8): 0, np.dtype(np.int8): 1, np.dtype(np.int32): 2}


def _quantize_job(p):
    """One part of :func:`quantize` on a pool worker; the slots as
    :func:`_quantize_parts` writes them."""
    x, s, inv, zpf = array1(p, 0, np.float32), array1(p, 7, np.float32), array1(p, 9, np.float32), \
        array1(p, 11, np.float32)
    zpi = array1(p, 13, np.int64)
    lo, hi = p[19], p[20]
    if p[21] == 0:
        _quantize_range(x, array1(p, 2, np.uint8), lo, hi, p[4], p[5], p[6], s, inv, zpf, zpi, p[15],
                        p[16], p[17])
    elif p[21] == 1:
        _quantize_range(x, array1(p, 2, np.int8), lo, hi, p[4], p[5], p[6], s, inv, zpf, zpi, p[15],
                        p[16], p[17])
    else:
        _quantize_range(x, array1(p, 2, np.int32), lo, hi, p[4], p[5], p[6], s, inv, zpf, zpi, p[15],
                        p[16], p[17])


_QUANTIZE_JOB = CompiledJob(_quantize_job)


@njit(**CPU)
def _quantize_parts(x, out, inner, nch, mode, s, inv, zpf, zpi, qmin, qmax, nanq, step, kind,
                    ctl, nworkers, job):
    """:func:`quantize` in ``nworkers + 1`` parts of whole ``step`` units on
    the pool."""
    if not claim(ctl):
        return -1
    n = x.size
    units = (n + step - 1) // step
    for w in range(nworkers):
        i = put_array(ctl, put_array(ctl, args_of(ctl, w), x), out)
        ctl[i] = inner
        ctl[i + 1] = nch
        ctl[i + 2] = mode
        i = put_array(ctl, put_array(ctl, put_array(ctl, put_array(ctl, i + 3, s), inv), zpf), zpi)
        ctl[i] = qmin
        ctl[i + 1] = qmax
        ctl[i + 2] = nanq
        u0, u1 = part_bounds(units, nworkers + 1, w + 1, 1)
        ctl[i + 3] = step
        ctl[i + 4] = min(n, u0 * step)
        ctl[i + 5] = min(n, u1 * step)
        ctl[i + 6] = kind
    seq = launch(ctl, nworkers, job)
    _quantize_range(x, out, 0, min(n, part_bounds(units, nworkers + 1, 0, 1)[1] * step), inner, nch, mode,
                    s, inv, zpf, zpi, qmin, qmax, nanq)
    return finish(ctl, nworkers, seq, job)


def _dequantize_job(p):
    """One part of :func:`dequantize` on a pool worker; the slots as
    :func:`_dequantize_parts` writes them."""
    out, s, s64 = array1(p, 2, np.float32), array1(p, 7, np.float32), array1(p, 9, np.float64)
    zpf, zpi = array1(p, 11, np.float32), array1(p, 13, np.int64)
    lo, hi = p[16], p[17]
    if p[18] == 0:
        _dequantize_range(array1(p, 0, np.uint8), out, lo, hi, p[4], p[5], p[6], s, s64, zpf, zpi)
    elif p[18] == 1:
        _dequantize_range(array1(p, 0, np.int8), out, lo, hi, p[4], p[5], p[6], s, s64, zpf, zpi)
    else:
        _dequantize_range(array1(p, 0, np.int32), out, lo, hi, p[4], p[5], p[6], s, s64, zpf, zpi)


_DEQUANTIZE_JOB = CompiledJob(_dequantize_job)


@njit(**CPU)
def _dequantize_parts(q, out, inner, nch, mode, s, s64, zpf, zpi, step, kind, ctl, nworkers, job):
    """:func:`dequantize` in ``nworkers + 1`` parts of whole ``step`` units
    on the pool."""
    if not claim(ctl):
        return -1
    n = q.size
    units = (n + step - 1) // step
    for w in range(nworkers):
        i = put_array(ctl, put_array(ctl, args_of(ctl, w), q), out)
        ctl[i] = inner
        ctl[i + 1] = nch
        ctl[i + 2] = mode
        i = put_array(ctl, put_array(ctl, put_array(ctl, put_array(ctl, i + 3, s), s64), zpf), zpi)
        u0, u1 = part_bounds(units, nworkers + 1, w + 1, 1)
        ctl[i] = step
        ctl[i + 1] = min(n, u0 * step)
        ctl[i + 2] = min(n, u1 * step)
        ctl[i + 3] = kind
    seq = launch(ctl, nworkers, job)
    _dequantize_range(q, out, 0, min(n, part_bounds(units, nworkers + 1, 0, 1)[1] * step), inner, nch,
                      mode, s, s64, zpf, zpi)
    return finish(ctl, nworkers, seq, job)


#: Elements from which the vectorised quantize (``Q_FMA``) and 8-bit
#: dequantize loops run in parts handed over as Python calls, when the
#: compiled hand-over is not available (the pool busy, or arrays it cannot
#: take).  Measured on the reference machine, whole calls, median of 40 back
#: to back, one thread / two parts: quantize 256K float32 0.036 / 0.035 ms,
#: 1M 0.098 / 0.069 ms, 4M 0.45 / 0.23 ms; dequantize 256K 0.026 / 0.028 ms,
#: 1M 0.075 / 0.055 ms.
FAST_PARALLEL_MIN = 1 << 20

#: Elements from which quantize and dequantize run in parts, handed over as
#: compiled jobs (:func:`qops.kernels._split.run_compiled`).  Measured on the
#: reference machine, whole quint8 per-tensor calls, microseconds (best of 7
#: x 2000), one thread / two parts: quantize 64K 10.3 / 9.4, 128K 16.5 /
#: 12.3, 256K 28.9 / 18.6, 1M 94 / 54; dequantize 64K 7.2 / 7.4, 128K 11.4
#: / 9.2, 256K 23.0 / 15.2, 1M 79 / 46.
QUANTIZE_PARTS_MIN = 1 << 17


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
    nch = s.size
    if x.size >= QUANTIZE_PARTS_MIN:
        step = max(1, CHUNK // (nch * inner)) * nch * inner if inner < _SHORT_ROW else CHUNK
        kind = _KIND.get(out.dtype)
        if kind is not None and contiguous(x, out, s, inv, zpf, zpi) and run_compiled(
                _quantize_parts, _QUANTIZE_JOB, x, out, inner, nch, mode, s, inv, zpf, zpi, qmin, qmax,
                nanq, step, kind):
            return
        if x.size >= (FAST_PARALLEL_MIN if mode == Q_FMA else PARALLEL_MIN):
            _quantize_par(x, out, inner, nch, mode, s, inv, zpf, zpi, qmin, qmax, nanq)
            return
    _quantize_range(x, out, 0, x.size, inner, nch, mode, s, inv, zpf, zpi, qmin, qmax, nanq)


def _lut8(q, out, nch):
    """8-bit in, 8-bit out, one channel, enough elements: the table lookup of
    the activations (64 bytes per ``vpermi2b`` pair with AVX512-VBMI)."""
    return (q.itemsize == 1 and out.itemsize == 1 and nch == 1 and q.size >= BYTE_TABLE_MIN
            and vbmi_available())


def _gather(q, out, inner, nch, table, offset):
    if _lut8(q, out, nch):
        # table[k] is level k + offset; lut64 indexes by the stored byte
        byte = table.view(np.uint8)[np.arange(256) ^ (0x80 if offset else 0)]
        lut_apply(q.view(np.uint8), out.view(np.uint8), np.stack((byte, byte)), 0)
        return
    if q.size >= PARALLEL_MIN:
        _gather_par(q, out, inner, nch, table, offset)
    else:
        _gather_range(q, out, 0, q.size, inner, nch, table, offset)


def dequantize(q, out, inner, mode, s, s64, zpf, zpi):
    """Dequantize flat integers ``q`` into the flat float32 array ``out``."""
    nch = s.size
    if _use_table(q, nch) and not (mode == DQ_TORCH_TENSOR and nch == 1):
        levels, table, offset = _byte_table(q, nch, out.dtype)
        _dequantize_range(levels, table, 0, levels.size, 256, nch, mode, s, s64, zpf, zpi)
        _gather(q, out, inner, nch, table, offset)
        return
    if q.size >= QUANTIZE_PARTS_MIN:
        kind = _KIND.get(q.dtype)
        if kind is not None and contiguous(q, out, s, s64, zpf, zpi) and run_compiled(
                _dequantize_parts, _DEQUANTIZE_JOB, q, out, inner, nch, mode, s, s64, zpf, zpi, CHUNK, kind):
            return
        if q.size >= (FAST_PARALLEL_MIN if mode == DQ_TORCH_TENSOR and q.itemsize == 1 else PARALLEL_MIN):
            _dequantize_par(q, out, inner, nch, mode, s, s64, zpf, zpi)
            return
    _dequantize_range(q, out, 0, q.size, inner, nch, mode, s, s64, zpf, zpi)


@njit(**CPU)
def requantize_table8(q, out, mode, dq_mode, q_mode, s1, s1_64, zpf1, zpi1, mult, shift, s2, inv2, zpf2,
                      zpi2, m2, qmin, qmax, nanq):
    """The byte table of :func:`requantize` from 8-bit ``q`` to 8-bit ``out``
    (their dtypes only; one channel) for
    :func:`~qops.kernels.cpu.activation.lut_apply`, in one compiled call: row
    0 and row 1 both map each stored input byte to the stored output byte,
    computed with the recipe itself (NumPy's steps for the same table cost
    about 15 us a call).  Built on the host for host data (no CUDA twin);
    :func:`qops.requantize` also keeps the tables it built."""
    levels = np.empty(256, q.dtype)
    bytes_in = levels.view(np.uint8)
    for b in range(256):
        bytes_in[b] = b
    table = np.empty(256, out.dtype)
    _requantize_range(levels, table, 0, 256, 256, 1, mode, dq_mode, q_mode, s1, s1_64, zpf1, zpi1, mult,
                      shift, s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq)
    lut = np.empty((2, 256), np.uint8)
    lut[0] = table.view(np.uint8)
    lut[1] = lut[0]
    return lut


def requantize(q, out, inner, mode, dq_mode, q_mode, s1, s1_64, zpf1, zpi1, mult, shift,
               s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq):
    """Requantize flat integers ``q`` (per-channel parameters ``*1``, ``mult``,
    ``shift``) to per-tensor output parameters ``*2`` in ``out``.

    ``mult``/``shift`` are TFLite's fixed-point multipliers for the tflite
    modes; for ``RQ_REF`` they are the 24-bit mantissa of each input scale and
    the exponent difference to the output scale, whose mantissa is ``m2``.
    8-bit inputs with many elements go through a table of the 256 possible
    results per channel, computed with the same recipe.
    """
    nch = s1.size
    args = (mode, dq_mode, q_mode, s1, s1_64, zpf1, zpi1, mult, shift,
            s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq)
    if _lut8(q, out, nch):
        lut_apply(q.view(np.uint8), out.view(np.uint8), requantize_table8(q, out, *args), 0)
        return
    if _use_table(q, nch):
        levels, table, offset = _byte_table(q, nch, out.dtype)
        _requantize_range(levels, table, 0, levels.size, 256, nch, *args)
        _gather(q, out, inner, nch, table, offset)
    elif q.size >= PARALLEL_MIN:
        _requantize_par(q, out, inner, nch, *args)
    else:
        _requantize_range(q, out, 0, q.size, inner, nch, *args)


def fake_quantize(x, out, mask, inner, variant, s, inv, zp, qmin, qmax):
    """torch's fake quantization forward plus its straight-through mask.

    ``variant`` is an ``FQ_*`` code; ``zp`` is float64 (integer or float32
    zero points).
    """
    if x.size >= PARALLEL_MIN:
        _fake_quantize_par(x, out, mask, inner, s.size, variant, s, inv, zp, qmin, qmax)
    else:
        _fake_quantize_range(x, out, mask, 0, x.size, inner, s.size, variant, s, inv, zp, qmin, qmax)


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
