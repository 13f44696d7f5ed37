"""Integer GEMM core on the GPU: raw u8 x s8 products with int32 wraparound.

The CUDA twin of ``kernels/cpu/gemm.py``, with the same names, argument
order and buffer layouts, so the API layer hands both the same packed data:

* activations: a zero-padded ``(Mp, Kp)`` uint8 matrix viewed as int32 words
  (four consecutive ``k`` of one row per word, little-endian);
* weights: :func:`kernels.cpu.gemm.pack_weight`'s 32-column panels of 4-byte
  k-groups, word ``(j // 32 * Kg + g) * 32 + j % 32`` holding ``w[j, 4g:4g+4]``.

:func:`gemm_raw` tiles the output into ``TILE_M x TILE_N`` blocks; each block
stages ``TILE_K`` k-groups of its activation rows and weight columns in shared
memory, and each thread accumulates the outputs it owns (a thread-stride loop
over the tile, so any ``threads_per_block`` works) in int32.  The inner step
is a dot product of four bytes with four bytes added to an int32, the pattern
NVVM turns into ``dp4a``.  Tiles are covered by a block-stride loop (grid size
from :data:`kernels.cuda.config`).
"""

import numpy as np
from numba import cuda

from . import DEVICE, KERNEL, config

__all__ = ["TILE_M", "TILE_N", "TILE_K", "gemm_raw", "row_sums"]

#: Output rows per tile.
TILE_M = 32
#: Output columns per tile.
TILE_N = 32
#: k-groups (4 bytes each) staged in shared memory per step.
TILE_K = 8

_NR = 32  # columns per weight panel (kernels.cpu.gemm.NR)


@cuda.jit(**DEVICE)
def _dot4(xw, ww):
    """``sum_b u8(xw, b) * s8(ww, b)`` over the four bytes of two int32 words."""
    x0 = xw & 0xFF
    x1 = (xw >> 8) & 0xFF
    x2 = (xw >> 16) & 0xFF
    x3 = (xw >> 24) & 0xFF
    w0 = ww & 0xFF
    w1 = (ww >> 8) & 0xFF
    w2 = (ww >> 16) & 0xFF
    w3 = (ww >> 24) & 0xFF
    w0 = w0 - ((w0 & 0x80) << 1)
    w1 = w1 - ((w1 & 0x80) << 1)
    w2 = w2 - ((w2 & 0x80) << 1)
    w3 = w3 - ((w3 & 0x80) << 1)
    return np.int32(x0 * w0 + x1 * w1 + x2 * w2 + x3 * w3)


