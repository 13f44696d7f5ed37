"""CUDA kernels of the quantized activations, siblings of
``kernels/cpu/activation.py`` (same names, argument order and results).

Arrays are flat C-contiguous device arrays; each kernel is a 1-D grid-stride
loop.  The launchers return without synchronising.
"""

from numba import cuda

from . import KERNEL, config

__all__ = ["lut_apply", "clamp_apply", "lut_channels"]

#: quint8 lanes of torch's Vectorized<quint8> on an AVX512 CPU
VEC = 64


@cuda.jit(**KERNEL)
def _lut_kernel(x, out, lut, row):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        t = 0
        if row > 0:
            if i % row >= row - row % VEC:
                t = 1
        out[i] = lut[t, x[i]]


@cuda.jit(**KERNEL)
def _clamp_kernel(x, out, lo, hi):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        v = lo if v < lo else v
        out[i] = hi if v > hi else v


@cuda.jit(**KERNEL)
def _channels_kernel(x, out, tables, inner):
    nch = tables.shape[0]
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = tables[(i // inner) % nch, x[i]]


def _grid(n):
    return config.blocks(n), config.threads_per_block


def lut_apply(x, out, lut, row):
    """CUDA twin of :func:`qops.kernels.cpu.activation.lut_apply`."""
    if x.size:
        b, t = _grid(x.size)
        _lut_kernel[b, t](x, out, lut, row)


def clamp_apply(x, out, lo, hi):
    """CUDA twin of :func:`qops.kernels.cpu.activation.clamp_apply`."""
    if x.size:
        b, t = _grid(x.size)
        _clamp_kernel[b, t](x, out, lo, hi)


def lut_channels(x, out, tables, inner):
    """CUDA twin of :func:`qops.kernels.cpu.activation.lut_channels`."""
    if x.size:
        b, t = _grid(x.size)
        _channels_kernel[b, t](x, out, tables, inner)
