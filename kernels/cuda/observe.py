"""CUDA kernels for observers: min/max (global and per channel) and histc.

Siblings of ``kernels/cpu/observe.py`` with the same names, argument order
and results: :func:`minmax` propagates NaN and orders ``-0.0 < +0.0`` like
``llvm.minimum``; :func:`histc` uses torch's float32 bin formula, each
operation rounded once (``kernels/cuda/scalar.py`` primitives), counting with
atomic adds into int64 bins.

The observers' statistics (min/max values, the histogram) live on the host,
and the range search and histogram re-binning run there on a few thousand
numbers whatever the input's device: the host functions are re-exported at
the bottom so that the dispatch table has a CUDA entry for every op.

Reductions are two launches: a grid-stride pass in which every block reduces
its share to one partial result in shared memory, then one block that
reduces the partials.  Launchers read :data:`kernels.cuda.config` and return
without synchronising.
"""

import math

import numpy as np
from numba import cuda

from ..cpu.observe import (  # host-side helpers, see the module docstring
    cascade_sum,
    cascade_sum_axis,
    cascade_sum_threads,
    histogram_search,
    histogram_search_f64,
    histogram_upscale,
    histogram_upscale_f64,
    linspace,
)
from . import DEVICE, KERNEL, config
from .scalar import div32, mul32, sub32

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

#: Shared-memory slots per block (the most threads a block may have).
MAX_TPB = 1024

_INF = np.float32(np.inf)
_NINF = np.float32(-np.inf)


@cuda.jit(**DEVICE)
def _fmin(a, b):
    """``llvm.minimum``: NaN if either is NaN, ``-0.0 < +0.0``.

    A NaN operand is returned as it is: ``a + b`` would give the GPU's
    canonical NaN (``0x7fffffff``) where the CPU keeps the input's bits."""
    if a != a:
        return a
    if b != b:
        return b
    if a < b:
        return a
    if b < a:
        return b
    return a if math.copysign(1.0, a) < 0 else b


@cuda.jit(**DEVICE)
def _fmax(a, b):
    """``llvm.maximum``: NaN if either is NaN, ``-0.0 < +0.0`` (a NaN operand
    is returned as it is, see :func:`_fmin`)."""
    if a != a:
        return a
    if b != b:
        return b
    if a > b:
        return a
    if b > a:
        return b
    return a if math.copysign(1.0, a) > 0 else b


@cuda.jit(**DEVICE)
def _block_reduce(smin, smax, tid, nthreads):
    """Tree reduction of ``smin``/``smax[:nthreads]`` into slot 0."""
    width = 1
    while width < nthreads:
        width *= 2
    step = width // 2
    while step > 0:
        cuda.syncthreads()
        if tid < step and tid + step < nthreads:
            smin[tid] = _fmin(smin[tid], smin[tid + step])
            smax[tid] = _fmax(smax[tid], smax[tid + step])
        step //= 2
    cuda.syncthreads()


@cuda.jit(**KERNEL)
def _minmax_partial(x, skip_inf, pmin, pmax):
    smin = cuda.shared.array(MAX_TPB, np.float32)
    smax = cuda.shared.array(MAX_TPB, np.float32)
    tid = cuda.threadIdx.x
    mn = _INF
    mx = _NINF
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if skip_inf:
            mn = _fmin(mn, v if v != _NINF else _INF)
            mx = _fmax(mx, v if v != _INF else _NINF)
        else:
            mn = _fmin(mn, v)
            mx = _fmax(mx, v)
    smin[tid] = mn
    smax[tid] = mx
    _block_reduce(smin, smax, tid, cuda.blockDim.x)
    if tid == 0:
        pmin[cuda.blockIdx.x] = smin[0]
        pmax[cuda.blockIdx.x] = smax[0]