@cuda.jit(**KERNEL)
def _gemm_kernel(a, b, c, mp, np_, kg):
    sa = cuda.shared.array((TILE_M, TILE_K), np.int32)
    sb = cuda.shared.array((TILE_K, TILE_N), np.int32)
    sc = cuda.shared.array((TILE_M, TILE_N), np.int32)
    tid = np.int64(cuda.threadIdx.x)
    nt = np.int64(cuda.blockDim.x)
    tiles_m = (mp + TILE_M - 1) // TILE_M
    tiles_n = (np_ + TILE_N - 1) // TILE_N
    for tile in range(np.int64(cuda.blockIdx.x), tiles_m * tiles_n, np.int64(cuda.gridDim.x)):
        # consecutive tiles share weight columns
        tj = tile // tiles_m
        ti = tile - tj * tiles_m
        r0 = ti * TILE_M
        c0 = tj * TILE_N
        for e in range(tid, TILE_M * TILE_N, nt):
            sc[e // TILE_N, e % TILE_N] = 0
        for g0 in range(0, kg, TILE_K):
            for e in range(tid, TILE_M * TILE_K, nt):
                r = e // TILE_K
                g = e - r * TILE_K
                if r0 + r < mp and g0 + g < kg:
                    sa[r, g] = a[(r0 + r) * kg + g0 + g]
                else:
                    sa[r, g] = 0
            for e in range(tid, TILE_K * TILE_N, nt):
                g = e // TILE_N
                j = e - g * TILE_N
                col = c0 + j
                if col < np_ and g0 + g < kg:
                    sb[g, j] = b[((col // _NR) * kg + g0 + g) * _NR + col % _NR]
                else:
                    sb[g, j] = 0
            cuda.syncthreads()
            for e in range(tid, TILE_M * TILE_N, nt):
                r = e // TILE_N
                j = e - r * TILE_N
                acc = sc[r, j]
                for g in range(TILE_K):
                    acc = np.int32(acc + _dot4(sa[r, g], sb[g, j]))
                sc[r, j] = acc
            cuda.syncthreads()
        for e in range(tid, TILE_M * TILE_N, nt):
            r = e // TILE_N
            j = e - r * TILE_N
            if r0 + r < mp and c0 + j < np_:
                c[(r0 + r) * np_ + c0 + j] = sc[r, j]
        cuda.syncthreads()  # sc is reused by the next tile


@cuda.jit(**KERNEL)
def _row_sums_kernel(x, out):
    m, k = x.shape
    for i in range(cuda.grid(1), m, cuda.gridsize(1)):
        s = np.int32(0)
        for j in range(k):
            s = np.int32(s + np.int32(x[i, j]))
        out[i] = s


def gemm_raw(a, mp, kp, wpack, np_, out=None):
    """``raw[m, n] = sum_k x[m, k] * w[n, k]`` (int32 wrap) for packed device inputs.

    Parameters
    ----------
    a : int32 device array, flat
        The ``(mp, kp)`` uint8 activations viewed as ``mp * kp // 4`` words.
    mp, kp : int
        Padded rows and columns (``kp`` a multiple of 4).
    wpack : int32 device array, flat
        Weight panels from :func:`kernels.cpu.gemm.pack_weight`, ``np_``
        padded columns.
    out : int32 device array, optional
        ``mp * np_`` elements; allocated when omitted.

    Returns
    -------
    int32 device array
        Row-major ``(mp, np_)``, flat.  The launch is not synchronised.
    """
    if out is None:
        out = cuda.device_array(mp * np_, np.int32)
    kg = kp // 4
    if mp and np_:
        tiles = -(-mp // TILE_M) * -(-np_ // TILE_N)
        blocks = max(1, min(config.max_blocks, tiles))
        _gemm_kernel[blocks, config.threads_per_block](a, wpack, out, np.int64(mp),
                                                       np.int64(np_), np.int64(kg))
    return out


def row_sums(x, out):
    """``out[m] = sum_k x[m, k]`` for the rows of a uint8 ``(M, K)`` device array (int32)."""
    m = x.shape[0]
    if m:
        _row_sums_kernel[config.blocks(m), config.threads_per_block](x, out)


# --------------------------------------------------------------------------
# helpers of the API layer: activation packing and host constants on the GPU
# --------------------------------------------------------------------------


@cuda.jit(**KERNEL)
def _pack_rows_kernel(x, flip, out, mp, kp):
    m, k = x.shape
    for e in range(cuda.grid(1), mp * kp, cuda.gridsize(1)):
        i = e // kp
        j = e - i * kp
        if i < m and j < k:
            out[e] = (np.int64(x[i, j]) & 0xFF) ^ flip
        else:
            out[e] = 0


def pack_activations(x, flip=False):
    """8-bit ``(M, K)`` device activations as the zero-padded ``(Mp, Kp)``
    uint8 buffer of :func:`gemm_raw`, viewed as int32 words; ``flip`` adds 128
    (int8 activations as uint8).  Returns ``(words, mp, kp)``."""
    m, k = x.shape
    mp, kp = -(-max(m, 1) // 4) * 4, -(-max(k, 1) // 4) * 4
    buf = cuda.device_array(mp * kp, np.uint8)
    _pack_rows_kernel[config.blocks(mp * kp), config.threads_per_block](
        x, np.int64(0x80 if flip else 0), buf, np.int64(mp), np.int64(kp))
    return buf.view(np.int32), mp, kp


_DEVICE_COPIES = {}
_DEVICE_COPIES_MAX = 64


def device_constant(a):
    """A device copy of the host array ``a``, made once per array object.

    For the packed weights and epilogue parameters, which are never modified
    after they are built; the cache holds ``a`` itself so its id stays unique.
    """
    hit = _DEVICE_COPIES.get(id(a))
    if hit is not None and hit[0] is a:
        return hit[1]
    if len(_DEVICE_COPIES) >= _DEVICE_COPIES_MAX:
        _DEVICE_COPIES.pop(next(iter(_DEVICE_COPIES)))
    d = cuda.to_device(np.ascontiguousarray(a))
    _DEVICE_COPIES[id(a)] = (a, d)
    return d
