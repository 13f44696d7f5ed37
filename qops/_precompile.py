"""Pay Numba's compile time up front."""

from __future__ import annotations

import numpy as np


def precompile(device="cpu", *, verbose=False) -> None:
    """Compile the common kernels now (each is cached on disk afterwards).

    Runs quantize, dequantize, requantize and fake quantization once for every
    dtype and numerics profile on tiny and on large-enough-to-be-parallel
    inputs, so later calls start at full speed.

    Parameters
    ----------
    device : {"cpu", "cuda"}
    verbose : bool
        Print each step.
    """
    from . import _ops
    from ._device import check_device, to_device
    from .dtypes import qint8, qint32, quint2x4, quint4x2, quint8
    from .kernels._options import PARALLEL_MIN
    from .numerics import available_numerics

    dev = check_device(device)
    for n in (8, PARALLEL_MIN):
        x = to_device(np.linspace(-3, 3, n, dtype=np.float32).reshape(2, -1), dev)
        for profile in available_numerics():
            for dt in (quint8, qint8, qint32, quint4x2, quint2x4):
                if verbose:
                    print(f"precompile {dev} n={n} {profile} {dt.name}")
                q = _ops.quantize_per_tensor(x, 0.05, 1, dt, numerics=profile)
                _ops.dequantize(q, numerics=profile)
                _ops.requantize(q, 0.1, 2, numerics=profile)
                if dt is not quint8:
                    _ops.requantize(q, 0.1, 2, quint8, numerics=profile)
                if dt is not quint2x4:
                    qc = _ops.quantize_per_channel(x, [0.05, 0.07], [1, 2], 0, dt, numerics=profile)
                    _ops.dequantize(qc, numerics=profile)
                    _ops.requantize(qc, 0.1, 2, numerics=profile)
        _ops.fake_quantize_per_tensor_affine(x, 0.05, 1, 0, 255)
        _ops.fake_quantize_per_channel_affine(x, [0.05, 0.07], [1, 2], 0, 0, 255)
