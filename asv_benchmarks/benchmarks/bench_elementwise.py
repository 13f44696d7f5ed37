"""add / mul / add_scalar / cat / softmax / matmul: qops beside torch 2.13.

The memory-bound ops run on 1M-16M elements, matmul on two products of
65K and 131K outputs.

Each class's first parameter, ``impl``, names the implementation (``qops`` with
the default profile, i.e. torch's arithmetic, or ``torch``), so one run gives
the ratios.  Both run on ``common.THREADS`` threads; ``setup`` ends with one
call of the timed operation (``# compile``).
"""

import numpy as np

from . import common

IMPLS = ["qops", "torch"]
SIZES = [2**20, 2**24]
DTYPES = ["quint8", "qint8"]


def _inputs(impl, dtype, size, shapes):
    """QTensors (qops) or quantized tensors (torch) of the given shapes' sizes."""
    out = []
    for i, shape in enumerate(shapes):
        n = int(np.prod(shape))
        q = common.int_data(n, dtype, seed=1 + i).reshape(shape)
        zp = common.ZERO_POINT[dtype] + i
        if impl == "qops":
            qops = common.qops_module()
            qdt = {"quint8": qops.quint8, "qint8": qops.qint8}[dtype]
            out.append(qops.make_per_tensor_qtensor(q, common.SCALE * (i + 1), zp, qdt))
        else:
            torch = common.torch_module()
            out.append(torch._make_per_tensor_quantized_tensor(torch.from_numpy(q.copy()),
                                                               common.SCALE * (i + 1), zp))
    return out


def _op(impl, name):
    if impl == "qops":
        return getattr(common.qops_module().functional, name)
    return getattr(common.torch_module().ops.quantized, name)


class Binary:
    """add / add_relu / mul of two equal-shaped tensors."""

    params = [IMPLS, ["add", "add_relu", "mul"], DTYPES, SIZES]
    param_names = ["impl", "op", "dtype", "size"]

    def setup(self, impl, op, dtype, size):
        a, b = _inputs(impl, dtype, size, [(size,), (size,)])
        f = _op(impl, op)
        zo = common.ZERO_POINT2[dtype]
        self.fn = lambda: f(a, b, common.SCALE2, zo)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_binary(self, impl, op, dtype, size):
        self.fn()


class BroadcastAdd:
    """add of a (size/1024, 1024) tensor and a (1024,) row."""

    params = [IMPLS, SIZES]
    param_names = ["impl", "size"]

    def setup(self, impl, size):
        a, b = _inputs(impl, "quint8", size, [(size // 1024, 1024), (1024,)])
        f = _op(impl, "add")
        self.fn = lambda: f(a, b, common.SCALE2, 120)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_broadcast_add(self, impl, size):
        self.fn()


class AddScalar:
    """add_scalar with a saturating zero point (the requantizing branch)."""

    params = [IMPLS, SIZES]
    param_names = ["impl", "size"]

    def setup(self, impl, size):
        (a,) = _inputs(impl, "quint8", size, [(size,)])
        f = _op(impl, "add_scalar")
        self.fn = lambda: f(a, 10.0)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_add_scalar(self, impl, size):
        self.fn()


class Cat:
    """cat of two (size/2048, 1024) tensors along dim 1 into new qparams."""

    params = [IMPLS, SIZES]
    param_names = ["impl", "size"]

    def setup(self, impl, size):
        xs = _inputs(impl, "quint8", size, [(size // 2048, 1024), (size // 2048, 1024)])
        f = _op(impl, "cat")
        self.fn = lambda: f(xs, 1, common.SCALE2, 120)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_cat(self, impl, size):
        self.fn()


class Softmax:
    """softmax over the last dimension of (size/256, 256)."""

    params = [IMPLS, [2**20]]
    param_names = ["impl", "size"]

    def setup(self, impl, size):
        (a,) = _inputs(impl, "quint8", size, [(size // 256, 256)])
        f = _op(impl, "softmax")
        self.fn = lambda: f(a, 1, 1.0 / 256, 0)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_softmax(self, impl, size):
        self.fn()


class MatMul:
    """quint8 matmul: one (256, 256) @ (256, 256) product and a batch of 8
    (128, 64) @ (64, 128) (attention-like); qops sums in torch's MKL order."""

    params = [IMPLS, ["256x256x256", "8x128x64x128"]]
    param_names = ["impl", "shape"]

    def setup(self, impl, shape):
        dims = [int(v) for v in shape.split("x")]
        batch, (m, k, n) = tuple(dims[:-3]), dims[-3:]
        a, b = _inputs(impl, "quint8", 0, [batch + (m, k), batch + (k, n)])
        f = _op(impl, "matmul")
        self.fn = lambda: f(a, b, common.SCALE * common.SCALE * 2 * k ** 0.5 * 8, 128)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_matmul(self, impl, shape):
        self.fn()
