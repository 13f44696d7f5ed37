"""Adapters that run the installed peers for ``qops report``.

A *peer* is the library whose integer arithmetic a numerics profile
reproduces: torch 2.13 (engines ``fbgemm``, ``qnnpack``, ``onednn``) and
onnxruntime (with ``onnx`` to build the tiny models it runs: QuantizeLinear,
DequantizeLinear, QLinearMatMul, com.microsoft QGemm and QLinearConv).  Peers are
optional: they are imported lazily, only when the report asks for them, and a
peer that cannot be imported is reported as "not installed", never as a
failure.  qops itself never needs them at run time.

Set ``QOPS_REPORT_DISABLE_PEERS`` to a comma-separated list of peer names
(``torch``, ``onnxruntime``) to treat those peers as not installed, e.g. to
see what the report says on a machine without them.

Every adapter method takes NumPy arrays and plain numbers and returns NumPy
arrays: unpacked integers for quantized results (sub-byte values one per
element), float32 for float results.  A method returns ``None`` when the peer
has no such operation for that input (e.g. torch has no per-channel
quint4x2 quantize); the report then leaves that case out of the comparison.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings

import numpy as np

__all__ = ["PEERS", "PeerUnavailable", "load", "disabled", "unpack_subbyte"]

#: Peer names, in the order the report lists them.
PEERS = ("torch", "onnxruntime")

#: Environment variable naming peers to treat as not installed.
DISABLE_ENV = "QOPS_REPORT_DISABLE_PEERS"


class PeerUnavailable(Exception):
    """The peer cannot run here; ``status`` is what the report shows."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def disabled() -> set[str]:
    """Peer names listed in ``QOPS_REPORT_DISABLE_PEERS``."""
    raw = os.environ.get(DISABLE_ENV, "")
    return {p.strip().lower() for p in raw.split(",") if p.strip()}


_loaded: dict = {}


def load(name: str):
    """Return the adapter for peer ``name`` (cached).

    Raises
    ------
    PeerUnavailable
        With status ``"not installed"`` when the peer cannot be imported or is
        listed in ``QOPS_REPORT_DISABLE_PEERS``.
    KeyError
        For a name that is not in :data:`PEERS`.
    """
    if name not in PEERS:
        raise KeyError(f"unknown peer {name!r}; known peers: {', '.join(PEERS)}")
    if name in disabled():
        raise PeerUnavailable("not installed")
    if name not in _loaded:
        try:
            _loaded[name] = _TorchPeer() if name == "torch" else _OrtPeer()
        except ImportError:
            _loaded[name] = None
    peer = _loaded[name]
    if peer is None:
        raise PeerUnavailable("not installed")
    return peer


def unpack_subbyte(packed, bits: int, n: int) -> np.ndarray:
    """Unpack torch-layout sub-byte storage (first element in the low bits)."""
    b = np.ascontiguousarray(packed, dtype=np.uint8).reshape(-1)
    per = 8 // bits
    mask = (1 << bits) - 1
    shifts = np.arange(per, dtype=np.uint8) * bits
    vals = (b[:, None] >> shifts[None, :]) & mask
    return vals.reshape(-1)[:n].astype(np.uint8)


