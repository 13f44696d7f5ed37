"""CPU kernels: nearest and bilinear resampling, channel shuffle.

Every array is C-contiguous.  The index and weight tables (one entry per
output row or column) are computed by the caller, in torch's float32
arithmetic (``qops/_resample.py``); the kernels only gather, and for bilinear
blend four neighbours and round into the (unchanged) quantization parameters.

Layouts
-------
``nearest``
    ``x`` is ``(B, D, H, W, K)`` and ``out`` ``(B, OD, OH, OW, K)``: NCHW data
    is ``B = N*C``, ``K = 1``; channels-last data is ``B = N``, ``K = C``;
    4-D tensors have ``D = OD = 1``.
``bilinear_nchw``
    ``x`` is ``(B, H, W)``, ``out`` ``(B, OH, OW)`` with ``B = N*C``.
``bilinear_nhwc``
    ``x`` is ``(N, H, W, C)``, ``out`` ``(N, OH, OW, C)``.
``channel_shuffle``
    ``x`` is ``(B, G, Cg, S)`` and ``out`` ``(B, Cg, G, S)``: NCHW data is
    ``B = N``, ``S = H*W``; channels-last data is ``B = N*H*W``, ``S = 1``.

Bilinear arithmetic (torch 2.13.0, ``aten/src/ATen/native/quantized/cpu``)
--------------------------------------------------------------------------
Both kernels compute, in float32, ``t0 = w0*p0 + w1*p1``, ``t1 = w0*p2 +
w1*p3``, ``r = h0*t0 + h1*t1``, then requantize as fbgemm's legacy
``Quantize`` with scale 1: ``q = clamp(rne(fl(fl(r - zp) + zp)))``.  They
differ in where the products are fused, as torch's compiled code fuses them:

* ``bilinear_nchw`` (``UpSampleBilinear2d.cpp``): no fused multiply-add.
* ``bilinear_nhwc`` (``qupsample_bilinear2d_nhwc_kernel``, built with AVX512
  flags): channels below ``nvec`` (the explicit 16-lane loop and the
  compiler's 8-lane vectorisation of the tail) fuse the right product,
  ``t0 = fma(w1, p1, w0*p0)``, ``t1 = fma(w1, p3, w0*p2)``,
  ``r = fma(h1, t1, h0*t0)``; the remaining channels (scalar code) fuse the
  left one, ``t0 = fma(w0, p0, w1*p1)``, ``t1 = fma(w0, p2, w1*p3)``,
  ``r = fma(h0, t0, h1*t1)``.

``bilinear_reference`` is the ideal: float64 weights and sums, one rounding.
"""

import numpy as np
from numba import njit, prange

from .._options import CHUNK, CPU, CPU_INLINE, CPU_PARALLEL, PARALLEL_MIN, STREAM_PARALLEL_MIN
from .._split import (CompiledJob, args_of, array1, array5, claim, contiguous, finish, launch, part_bounds,
                      put_array, run_compiled, run_ranges)
from ._avx512 import permute64, vbmi_available
from ._llvm import fma32

__all__ = ["nearest", "bilinear_nchw", "bilinear_nhwc", "bilinear_reference", "channel_shuffle"]


@njit(**CPU_INLINE)
def _requant_f32(r, zpf, fmin, fmax, qmax):
    """fbgemm's legacy ``Quantize`` at scale 1 of ``r = result - zp``:
    ``clamp(rne(fl(r + zp)))``.  The clamp runs in float (branch-free, so loops
    vectorise); ``fmax`` is ``qmax`` rounded to float32, hence the final ``min``
    (qint32: ``2**31 - 1`` rounds up to ``2**31``)."""
    v = np.rint(np.float32(r + zpf))
    return min(np.int64(min(max(v, fmin), fmax)), qmax)


