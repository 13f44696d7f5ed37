"""CPU kernels for observers: min/max, histograms, torch's float32 sums and the
HistogramObserver range search.

The heavy per-batch work runs in parallel over chunks of the input:

* :func:`minmax` and :func:`minmax_axis` reduce with ``llvm.minimum`` /
  ``llvm.maximum`` (NaN propagates, ``-0.0 < +0.0``), which LLVM vectorises;
* :func:`histc` counts values into equal-width bins with torch's float32 bin
  formula, one private histogram per work item (no atomics).

The rest reproduces, operation by operation, the float32 arithmetic that
torch 2.13 (CPU) performs in ``HistogramObserver`` and in the gradient sums
of the learnable fake quantization (measured against torch 2.13.0):

* :func:`cascade_sum` is ``torch.sum`` of a contiguous float32 array: four
  interleaved accumulators of 8-lane vectors, each summed in a cascade of four
  levels (``aten/src/ATen/native/cpu/SumKernel.cpp``); with several threads
  and at least 32768 elements torch first splits the array into one chunk per
  thread (:func:`cascade_sum_threads`);
* :func:`linspace` is ``torch.linspace`` in float32: ``start + step*i`` rounded
  once for the first half, ``end - step*(n-1-i)`` for the second;
* :func:`histogram_upscale` and :func:`histogram_search` are
  ``HistogramObserver._upscale_histogram`` and ``_non_linear_param_search``
  with every tensor operation rounded to float32 where torch rounds it and the
  Python scalars kept in float64 where torch keeps them.

The ``*_f64`` variants are the float64 formulation of the same algorithm (the
``reference`` numerics profile).

Layout contract: arrays are flat and C-contiguous; a per-channel tensor is
viewed as ``(outer, nch, inner)`` with the channel axis in the middle.
"""

import numpy as np
import numba
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .._options import CHUNK, CPU, CPU_INLINE, CPU_PARALLEL, PARALLEL_MIN
from .._split import (CompiledJob, args_of, array1, claim, contiguous, finish, float_at, launch, part_bounds,
                      put_array, put_float, run_compiled, run_ranges)
from ._avx512 import MINMAX_BLOCK, avx512_available, minmax64
from ._llvm import fma32

__all__ = [
    "minmax",
    "minmax_axis",
    "histc",
    "linspace",
    "histogram_upscale",
    "histogram_upscale_f64",
    "histogram_search",
    "histogram_search_f64",
    "cascade_sum",
    "cascade_sum_threads",
    "cascade_sum_axis",
]

_F32_INF = np.float32(np.inf)
_F32_NINF = np.float32(-np.inf)

#: float32 elements from which the AVX512F min/max pass runs in parts on
#: several threads (:mod:`qops.kernels._split`).  Measured on the reference
#: machine, whole observer calls, median of 40 back to back, one thread /
#: two parts: 512K 0.041 / 0.042 ms, 1M 0.065 / 0.054 ms, 2M 0.112 / 0.075
#: ms; 16M 2.0-2.2 ms on one, 0.81-1.37 ms in two parts.
MINMAX_PARALLEL_MIN = 1 << 20

#: torch's ``Vectorized<float>`` lanes in its sum kernel (measured: 8 on an
#: AVX-512 CPU too) and the ``at::internal::GRAIN_SIZE`` of its reductions.
SUM_LANES = 8
GRAIN_SIZE = 32768


# --------------------------------------------------------------------------
# NaN-propagating float32 min / max that LLVM vectorises
# --------------------------------------------------------------------------


def _binary_intrinsic(name):
    def codegen(context, builder, sig, args):
        fnty = context.get_value_type(sig.return_type)
        fn = builder.module.declare_intrinsic(name, [fnty], ir.FunctionType(fnty, [fnty, fnty]))
        return builder.call(fn, args)

    return codegen


@intrinsic
def fminimum(typingctx, a, b):
    """``llvm.minimum.f32``: NaN if either is NaN, and ``-0.0 < +0.0``."""
    return types.float32(types.float32, types.float32), _binary_intrinsic("llvm.minimum")


@intrinsic
def fmaximum(typingctx, a, b):
    """``llvm.maximum.f32``: NaN if either is NaN, and ``-0.0 < +0.0``."""
    return types.float32(types.float32, types.float32), _binary_intrinsic("llvm.maximum")


