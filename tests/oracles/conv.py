"""Convolution oracles: a naive accumulator, fbgemm's depthwise quirk, and the peers.

* :func:`accumulate` is the plainest convolution there is: pad the input with
  its zero point, then for every kernel tap add ``(x - zx)(w - zw)`` over the
  channels of each group, exactly on int64, and wrap the sum to int32 at the
  end (two's complement, as every backend's int32 accumulator).  Its result
  feeds the requantization oracles of :mod:`tests.oracles.exact` and
  :mod:`tests.oracles.fixedpoint` once the output channels are moved last
  (:func:`channels_last`).
* :func:`fbgemm_depthwise_accumulate` models fbgemm's depthwise kernel, which
  adds raw ``u8 * s8`` products of consecutive taps in pairs with int16
  saturation (NUMERICS.md section 3), and :func:`fbgemm_requantize` is
  fbgemm's epilogue without bias, in NumPy float32; together they show that
  torch's result really carries the saturation.
* :func:`torch_conv` and :func:`qlinear_conv` run the real peers (torch 2.13
  ``torch.ops.quantized.conv{n}d[_relu]``, onnxruntime ``QLinearConv``);
  torch, onnx and onnxruntime are imported only when called.

Layouts are torch's: input ``(N, C, *spatial)``, weight ``(O, C / groups,
*kernel)``, output ``(N, O, *out_spatial)``.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

__all__ = [
    "as_tuple",
    "output_size",
    "accumulate",
    "channels_last",
    "channels_first",
    "fbgemm_depthwise_accumulate",
    "fbgemm_requantize",
    "torch_conv",
    "qlinear_conv",
]


def as_tuple(v, nd):
    """``v`` as a tuple of ``nd`` ints (an int repeats)."""
    return tuple(int(e) for e in v) if isinstance(v, (tuple, list)) else (int(v),) * nd


def output_size(spatial, kernel, stride, padding, dilation):
    """``(L + 2p - d(k - 1) - 1) // s + 1`` per spatial dimension."""
    return tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation)
    )


def _wrap32(a):
    return (a + 2**31) % 2**32 - 2**31


def _geometry(x, w, stride, padding, dilation):
    nd = x.ndim - 2
    stride, padding, dilation = (as_tuple(v, nd) for v in (stride, padding, dilation))
    kernel = w.shape[2:]
    out = output_size(x.shape[2:], kernel, stride, padding, dilation)
    return nd, kernel, stride, padding, dilation, out


def _padded_taps(x, zx, kernel, stride, padding, dilation, out):
    """Yield ``(tap, view)``: for each kernel position (row-major), the input
    values it meets at every output position, ``(N, C, *out)``, read from the
    input padded with ``zx``."""
    xp = np.pad(np.asarray(x, np.int64), [(0, 0), (0, 0)] + [(p, p) for p in padding],
                constant_values=int(zx))
    for tap in itertools.product(*(range(k) for k in kernel)):
        index = (slice(None), slice(None)) + tuple(
            slice(t * d, t * d + s * (o - 1) + 1, s) for t, s, d, o in zip(tap, stride, dilation, out)
        )
        yield tap, xp[index]


def accumulate(x, zx, w, zw, stride=1, padding=0, dilation=1, groups=1):
    """``A[n, o, *p] = sum_{c, t} (x_pad[n, g*cg + c, p*s + t*d] - zx)(w[o, c, t] - zw[o])``
    wrapped to int32.

    Parameters
    ----------
    x : ndarray of int, ``(N, C, *spatial)``
        Activation integers; the padding reads ``zx`` (a padded tap adds 0).
    zx : int
    w : ndarray of int, ``(O, C / groups, *kernel)``
    zw : int or array_like of ``O`` ints
        Weight zero point(s), per output channel.
    stride, padding, dilation : int or tuple
    groups : int
        Output channel ``o`` belongs to group ``o // (O / groups)`` and reads
        input channels ``g*cg : (g+1)*cg``.

    Returns
    -------
    ndarray of int64, ``(N, O, *out_spatial)``
        The int32 accumulator (exact sum, then two's-complement wrap).
    """
    nd, kernel, stride, padding, dilation, out = _geometry(x, w, stride, padding, dilation)
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    og = o // groups
    wd = np.asarray(w, np.int64) - np.broadcast_to(np.asarray(zw, np.int64), (o,)).reshape((o,) + (1,) * (nd + 1))
    acc = np.zeros((n, groups, og) + out, np.int64)
    for tap, xv in _padded_taps(x, zx, kernel, stride, padding, dilation, out):
        xg = (xv - int(zx)).reshape((n, groups, cg) + out)
        wt = wd[(slice(None), slice(None)) + tap].reshape(groups, og, cg)
        acc += np.einsum("ngc...,goc->ngo...", xg, wt)
    return _wrap32(acc.reshape((n, o) + out))


def channels_last(a):
    """``(N, O, *spatial)`` -> ``(N, *spatial, O)``: the layout the
    requantization oracles take (parameters broadcast along the last axis)."""
    return np.moveaxis(a, 1, -1)


