"""Pay Numba's compile time up front."""

from __future__ import annotations

import numpy as np


def precompile(device="cpu", *, verbose=False) -> None:
    """Compile the common kernels now (each is cached on disk afterwards).

    Runs quantize, dequantize, requantize and fake quantization once for every
    dtype and numerics profile on tiny and on large-enough-to-be-parallel
    inputs, linear and conv2d (GEMM and depthwise) under every profile, the
    observers, and every other functional op (activations, pooling,
    resampling, elementwise ops, normalisation, transposed convolution,
    embeddings) under the default and ``reference`` profiles, so later calls
    start at full speed.

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
    _precompile_linear_conv(dev, verbose)
    _precompile_observers(dev, verbose)
    _precompile_surface(dev, verbose)


def _precompile_observers(dev, verbose):
    """min/max (global and per channel) and histogram observers, torch's and
    the reference profile's."""
    from . import observer
    from ._device import to_device
    from .kernels._options import PARALLEL_MIN

    if verbose:
        print(f"precompile {dev} observers")
    for n in (64, 4 * PARALLEL_MIN):
        x = to_device(np.linspace(-3, 3, n, dtype=np.float32).reshape(4, -1), dev)
        for numerics in (None, "reference"):
            for obs in (observer.MinMaxObserver(numerics=numerics),
                        observer.PerChannelMinMaxObserver(numerics=numerics),
                        observer.HistogramObserver(numerics=numerics)):
                obs(x)
                obs.calculate_qparams()


def _precompile_linear_conv(dev, verbose):
    """linear and conv2d (GEMM and depthwise paths) under every profile."""
    if dev != "cpu":
        return
    from . import _conv, _linear, _ops
    from .dtypes import qint8, quint8
    from .numerics import available_numerics

    rng = np.random.default_rng(0)
    w = _ops.quantize_per_tensor(rng.standard_normal((8, 16)).astype(np.float32), 0.05, 0, qint8)
    wc = _ops.quantize_per_tensor(rng.standard_normal((8, 8, 3, 3)).astype(np.float32), 0.05, 0, qint8)
    wd = _ops.quantize_per_tensor(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), 0.05, 0, qint8)
    for profile in available_numerics():
        if verbose:
            print(f"precompile {dev} linear/conv {profile}")
        dt = qint8 if profile.startswith("tflite") else quint8
        zp = 0 if dt is qint8 else 128
        for m in (4, 1024):  # serial and parallel drivers
            x = _ops.quantize_per_tensor(rng.standard_normal((m, 16)).astype(np.float32), 0.05, zp, dt)
            _linear.linear(x, w, None, 0.1, zp, numerics=profile)
        xc = _ops.quantize_per_tensor(rng.standard_normal((1, 8, 6, 6)).astype(np.float32), 0.05, zp, dt)
        _conv.conv2d(xc, wc, None, 1, 1, scale=0.1, zero_point=zp, numerics=profile)
        _conv.conv2d(xc, wd, None, 1, 1, groups=8, scale=0.1, zero_point=zp, numerics=profile)


def _precompile_surface(dev, verbose):
    """One small call of every other functional op, torch's arithmetic and the
    reference profile's, on quint8 NCHW input (and channels-last on the CPU)."""
    from . import _activation, _conv_transpose, _elementwise, _embedding, _norm, _pool, _resample
    from ._device import to_device
    from ._ops import make_per_tensor_qtensor, quantize_per_tensor
    from .dtypes import qint8, quint8

    rng = np.random.default_rng(0)
    ints = rng.integers(0, 256, (1, 8, 6, 6)).astype(np.uint8)
    inputs = [make_per_tensor_qtensor(ints, 0.05, 128, quint8)]
    if dev == "cpu":
        nhwc = np.ascontiguousarray(ints.transpose(0, 2, 3, 1))
        inputs.append(make_per_tensor_qtensor(nhwc, 0.05, 128, quint8).permute(0, 3, 1, 2))
    else:
        inputs = [q.to(dev) for q in inputs]
    gamma = np.ones(8, np.float32)
    beta = np.zeros(8, np.float32)
    prelu_w = make_per_tensor_qtensor(np.full(8, 64, np.uint8), 0.01, 0, quint8)
    wt = quantize_per_tensor(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), 0.05, 0, qint8)
    for profile in ("fbgemm", "reference"):
        for x in inputs:
            if verbose:
                print(f"precompile {dev} functional ops {profile} {'NCHW' if x is inputs[0] else 'NHWC'}")
            for f in (_activation.relu, _activation.hardsigmoid, _activation.sigmoid, _activation.tanh,
                      _activation.gelu):
                f(x, numerics=profile)
            _activation.hardtanh(x, -0.5, 0.5, numerics=profile)
            _activation.leaky_relu(x, 0.1, numerics=profile)
            _activation.hardswish(x, 0.05, 128, numerics=profile)
            _activation.elu(x, 0.05, 128, numerics=profile)
            if dev == "cpu":
                _activation.prelu(x, prelu_w, 0.05, 128, numerics=profile)
            for f in (_elementwise.add, _elementwise.add_relu, _elementwise.mul):
                f(x, x, 0.1, 128, numerics=profile)
            _elementwise.add_scalar(x, 0.5, numerics=profile)
            _elementwise.cat([x, x], 1, 0.05, 128, numerics=profile)
            _elementwise.softmax(x, 1, 1.0 / 256, 0, numerics=profile)
            _pool.max_pool2d(x, 3, 2, 1, numerics=profile)
            _pool.avg_pool2d(x, 3, 2, 1, numerics=profile)
            _pool.adaptive_avg_pool2d(x, (4, 4), numerics=profile)
            _norm.layer_norm(x, (6, 6), None, None, 1e-5, 0.05, 128, numerics=profile)
            _norm.group_norm(x, 2, gamma, beta, 1e-5, 0.05, 128, numerics=profile)
            _norm.batch_norm2d(x, gamma, beta, beta, gamma, 1e-5, 0.05, 128, numerics=profile)
            if x is inputs[0]:
                _conv_transpose.conv_transpose2d(x, wt, None, 2, scale=0.1, zero_point=128, numerics=profile)
    _resample._precompile(dev)
    _embedding._precompile(dev, verbose)
