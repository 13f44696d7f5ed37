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


#: Device copies of small read-only parameter arrays (scales, zero points,
#: lookup tables), keyed by their bytes: a host-to-device copy costs about
#: 0.1 ms through Numba (measured on an H200), more than many kernels.
_PARAM_CACHE: "collections.OrderedDict" = None
_PARAM_CACHE_SIZE = 256
_PARAM_MAX_BYTES = 1 << 16


def params_to_device(*arrays):
    """CUDA copies of small read-only host arrays, cached by content.

    For kernel *inputs* only: a kernel must never write to what this returns,
    since later calls with equal parameters share it.  Arrays above 64 KiB
    are copied every time."""
    global _PARAM_CACHE
    import collections

    cuda = cuda_module("a CUDA kernel")
    if _PARAM_CACHE is None:
        _PARAM_CACHE = collections.OrderedDict()
    out = []
    for a in arrays:
        a = np.ascontiguousarray(a)
        if a.nbytes > _PARAM_MAX_BYTES:
            out.append(cuda.to_device(a))
            continue
        key = (a.dtype.str, a.shape, a.tobytes())
        d = _PARAM_CACHE.get(key)
        if d is None:
            d = cuda.to_device(a)
            _PARAM_CACHE[key] = d
            if len(_PARAM_CACHE) > _PARAM_CACHE_SIZE:
                _PARAM_CACHE.popitem(last=False)
        else:
            _PARAM_CACHE.move_to_end(key)
        out.append(d)
    return tuple(out)