def channels_first(a):
    """The inverse of :func:`channels_last`."""
    return np.moveaxis(a, -1, 1)


def fbgemm_depthwise_accumulate(x, zx, w, zw, stride=1, padding=0, *, saturate_sum=True):
    """fbgemm's depthwise accumulator (groups == channels, dilation 1).

    The raw products ``x * w`` of taps ``2i`` and ``2i + 1`` (row-major order
    over the kernel; an odd last tap is paired with 0) are added with int16
    saturation, then the zero-point terms are applied:
    ``A = sum_pairs sat16(x0*w0 + x1*w1) - zx*sum(w) - zw*min(sum(x), 32767)
    + T*zx*zw`` with padded taps reading ``zx`` (NUMERICS.md section 3).
    The activation sum is accumulated in int16 lanes with saturating adds
    (``vpmaddubsw`` by ones, then ``vpaddsw``, in fbgemm's
    GenerateI8Depthwise.cc), which only a kernel of more than 128 taps can
    reach (3-D 7x7x7; measured against torch 2.13.0).  Output channel ``o``
    reads input channel ``o // (O / C)``.  ``saturate_sum=False`` leaves
    the activation sum exact (to show that the saturation matters).

    Returns
    -------
    ndarray of int64, ``(N, O, *out_spatial)``, wrapped to int32.
    """
    nd, kernel, stride, padding, dilation, out = _geometry(x, w, stride, padding, 1)
    n, c = x.shape[:2]
    o = w.shape[0]
    mult = o // c
    w64 = np.asarray(w, np.int64).reshape(o, -1)  # (O, T) row-major taps
    zwv = np.broadcast_to(np.asarray(zw, np.int64), (o,)).reshape((1, o) + (1,) * nd)
    taps = w64.shape[1]
    products, xsum = [], 0
    for i, (_, xv) in enumerate(_padded_taps(x, zx, kernel, stride, padding, dilation, out)):
        xo = np.repeat(xv, mult, axis=1)  # (N, O, *out)
        products.append(xo * w64[:, i].reshape((1, o) + (1,) * nd))
        xsum = xsum + xo
    if taps % 2:
        products.append(np.zeros_like(products[0]))
    raw = sum(np.clip(products[i] + products[i + 1], -32768, 32767) for i in range(0, len(products), 2))
    wsum = w64.sum(axis=1).reshape((1, o) + (1,) * nd)
    if saturate_sum:
        xsum = np.minimum(xsum, 32767)  # a running int16 saturating sum of non-negative terms
    return _wrap32(raw - int(zx) * wsum - zwv * xsum + taps * int(zx) * zwv)


