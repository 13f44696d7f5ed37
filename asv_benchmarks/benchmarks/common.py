"""Shared set-up for the qops benchmarks: deterministic data, peers, threads.

Data generators are cached per process (asv runs each benchmark in its own
process, so the cache only saves work between a benchmark's repeats).  Peers
(torch, onnxruntime) are imported on demand; a missing peer raises
``NotImplementedError``, which asv reports as a skipped benchmark.  Every
implementation runs on the same number of threads, ``THREADS``.
"""

import functools
import warnings

import numpy as np

#: Threads for every implementation (qops/Numba, torch, onnxruntime).
THREADS = 2

#: Element counts: a small serial case, a parallel one, and 16M float32 (64 MiB).
SIZES = [2**12, 2**18, 2**24]
BIG = 2**24

#: Quantization parameters used throughout: inputs are N(0, 4^2), so scale
#: 0.05 with the zero points below saturates a few percent of the values.
SCALE = 0.05
ZERO_POINT = {"quint8": 128, "qint8": 0}
#: Output parameters for requantize.
SCALE2 = 0.08
ZERO_POINT2 = {"quint8": 120, "qint8": -3}

#: Per-channel layout: 64 channels, on the first or the last axis.
CHANNELS = 64


@functools.lru_cache(maxsize=4)
def float_data(n, seed=0):
    """``n`` float32 values, N(0, 4^2), read-only; the same for a given seed."""
    x = np.random.default_rng(seed).standard_normal(n, dtype=np.float32)
    x *= np.float32(4.0)
    x.setflags(write=False)
    return x


@functools.lru_cache(maxsize=4)
def int_data(n, dtype_name, seed=1):
    """``n`` uniformly distributed quantized integers (uint8 or int8), read-only."""
    lo, hi, dt = (0, 256, np.uint8) if dtype_name == "quint8" else (-128, 128, np.int8)
    q = np.random.default_rng(seed).integers(lo, hi, n, dtype=np.int16).astype(dt)
    q.setflags(write=False)
    return q


def channel_params(seed=2):
    """Per-channel scales (float64) and zero points (int64) for CHANNELS channels."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.02, 0.1, CHANNELS)
    zero_points = rng.integers(100, 156, CHANNELS).astype(np.int64)
    return scales, zero_points


# ------------------------------------------------------------------ qops
def qops_module():
    import qops

    return qops


def limit_numba_threads():
    """Run qops's parallel kernels on THREADS threads.

    Call it after the first qops kernel call, which lets qops choose its
    threading layer before Numba starts its threads.
    """
    import numba

    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))


# ------------------------------------------------------------------ torch
def torch_module():
    """torch on THREADS threads, or NotImplementedError (asv skips) if missing."""
    try:
        import torch
    except ImportError:
        raise NotImplementedError("torch is not installed") from None
    # torch 2.13 warns on every quantized tensor it creates that the stack is deprecated
    warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*", category=UserWarning)
    torch.set_num_threads(THREADS)
    return torch


def torch_dtype(torch, dtype_name):
    return {"quint8": torch.quint8, "qint8": torch.qint8}[dtype_name]


# ------------------------------------------------------------ onnxruntime
_ONNX_TYPES = {"quint8": "UINT8", "qint8": "INT8"}
_NP_TYPES = {"quint8": np.uint8, "qint8": np.int8}


def ort_session(nodes, inputs, outputs, initializers):
    """An onnxruntime session on THREADS threads for a tiny graph.

    ``nodes`` are ``onnx.helper.make_node`` results; ``inputs``/``outputs``
    are ``(name, "FLOAT" | "UINT8" | "INT8")`` pairs (1-D, dynamic length);
    ``initializers`` maps names to NumPy arrays.  Raises NotImplementedError
    when onnx or onnxruntime is missing.
    """
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise NotImplementedError("onnx and onnxruntime are not installed") from None

    def vi(name, kind, shape):
        return helper.make_tensor_value_info(name, getattr(TensorProto, kind), shape)

    graph = helper.make_graph(
        nodes,
        "bench",
        [vi(n, k, s) for n, k, s in inputs],
        [vi(n, k, s) for n, k, s in outputs],
        [numpy_helper.from_array(np.asarray(v), name=k) for k, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
    )


def ort_quantize(dtype_name, shape, scale, zero_point, axis=None):
    """QuantizeLinear (per-tensor, or per-axis when ``axis`` is given)."""
    from onnx import helper

    kw = {} if axis is None else {"axis": axis}
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], **kw)
    return ort_session(
        [node],
        [("x", "FLOAT", shape)],
        [("y", _ONNX_TYPES[dtype_name], shape)],
        {"s": np.asarray(scale, np.float32), "z": np.asarray(zero_point).astype(_NP_TYPES[dtype_name])},
    )


def ort_dequantize(dtype_name, shape, scale, zero_point):
    from onnx import helper

    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"])
    return ort_session(
        [node],
        [("x", _ONNX_TYPES[dtype_name], shape)],
        [("y", "FLOAT", shape)],
        {"s": np.float32(scale), "z": _NP_TYPES[dtype_name](zero_point)},
    )


def ort_requantize(dtype_name, shape, scale, zero_point, scale2, zero_point2):
    """DequantizeLinear then QuantizeLinear: onnxruntime's requantization."""
    from onnx import helper

    nodes = [
        helper.make_node("DequantizeLinear", ["x", "s1", "z1"], ["f"]),
        helper.make_node("QuantizeLinear", ["f", "s2", "z2"], ["y"]),
    ]
    np_t = _NP_TYPES[dtype_name]
    return ort_session(
        nodes,
        [("x", _ONNX_TYPES[dtype_name], shape)],
        [("y", _ONNX_TYPES[dtype_name], shape)],
        {"s1": np.float32(scale), "z1": np_t(zero_point),
         "s2": np.float32(scale2), "z2": np_t(zero_point2)},
    )


# ------------------------------------------------------------------ CUDA
def cuda_module():
    """numba.cuda with a real GPU, or NotImplementedError (asv skips).

    The CUDA simulator does not count: its timings mean nothing.
    """
    try:
        import numba
        from numba import cuda
    except ImportError:
        raise NotImplementedError("numba-cuda is not installed") from None
    if getattr(numba.config, "ENABLE_CUDASIM", False):
        raise NotImplementedError("the CUDA simulator is not benchmarked")
    if not cuda.is_available():
        raise NotImplementedError("no CUDA GPU")
    return cuda
