"""Where arrays live: host NumPy arrays or CUDA device arrays."""

from __future__ import annotations

import numpy as np


def is_cuda_array(a) -> bool:
    """True for numba.cuda device arrays (and anything exposing the CUDA array interface).

    The CUDA simulator's arrays have no ``__cuda_array_interface__``; like
    numba's own device arrays they carry ``__cuda_ndarray__``.
    """
    if isinstance(a, np.ndarray):
        return False
    return hasattr(a, "__cuda_array_interface__") or bool(getattr(a, "__cuda_ndarray__", False))


def device_of(a) -> str:
    return "cuda" if is_cuda_array(a) else "cpu"


def check_device(device) -> str:
    d = str(device).lower()
    if d.startswith("cuda"):
        return "cuda"
    if d == "cpu":
        return "cpu"
    raise ValueError(f"unknown device {device!r}; use 'cpu' or 'cuda'")


def cuda_module(op: str):
    """Return ``numba.cuda`` if a GPU (or the simulator) is usable, else raise."""
    try:
        from numba import cuda
    except Exception as e:  # pragma: no cover - numba-cuda missing or broken
        raise RuntimeError(
            f"{op} on 'cuda' needs numba's CUDA target; install qops[cuda]: {e}"
        ) from e
    if not cuda.is_available():
        raise RuntimeError(
            f"{op} on 'cuda': no CUDA GPU is available (set NUMBA_ENABLE_CUDASIM=1 "
            "before importing numba to use the simulator)"
        )
    return cuda


def to_device(a, device: str):
    """Copy host array ``a`` to ``device`` (no-op for the same device)."""
    if device == "cuda":
        if is_cuda_array(a):
            return a
        return cuda_module("to('cuda')").to_device(np.ascontiguousarray(a))
    if is_cuda_array(a):
        return a.copy_to_host()
    return a
