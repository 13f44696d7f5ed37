"""Integer GEMM core: raw u8 x s8 products with int32 wraparound.

Every linear and convolution reduces to ``raw[m, n] = sum_k x[m, k] * w[n, k]``
with unsigned 8-bit activations and signed 8-bit weights (int8 activations and
uint8 weights are shifted by 128 by the caller, which moves the zero point by
the same amount: the accumulator ``sum_k (x - zx)(w - zw)`` is unchanged).
The zero-point corrections

    A[m, n] = raw[m, n] - zw[n] * rowsum[m] - zx * colsum[n] + K * zx * zw[n]

are applied, in int32 with wraparound, by the epilogue that requantizes.

Rows are taken 4 at a time (``MR``); a row count that is not a multiple of 4
(a one-row linear) ends with 2-row and 1-row microkernels instead of padding.

Two paths compute ``raw`` identically: the AVX512-VNNI microkernel
(``kernels/cpu/_vnni.py``), chosen at run time when the CPU has it, and a
portable Numba loop for every other CPU.  ``QOPS_DISABLE_VNNI=1`` forces the
portable path (the test suite runs both).
"""

import os

import numpy as np
from numba import njit, prange

from .._options import CPU, CPU_PARALLEL
from .._split import (CompiledJob, args_of, array1, claim, contiguous, finish, launch, part_bounds, put_array,
                      run_compiled, run_ranges)
from ._avx512 import HOST_FEATURES
from ._vnni import MR, NR, vnni_1x32, vnni_1x128, vnni_2x32, vnni_2x64, vnni_4x32

__all__ = ["MR", "NR", "KG", "vnni_available", "pack_weight", "pack_activations", "gemm_raw", "row_sums"]

KG = 4  # bytes per k-group (one int32 word)


_HOST_VNNI = bool(HOST_FEATURES.get("avx512f", False)) and bool(HOST_FEATURES.get("avx512vnni", False))


def vnni_available() -> bool:
    """True when the VNNI microkernel will run (host support, not disabled)."""
    return _HOST_VNNI and os.environ.get("QOPS_DISABLE_VNNI", "") in ("", "0")


