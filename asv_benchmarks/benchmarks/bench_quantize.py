"""quantize / dequantize / requantize: qops beside torch and onnxruntime.

Each op is one class whose first parameter, ``impl``, names the
implementation, so one run gives the ratios: ``qops`` (default profile
``fbgemm``, i.e. torch's arithmetic), ``torch`` (2.13, the quantized stack) and
``onnxruntime`` (QuantizeLinear / DequantizeLinear on its CPU provider).  All
run on ``common.THREADS`` threads.  ``setup`` ends with one call of the timed
operation (commented ``# compile``) so that timings never include Numba's
compilation or a peer's first-call set-up.
"""

import numpy as np

from . import common

IMPLS = ["qops", "torch", "onnxruntime"]
DTYPES = ["quint8", "qint8"]


def _qops_dtype(qops, name):
    return {"quint8": qops.quint8, "qint8": qops.qint8}[name]


class Quantize:
    """quantize_per_tensor of float32 values (torch.quantize_per_tensor, QuantizeLinear)."""

    params = [IMPLS, DTYPES, common.SIZES]
    param_names = ["impl", "dtype", "size"]

    def setup(self, impl, dtype, size):
        x = common.float_data(size)
        zp = common.ZERO_POINT[dtype]
        if impl == "qops":
            qops = common.qops_module()
            qdt = _qops_dtype(qops, dtype)
            self.fn = lambda: qops.quantize_per_tensor(x, common.SCALE, zp, qdt)
        elif impl == "torch":
            torch = common.torch_module()
            xt = torch.from_numpy(x.copy())
            tdt = common.torch_dtype(torch, dtype)
            self.fn = lambda: torch.quantize_per_tensor(xt, common.SCALE, zp, tdt)
        else:
            sess = common.ort_quantize(dtype, [size], common.SCALE, zp)
            feed = {"x": x}
            self.fn = lambda: sess.run(None, feed)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_quantize_per_tensor(self, impl, dtype, size):
        self.fn()


class Dequantize:
    """dequantize of per-tensor quantized values to float32."""

    params = [IMPLS, DTYPES, common.SIZES]
    param_names = ["impl", "dtype", "size"]

    def setup(self, impl, dtype, size):
        q = common.int_data(size, dtype)
        zp = common.ZERO_POINT[dtype]
        if impl == "qops":
            qops = common.qops_module()
            qt = qops.make_per_tensor_qtensor(q, common.SCALE, zp, _qops_dtype(qops, dtype))
            self.fn = lambda: qops.dequantize(qt)
        elif impl == "torch":
            torch = common.torch_module()
            # uint8 storage gives a quint8 tensor, int8 a qint8 one
            qt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(q.copy()), common.SCALE, zp)
            assert qt.dtype == common.torch_dtype(torch, dtype)
            self.fn = qt.dequantize
        else:
            sess = common.ort_dequantize(dtype, [size], common.SCALE, zp)
            feed = {"x": q}
            self.fn = lambda: sess.run(None, feed)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_dequantize(self, impl, dtype, size):
        self.fn()


class Requantize:
    """quint8 to quint8 with new parameters.

    torch has no requantize: its route, and what qops's torch profiles
    reproduce, is ``quantize_per_tensor(dequantize(q))``; onnxruntime's is
    DequantizeLinear then QuantizeLinear.
    """

    params = [IMPLS, common.SIZES]
    param_names = ["impl", "size"]

    def setup(self, impl, size):
        dtype = "quint8"
        q = common.int_data(size, dtype)
        z1, z2 = common.ZERO_POINT[dtype], common.ZERO_POINT2[dtype]
        s1, s2 = common.SCALE, common.SCALE2
        if impl == "qops":
            qops = common.qops_module()
            qt = qops.make_per_tensor_qtensor(q, s1, z1, qops.quint8)
            self.fn = lambda: qops.requantize(qt, s2, z2)
        elif impl == "torch":
            torch = common.torch_module()
            qt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(q.copy()), s1, z1)
            self.fn = lambda: torch.quantize_per_tensor(qt.dequantize(), s2, z2, torch.quint8)
        else:
            sess = common.ort_requantize(dtype, [size], s1, z1, s2, z2)
            feed = {"x": q}
            self.fn = lambda: sess.run(None, feed)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_requantize(self, impl, size):
        self.fn()


