"""CPU kernels (Numba ``njit``, parallel drivers over large arrays)."""