def _round_up(n, m):
    return -(-n // m) * m


def pack_weight(w):
    """Pack int8 weights ``(N, K)`` into 32-column panels of 4-byte k-groups.

    Returns a flat int32 array of ``(Np // 32) * (Kp // 4) * 32`` words with
    ``Np = round_up(N, 32)``, ``Kp = round_up(K, 4)``; padding is zero.
    """
    n, k = w.shape
    np_, kp = _round_up(max(n, 1), NR), _round_up(max(k, 1), KG)
    padded = np.zeros((np_, kp), np.int8)
    padded[:n, :k] = w
    panels = padded.reshape(np_ // NR, NR, kp // KG, KG).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(panels).view(np.int32).reshape(-1)


def pack_activations(x):
    """uint8 activations ``(M, K)`` as a zero-padded ``(Mp, Kp)`` buffer viewed
    as int32 words (no copy when already aligned and contiguous)."""
    m, k = x.shape
    mp, kp = _round_up(max(m, 1), MR), _round_up(max(k, 1), KG)
    if mp == m and kp == k and x.flags.c_contiguous:
        buf = x
    else:
        buf = np.zeros((mp, kp), np.uint8)
        buf[:m, :k] = x
    return buf.reshape(-1).view(np.int32), mp, kp


@njit(**CPU)
def _tile_vnni(a, b, c, t, mb, np_, kg):
    j = t // mb  # consecutive tiles share a weight panel
    i = t - j * mb
    vnni_4x32(a, i * MR * kg, kg, b, j * kg * NR, 0, kg, c, i * MR * np_ + j * NR, np_)


@njit(**CPU)
def _tile_portable(a8, b8, c, t, mb, np_, kg):
    j = t // mb
    i = t - j * mb
    kp = kg * KG
    acc = np.zeros((MR, NR), np.int32)
    for g in range(kg):
        pb = (j * kg + g) * NR * KG
        for r in range(MR):
            pa = (i * MR + r) * kp + g * KG
            x0 = np.int32(a8[pa])
            x1 = np.int32(a8[pa + 1])
            x2 = np.int32(a8[pa + 2])
            x3 = np.int32(a8[pa + 3])
            for n in range(NR):
                q = pb + n * KG
                s = (x0 * np.int32(b8[q]) + x1 * np.int32(b8[q + 1])
                     + x2 * np.int32(b8[q + 2]) + x3 * np.int32(b8[q + 3]))
                acc[r, n] = np.int32(acc[r, n] + np.int32(s))
    for r in range(MR):
        row = (i * MR + r) * np_ + j * NR
        for n in range(NR):
            c[row + n] = acc[r, n]


def _gemm_vnni(a, b, c, mp, np_, kg):
    """The VNNI GEMM's tiles in parts, handed to the pool's workers in
    compiled code (:func:`qops.kernels._split.run_compiled`; the pool busy:
    as Python calls)."""
    ntiles = (np_ // NR) * (mp // MR)
    if not (contiguous(a, b, c) and run_compiled(_tiles_vnni_parts, _TILES_VNNI_JOB, a, b, c, mp, np_, kg,
                                                 ntiles)):
        run_ranges(_tiles_vnni, ntiles, a, b, c, mp, np_, kg, align=1)


def _tiles_vnni_job(p):
    """One part of :func:`_gemm_vnni` on a pool worker (compiled job): the
    slots as :func:`_tiles_vnni_parts` writes them."""
    _tiles_vnni(array1(p, 0, np.int32), array1(p, 2, np.int32), array1(p, 4, np.int32), p[6], p[7], p[8],
                p[9], p[10])


_TILES_VNNI_JOB = CompiledJob(_tiles_vnni_job)


@njit(**CPU)
def _tiles_vnni_parts(a, b, c, mp, np_, kg, ntiles, ctl, nworkers, job):
    """:func:`_gemm_vnni`'s tiles in ``nworkers + 1`` parts on the pool."""
    if not claim(ctl):
        return -1
    for k in range(nworkers):
        i = put_array(ctl, put_array(ctl, put_array(ctl, args_of(ctl, k), a), b), c)
        ctl[i] = mp
        ctl[i + 1] = np_
        ctl[i + 2] = kg
        ctl[i + 3], ctl[i + 4] = part_bounds(ntiles, nworkers + 1, k + 1, 1)
    seq = launch(ctl, nworkers, job)
    _tiles_vnni(a, b, c, mp, np_, kg, 0, part_bounds(ntiles, nworkers + 1, 0, 1)[1])
    return finish(ctl, nworkers, seq, job)


@njit(**CPU)
def _tiles_vnni(a, b, c, mp, np_, kg, t0, t1):
    """Tiles ``t0 : t1`` of the VNNI GEMM (one part of it)."""
    mb = mp // MR
    for t in range(t0, t1):
        _tile_vnni(a, b, c, t, mb, np_, kg)


def _gemm_vnni_serial(a, b, c, mp, np_, kg):
    _tiles_vnni(a, b, c, mp, np_, kg, 0, (np_ // NR) * (mp // MR))


def _gemm_portable(a, b, c, mp, np_, kg):
    run_ranges(_tiles_portable, (np_ // NR) * (mp // MR), a, b, c, mp, np_, kg, align=1)


@njit(**CPU)
def _tiles_portable(a, b, c, mp, np_, kg, t0, t1):
    """Tiles ``t0 : t1`` of the portable GEMM (one part of it)."""
    mb = mp // MR
    a8 = a.view(np.uint8)
    b8 = b.view(np.int8)
    for t in range(t0, t1):
        _tile_portable(a8, b8, c, t, mb, np_, kg)


def _gemm_portable_serial(a, b, c, mp, np_, kg):
    _tiles_portable(a, b, c, mp, np_, kg, 0, (np_ // NR) * (mp // MR))


@njit(**CPU)
def _rows_vnni(a, b, c, r0, rows, np_, kg, j0, j1):
    """Rows ``r0 : r0 + rows`` (``rows < 4``), panels ``j0 : j1``, VNNI."""
    nb = kg * NR  # words per weight panel
    r = r0
    if rows >= 2:
        j = j0
        while j + 2 <= j1:
            vnni_2x64(a, r * kg, kg, b, j * nb, nb, kg, c, r * np_ + j * NR, np_)
            j += 2
        if j < j1:
            vnni_2x32(a, r * kg, kg, b, j * nb, nb, kg, c, r * np_ + j * NR, np_)
        r += 2
    if rows % 2:
        j = j0
        while j + 4 <= j1:
            vnni_1x128(a, r * kg, kg, b, j * nb, nb, kg, c, r * np_ + j * NR, np_)
            j += 4
        while j < j1:
            vnni_1x32(a, r * kg, kg, b, j * nb, nb, kg, c, r * np_ + j * NR, np_)
            j += 1


@njit(**CPU)
def _rows_portable(a8, b8, c, r0, rows, np_, kg, j0, j1):
    """Rows ``r0 : r0 + rows``, panels ``j0 : j1``, portable."""
    kp = kg * KG
    acc = np.zeros(NR, np.int32)
    for r in range(r0, r0 + rows):
        for j in range(j0, j1):
            acc[:] = 0
            for g in range(kg):
                pb = (j * kg + g) * NR * KG
                pa = r * kp + g * KG
                x0 = np.int32(a8[pa])
                x1 = np.int32(a8[pa + 1])
                x2 = np.int32(a8[pa + 2])
                x3 = np.int32(a8[pa + 3])
                for n in range(NR):
                    q = pb + n * KG
                    s = (x0 * np.int32(b8[q]) + x1 * np.int32(b8[q + 1])
                         + x2 * np.int32(b8[q + 2]) + x3 * np.int32(b8[q + 3]))
                    acc[n] = np.int32(acc[n] + np.int32(s))
            for n in range(NR):
                c[r * np_ + j * NR + n] = acc[n]


#: panels per parallel work item of the rows below a multiple of MR
_TAIL_PANELS = 4


@njit(**CPU_PARALLEL)
def _tail_vnni(a, b, c, r0, rows, np_, kg):
    nj = np_ // NR
    for t in prange((nj + _TAIL_PANELS - 1) // _TAIL_PANELS):
        j0 = t * _TAIL_PANELS
        _rows_vnni(a, b, c, r0, rows, np_, kg, j0, min(j0 + _TAIL_PANELS, nj))


@njit(**CPU_PARALLEL)
def _tail_portable(a, b, c, r0, rows, np_, kg):
    a8 = a.view(np.uint8)
    b8 = b.view(np.int8)
    nj = np_ // NR
    for t in prange((nj + _TAIL_PANELS - 1) // _TAIL_PANELS):
        j0 = t * _TAIL_PANELS
        _rows_portable(a8, b8, c, r0, rows, np_, kg, j0, min(j0 + _TAIL_PANELS, nj))


@njit(**CPU)
def _tail_vnni_serial(a, b, c, r0, rows, np_, kg):
    _rows_vnni(a, b, c, r0, rows, np_, kg, 0, np_ // NR)


@njit(**CPU)
def _tail_portable_serial(a, b, c, r0, rows, np_, kg):
    _rows_portable(a.view(np.uint8), b.view(np.int8), c, r0, rows, np_, kg, 0, np_ // NR)


@njit(**CPU)
def block_vnni(a, b, c, rows, np_, kg):
    """Serial ``raw`` of ``rows`` (any count) rows, every panel, VNNI: the
    GEMM of one block of a fused kernel (``a``: rows of ``kg`` words, ``c``:
    rows of ``np_`` words)."""
    full = rows - rows % MR
    nj = np_ // NR
    for j in range(nj):
        for i in range(0, full, MR):
            vnni_4x32(a, i * kg, kg, b, j * kg * NR, 0, kg, c, i * np_ + j * NR, np_)
    if full < rows:
        _rows_vnni(a, b, c, full, rows - full, np_, kg, 0, nj)


@njit(**CPU)
def block_portable(a, b, c, rows, np_, kg):
    """:func:`block_vnni` on the portable path."""
    full = rows - rows % MR
    a8 = a.view(np.uint8)
    b8 = b.view(np.int8)
    mb = full // MR
    for t in range((np_ // NR) * mb):
        _tile_portable(a8, b8, c, t, mb, np_, kg)
    if full < rows:
        _rows_portable(a8, b8, c, full, rows - full, np_, kg, 0, np_ // NR)


#: multiply-adds below which one thread does the whole GEMM (a parallel
#: launch costs tens of microseconds)
SERIAL_MACS = 1 << 21


def gemm_raw(a, mp, kp, wpack, np_, out=None):
    """``raw[m, n] = sum_k x[m, k] * w[n, k]`` (int32 wrap) for packed inputs.

    ``a``/``mp``/``kp`` come from :func:`pack_activations`, ``wpack`` from
    :func:`pack_weight` with ``np_`` padded columns.  Returns a flat int32
    array of ``mp * np_`` (row-major ``(Mp, Np)``).  ``a`` may also hold any
    number ``mp`` of unpadded rows of ``kp`` bytes (``kp`` a multiple of 4):
    rows beyond the last multiple of ``MR`` run on 2-row and 1-row kernels.
    """
    if out is None:
        out = np.empty(mp * np_, np.int32)
    kg = kp // KG
    full = mp - mp % MR
    vnni = vnni_available()
    if full:
        serial = full * np_ * kp <= SERIAL_MACS
        if vnni:
            (_gemm_vnni_serial if serial else _gemm_vnni)(a, wpack, out, full, np_, kg)
        else:
            (_gemm_portable_serial if serial else _gemm_portable)(a, wpack, out, full, np_, kg)
    if full < mp:
        rows = mp - full
        serial = rows * np_ * kp <= SERIAL_MACS
        if vnni:
            (_tail_vnni_serial if serial else _tail_vnni)(a, wpack, out, full, rows, np_, kg)
        else:
            (_tail_portable_serial if serial else _tail_portable)(a, wpack, out, full, rows, np_, kg)
    return out


@njit(**CPU)
def row_sums(x, out):
    """``out[m] = sum_k x[m, k]`` for uint8 rows (int32)."""
    m, k = x.shape
    for i in range(m):
        s = np.int32(0)
        for j in range(k):
            s = np.int32(s + np.int32(x[i, j]))
        out[i] = s