class QuantizePerChannel:
    """quantize_per_channel with 64 channels on the first or the last axis.

    ``first``: shape (64, size/64), axis 0 (weights); ``last``: shape
    (size/64, 64), axis 1 (channels-last activations).
    """

    params = [IMPLS, ["first", "last"], [2**18, common.BIG]]
    param_names = ["impl", "axis", "size"]

    def setup(self, impl, axis, size):
        c = common.CHANNELS
        shape = (c, size // c) if axis == "first" else (size // c, c)
        ax = 0 if axis == "first" else 1
        x = common.float_data(size).reshape(shape)
        scales, zps = common.channel_params()
        if impl == "qops":
            qops = common.qops_module()
            self.fn = lambda: qops.quantize_per_channel(x, scales, zps, ax, qops.quint8)
        elif impl == "torch":
            torch = common.torch_module()
            xt = torch.from_numpy(x.copy())
            st = torch.from_numpy(scales)
            zt = torch.from_numpy(zps)
            self.fn = lambda: torch.quantize_per_channel(xt, st, zt, ax, torch.quint8)
        else:
            sess = common.ort_quantize("quint8", list(shape), scales.astype(np.float32),
                                       zps.astype(np.uint8), axis=ax)
            feed = {"x": x}
            self.fn = lambda: sess.run(None, feed)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_quantize_per_channel(self, impl, axis, size):
        self.fn()


class PeakMemory:
    """Peak resident memory of one op on 16M values (64 MiB of float32).

    asv measures the whole benchmark process, so compare the implementations
    with each other rather than read the absolute numbers.
    """

    params = [IMPLS, ["quantize", "dequantize", "requantize"]]
    param_names = ["impl", "op"]

    def setup(self, impl, op):
        bench = {"quantize": Quantize, "dequantize": Dequantize, "requantize": Requantize}[op]()
        if op == "requantize":
            bench.setup(impl, common.BIG)
        else:
            bench.setup(impl, "quint8", common.BIG)
        self.fn = bench.fn  # compiled in bench.setup

    def peakmem_op(self, impl, op):
        self.fn()


class Numerics:
    """qops alone under each numerics profile, 16M quint8 values."""

    params = [["fbgemm", "qnnpack", "onednn", "onnxruntime", "tflite", "tflite_single", "reference"]]
    param_names = ["numerics"]

    def setup(self, profile):
        qops = common.qops_module()
        self.qops = qops
        self.x = common.float_data(common.BIG)
        self.q = qops.make_per_tensor_qtensor(
            common.int_data(common.BIG, "quint8"), common.SCALE, common.ZERO_POINT["quint8"], qops.quint8
        )
        self.time_quantize(profile)  # compile
        self.time_dequantize(profile)
        self.time_requantize(profile)
        common.limit_numba_threads()

    def time_quantize(self, profile):
        self.qops.quantize_per_tensor(self.x, common.SCALE, common.ZERO_POINT["quint8"],
                                      self.qops.quint8, numerics=profile)

    def time_dequantize(self, profile):
        self.qops.dequantize(self.q, numerics=profile)

    def time_requantize(self, profile):
        self.qops.requantize(self.q, common.SCALE2, common.ZERO_POINT2["quint8"], numerics=profile)


class QuantizeCUDA:
    """qops on a CUDA GPU (device arrays in and out); skipped without a GPU.

    Each timed call synchronises, so the time is the kernel's, not the launch's.
    """

    params = [common.SIZES]
    param_names = ["size"]

    def setup(self, size):
        cuda = common.cuda_module()
        qops = common.qops_module()
        self.cuda = cuda
        self.qops = qops
        self.x = cuda.to_device(common.float_data(size))
        self.q = qops.make_per_tensor_qtensor(
            cuda.to_device(common.int_data(size, "quint8")), common.SCALE,
            common.ZERO_POINT["quint8"], qops.quint8,
        )
        self.time_quantize_per_tensor(size)  # compile
        self.time_dequantize(size)
        self.time_requantize(size)

    def time_quantize_per_tensor(self, size):
        self.qops.quantize_per_tensor(self.x, common.SCALE, common.ZERO_POINT["quint8"], self.qops.quint8)
        self.cuda.synchronize()

    def time_dequantize(self, size):
        self.qops.dequantize(self.q)
        self.cuda.synchronize()

    def time_requantize(self, size):
        self.qops.requantize(self.q, common.SCALE2, common.ZERO_POINT2["quint8"])
        self.cuda.synchronize()