def _chunks(rows, inner):
    """Rows per parallel work item (about ``CHUNK`` output elements)."""
    return max(1, CHUNK // max(1, inner))


# --------------------------------------------------------------------------
# nearest
# --------------------------------------------------------------------------


@njit(**CPU_INLINE)
def _copy_run(src, dst):
    """``dst[:] = src`` for two views that do not overlap (a vectorised loop)."""
    for k in range(np.uint64(src.size)):
        dst[k] = src[k]


@njit(**CPU)
def _nearest_rows(x, di, hi, wi, out, lo, hi_row):
    D, H, W, K = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    OWu = np.uint64(OW)
    Ku = np.uint64(K)
    rowlen = OWu * Ku
    prev = -1  # the source row of the previous output row of this range
    for row in range(lo, hi_row):
        oh = row % OH
        t = row // OH
        od = t % OD
        b = t // OD
        srow = ((b * D + di[od]) * H + hi[oh]) * W
        src = np.uint64(srow)
        dst = np.uint64(row * OW)
        if srow == prev:  # upsampling repeats the row above: copy it whole
            d0 = dst * Ku
            _copy_run(of[d0 - rowlen:d0], of[d0:d0 + rowlen])
            continue
        prev = srow
        if K == 1:
            for ow in range(OWu):
                of[dst + ow] = xf[src + np.uint64(wi[ow])]
        else:
            for ow in range(OWu):
                s = (src + np.uint64(wi[ow])) * Ku
                d = (dst + ow) * Ku
                for k in range(Ku):
                    of[d + k] = xf[s + k]


def _nearest_job(p):
    """One part of :func:`nearest` on a pool worker (slots: ``x``, ``di``,
    ``hi``, ``wi``, ``out`` by :func:`put_array`, the row range, the element
    type: 0 uint8, 1 int32)."""
    di, hi, wi = array1(p, 6, np.int64), array1(p, 8, np.int64), array1(p, 10, np.int64)
    if p[20] == 0:
        _nearest_rows(array5(p, 0, np.uint8), di, hi, wi, array5(p, 12, np.uint8), p[18], p[19])
    else:
        _nearest_rows(array5(p, 0, np.int32), di, hi, wi, array5(p, 12, np.int32), p[18], p[19])


_NEAREST_JOB = CompiledJob(_nearest_job)
_NEAREST_KIND = {np.dtype(np.uint8): 0, np.dtype(np.int32): 1}


@njit(**CPU)
def _nearest_parts(x, di, hi, wi, out, rows, kind, ctl, nworkers, job):
    """:func:`nearest` in ``nworkers + 1`` parts of output rows on the pool
    (:func:`qops.kernels._split.run_compiled`)."""
    if not claim(ctl):
        return -1
    for w in range(nworkers):
        i = args_of(ctl, w)
        i = put_array(ctl, put_array(ctl, put_array(ctl, put_array(ctl, i, x), di), hi), wi)
        i = put_array(ctl, i, out)
        ctl[i], ctl[i + 1] = part_bounds(rows, nworkers + 1, w + 1, 1)
        ctl[i + 2] = kind
    seq = launch(ctl, nworkers, job)
    _nearest_rows(x, di, hi, wi, out, 0, part_bounds(rows, nworkers + 1, 0, 1)[1])
    return finish(ctl, nworkers, seq, job)


#: Output elements from which nearest resampling runs in parts, handed over
#: in compiled code (:func:`qops.kernels._split.run_compiled`).  Measured on
#: the reference machine, 2x upsampling of 64 channels, whole interpolate
#: calls, one thread / two parts (microseconds, best of 7 x 300): planes first
#: (one element per pixel) 64K output elements 47 / 30, 256K 116 / 64, 1M
#: 363 / 190, 16M 3106 / 1548; channels last (64-element pixels) 128K 15 /
#: 15, 256K 19 / 17, 512K 26 / 20, 1M 41 / 27, 16M 759 / 327.
NEAREST_PARTS_MIN = 1 << 16
#: The same for channels-last copies of 16 or more channels.
NEAREST_CL_PARTS_MIN = 1 << 18


def nearest(x, di, hi, wi, out):
    """``out[b, od, oh, ow, :] = x[b, di[od], hi[oh], wi[ow], :]``.

    Channels-last copies (16 or more channels) are runs of vector loads and
    stores; an output row whose source row is the previous output row's
    (upsampling) is a copy of that row.  In parts from ``NEAREST_PARTS_MIN``
    output bytes (``NEAREST_CL_PARTS_MIN`` for 16 or more channels)."""
    rows = out.shape[0] * out.shape[1] * out.shape[2]
    if (out.size < (NEAREST_CL_PARTS_MIN if x.shape[4] >= 16 else NEAREST_PARTS_MIN)
            or not contiguous(x, di, hi, wi, out)
            or not run_compiled(_nearest_parts, _NEAREST_JOB, x, di, hi, wi, out, rows,
                                _NEAREST_KIND[x.dtype])):
        _nearest_rows(x, di, hi, wi, out, 0, rows)


# --------------------------------------------------------------------------
# bilinear
# --------------------------------------------------------------------------


@njit(**CPU)
def _bilinear_nchw_rows(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, out, lo, hi_row):
    H, W = x.shape[1], x.shape[2]
    OH, OW = out.shape[1], out.shape[2]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    fmin = np.float32(qmin)
    fmax = np.float32(qmax)
    OWu = np.uint64(OW)
    for row in range(lo, hi_row):
        oh = row % OH
        b = row // OH
        base0 = np.uint64((b * H + hidx[oh]) * W)
        base1 = base0 + np.uint64(hp[oh] * W)
        h0 = hl0[oh]
        h1 = hl1[oh]
        dst = np.uint64(row * OW)
        for ow in range(OWu):
            w = np.uint64(widx[ow])
            wq = w + np.uint64(wp[ow])
            w0 = wl0[ow]
            w1 = wl1[ow]
            t0 = w0 * np.float32(xf[base0 + w]) + w1 * np.float32(xf[base0 + wq])
            t1 = w0 * np.float32(xf[base1 + w]) + w1 * np.float32(xf[base1 + wq])
            r = h0 * t0 + h1 * t1
            of[dst + ow] = _requant_f32(r - zpf, zpf, fmin, fmax, qmax)


@njit(**CPU_PARALLEL)
def _bilinear_nchw_par(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, out, step):
    rows = out.shape[0] * out.shape[1]
    for t in prange((rows + step - 1) // step):
        _bilinear_nchw_rows(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, out,
                            t * step, min(rows, (t + 1) * step))


def bilinear_nchw(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, out):
    """torch's NCHW quantized bilinear (unfused float32) on ``(B, H, W)`` planes.

    ``hidx``/``widx`` are the top/left source indices, ``hp``/``wp`` the
    offsets (0 or 1) of the second neighbour, ``hl0, hl1, wl0, wl1`` the
    float32 weights; ``zpf`` is the zero point as float32.
    """
    rows = out.shape[0] * out.shape[1]
    if out.size >= PARALLEL_MIN:
        _bilinear_nchw_par(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, out,
                           _chunks(rows, out.shape[2]))
    elif rows:
        _bilinear_nchw_rows(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, out, 0, rows)


@njit(**CPU)
def _bilinear_nhwc_rows(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, nvec, out, lo, hi_row):
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = out.shape[1], out.shape[2]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    fmin = np.float32(qmin)
    fmax = np.float32(qmax)
    Cu = np.uint64(C)
    nv = np.uint64(nvec)
    for row in range(lo, hi_row):
        oh = row % OH
        b = row // OH
        r0 = b * H + hidx[oh]
        r1 = r0 + hp[oh]
        h0 = hl0[oh]
        h1 = hl1[oh]
        for ow in range(OW):
            w = widx[ow]
            wq = w + wp[ow]
            w0 = wl0[ow]
            w1 = wl1[ow]
            s0 = np.uint64((r0 * W + w) * C)
            s1 = np.uint64((r0 * W + wq) * C)
            s2 = np.uint64((r1 * W + w) * C)
            s3 = np.uint64((r1 * W + wq) * C)
            d = np.uint64((row * OW + ow) * C)
            for c in range(nv):  # torch's vector code
                t0 = fma32(w1, np.float32(xf[s1 + c]), w0 * np.float32(xf[s0 + c]))
                t1 = fma32(w1, np.float32(xf[s3 + c]), w0 * np.float32(xf[s2 + c]))
                r = fma32(h1, t1, h0 * t0)
                of[d + c] = _requant_f32(r - zpf, zpf, fmin, fmax, qmax)
            for c in range(nv, Cu):  # torch's scalar code
                t0 = fma32(w0, np.float32(xf[s0 + c]), w1 * np.float32(xf[s1 + c]))
                t1 = fma32(w0, np.float32(xf[s2 + c]), w1 * np.float32(xf[s3 + c]))
                r = fma32(h0, t0, h1 * t1)
                of[d + c] = _requant_f32(r - zpf, zpf, fmin, fmax, qmax)


@njit(**CPU_PARALLEL)
def _bilinear_nhwc_par(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, nvec, out, step):
    rows = out.shape[0] * out.shape[1]
    for t in prange((rows + step - 1) // step):
        _bilinear_nhwc_rows(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, nvec, out,
                            t * step, min(rows, (t + 1) * step))


def bilinear_nhwc(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, nvec, out):
    """torch's channels-last quantized bilinear on ``(N, H, W, C)``: channels
    ``< nvec`` fuse as its vector code, the rest as its scalar code."""
    rows = out.shape[0] * out.shape[1]
    if out.size >= PARALLEL_MIN:
        _bilinear_nhwc_par(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, nvec, out,
                           _chunks(rows, out.shape[2] * out.shape[3]))
    elif rows:
        _bilinear_nhwc_rows(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zpf, qmin, qmax, nvec, out, 0, rows)


@njit(**CPU)
def _bilinear_reference_rows(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zp, qmin, qmax, out, lo, hi_row):
    H, W = x.shape[1], x.shape[2]
    OH, OW = out.shape[1], out.shape[2]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for row in range(lo, hi_row):
        oh = row % OH
        b = row // OH
        base0 = (b * H + hidx[oh]) * W
        base1 = base0 + hp[oh] * W
        h0 = hl0[oh]
        h1 = hl1[oh]
        dst = row * OW
        for ow in range(OW):
            w = widx[ow]
            wq = w + wp[ow]
            w0 = wl0[ow]
            w1 = wl1[ow]
            t0 = w0 * np.float64(np.int64(xf[base0 + w]) - zp) + w1 * np.float64(np.int64(xf[base0 + wq]) - zp)
            t1 = w0 * np.float64(np.int64(xf[base1 + w]) - zp) + w1 * np.float64(np.int64(xf[base1 + wq]) - zp)
            v = np.rint(h0 * t0 + h1 * t1) + zp
            if v <= qmin:
                of[dst + ow] = qmin
            elif v >= qmax:
                of[dst + ow] = qmax
            else:
                of[dst + ow] = np.int64(v)


@njit(**CPU_PARALLEL)
def _bilinear_reference_par(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zp, qmin, qmax, out, step):
    rows = out.shape[0] * out.shape[1]
    for t in prange((rows + step - 1) // step):
        _bilinear_reference_rows(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zp, qmin, qmax, out,
                                 t * step, min(rows, (t + 1) * step))


def bilinear_reference(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zp, qmin, qmax, out):
    """The ideal bilinear on ``(B, H, W)`` planes: float64 weights (``hl*``,
    ``wl*``) on ``q - zp``, one round half to even, saturate."""
    rows = out.shape[0] * out.shape[1]
    if out.size >= PARALLEL_MIN:
        _bilinear_reference_par(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zp, qmin, qmax, out,
                                _chunks(rows, out.shape[2]))
    elif rows:
        _bilinear_reference_rows(x, hidx, hp, hl0, hl1, widx, wp, wl0, wl1, zp, qmin, qmax, out, 0, rows)


# --------------------------------------------------------------------------
# channel shuffle
# --------------------------------------------------------------------------


@njit(**CPU)
def _shuffle_rows(x, out, lo, hi_row):
    G, Cg, S = x.shape[1], x.shape[2], x.shape[3]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    Gu = np.uint64(G)
    Cgu = np.uint64(Cg)
    Su = np.uint64(S)
    for row in range(lo, hi_row):  # row = (b, cg) of the output
        cg = np.uint64(row % Cg)
        base = np.uint64(row // Cg) * Gu * Cgu * Su
        d = np.uint64(row) * Gu * Su
        if S == 1:
            for g in range(Gu):
                of[d + g] = xf[base + g * Cgu + cg]
        else:
            for g in range(Gu):
                s = base + (g * Cgu + cg) * Su
                for k in range(Su):
                    of[d + g * Su + k] = xf[s + k]


@njit(**CPU_PARALLEL)
def _shuffle_par(x, out, step):
    rows = out.shape[0] * out.shape[1]
    for t in prange((rows + step - 1) // step):
        _shuffle_rows(x, out, t * step, min(rows, (t + 1) * step))


@njit(**CPU)
def _shuffle_vbmi(xf, of, idx, v0, v1):
    """Vectors ``[v0, v1)`` of 64 bytes."""
    permute64(xf, v0 * 64, of, v0 * 64, v1 - v0, idx)


def _shuffle_index(groups, cg):
    """The ``vpermb`` index of a channels-last shuffle: 64 bytes hold
    ``64 // C`` whole pixels of ``C = groups * cg`` channels, and output
    channel ``c * groups + g`` of a pixel is its input channel ``g * cg + c``."""
    c = groups * cg
    j = np.arange(64)
    cout = j % c
    return ((j // c) * c + (cout % groups) * cg + cout // groups).astype(np.uint8)


def channel_shuffle(x, out):
    """``out[b, cg, g, :] = x[b, g, cg, :]``: the transpose of the group axes.

    Channels-last data (the last axis of size 1) whose channel count divides
    64 is permuted 64 bytes at a time with ``vpermb`` where the CPU has
    AVX512-VBMI; the pixels after the last whole 64 bytes, and every other
    shape, are copied element by element."""
    rows = out.shape[0] * out.shape[1]
    c = x.shape[1] * x.shape[2]
    if (x.shape[3] == 1 and 64 % c == 0 and x.dtype == np.uint8 and x.flags.c_contiguous
            and out.flags.c_contiguous and vbmi_available()):
        nvec = x.size // 64
        idx = _shuffle_index(x.shape[1], x.shape[2])
        xf, of = x.reshape(-1), out.reshape(-1)
        if x.size >= STREAM_PARALLEL_MIN:
            run_ranges(_shuffle_vbmi, nvec, xf, of, idx, align=1)
        else:
            _shuffle_vbmi(xf, of, idx, 0, nvec)
        done = nvec * 64 // c  # whole pixels handled (rows of the output: pixels * cg)
        if done < x.shape[0]:
            _shuffle_rows(x[done:], out[done:], 0, (x.shape[0] - done) * out.shape[1])
        return
    if out.size >= PARALLEL_MIN:
        _shuffle_par(x, out, _chunks(rows, out.shape[2] * out.shape[3]))
    elif rows:
        _shuffle_rows(x, out, 0, rows)