# -------------------------------------------------------------------- torch
@contextlib.contextmanager
def _quiet():
    """Silence torch 2.13's deprecation warning on quantized tensor creation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class _TorchPeer:
    """torch 2.13 quantized CPU ops; ``engine`` selects the quantized engine."""

    name = "torch"

    def __init__(self):
        self.torch = importlib.import_module("torch")
        self.version = self.torch.__version__.split("+")[0]
        self._dtypes = {
            "quint8": self.torch.quint8,
            "qint8": self.torch.qint8,
            "qint32": self.torch.qint32,
            "quint4x2": self.torch.quint4x2,
        }

    # ---------------------------------------------------------------- helpers
    def engine(self, engine: str):
        """Select torch's quantized engine (raises PeerUnavailable if missing)."""
        torch = self.torch
        if engine not in torch.backends.quantized.supported_engines:
            raise PeerUnavailable(f"engine {engine} missing from this torch build")
        if torch.backends.quantized.engine != engine:
            torch.backends.quantized.engine = engine

    def _dtype(self, name):
        return self._dtypes.get(name)

    def _ints(self, q, dtype_name, n):
        r = q.int_repr().numpy()
        if dtype_name == "quint4x2":
            return unpack_subbyte(r, 4, n).reshape(tuple(q.shape))
        return r

    def _qtensor(self, ints, scale, zp, axis):
        torch = self.torch
        t = torch.from_numpy(np.ascontiguousarray(ints))
        if axis is None:
            return torch._make_per_tensor_quantized_tensor(t, float(scale), int(zp))
        return torch._make_per_channel_quantized_tensor(
            t,
            torch.from_numpy(np.asarray(scale, np.float64)),
            torch.from_numpy(np.asarray(zp, np.int64)),
            int(axis),
        )

    # ------------------------------------------------------------------- ops
    def quantize_per_tensor(self, engine, x, scale, zp, dtype):
        self.engine(engine)
        td = self._dtype(dtype)
        if td is None:
            return None
        with _quiet():
            q = self.torch.quantize_per_tensor(self.torch.from_numpy(x), float(scale), int(zp), td)
            return self._ints(q, dtype, x.size)

    def quantize_per_channel(self, engine, x, scales, zps, axis, dtype):
        self.engine(engine)
        torch = self.torch
        if dtype not in ("quint8", "qint8", "qint32"):
            return None  # torch 2.13: per-channel quint4x2 needs float zero points
        with _quiet():
            q = torch.quantize_per_channel(
                torch.from_numpy(x),
                torch.from_numpy(np.asarray(scales, np.float64)),
                torch.from_numpy(np.asarray(zps, np.int64)),
                int(axis),
                self._dtype(dtype),
            )
            return self._ints(q, dtype, x.size)

    def dequantize(self, engine, ints, scale, zp, axis, dtype):
        self.engine(engine)
        if dtype not in ("quint8", "qint8", "qint32"):
            return None
        with _quiet():
            return self._qtensor(ints, scale, zp, axis).dequantize().numpy()

    def requantize(self, engine, ints, scale, zp, axis, dtype, out_scale, out_zp, out_dtype):
        """torch has no requantize: its route is quantize_per_tensor(dequantize(q))."""
        self.engine(engine)
        if dtype not in ("quint8", "qint8", "qint32") or out_dtype not in ("quint8", "qint8", "qint32"):
            return None
        with _quiet():
            f = self._qtensor(ints, scale, zp, axis).dequantize()
            q = self.torch.quantize_per_tensor(f, float(out_scale), int(out_zp), self._dtype(out_dtype))
            return self._ints(q, out_dtype, ints.size)

    def linear(self, engine, x, sx, zx, w, sw, zw, bias, so, zo, relu=False):
        """``torch.ops.quantized.linear[_relu]`` with a ``linear_prepack``-ed weight.

        ``x`` uint8 ``(M, K)`` (quint8), ``w`` int8 ``(N, K)`` (qint8),
        per-tensor (scalar ``sw``/``zw``) or per-channel along axis 0 (arrays);
        ``bias`` float32 or ``None``.  Returns the uint8 ``(M, N)`` output.
        """
        self.engine(engine)
        torch = self.torch
        with _quiet():
            xq = self._qtensor(x, sx, zx, None)
            wq = self._qtensor(w, sw, zw, 0 if np.ndim(sw) else None)
            b = None if bias is None else torch.from_numpy(np.asarray(bias, np.float32))
            packed = torch.ops.quantized.linear_prepack(wq, b)
            op = torch.ops.quantized.linear_relu if relu else torch.ops.quantized.linear
            return op(xq, packed, float(so), int(zo)).int_repr().numpy()

    def conv(self, engine, x, sx, zx, w, sw, zw, bias, so, zo, stride, padding, dilation, groups,
             relu=False):
        """``torch.ops.quantized.conv{n}d[_relu]`` with a ``conv{n}d_prepack``-ed weight.

        ``x`` uint8 ``(N, C, *spatial)``, ``w`` int8 ``(O, C / groups, *kernel)``;
        ``stride``/``padding``/``dilation`` tuples of ``n`` ints.  Returns the
        uint8 output, logically ``(N, O, *out_spatial)``.
        """
        self.engine(engine)
        torch = self.torch
        nd = np.ndim(w) - 2
        with _quiet():
            xq = self._qtensor(x, sx, zx, None)
            wq = self._qtensor(w, sw, zw, 0 if np.ndim(sw) else None)
            b = None if bias is None else torch.from_numpy(np.asarray(bias, np.float32))
            prepack = getattr(torch.ops.quantized, f"conv{nd}d_prepack")
            packed = prepack(wq, b, list(stride), list(padding), list(dilation), int(groups))
            op = getattr(torch.ops.quantized, f"conv{nd}d" + ("_relu" if relu else ""))
            return op(xq, packed, float(so), int(zo)).int_repr().numpy()


    def fake_quantize(self, engine, x, scale, zp, axis, quant_min, quant_max):
        """Forward output and the straight-through gradient mask (from backward)."""
        self.engine(engine)
        torch = self.torch
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        if axis is None:
            y = torch.fake_quantize_per_tensor_affine(xt, float(scale), int(zp), quant_min, quant_max)
        else:
            y = torch.fake_quantize_per_channel_affine(
                xt,
                torch.from_numpy(np.asarray(scale, np.float32)),
                torch.from_numpy(np.asarray(zp, np.int32)),
                int(axis), quant_min, quant_max,
            )
        y.backward(torch.ones_like(y))
        return y.detach().numpy(), (xt.grad != 0).numpy()


