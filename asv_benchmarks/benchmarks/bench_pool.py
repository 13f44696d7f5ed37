"""Pooling: qops beside torch 2.13's quantized kernels.

One class per op; ``impl`` names the implementation (``qops``, default
profile ``fbgemm``, i.e. torch's arithmetic, or ``torch``), ``layout`` the
memory format (torch runs a different kernel for each: ``nchw`` contiguous,
``nhwc`` channels last), ``size`` the input's element count (1M and 16M
quint8 values, 64 channels).  Both run on ``common.THREADS`` threads.
``setup`` ends with one timed call (commented ``# compile``).
"""

import numpy as np

from . import common

IMPLS = ["qops", "torch"]
LAYOUTS = ["nchw", "nhwc"]
SIZES = [2**20, 2**24]
CHANNELS = 64


def _shape(size, nd):
    if nd == 4:
        side = int(round((size // (4 * CHANNELS)) ** 0.5))
        return (4, CHANNELS, side, size // (4 * CHANNELS * side))
    side = int(round((size // (2 * CHANNELS)) ** (1 / 3)))
    return (2, CHANNELS, side, side, size // (2 * CHANNELS * side * side))


def _inputs(impl, layout, size, nd):
    shape = _shape(size, nd)
    ints = np.random.default_rng(3).integers(0, 256, shape).astype(np.uint8)
    zp = common.ZERO_POINT["quint8"]
    perm = (0,) + tuple(range(2, nd)) + (1,)
    inv = (0, nd - 1) + tuple(range(1, nd - 1))
    if impl == "qops":
        qops = common.qops_module()
        if layout == "nhwc":
            return qops.make_per_tensor_qtensor(
                np.ascontiguousarray(ints.transpose(perm)), common.SCALE, zp, qops.quint8).permute(inv)
        return qops.make_per_tensor_qtensor(ints, common.SCALE, zp, qops.quint8)
    torch = common.torch_module()
    t = torch._make_per_tensor_quantized_tensor(torch.from_numpy(ints), common.SCALE, zp)
    if layout == "nhwc":
        t = t.contiguous(memory_format=torch.channels_last if nd == 4 else torch.channels_last_3d)
    return t


class _Pool:
    params = [IMPLS, LAYOUTS, SIZES]
    param_names = ["impl", "layout", "size"]
    nd = 4

    def call(self, F, x):  # pragma: no cover - overridden
        raise NotImplementedError

    def setup(self, impl, layout, size):
        x = _inputs(impl, layout, size, self.nd)
        if impl == "qops":
            F = common.qops_module().functional
        else:
            F = common.torch_module().nn.functional
        self.fn = lambda: self.call(F, x)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()


class MaxPool2d(_Pool):
    """max_pool2d, 3x3 kernel, stride 2, padding 1."""

    def call(self, F, x):
        return F.max_pool2d(x, 3, 2, 1)

    def time_max_pool2d(self, impl, layout, size):
        self.fn()


class AvgPool2d(_Pool):
    """avg_pool2d, 3x3 kernel, stride 1, padding 1 (overlapping windows)."""

    def call(self, F, x):
        return F.avg_pool2d(x, 3, 1, 1)

    def time_avg_pool2d(self, impl, layout, size):
        self.fn()


class AdaptiveAvgPool2d(_Pool):
    """adaptive_avg_pool2d to 7x7 (a classifier head)."""

    def call(self, F, x):
        return F.adaptive_avg_pool2d(x, 7)

    def time_adaptive_avg_pool2d(self, impl, layout, size):
        self.fn()


class AvgPool3d(_Pool):
    """avg_pool3d, 2x2x2 kernel, stride 2 (torch always runs its NDHWC kernel)."""

    nd = 5

    def call(self, F, x):
        return F.avg_pool3d(x, 2)

    def time_avg_pool3d(self, impl, layout, size):
        self.fn()
