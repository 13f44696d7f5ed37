"""Integer GEMM core: raw u8 x s8 products with int32 wraparound.

Every linear and convolution reduces to ``raw[m, n] = sum_k x[m, k] * w[n, k]``
with unsigned 8-bit activations and signed 8-bit weights (int8 activations and
uint8 weights are shifted by 128 by the caller, which moves the zero point by
the same amount: the accumulator ``sum_k (x - zx)(w - zw)`` is unchanged).
The zero-point corrections

    A[m, n] = raw[m, n] - zw[n] * rowsum[m] - zx * colsum[n] + K * zx * zw[n]

are applied, in int32 with wraparound, by the epilogue that requantizes.

Two paths compute ``raw`` identically: the AVX512-VNNI microkernel
(``kernels/cpu/_vnni.py``), chosen at run time when the CPU has it, and a
portable Numba loop for every other CPU.  ``QOPS_DISABLE_VNNI=1`` forces the
portable path (the test suite runs both).
"""

import os

import numpy as np
from llvmlite import binding as llvm
from numba import njit, prange

from .._options import CPU, CPU_PARALLEL
from ._vnni import MR, NR, vnni_4x32

__all__ = ["MR", "NR", "KG", "vnni_available", "pack_weight", "pack_activations", "gemm_raw", "row_sums"]

KG = 4  # bytes per k-group (one int32 word)


def _host_has_vnni() -> bool:
    try:
        feats = llvm.get_host_cpu_features()
    except Exception:  # pragma: no cover - unknown host
        return False
    return bool(feats.get("avx512vnni", False)) and bool(feats.get("avx512f", False))


_HOST_VNNI = _host_has_vnni()


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
    vnni_4x32(a, i * MR * kg, kg, b, j * kg * NR, kg, c, i * MR * np_ + j * NR, np_)


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


@njit(**CPU_PARALLEL)
def _gemm_vnni(a, b, c, mp, np_, kg):
    mb = mp // MR
    for t in prange((np_ // NR) * mb):
        _tile_vnni(a, b, c, t, mb, np_, kg)


@njit(**CPU)
def _gemm_vnni_serial(a, b, c, mp, np_, kg):
    mb = mp // MR
    for t in range((np_ // NR) * mb):
        _tile_vnni(a, b, c, t, mb, np_, kg)


@njit(**CPU_PARALLEL)
def _gemm_portable(a, b, c, mp, np_, kg):
    mb = mp // MR
    a8 = a.view(np.uint8)
    b8 = b.view(np.int8)
    for t in prange((np_ // NR) * mb):
        _tile_portable(a8, b8, c, t, mb, np_, kg)


@njit(**CPU)
def _gemm_portable_serial(a, b, c, mp, np_, kg):
    mb = mp // MR
    a8 = a.view(np.uint8)
    b8 = b.view(np.int8)
    for t in range((np_ // NR) * mb):
        _tile_portable(a8, b8, c, t, mb, np_, kg)


#: multiply-adds below which one thread does the whole GEMM (a parallel
#: launch costs tens of microseconds)
SERIAL_MACS = 1 << 21


def gemm_raw(a, mp, kp, wpack, np_, out=None):
    """``raw[m, n] = sum_k x[m, k] * w[n, k]`` (int32 wrap) for packed inputs.

    ``a``/``mp``/``kp`` come from :func:`pack_activations`, ``wpack`` from
    :func:`pack_weight` with ``np_`` padded columns.  Returns a flat int32
    array of ``mp * np_`` (row-major ``(Mp, Np)``).
    """
    if out is None:
        out = np.empty(mp * np_, np.int32)
    kg = kp // KG
    serial = mp * np_ * kp <= SERIAL_MACS
    if vnni_available():
        (_gemm_vnni_serial if serial else _gemm_vnni)(a, wpack, out, mp, np_, kg)
    else:
        (_gemm_portable_serial if serial else _gemm_portable)(a, wpack, out, mp, np_, kg)
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