@njit(**CPU)
def _minmax_span(x, lo, hi, skip_inf):
    mn = _F32_INF
    mx = _F32_NINF
    if skip_inf:
        # +inf never lowers the minimum and -inf never raises the maximum:
        # only the other infinity has to be replaced
        for i in range(np.uint64(lo), np.uint64(hi)):
            v = x[i]
            mn = fminimum(mn, v if v != _F32_NINF else _F32_INF)
            mx = fmaximum(mx, v if v != _F32_INF else _F32_NINF)
    else:
        for i in range(np.uint64(lo), np.uint64(hi)):
            v = x[i]
            mn = fminimum(mn, v)
            mx = fmaximum(mx, v)
    return mn, mx


@njit(**CPU_PARALLEL)
def _minmax_parallel(x, skip_inf, out, nblocks):
    n = x.size
    nc = min(nblocks, (n + CHUNK - 1) // CHUNK)
    per = (n + nc - 1) // nc
    mins = np.empty(nc, np.float32)
    maxs = np.empty(nc, np.float32)
    for c in prange(nc):
        mins[c], maxs[c] = _minmax_span(x, c * per, min(n, (c + 1) * per), skip_inf)
    mn = _F32_INF
    mx = _F32_NINF
    for c in range(nc):
        mn = fminimum(mn, mins[c])
        mx = fmaximum(mx, maxs[c])
    out[0] = mn
    out[1] = mx


@njit(**CPU)
def _minmax_serial(x, skip_inf, out):
    out[0], out[1] = _minmax_span(x, 0, x.size, skip_inf)


@njit(**CPU_INLINE)
def _minmax_fast_span(x, lo, hi):
    """``(min, max, nan_seen)`` of ``x[lo:hi]`` through :func:`minmax64`; the
    sign of a zero result is not decided here (:func:`_zero_signs`)."""
    nblk = (hi - lo) // MINMAX_BLOCK
    mn = _F32_INF
    mx = _F32_NINF
    nan = False
    if nblk > 0:
        buf = np.empty(3, np.float32)
        minmax64(x, lo, nblk, buf)
        mn, mx, nan = buf[0], buf[1], buf[2] != 0
    for i in range(np.uint64(lo + nblk * MINMAX_BLOCK), np.uint64(hi)):
        v = x[i]
        nan = nan or v != v
        mn = v if v < mn else mn
        mx = v if v > mx else mx
    return mn, mx, nan


@njit(**CPU)
def _zero_signs(x, out):
    """Give a zero ``out[0]`` / ``out[1]`` the sign ``llvm.minimum`` /
    ``llvm.maximum`` order implies (``-0.0 < +0.0``): a zero minimum is -0.0
    when the data holds a -0.0, a zero maximum +0.0 when it holds a +0.0."""
    bits = x.view(np.uint32)
    if out[0] == 0:
        neg = False
        for i in range(np.uint64(bits.size)):
            neg |= bits[i] == np.uint32(0x80000000)
        out[0] = np.float32(-0.0) if neg else np.float32(0.0)
    if out[1] == 0:
        pos = False
        for i in range(np.uint64(bits.size)):
            pos |= bits[i] == np.uint32(0)
        out[1] = np.float32(0.0) if pos else np.float32(-0.0)


@njit(**CPU)
def _minmax_fast_serial(x, out):
    mn, mx, nan = _minmax_fast_span(x, 0, x.size)
    out[0] = mn
    out[1] = mx
    return not nan


def _minmax_job(p):
    """One part of :func:`_minmax_fast_parts` on a pool worker: the range's
    ``(min, max, nan_seen)`` into slots 4-6, after the array and the range."""
    mn, mx, nan = _minmax_fast_span(array1(p, 0, np.float32), p[2], p[3])
    put_float(p, 4, mn)
    put_float(p, 5, mx)
    p[6] = nan


_MINMAX_JOB = CompiledJob(_minmax_job)


@njit(**CPU)
def _minmax_parts(x, res, ctl, nworkers, job):
    """:func:`_minmax_fast_serial` in ``nworkers + 1`` parts of whole blocks
    on the pool; ``res``: min, max and 1.0 if a NaN was seen."""
    if not claim(ctl):
        return -1
    n = x.size
    for w in range(nworkers):
        i = put_array(ctl, args_of(ctl, w), x)
        ctl[i], ctl[i + 1] = part_bounds(n, nworkers + 1, w + 1, MINMAX_BLOCK)
    seq = launch(ctl, nworkers, job)
    a, b = part_bounds(n, nworkers + 1, 0, MINMAX_BLOCK)
    mn, mx, nan = _minmax_fast_span(x, a, b)
    mask = finish(ctl, nworkers, seq, job)
    for w in range(nworkers):  # the workers' results, in their slots
        i = args_of(ctl, w)
        pmn = np.float32(float_at(ctl, i + 4))
        pmx = np.float32(float_at(ctl, i + 5))
        mn = pmn if pmn < mn else mn
        mx = pmx if pmx > mx else mx
        nan = nan or ctl[i + 6] != 0
    res[0] = mn
    res[1] = mx
    res[2] = 1.0 if nan else 0.0
    return mask


@njit(**CPU)
def _minmax_fast_part(x, lo, hi):
    """:func:`_minmax_fast_span` as a kernel of its own (one part of the work)."""
    return _minmax_fast_span(x, lo, hi)


def _minmax_fast_parts(x, out):
    """:func:`_minmax_fast_serial` in ``parts()`` slices of whole blocks at
    once: handed to the pool's workers as compiled jobs, or (the pool busy,
    or ``x`` not contiguous) as Python calls."""
    res = np.empty(3, np.float32)
    if contiguous(x) and run_compiled(_minmax_parts, _MINMAX_JOB, x, res):
        out[0], out[1] = res[0], res[1]
        return res[2] == 0
    res = run_ranges(_minmax_fast_part, x.size, x, align=MINMAX_BLOCK)
    out[0] = min(r[0] for r in res)
    out[1] = max(r[1] for r in res)
    return not any(r[2] for r in res)


def minmax(x, skip_inf, out):
    """Minimum and maximum of the float32 array ``x`` into ``out[0]``, ``out[1]``.

    NaN anywhere gives NaN for both (as ``torch.aminmax``).  With ``skip_inf``
    the infinities are ignored; if nothing else remains ``out`` is
    ``(+inf, -inf)``, the empty reduction.  Zeros order ``-0.0 < +0.0``.

    With AVX512F, ``skip_inf`` off and at least one 64-element block, a
    ``vminps`` / ``vmaxps`` pass runs; if it saw a NaN the ``llvm.minimum``
    loop below decides instead (the NaN's bits), and a zero result gets its
    sign from a scan of the data (:func:`_zero_signs`).
    """
    if not skip_inf and x.size >= MINMAX_BLOCK and avx512_available():
        if x.size >= MINMAX_PARALLEL_MIN:
            clean = _minmax_fast_parts(x, out)
        else:
            clean = _minmax_fast_serial(x, out)
        if clean:
            if out[0] == 0 or out[1] == 0:
                _zero_signs(x, out)
            return
    if x.size >= PARALLEL_MIN:
        _minmax_parallel(x, skip_inf, out, 4 * numba.get_num_threads())
    else:
        _minmax_serial(x, skip_inf, out)
    if (out[0] == 0 or out[1] == 0) and x.size:
        _zero_signs(x, out)


@njit(**CPU_PARALLEL)
def _minmax_by_channel(x, outer, nch, inner, out_min, out_max):
    for c in prange(nch):
        mn = _F32_INF
        mx = _F32_NINF
        for o in range(outer):
            base = (o * nch + c) * inner
            a, b = _minmax_span(x, base, base + inner, False)
            mn = fminimum(mn, a)
            mx = fmaximum(mx, b)
        out_min[c] = mn
        out_max[c] = mx


@njit(**CPU_PARALLEL)
def _minmax_by_block(x, outer, nch, inner, out_min, out_max):
    # few channels or short runs: split the outer axis, one partial result per block
    rows_per = max(1, CHUNK // max(1, nch * inner))
    nb = (outer + rows_per - 1) // rows_per
    pmin = np.empty((nb, nch), np.float32)
    pmax = np.empty((nb, nch), np.float32)
    for b in prange(nb):
        for c in range(nch):
            pmin[b, c] = _F32_INF
            pmax[b, c] = _F32_NINF
        if inner == 1:
            # channels last: the channel loop is contiguous and vectorises
            lmin = pmin[b]
            lmax = pmax[b]
            for o in range(b * rows_per, min(outer, (b + 1) * rows_per)):
                base = o * nch
                for c in range(nch):
                    v = x[base + c]
                    lmin[c] = fminimum(lmin[c], v)
                    lmax[c] = fmaximum(lmax[c], v)
            continue
        for o in range(b * rows_per, min(outer, (b + 1) * rows_per)):
            for c in range(nch):
                base = (o * nch + c) * inner
                mn = pmin[b, c]
                mx = pmax[b, c]
                for i in range(base, base + inner):
                    v = x[i]
                    mn = fminimum(mn, v)
                    mx = fmaximum(mx, v)
                pmin[b, c] = mn
                pmax[b, c] = mx
    for c in range(nch):
        mn = _F32_INF
        mx = _F32_NINF
        for b in range(nb):
            mn = fminimum(mn, pmin[b, c])
            mx = fmaximum(mx, pmax[b, c])
        out_min[c] = mn
        out_max[c] = mx


def minmax_axis(x, outer, nch, inner, out_min, out_max):
    """Per-channel minimum and maximum of ``x`` viewed as ``(outer, nch, inner)``.

    A channel holding a NaN gets NaN for both (as ``torch.aminmax(dim=...)``).
    """
    if inner >= 1024 or (nch >= 2 * numba.get_num_threads() and inner >= 64):
        _minmax_by_channel(x, outer, nch, inner, out_min, out_max)
    else:
        _minmax_by_block(x, outer, nch, inner, out_min, out_max)


# --------------------------------------------------------------------------
# histc: torch's float32 bin formula
# --------------------------------------------------------------------------


@njit(**CPU_INLINE)
def _bin_f32(v, left, right, nbf, width, bins):
    """torch.histc's bin of float32 ``v`` (``-1`` outside ``[left, right]`` or NaN)."""
    if not (v >= left and v <= right):
        return -1
    p = np.int64(((v - left) * nbf) / width)
    return bins - 1 if p >= bins else p


@njit(**CPU_INLINE)
def _bin_f64(v, left, right, nbf, width, bins):
    """The float64 (reference) bin of ``v``."""
    d = np.float64(v)
    if not (d >= left and d <= right):
        return -1
    p = np.int64(((d - left) * nbf) / width)
    return bins - 1 if p >= bins else p


@njit(**CPU)
def _histc_span(x, lo, hi, left, right, exact, counts, row):
    bins = counts.shape[1]
    if exact:
        nbf = np.float64(bins)
        width = right - left
        for i in range(lo, hi):
            p = _bin_f64(x[i], left, right, nbf, width, bins)
            if p >= 0:
                counts[row, p] += 1
    else:
        l32 = np.float32(left)
        r32 = np.float32(right)
        nbf = np.float32(bins)
        width = r32 - l32
        for i in range(lo, hi):
            p = _bin_f32(x[i], l32, r32, nbf, width, bins)
            if p >= 0:
                counts[row, p] += 1


@njit(**CPU_PARALLEL)
def _histc_parallel(x, left, right, exact, counts, nblocks):
    n = x.size
    bins = counts.size
    nb = min(nblocks, (n + CHUNK - 1) // CHUNK)
    per = (n + nb - 1) // nb
    local = np.zeros((nb, bins), np.int64)
    for b in prange(nb):
        _histc_span(x, b * per, min(n, (b + 1) * per), left, right, exact, local, b)
    for k in range(bins):
        s = np.int64(0)
        for b in range(nb):
            s += local[b, k]
        counts[k] = s


@njit(**CPU)
def _histc_serial(x, left, right, exact, counts):
    c2 = counts.reshape((1, counts.size))
    c2[0, :] = 0
    _histc_span(x, 0, x.size, left, right, exact, c2, 0)


def histc(x, left, right, exact, counts):
    """Count ``x`` into ``counts.size`` equal bins over ``[left, right]``.

    ``counts`` is int64 and is overwritten.  Values outside the range and NaN
    are skipped; ``right`` itself falls in the last bin.  With ``exact=False``
    the bin is torch.histc's float32 ``int((v - L) * bins / (R - L))`` with
    ``L, R`` the float32 roundings of ``left`` and ``right``; with
    ``exact=True`` the same formula in float64 on the float64 edges.  NaN
    edges count nothing.
    """
    if x.size >= PARALLEL_MIN:
        _histc_parallel(x, left, right, exact, counts, 4 * numba.get_num_threads())
    else:
        _histc_serial(x, left, right, exact, counts)


# --------------------------------------------------------------------------
# torch.sum of float32 (cascade_sum in SumKernel.cpp)
# --------------------------------------------------------------------------


@njit(**CPU_INLINE)
def _ceil_log2(v):
    if v <= 2:
        return 1
    r = 0
    t = v - 1
    while t > 0:
        t >>= 1
        r += 1
    return r


@njit(**CPU)
def _multi_row_sum(x, base, row_stride, col_stride, size, nrows, lanes, out):
    """torch's ``multi_row_sum``: ``nrows`` columns of ``lanes``-wide vectors.

    Row ``r``, column ``k`` is the vector at ``x[base + r*row_stride +
    k*col_stride :][:lanes]``.  ``out[k, l]`` receives column ``k``'s sum.
    """
    num_levels = 4
    level_power = max(4, _ceil_log2(size) // num_levels)
    level_step = 1 << level_power
    level_mask = level_step - 1
    acc = np.zeros((num_levels, nrows, lanes), np.float32)
    i = 0
    while i + level_step <= size:
        for _ in range(level_step):
            b = base + i * row_stride
            for k in range(nrows):
                for ln in range(lanes):
                    acc[0, k, ln] += x[b + k * col_stride + ln]
            i += 1
        for j in range(1, num_levels):
            for k in range(nrows):
                for ln in range(lanes):
                    acc[j, k, ln] += acc[j - 1, k, ln]
                    acc[j - 1, k, ln] = 0
            if (i & (level_mask << (j * level_power))) != 0:
                break
    while i < size:
        b = base + i * row_stride
        for k in range(nrows):
            for ln in range(lanes):
                acc[0, k, ln] += x[b + k * col_stride + ln]
        i += 1
    for j in range(1, num_levels):
        for k in range(nrows):
            for ln in range(lanes):
                acc[0, k, ln] += acc[j, k, ln]
    for k in range(nrows):
        for ln in range(lanes):
            out[k, ln] = acc[0, k, ln]


@njit(**CPU)
def _row_sum(x, base, stride, size, lanes, out):
    """torch's ``row_sum``: ``size`` vectors ``stride`` apart, four interleaved
    partial sums (``ilp_factor`` 4); the ``lanes``-wide result goes to ``out[0]``."""
    size_ilp = size // 4
    part = np.empty((4, lanes), np.float32)
    _multi_row_sum(x, base, 4 * stride, stride, size_ilp, 4, lanes, part)
    for i in range(size_ilp * 4, size):
        for ln in range(lanes):
            part[0, ln] += x[base + i * stride + ln]
    for k in range(1, 4):
        for ln in range(lanes):
            part[0, ln] += part[k, ln]
    for ln in range(lanes):
        out[0, ln] = part[0, ln]


@njit(**CPU)
def _inner_sum(x, base, n):
    """One contiguous row of ``n`` float32: vectorised if ``n >= 8``, else scalar."""
    res = np.empty((1, SUM_LANES), np.float32)
    if n >= SUM_LANES:
        nv = n // SUM_LANES
        _row_sum(x, base, SUM_LANES, nv, SUM_LANES, res)
        acc = np.float32(0)
        for k in range(base + nv * SUM_LANES, base + n):
            acc += x[k]
        for ln in range(SUM_LANES):
            acc += res[0, ln]
        return acc
    _row_sum(x, base, 1, n, 1, res)
    return res[0, 0]


@njit(**CPU)
def cascade_sum(x):
    """``torch.sum`` of a contiguous float32 array on one thread (float32 result)."""
    return np.float32(0) + _inner_sum(x, 0, x.size)


@njit(**CPU)
def cascade_sum_threads(x, threads):
    """``torch.sum`` with ``threads`` intra-op threads.

    From 32768 elements on, torch gives each thread one contiguous chunk
    (OpenMP static split of ``at::parallel_for``), sums each chunk as
    :func:`cascade_sum` does, then sums the per-thread results.
    """
    n = x.size
    if n < GRAIN_SIZE or threads <= 1:
        return cascade_sum(x)
    nt = min(threads, (n + GRAIN_SIZE - 1) // GRAIN_SIZE)
    chunk = (n + nt - 1) // nt
    buf = np.zeros(threads, np.float32)
    for t in range(nt):
        lo = t * chunk
        hi = min(n, lo + chunk)
        if lo < hi:
            buf[t] = np.float32(0) + _inner_sum(x, lo, hi - lo)
    return cascade_sum(buf)


@njit(**CPU)
def _outer_sum(x, rows, ncol, out):
    """torch's sum over the rows of a ``(rows, ncol)`` row-major matrix, one
    result per column (``vectorized_outer_sum`` / ``scalar_outer_sum``)."""
    j = 0
    if ncol >= SUM_LANES:
        part = np.empty((4, SUM_LANES), np.float32)
        while j + 4 * SUM_LANES <= ncol:
            _multi_row_sum(x, j, ncol, SUM_LANES, rows, 4, SUM_LANES, part)
            for k in range(4):
                for ln in range(SUM_LANES):
                    out[j + k * SUM_LANES + ln] = np.float32(0) + part[k, ln]
            j += 4 * SUM_LANES
        one = np.empty((1, SUM_LANES), np.float32)
        while j + SUM_LANES <= ncol:
            _row_sum(x, j, ncol, rows, SUM_LANES, one)
            for ln in range(SUM_LANES):
                out[j + ln] = np.float32(0) + one[0, ln]
            j += SUM_LANES
    else:
        part = np.empty((4, 1), np.float32)
        while j + 3 < ncol:
            _multi_row_sum(x, j, ncol, 1, rows, 4, 1, part)
            for k in range(4):
                out[j + k] = np.float32(0) + part[k, 0]
            j += 4
    one = np.empty((1, 1), np.float32)
    while j < ncol:
        _row_sum(x, j, ncol, rows, 1, one)
        out[j] = np.float32(0) + one[0, 0]
        j += 1


@njit(**CPU)
def cascade_sum_axis(x, outer, nch, inner, out):
    """``torch.sum`` over every axis but the channel axis of ``x`` viewed as
    ``(outer, nch, inner)``: one float32 sum per channel into ``out``.

    torch moves the reduced axes innermost: with ``inner > 1`` each channel
    adds the cascade sums of its ``outer`` rows one after the other; with
    ``inner == 1`` the channels are the columns of a ``(outer, nch)`` matrix.
    """
    if inner == 1 and nch > 1:
        _outer_sum(x, outer, nch, out)
        return
    for c in range(nch):
        acc = np.float32(0)
        for o in range(outer):
            acc += _inner_sum(x, (o * nch + c) * inner, inner)
        out[c] = acc


# --------------------------------------------------------------------------
# linspace, and the float32 ops of HistogramObserver
# --------------------------------------------------------------------------


@njit(**CPU)
def linspace(start, end, out):
    """``torch.linspace(start, end, out.size)`` in float32 into ``out``."""
    n = out.size
    s = np.float32(start)
    e = np.float32(end)
    if n == 1:
        out[0] = s
        return
    step = (e - s) / np.float32(n - 1)
    half = n // 2
    for i in range(half):
        out[i] = fma32(step, np.float32(i), s)
    for i in range(half, n):
        out[i] = fma32(-step, np.float32(n - 1 - i), e)


@njit(**CPU)
def _linspace_f64(start, end, out):
    n = out.size
    if n == 1:
        out[0] = start
        return
    step = (end - start) / (n - 1)
    for i in range(n):
        out[i] = start + step * i
    out[n - 1] = end


@njit(**CPU_INLINE)
def _upper_bound(edges, v):
    """First index whose edge is greater than ``v`` (``std::upper_bound``)."""
    lo = 0
    hi = edges.size
    while lo < hi:
        mid = (lo + hi) // 2
        if edges[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(**CPU)
def histogram_upscale(hist, orig_min, orig_max, new_min, new_max, upsample, out):
    """torch's ``HistogramObserver._upscale_histogram`` in float32.

    Every bin of ``hist`` (range ``[orig_min, orig_max]``) is split into
    ``upsample`` equal parts whose mid points are re-binned into the same
    number of bins over ``[new_min, new_max]``; ``out`` receives the float32
    ``bincount`` (added in index order, as torch does).
    """
    bins = hist.size
    nsrc = bins * upsample
    mids = np.empty(nsrc + 1, np.float32)
    linspace(orig_min, orig_max, mids)
    bin_size = (np.float32(orig_max) - np.float32(orig_min)) / np.float32(nsrc)
    half = np.float32(0.5) * bin_size
    edges = np.empty(bins + 1, np.float32)
    linspace(new_min, new_max, edges)
    up = np.float32(upsample)
    for k in range(bins):
        out[k] = 0
    for j in range(nsrc):
        b = _upper_bound(edges, mids[j] + half) - 1
        b = min(max(b, 0), bins - 1)
        out[b] += hist[j // upsample] / up


@njit(**CPU)
def histogram_upscale_f64(hist, orig_min, orig_max, new_min, new_max, upsample, out):
    """:func:`histogram_upscale` in float64 (the reference profile)."""
    bins = hist.size
    nsrc = bins * upsample
    mids = np.empty(nsrc + 1, np.float64)
    _linspace_f64(np.float64(orig_min), np.float64(orig_max), mids)
    half = 0.5 * (np.float64(orig_max) - np.float64(orig_min)) / nsrc
    edges = np.empty(bins + 1, np.float64)
    _linspace_f64(np.float64(new_min), np.float64(new_max), edges)
    for k in range(bins):
        out[k] = 0
    for j in range(nsrc):
        b = _upper_bound(edges, mids[j] + half) - 1
        b = min(max(b, 0), bins - 1)
        out[b] += hist[j // upsample] / upsample


@njit(**CPU_INLINE)
def _div_floor_f32(a, b):
    """torch's float32 ``div(a, b, rounding_mode="floor")`` (vectorised form)."""
    basic = a / b
    mod = np.fmod(a, b)
    if abs(basic) == _F32_INF and abs(a) != _F32_INF:
        num = a
    else:
        num = a - mod
    div = num / b
    one = np.float32(1)
    if mod != 0 and ((b < 0) != (mod < 0)):
        div = div - one
    fd = np.floor(div)
    if div - fd > np.float32(0.5):
        fd = fd + one
    if div == 0:
        fd = np.float32(np.copysign(np.float32(0), basic))
    if b == 0:
        fd = basic
    return fd


@njit(**CPU)
def _quantization_error_f32(hist, min_val, max_val, start, end, dst_nbins, norm):
    """``HistogramObserver._compute_quantization_error`` with torch's roundings.

    Python scalars (``bin_width``, ``dst_bin_width``) are float64 and enter
    each tensor operation rounded to float32; every tensor operation rounds
    to float32; the final ``norm.sum()`` is torch's cascade sum.
    """
    bins = hist.size
    bwd = (np.float64(max_val) - np.float64(min_val)) / bins
    dbwd = bwd * (end - start + 1) / dst_nbins
    if dbwd == 0.0:
        return 0.0
    bw = np.float32(bwd)
    dbw = np.float32(dbwd)
    half = np.float32(dbwd / 2)
    nhalf = np.float32(-dbwd / 2)
    three = np.float32(3)
    top = np.float32(dst_nbins - 1)
    zero = np.float32(0)
    one = np.float32(1)
    hcube = (half * half) * half
    ncube = (nhalf * nhalf) * nhalf
    g_mid = (hcube - ncube) / three  # _get_norm(tensor(-w/2), tensor(w/2), .) before density
    for i in range(bins):
        sb = np.float32(i - start) * bw
        se = sb + bw
        db = min(max(_div_floor_f32(sb, dbw), zero), top)
        dbc = (db + np.float32(0.5)) * dbw
        de = min(max(_div_floor_f32(se, dbw), zero), top)
        dens = hist[i] / bw
        delta_b = sb - dbc
        acc = zero + dens * ((hcube - (delta_b * delta_b) * delta_b) / three)
        acc = acc + ((de - db) - one) * (dens * g_mid)
        dec = de * dbw + half
        delta_e = se - dec
        acc = acc + dens * (((delta_e * delta_e) * delta_e - ncube) / three)
        norm[i] = acc
    return np.float64(cascade_sum(norm))


@njit(**CPU)
def _quantization_error_f64(hist, min_val, max_val, start, end, dst_nbins):
    """The same quantity in float64 throughout (reference profile)."""
    bins = hist.size
    bw = (np.float64(max_val) - np.float64(min_val)) / bins
    dbw = bw * (end - start + 1) / dst_nbins
    if dbw == 0.0:
        return 0.0
    half = dbw / 2
    g_mid = (half * half * half + half * half * half) / 3
    total = 0.0
    for i in range(bins):
        sb = (i - start) * bw
        se = sb + bw
        db = min(max(np.floor(sb / dbw), 0.0), dst_nbins - 1.0)
        de = min(max(np.floor(se / dbw), 0.0), dst_nbins - 1.0)
        dens = hist[i] / bw
        delta_b = sb - (db + 0.5) * dbw
        delta_e = se - (de * dbw + half)
        total += dens * ((half * half * half - delta_b * delta_b * delta_b) / 3)
        total += (de - db - 1) * dens * g_mid
        total += dens * ((delta_e * delta_e * delta_e + half * half * half) / 3)
    return total


@njit(**CPU)
def _search_bins(hist, csum, total, min_val, max_val, dst_nbins, exact):
    """The quantile walk of ``_non_linear_param_search``: ``(start, end)`` bins.

    The bounds ``alpha``/``beta`` step by 1e-5 in float64.  torch compares
    the cumulative sums (``csum``, float32 values) with ``alpha * total``
    rounded to float32, as it compares a float32 tensor with a Python float;
    ``exact`` compares in float64 and measures the error in float64.
    """
    bins = hist.size
    norm = np.empty(bins, np.float32)
    stepsize = 1e-5
    alpha = 0.0
    beta = 1.0
    start = 0
    end = bins - 1
    norm_min = np.inf
    while alpha < beta:
        next_alpha = alpha + stepsize
        next_beta = beta - stepsize
        ta = next_alpha * total
        tb = next_beta * total
        if not exact:
            ta = np.float64(np.float32(ta))
            tb = np.float64(np.float32(tb))
        lo = start
        hi = end
        while lo < end and csum[lo] < ta:
            lo += 1
        while hi > start and csum[hi] > tb:
            hi -= 1
        next_start = start
        next_end = end
        if (lo - start) > (end - hi):
            next_start = lo
            alpha = next_alpha
        else:
            next_end = hi
            beta = next_beta
        if next_start == start and next_end == end:
            continue
        if exact:
            nrm = _quantization_error_f64(hist, min_val, max_val, next_start, next_end, dst_nbins)
        else:
            nrm = _quantization_error_f32(hist, min_val, max_val, next_start, next_end, dst_nbins, norm)
        if nrm > norm_min:
            break
        norm_min = nrm
        start = next_start
        end = next_end
    return start, end


@njit(**CPU)
def histogram_search(hist, min_val, max_val, dst_nbins, out):
    """torch's ``HistogramObserver._non_linear_param_search`` in float32.

    ``hist`` is the float32 histogram over ``[min_val, max_val]``; ``out``
    (float32, 2) receives the chosen ``(new_min, new_max)``: ``total`` is
    torch's cascade sum, the cumulative sums accumulate in float64 and are
    stored in float32 (``torch.cumsum``), the range ends are float32
    ``min + bin_width * bin``.
    """
    bins = hist.size
    csum = np.empty(bins, np.float64)
    run = 0.0
    for i in range(bins):
        run += np.float64(hist[i])
        csum[i] = np.float64(np.float32(run))
    total = np.float64(cascade_sum(hist))
    start, end = _search_bins(hist, csum, total, min_val, max_val, dst_nbins, False)
    mn = np.float32(min_val)
    bw = (np.float32(max_val) - mn) / np.float32(bins)
    out[0] = mn + bw * np.float32(start)
    out[1] = mn + bw * np.float32(end + 1)


@njit(**CPU)
def histogram_search_f64(hist, min_val, max_val, dst_nbins, out):
    """:func:`histogram_search` in float64 throughout (reference profile);
    ``out`` is float64."""
    bins = hist.size
    csum = np.empty(bins, np.float64)
    total = 0.0
    for i in range(bins):
        total += hist[i]
        csum[i] = total
    start, end = _search_bins(hist, csum, total, min_val, max_val, dst_nbins, True)
    bw = (np.float64(max_val) - np.float64(min_val)) / bins
    out[0] = np.float64(min_val) + bw * start
    out[1] = np.float64(min_val) + bw * (end + 1)