@cuda.jit(**KERNEL)
def _minmax_final(pmin, pmax, out):
    smin = cuda.shared.array(MAX_TPB, np.float32)
    smax = cuda.shared.array(MAX_TPB, np.float32)
    tid = cuda.threadIdx.x
    mn = _INF
    mx = _NINF
    for i in range(tid, pmin.size, cuda.blockDim.x):
        mn = _fmin(mn, pmin[i])
        mx = _fmax(mx, pmax[i])
    smin[tid] = mn
    smax[tid] = mx
    _block_reduce(smin, smax, tid, cuda.blockDim.x)
    if tid == 0:
        out[0] = smin[0]
        out[1] = smax[0]


@cuda.jit(**KERNEL)
def _minmax_axis_kernel(x, outer, nch, inner, out_min, out_max):
    smin = cuda.shared.array(MAX_TPB, np.float32)
    smax = cuda.shared.array(MAX_TPB, np.float32)
    tid = cuda.threadIdx.x
    per = outer * inner
    for c in range(cuda.blockIdx.x, nch, cuda.gridDim.x):
        mn = _INF
        mx = _NINF
        for j in range(tid, per, cuda.blockDim.x):
            o = j // inner
            v = x[(o * nch + c) * inner + (j - o * inner)]
            mn = _fmin(mn, v)
            mx = _fmax(mx, v)
        smin[tid] = mn
        smax[tid] = mx
        _block_reduce(smin, smax, tid, cuda.blockDim.x)
        if tid == 0:
            out_min[c] = smin[0]
            out_max[c] = smax[0]
        cuda.syncthreads()


@cuda.jit(**KERNEL)
def _zero_kernel(a):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] = 0


@cuda.jit(**KERNEL)
def _histc_kernel(x, left, right, exact, counts):
    bins = counts.size
    if exact:
        nb64 = np.float64(bins)
        width64 = right - left
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            d = np.float64(x[i])
            if d >= left and d <= right:
                p = np.int64(((d - left) * nb64) / width64)
                if p >= bins:
                    p = bins - 1
                cuda.atomic.add(counts, p, 1)
    else:
        l32 = np.float32(left)
        r32 = np.float32(right)
        nb32 = np.float32(bins)
        width = sub32(r32, l32)
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            v = x[i]
            if v >= l32 and v <= r32:
                p = np.int64(div32(mul32(sub32(v, l32), nb32), width))
                if p >= bins:
                    p = bins - 1
                cuda.atomic.add(counts, p, 1)


# --------------------------------------------------------------------------
# host launchers (same names and argument order as kernels/cpu/observe.py)
# --------------------------------------------------------------------------


def _tpb():
    return min(config.threads_per_block, MAX_TPB)


def minmax(x, skip_inf, out):
    """Minimum and maximum of the float32 device array ``x`` into the device
    array ``out`` (2 float32); NaN propagates, ``skip_inf`` ignores infinities."""
    tpb = _tpb()
    nblocks = max(1, min(config.max_blocks, -(-x.size // tpb)))
    pmin = cuda.device_array(nblocks, np.float32)
    pmax = cuda.device_array(nblocks, np.float32)
    _minmax_partial[nblocks, tpb](x, bool(skip_inf), pmin, pmax)
    _minmax_final[1, tpb](pmin, pmax, out)


def minmax_axis(x, outer, nch, inner, out_min, out_max):
    """Per-channel minimum and maximum of ``x`` viewed as ``(outer, nch, inner)``."""
    if nch:
        nblocks = max(1, min(config.max_blocks, nch))
        _minmax_axis_kernel[nblocks, _tpb()](x, np.int64(outer), np.int64(nch), np.int64(inner),
                                              out_min, out_max)


def histc(x, left, right, exact, counts):
    """Count ``x`` into the int64 device array ``counts`` (see the CPU kernel)."""
    _zero_kernel[config.blocks(counts.size), config.threads_per_block](counts)
    if x.size:
        _histc_kernel[config.blocks(x.size), config.threads_per_block](
            x, np.float64(left), np.float64(right), bool(exact), counts)
