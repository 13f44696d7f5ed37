"""The one dispatch table: (op, device) -> kernel launcher.

An op is either a name in :data:`_OPS` (the core kernels) or
``"module.function"``, naming ``qops.kernels.<device>.<module>.<function>``
directly (``"pool.max_pool2d"``); both devices have the same module and
function names.

CPU launchers run inside :func:`qops._threading.kernel_lock`; CUDA
launchers exist for every op and, without a GPU, raise an error that names
the op (never a silent CPU fallback).
"""

from __future__ import annotations

import importlib

from ._device import cuda_module
from . import _threading

_OPS = {
    "quantize": "quantize",
    "dequantize": "quantize",
    "requantize": "quantize",
    "fake_quantize": "quantize",
    "pack_subbyte": "quantize",
    "unpack_subbyte": "quantize",
    "gemm_raw": "gemm",
    "row_sums": "gemm",
    "requantize_accumulators": "requant",
    "im2col": "conv",
    "depthwise": "conv",
    "minmax": "observe",
    "minmax_axis": "observe",
    "histc": "observe",
    "linspace": "observe",
    "histogram_upscale": "observe",
    "histogram_upscale_f64": "observe",
    "histogram_search": "observe",
    "histogram_search_f64": "observe",
    "cascade_sum": "observe",
    "cascade_sum_threads": "observe",
    "cascade_sum_axis": "observe",
}

_cache: dict = {}


def _resolve(op: str, device: str):
    key = (op, device)
    fn = _cache.get(key)
    if fn is None:
        module, _, name = op.rpartition(".")
        if not module:
            try:
                module = _OPS[op]
            except KeyError:
                raise NotImplementedError(f"no kernel for op {op!r}") from None
        if device == "cuda":
            cuda_module(op)
        try:
            mod = importlib.import_module(f"qops.kernels.{device}.{module}")
        except ModuleNotFoundError:
            if device != "cuda":
                raise
            raise NotImplementedError(
                f"{op} has no CUDA kernel yet; move the data to the CPU with .cpu()"
            ) from None
        fn = _cache[key] = getattr(mod, name)
    return fn


def kernel(op: str, device: str):
    """Kernel ``op``'s launcher on ``device``, resolved now: for a short path
    that calls it directly (a CPU launcher inside
    :func:`qops._threading.kernel_lock`, as :func:`run` calls it)."""
    return _resolve(op, device)


def run(op: str, device: str, *args):
    """Run kernel ``op`` on ``device`` with ``args`` (kernel argument order)."""
    fn = _cache.get((op, device)) or _resolve(op, device)
    if device == "cpu":
        with _threading.kernel_lock():
            return fn(*args)
    return fn(*args)