def fbgemm_requantize(acc, sx, sw, so, zo, relu=False):
    """fbgemm's epilogue without bias, in NumPy float32 (NUMERICS.md section 3).

    ``M_j = fl(fl(fl(sx) * fl(sw_j)) / fl(so))``, ``r = cvt(fl(fl(A) * M_j))``
    (NaN or outside int32 gives INT32_MIN),
    ``y = clamp(sat16(r) + zo, relu ? zo : 0, 255)``.

    ``acc`` is ``(N, O, *spatial)``; ``sw`` a scalar or ``O`` scales.
    Returns uint8 of the same shape.
    """
    acc = np.asarray(acc, np.int64)
    o = acc.shape[1]
    sw32 = np.broadcast_to(np.asarray(sw, np.float32), (o,)).reshape((1, o) + (1,) * (acc.ndim - 2))
    m = (np.float32(sx) * sw32) / np.float32(so)
    with np.errstate(over="ignore", invalid="ignore"):
        v = acc.astype(np.float32) * m
        r = np.rint(v.astype(np.float64))
    r = np.where(np.isfinite(r) & (r >= -(2**31)) & (r <= 2**31 - 1), r, -(2**31)).astype(np.int64)
    y = np.clip(r, -32768, 32767) + int(zo)
    return np.clip(y, int(zo) if relu else 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ peers
def torch_conv(x, sx, zx, w, sw, zw, bias, so, zo, *, stride=1, padding=0, dilation=1, groups=1,
               relu=False, x_tensor=None):
    """``torch.ops.quantized.conv{n}d[_relu]`` with ``conv{n}d_prepack``.

    Runs under the engine the caller selected
    (:func:`tests.oracles.torch_peer.engine`).

    Parameters
    ----------
    x : ndarray of uint8 ``(N, C, *spatial)``
        quint8 activation integers with ``sx``/``zx``; ignored when
        ``x_tensor`` (an existing torch quantized tensor, e.g. a previous
        conv's channels-last output) is given.
    w : ndarray of int8 ``(O, C / groups, *kernel)``
        qint8 weight: per-tensor with scalar ``sw``/``zw``, per-channel along
        axis 0 with arrays.
    bias : ndarray of float32 or None

    Returns
    -------
    (ndarray of uint8, torch.Tensor)
        ``int_repr()`` of the output (logically ``(N, O, *out)``) and the
        quantized output itself (to feed a following conv).
    """
    import torch

    from tests.oracles import torch_peer as peer

    nd = np.ndim(w) - 2
    with peer.quiet():
        xq = peer.make_per_tensor(x, sx, zx) if x_tensor is None else x_tensor
        if np.ndim(sw):
            wq = peer.make_per_channel(w, sw, zw, 0)
        else:
            wq = peer.make_per_tensor(w, sw, zw)
        # contiguous: torch 2.13's onednn prepack reads a strided bias tensor as if it were dense
        b = None if bias is None else torch.from_numpy(np.ascontiguousarray(bias, np.float32))
        prepack = getattr(torch.ops.quantized, f"conv{nd}d_prepack")
        packed = prepack(wq, b, list(as_tuple(stride, nd)), list(as_tuple(padding, nd)),
                         list(as_tuple(dilation, nd)), int(groups))
        op = getattr(torch.ops.quantized, f"conv{nd}d" + ("_relu" if relu else ""))
        y = op(xq, packed, float(so), int(zo))
        return y.int_repr().numpy(), y


_ONNX_ELEM = {np.dtype(np.uint8): "UINT8", np.dtype(np.int8): "INT8", np.dtype(np.int32): "INT32",
              np.dtype(np.float32): "FLOAT"}


def _qlinear_conv_model(x_dtype, w_dtype, nd, per_channel, with_bias, kernel, stride, pads, dilation, group,
                        constants=None):
    """A one-node QLinearConv model (opset 21).  Every tensor is a graph input,
    or, with ``constants`` (a dict of arrays for ``w``, ``w_scale``, ``w_zp``
    and ``b``), the weight, its parameters and the bias are initializers, which
    lets onnxruntime prepack the weight."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def info(name, dtype, shape):
        return helper.make_tensor_value_info(name, getattr(TensorProto, _ONNX_ELEM[np.dtype(dtype)]), shape)

    sp = [f"s{i}" for i in range(nd)]
    wshape = ["O"] if per_channel else []
    inputs = [info("x", x_dtype, ["N", "C"] + sp), info("x_scale", np.float32, []), info("x_zp", x_dtype, [])]
    weight_inputs = [info("w", w_dtype, ["O", "Cg"] + list(kernel)), info("w_scale", np.float32, wshape),
                     info("w_zp", w_dtype, wshape)]
    initializers = []
    if constants is None:
        inputs += weight_inputs
    else:
        initializers = [numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items()]
    inputs += [info("y_scale", np.float32, []), info("y_zp", x_dtype, [])]
    names = ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp"]
    if with_bias:
        if constants is None:
            inputs.append(info("b", np.int32, ["O"]))
        names.append("b")
    node = helper.make_node(
        "QLinearConv", names, ["y"], kernel_shape=list(kernel), strides=list(stride),
        pads=list(pads) + list(pads), dilations=list(dilation), group=int(group),
    )
    graph = helper.make_graph([node], "qops_qlinearconv", inputs,
                              [info("y", x_dtype, ["N", "O"] + [f"o{i}" for i in range(nd)])],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def _session(model):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=None)
def _qlinear_conv_session(*config):
    return _session(_qlinear_conv_model(*config))


def qlinear_conv(x, sx, zx, w, sw, zw, bias, so, zo, *, stride=1, padding=0, dilation=1, groups=1,
                 constant_weight=False):
    """onnxruntime ``QLinearConv`` (symmetric ``pads``), run on the CPU.

    ``x`` uint8 or int8 ``(N, C, *spatial)``; ``w`` uint8 or int8; ``sw``/``zw``
    scalars (per-tensor) or length-``O`` arrays (per output channel); ``bias``
    int32 in the accumulator scale or ``None``.  ``constant_weight`` stores the
    weight, its parameters and the bias as initializers (onnxruntime then
    prepacks the weight and may pick other kernels) instead of graph inputs.
    Returns the output of ``x``'s dtype, ``(N, O, *out)``.
    """
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    nd = x.ndim - 2
    weights = {"w": w, "w_scale": np.asarray(sw, np.float32), "w_zp": np.asarray(zw).astype(w.dtype)}
    if bias is not None:
        weights["b"] = np.asarray(bias, np.int32)
    config = (x.dtype.name, w.dtype.name, nd, np.ndim(sw) == 1, bias is not None, tuple(w.shape[2:]),
              as_tuple(stride, nd), as_tuple(padding, nd), as_tuple(dilation, nd), int(groups))
    feeds = {"x": x, "x_scale": np.asarray(sx, np.float32), "x_zp": np.asarray(zx).astype(x.dtype),
             "y_scale": np.asarray(so, np.float32), "y_zp": np.asarray(zo).astype(x.dtype)}
    if constant_weight:
        sess = _session(_qlinear_conv_model(*config, constants=weights))
    else:
        sess = _qlinear_conv_session(*config)
        feeds.update(weights)
    return sess.run(None, feeds)[0]