# -------------------------------------------------------------- onnxruntime
class _OrtPeer:
    """onnxruntime CPU: tiny QuantizeLinear / DequantizeLinear models.

    Graph optimisations are disabled so that a DequantizeLinear ->
    QuantizeLinear pair runs as the two nodes (an optimiser could fold it).
    """

    name = "onnxruntime"
    OPSET = 21

    def __init__(self):
        self.ort = importlib.import_module("onnxruntime")
        self.onnx = importlib.import_module("onnx")
        self.version = self.ort.__version__
        tp = self.onnx.TensorProto
        self._types = {"quint8": tp.UINT8, "qint8": tp.INT8, "qint32": tp.INT32, "quint4x2": tp.UINT4}
        self._np = {"quint8": np.uint8, "qint8": np.int8, "qint32": np.int32, "quint4x2": np.uint8}
        self._options = self.ort.SessionOptions()
        self._options.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self._options.intra_op_num_threads = 1
        self._options.log_severity_level = 3
        self._sessions = {}

    # ---------------------------------------------------------------- helpers
    def _qparams(self, prefix, scale, zp, dtype):
        """Initializers for a scale (float32) and zero point (``dtype``)."""
        h = self.onnx.helper
        s = np.asarray(scale, np.float64).astype(np.float32)
        z = np.asarray(zp, np.int64)
        scale_t = self.onnx.numpy_helper.from_array(s, f"{prefix}_scale")
        zp_t = h.make_tensor(f"{prefix}_zp", self._types[dtype], list(z.shape), [int(v) for v in z.reshape(-1)])
        return [scale_t, zp_t]

    def _run(self, nodes, in_type, out_type, inits, feed, ndim):
        h = self.onnx.helper
        dims = [None] * ndim
        graph = h.make_graph(
            nodes, "qops_report",
            [h.make_tensor_value_info("x", in_type, dims)],
            [h.make_tensor_value_info("y", out_type, dims)],
            inits,
        )
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", self.OPSET)])
        model.ir_version = 10
        sess = self.ort.InferenceSession(model.SerializeToString(), self._options,
                                         providers=["CPUExecutionProvider"])
        return sess.run(None, {"x": feed})[0]

    def _quantize_nodes(self, src, dtype, axis, prefix):
        """QuantizeLinear ``src -> y`` (via a Cast for uint4, which NumPy cannot hold)."""
        h = self.onnx.helper
        kw = {} if axis is None else {"axis": int(axis)}
        if dtype == "quint4x2":
            return [
                h.make_node("QuantizeLinear", [src, f"{prefix}_scale", f"{prefix}_zp"], ["q4"], **kw),
                h.make_node("Cast", ["q4"], ["y"], to=self.onnx.TensorProto.UINT8),
            ], self.onnx.TensorProto.UINT8
        return [h.make_node("QuantizeLinear", [src, f"{prefix}_scale", f"{prefix}_zp"], ["y"], **kw)], self._types[dtype]

    # ------------------------------------------------------------------- ops
    def quantize(self, x, scale, zp, axis, dtype):
        """QuantizeLinear (per-axis when ``axis`` is given); ONNX has no int32 output."""
        if dtype == "qint32":
            return None
        nodes, out_type = self._quantize_nodes("x", dtype, axis, "o")
        return self._run(nodes, self.onnx.TensorProto.FLOAT, out_type,
                         self._qparams("o", scale, zp, dtype), x, x.ndim)

    def dequantize(self, ints, scale, zp, axis, dtype):
        """DequantizeLinear (per-axis when ``axis`` is given)."""
        if dtype == "quint4x2":
            return None
        h = self.onnx.helper
        kw = {} if axis is None else {"axis": int(axis)}
        nodes = [h.make_node("DequantizeLinear", ["x", "i_scale", "i_zp"], ["y"], **kw)]
        return self._run(nodes, self._types[dtype], self.onnx.TensorProto.FLOAT,
                         self._qparams("i", scale, zp, dtype), ints, ints.ndim)

    def requantize(self, ints, scale, zp, axis, dtype, out_scale, out_zp, out_dtype):
        """DequantizeLinear -> QuantizeLinear."""
        if dtype == "quint4x2" or out_dtype == "qint32":
            return None
        h = self.onnx.helper
        kw = {} if axis is None else {"axis": int(axis)}
        nodes = [h.make_node("DequantizeLinear", ["x", "i_scale", "i_zp"], ["f"], **kw)]
        qnodes, out_type = self._quantize_nodes("f", out_dtype, None, "o")
        inits = self._qparams("i", scale, zp, dtype) + self._qparams("o", out_scale, out_zp, out_dtype)
        return self._run(nodes + qnodes, self._types[dtype], out_type, inits, ints, ints.ndim)

    # -------------------------------------------------------- linear / conv
    def _session(self, key, build):
        """An InferenceSession per model configuration ``key`` (built once by ``build()``)."""
        sess = self._sessions.get(key)
        if sess is None:
            h = self.onnx.helper
            nodes, inputs, outputs, opsets = build()
            graph = h.make_graph(nodes, "qops_report", inputs, outputs)
            model = h.make_model(graph, opset_imports=[h.make_opsetid(d, v) for d, v in opsets])
            model.ir_version = 10
            sess = self.ort.InferenceSession(model.SerializeToString(), self._options,
                                             providers=["CPUExecutionProvider"])
            self._sessions[key] = sess
        return sess

    def _elem(self, array_dtype):
        return {np.dtype(np.uint8): self.onnx.TensorProto.UINT8, np.dtype(np.int8): self.onnx.TensorProto.INT8,
                np.dtype(np.int32): self.onnx.TensorProto.INT32,
                np.dtype(np.float32): self.onnx.TensorProto.FLOAT}[np.dtype(array_dtype)]

    def _info(self, name, dtype, shape):
        return self.onnx.helper.make_tensor_value_info(name, self._elem(dtype), shape)

    @staticmethod
    def _int32_bias(bias, sx, sw):
        """A float bias as converters quantize it: ``rne(b / (double(sx) * double(sw_j)))``."""
        if bias is None:
            return None
        b = np.asarray(bias, np.float32).astype(np.float64)
        sw64 = np.asarray(sw, np.float64).astype(np.float32).astype(np.float64)
        q = np.rint(b / (np.float64(np.float32(sx)) * sw64))
        return np.clip(q, -(2**31), 2**31 - 1).astype(np.int32)

    def _feeds(self, x, sx, zx, w, sw, zw, so, zo):
        return {
            "x": np.ascontiguousarray(x), "x_scale": np.asarray(sx, np.float32),
            "x_zp": np.asarray(zx).astype(x.dtype),
            "w_scale": np.asarray(sw, np.float32), "w_zp": np.asarray(zw).astype(w.dtype),
            "y_scale": np.asarray(so, np.float32), "y_zp": np.asarray(zo).astype(x.dtype),
        }

    def linear(self, x, sx, zx, w, sw, zw, bias, so, zo, relu=False):
        """QLinearMatMul (no bias) or com.microsoft QGemm with ``transB=1`` and
        the float bias quantized to int32 (:meth:`_int32_bias`).

        ``x`` uint8 or int8 ``(M, K)``, ``w`` int8 ``(N, K)``, per-tensor or
        per-column (per output channel) weight parameters.  ONNX has no fused
        ReLU here: ``relu`` clamps the output at ``zo`` (a following Relu).
        """
        x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
        per_column = np.ndim(sw) == 1
        wshape = ["N"] if per_column else []
        kind = "matmul" if bias is None else "gemm"

        def build():
            h = self.onnx.helper
            inputs = [
                self._info("x", x.dtype, ["M", "K"]), self._info("x_scale", np.float32, []),
                self._info("x_zp", x.dtype, []),
                self._info("w", w.dtype, ["K", "N"] if kind == "matmul" else ["N", "K"]),
                self._info("w_scale", np.float32, wshape), self._info("w_zp", w.dtype, wshape),
            ]
            names = ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp"]
            if kind == "gemm":
                inputs.append(self._info("b", np.int32, ["N"]))
                names.append("b")
            inputs += [self._info("y_scale", np.float32, []), self._info("y_zp", x.dtype, [])]
            names += ["y_scale", "y_zp"]
            outputs = [self._info("y", x.dtype, ["M", "N"])]
            if kind == "matmul":
                return [h.make_node("QLinearMatMul", names, ["y"])], inputs, outputs, [("", self.OPSET)]
            node = h.make_node("QGemm", names, ["y"], domain="com.microsoft", transB=1)
            return [node], inputs, outputs, [("", self.OPSET), ("com.microsoft", 1)]

        sess = self._session(("linear", kind, x.dtype.name, w.dtype.name, per_column), build)
        feeds = self._feeds(x, sx, zx, w, sw, zw, so, zo)
        if kind == "matmul":
            feeds["w"] = np.ascontiguousarray(w.T)
        else:
            feeds["w"] = w
            feeds["b"] = self._int32_bias(bias, sx, sw)
        y = sess.run(None, feeds)[0]
        return np.maximum(y, np.asarray(zo).astype(y.dtype)) if relu else y

    def conv(self, x, sx, zx, w, sw, zw, bias, so, zo, stride, padding, dilation, groups, relu=False):
        """QLinearConv (symmetric ``pads``) with the float bias quantized to
        int32 (:meth:`_int32_bias`); ``relu`` clamps at ``zo``.

        ``x`` uint8 or int8 ``(N, C, *spatial)``, ``w`` int8 ``(O, C / groups,
        *kernel)``, per-tensor or per-output-channel weight parameters.
        """
        x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
        nd = x.ndim - 2
        per_channel = np.ndim(sw) == 1
        kernel = tuple(int(k) for k in w.shape[2:])
        geometry = (kernel, tuple(stride), tuple(padding), tuple(dilation), int(groups))

        def build():
            h = self.onnx.helper
            wshape = ["O"] if per_channel else []
            sp = [f"s{i}" for i in range(nd)]
            inputs = [
                self._info("x", x.dtype, ["N", "C"] + sp), self._info("x_scale", np.float32, []),
                self._info("x_zp", x.dtype, []), self._info("w", w.dtype, ["O", "Cg", *kernel]),
                self._info("w_scale", np.float32, wshape), self._info("w_zp", w.dtype, wshape),
                self._info("y_scale", np.float32, []), self._info("y_zp", x.dtype, []),
            ]
            names = ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp"]
            if bias is not None:
                inputs.append(self._info("b", np.int32, ["O"]))
                names.append("b")
            node = h.make_node("QLinearConv", names, ["y"], kernel_shape=list(kernel),
                               strides=list(stride), pads=list(padding) * 2, dilations=list(dilation),
                               group=int(groups))
            outputs = [self._info("y", x.dtype, ["N", "O"] + [f"o{i}" for i in range(nd)])]
            return [node], inputs, outputs, [("", self.OPSET)]

        key = ("conv", x.dtype.name, w.dtype.name, nd, per_channel, bias is not None, geometry)
        sess = self._session(key, build)
        feeds = self._feeds(x, sx, zx, w, sw, zw, so, zo)
        feeds["w"] = w
        if bias is not None:
            feeds["b"] = self._int32_bias(bias, sx, sw)
        y = sess.run(None, feeds)[0]
        return np.maximum(y, np.asarray(zo).astype(y.dtype)) if relu else y
