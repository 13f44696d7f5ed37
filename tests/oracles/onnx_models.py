"""Tiny ONNX models run with onnxruntime, as peers for the ``onnxruntime`` profile.

Each model takes its scales and zero points as graph inputs, so one session
serves every parameter set of a configuration; sessions are cached per
configuration.  Graph optimisations are off, so onnxruntime cannot fold the
DequantizeLinear -> QuantizeLinear chain: each node runs its own CPU kernel.

Requires ``onnx`` and ``onnxruntime`` (test dependencies only).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["quantize_linear", "dequantize_linear", "requantize_linear", "OPSET"]

#: opset of the generated models (QuantizeLinear/DequantizeLinear with axis).
OPSET = 21

_ELEM = {
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.int8): "INT8",
    np.dtype(np.int32): "INT32",
    np.dtype(np.float32): "FLOAT",
}


def _elem(dtype):
    from onnx import TensorProto

    return getattr(TensorProto, _ELEM[np.dtype(dtype)])


@functools.lru_cache(maxsize=None)
def _session(kind: str, in_dtype: str, out_dtype: str, ndim: int, axis):
    """Build and cache an InferenceSession for one model configuration.

    ``kind`` is ``"quantize"``, ``"dequantize"`` or ``"requantize"``;
    ``axis`` is the per-axis dimension of the (first) node, ``None`` for
    per-tensor.  The QuantizeLinear of ``"requantize"`` is per-tensor.
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper

    def info(name, dtype, shape):
        return helper.make_tensor_value_info(name, _elem(dtype), shape)

    data_shape = [f"d{i}" for i in range(ndim)]
    pshape = [] if axis is None else ["c"]
    attrs = {} if axis is None else {"axis": int(axis)}
    nodes, inputs = [], []
    if kind == "quantize":
        inputs = [info("x", np.float32, data_shape), info("s", np.float32, pshape),
                  info("z", out_dtype, pshape)]
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], **attrs)]
        outputs = [info("y", out_dtype, data_shape)]
    elif kind == "dequantize":
        inputs = [info("x", in_dtype, data_shape), info("s", np.float32, pshape),
                  info("z", in_dtype, pshape)]
        nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], **attrs)]
        outputs = [info("y", np.float32, data_shape)]
    elif kind == "requantize":
        inputs = [
            info("x", in_dtype, data_shape), info("s1", np.float32, pshape), info("z1", in_dtype, pshape),
            info("s2", np.float32, []), info("z2", out_dtype, []),
        ]
        nodes = [
            helper.make_node("DequantizeLinear", ["x", "s1", "z1"], ["f"], **attrs),
            helper.make_node("QuantizeLinear", ["f", "s2", "z2"], ["y"]),
        ]
        outputs = [info("y", out_dtype, data_shape)]
    else:  # pragma: no cover
        raise ValueError(f"unknown model kind {kind!r}")
    graph = helper.make_graph(nodes, f"qops_{kind}", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _params(scale, zero_point, dtype):
    return np.asarray(scale, np.float32), np.asarray(zero_point).astype(dtype)


def quantize_linear(x, scale, zero_point, out_dtype, axis=None):
    """onnxruntime QuantizeLinear of float32 ``x``.

    Parameters
    ----------
    x : ndarray of float32
    scale, zero_point : scalar or 1-D array_like
        Per-tensor (scalars, ``axis=None``) or per-axis (length ``x.shape[axis]``).
    out_dtype : numpy dtype
        ``uint8`` or ``int8`` (the zero point's type selects the output type).
    axis : int, optional
        The per-axis dimension.

    Returns
    -------
    ndarray of ``out_dtype``
    """
    x = np.ascontiguousarray(x, np.float32)
    sess = _session("quantize", "float32", np.dtype(out_dtype).name, x.ndim, axis)
    s, z = _params(scale, zero_point, out_dtype)
    return sess.run(None, {"x": x, "s": s, "z": z})[0]


def dequantize_linear(q, scale, zero_point, axis=None):
    """onnxruntime DequantizeLinear of integer ``q`` (uint8, int8 or int32)."""
    q = np.ascontiguousarray(q)
    sess = _session("dequantize", q.dtype.name, "float32", q.ndim, axis)
    s, z = _params(scale, zero_point, q.dtype)
    return sess.run(None, {"x": q, "s": s, "z": z})[0]


def requantize_linear(q, scale_in, zero_point_in, scale_out, zero_point_out, out_dtype, axis=None):
    """onnxruntime DequantizeLinear (per-tensor or per-axis ``axis``) then a
    per-tensor QuantizeLinear to ``out_dtype``."""
    q = np.ascontiguousarray(q)
    sess = _session("requantize", q.dtype.name, np.dtype(out_dtype).name, q.ndim, axis)
    s1, z1 = _params(scale_in, zero_point_in, q.dtype)
    s2, z2 = _params(scale_out, zero_point_out, out_dtype)
    return sess.run(None, {"x": q, "s1": s1, "z1": z1, "s2": s2, "z2": z2})[0]


# ------------------------------------------------------------------ linear
@functools.lru_cache(maxsize=None)
def _linear_session(kind: str, x_dtype: str, w_dtype: str, per_column: bool, with_bias: bool):
    """QLinearMatMul (``kind="matmul"``, B given as ``(K, N)``) or com.microsoft
    QGemm (``kind="gemm"``, ``transB=1``, B given as ``(N, K)``, optional int32
    bias ``C``), scales and zero points as graph inputs."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    def info(name, dtype, shape):
        return helper.make_tensor_value_info(name, _elem(dtype), shape)

    wshape = ["N"] if per_column else []
    b_shape = ["K", "N"] if kind == "matmul" else ["N", "K"]
    inputs = [
        info("a", x_dtype, ["M", "K"]), info("a_scale", np.float32, []), info("a_zp", x_dtype, []),
        info("b", w_dtype, b_shape), info("b_scale", np.float32, wshape), info("b_zp", w_dtype, wshape),
    ]
    names = ["a", "a_scale", "a_zp", "b", "b_scale", "b_zp"]
    if kind == "gemm":
        inputs.append(info("c", np.int32, ["N"]))
        names.append("c" if with_bias else "")
    inputs += [info("y_scale", np.float32, []), info("y_zp", x_dtype, [])]
    names += ["y_scale", "y_zp"]
    if kind == "matmul":
        node = helper.make_node("QLinearMatMul", names, ["y"])
        opsets = [helper.make_opsetid("", OPSET)]
    else:
        node = helper.make_node("QGemm", names, ["y"], domain="com.microsoft", transB=1)
        opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    graph = helper.make_graph([node], f"qops_{kind}", inputs, [info("y", x_dtype, ["M", "N"])])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _linear_feeds(x, sx, zx, w, sw, zw, so, zo):
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    return {
        "a": x, "a_scale": np.asarray(sx, np.float32), "a_zp": np.asarray(zx).astype(x.dtype),
        "b_scale": np.asarray(sw, np.float32), "b_zp": np.asarray(zw).astype(w.dtype),
        "y_scale": np.asarray(so, np.float32), "y_zp": np.asarray(zo).astype(x.dtype),
    }


def qlinear_matmul(x, sx, zx, w, sw, zw, so, zo):
    """onnxruntime QLinearMatMul of ``x (M, K)`` with the weight ``w (N, K)``.

    ``sw``/``zw`` are scalars (per-tensor) or length-``N`` arrays (per-column
    of B, i.e. per output channel).  The model multiplies by ``w.T``.
    Returns the ``(M, N)`` output of ``x``'s dtype.
    """
    per_column = np.ndim(sw) == 1
    sess = _linear_session("matmul", x.dtype.name, w.dtype.name, per_column, False)
    feeds = _linear_feeds(x, sx, zx, w, sw, zw, so, zo)
    feeds["b"] = np.ascontiguousarray(np.asarray(w).T)
    return sess.run(None, feeds)[0]


def qgemm(x, sx, zx, w, sw, zw, bias, so, zo):
    """onnxruntime com.microsoft QGemm ``x @ w.T + bias`` (int32 bias in the
    accumulator scale, or ``None``), requantized to ``so``/``zo``."""
    per_column = np.ndim(sw) == 1
    sess = _linear_session("gemm", x.dtype.name, w.dtype.name, per_column, bias is not None)
    feeds = _linear_feeds(x, sx, zx, w, sw, zw, so, zo)
    feeds["b"] = np.ascontiguousarray(w)
    feeds["c"] = np.zeros(w.shape[0], np.int32) if bias is None else np.asarray(bias, np.int32)
    return sess.run(None, feeds)[0]
