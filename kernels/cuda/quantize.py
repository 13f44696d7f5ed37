"""CUDA kernels: quantize, dequantize, requantize, fake-quantize, sub-byte packing.

The layout contract is the CPU one (``kernels/cpu/quantize.py``): every array
is a flat C-contiguous device array; a tensor of ``rows * inner`` elements is
``rows`` rows of ``inner`` elements and row ``r`` uses the parameters of
channel ``r % nch`` (``nch`` = the length of the parameter arrays, 1 for
per-tensor).  Parameter arrays are device arrays, one entry per channel.

Each kernel is a 1-D grid-stride loop: element ``i`` is handled by thread
``i mod (grid size)``, which looks up its channel and calls the same scalar
recipe (``kernels/cuda/scalar.py``) as the CPU loop.  The host launchers at
the bottom have the names and argument order of the CPU kernels; they take
device arrays for arrays and Python (or NumPy) scalars otherwise, and return
without synchronising.
"""

import numpy as np
from numba import cuda

from ..modes import RQ_TFLITE, RQ_TFLITE_SINGLE, RQ_TWO_STEP
from . import DEVICE, KERNEL, config
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


@cuda.jit(**DEVICE)
def _channel(i, inner, nch):
    """Channel of flat element ``i`` in the row layout."""
    if nch == 1:
        return 0
    return (i // inner) % nch


# --------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------


@cuda.jit(**KERNEL)
def _quantize_kernel(x, out, inner, nch, mode, s, inv, zpf, zpi, qmin, qmax, nanq):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = _channel(i, inner, nch)
        out[i] = quantize_one(mode, x[i], s[c], inv[c], zpf[c], zpi[c], qmin, qmax, nanq)


@cuda.jit(**KERNEL)
def _dequantize_kernel(q, out, inner, nch, mode, s, s64, zpf, zpi):
    for i in range(cuda.grid(1), q.size, cuda.gridsize(1)):
        c = _channel(i, inner, nch)
        out[i] = dequantize_one(mode, q[i], s[c], s64[c], zpf[c], zpi[c])


@cuda.jit(**KERNEL)
def _requantize_kernel(
    q, out, inner, nch, mode, dq_mode, q_mode,
    s1, s1_64, zpf1, zpi1, mult, shift,
    s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq,
):
    for i in range(cuda.grid(1), q.size, cuda.gridsize(1)):
        c = _channel(i, inner, nch)
        if mode == RQ_TWO_STEP:
            f = dequantize_one(dq_mode, q[i], s1[c], s1_64[c], zpf1[c], zpi1[c])
            out[i] = quantize_one(q_mode, f, s2, inv2, zpf2, zpi2, qmin, qmax, nanq)
        elif mode == RQ_TFLITE:
            r = tflite_requant(wrap32(np.int64(q[i]) - zpi1[c]), mult[c], shift[c])
            out[i] = clamp_int(wrap32(r + zpi2), qmin, qmax)  # int32 + zp wraps
        elif mode == RQ_TFLITE_SINGLE:
            r = tflite_requant_single(wrap32(np.int64(q[i]) - zpi1[c]), mult[c], shift[c])
            out[i] = clamp_int(wrap32(r + zpi2), qmin, qmax)  # int32 + zp wraps
        else:  # RQ_REF: mult = 24-bit mantissa of s1, shift = exponent difference
            r = rescale_exact(np.int64(q[i]) - zpi1[c], mult[c], m2, shift[c])
            out[i] = clamp_int(r + zpi2, qmin, qmax)


@cuda.jit(**KERNEL)
def _fake_quantize_kernel(x, out, mask, inner, nch, variant, s, inv, zp, qmin, qmax):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = _channel(i, inner, nch)
        y, m = fake_quantize_one(variant, x[i], s[c], inv[c], zp[c], qmin, qmax)
        out[i] = y
        mask[i] = m


@cuda.jit(**KERNEL)
def _pack_kernel(vals, bits, out):
    per = 8 // bits
    n = vals.size
    for j in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        b = np.int64(0)
        for k in range(per):
            i = j * per + k
            if i < n:
                b |= np.int64(vals[i]) << (k * bits)
        out[j] = b


@cuda.jit(**KERNEL)
def _unpack_kernel(packed, bits, out):
    per = 8 // bits
    m = (np.int64(1) << bits) - 1
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = (np.int64(packed[i // per]) >> ((i % per) * bits)) & m


# --------------------------------------------------------------------------
# host launchers (same names and argument order as kernels/cpu/quantize.py)
# --------------------------------------------------------------------------


def _grid(n):
    return config.blocks(n), config.threads_per_block


def _i(v):
    return np.int64(v)


def _f(v):
    return np.float32(v)


def quantize(x, out, inner, mode, s, inv, zpf, zpi, qmin, qmax, nanq):
    """Quantize flat float32 ``x`` into the flat integer array ``out``.

    ``s``/``inv``/``zpf`` are float32 device arrays, ``zpi`` int64, one entry
    per channel; ``mode`` is a ``Q_*`` code from ``kernels.modes``.
    """
    n = x.size
    if n:
        _quantize_kernel[_grid(n)](x, out, _i(inner), _i(s.size), _i(mode), s, inv, zpf, zpi,
                                   _i(qmin), _i(qmax), _i(nanq))


def dequantize(q, out, inner, mode, s, s64, zpf, zpi):
    """Dequantize flat integers ``q`` into the flat float32 array ``out``."""
    n = q.size
    if n:
        _dequantize_kernel[_grid(n)](q, out, _i(inner), _i(s.size), _i(mode), s, s64, zpf, zpi)


def requantize(q, out, inner, mode, dq_mode, q_mode, s1, s1_64, zpf1, zpi1, mult, shift,
               s2, inv2, zpf2, zpi2, m2, qmin, qmax, nanq):
    """Requantize flat integers ``q`` (per-channel device arrays ``*1``,
    ``mult``, ``shift``) to the per-tensor output parameters ``*2`` (scalars)
    in ``out``; see the CPU kernel for the meaning of ``mult``/``shift``/``m2``.
    """
    n = q.size
    if n:
        _requantize_kernel[_grid(n)](
            q, out, _i(inner), _i(s1.size), _i(mode), _i(dq_mode), _i(q_mode),
            s1, s1_64, zpf1, zpi1, mult, shift,
            _f(s2), _f(inv2), _f(zpf2), _i(zpi2), _i(m2), _i(qmin), _i(qmax), _i(nanq),
        )


def fake_quantize(x, out, mask, inner, variant, s, inv, zp, qmin, qmax):
    """torch's fake quantization forward plus its straight-through mask."""
    n = x.size
    if n:
        _fake_quantize_kernel[_grid(n)](x, out, mask, _i(inner), _i(s.size), _i(variant),
                                        s, inv, zp, _i(qmin), _i(qmax))


def pack_subbyte(vals, bits, out):
    """Pack ``vals`` (one value per byte) ``8 // bits`` to a byte, first value
    in the low bits, as torch stores quint4x2 / quint2x4."""
    n = out.size
    if n:
        _pack_kernel[_grid(n)](vals, _i(bits), out)


def unpack_subbyte(packed, bits, out):
    """Inverse of :func:`pack_subbyte`; fills ``out.size`` values."""
    n = out.size
    if n:
        _unpack_kernel[_grid(n)](packed, _i(bits), out)
