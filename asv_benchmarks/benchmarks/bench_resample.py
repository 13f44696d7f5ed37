"""interpolate (nearest, bilinear) and channel_shuffle: qops beside torch.

Memory-bound ops on 1M and 16M-element outputs: ``(1, 64, H, W)`` quint8
inputs upsampled 2x (output ``64 * 2H * 2W`` elements), and channel shuffle
with 8 groups on ``(1, 64, H, W)``.  ``layout`` picks torch's kernel: ``nchw``
(contiguous) or ``nhwc`` (a channels-last tensor; for qops a permuted view of
an ``(N, H, W, C)`` buffer).  ``impl`` is ``qops`` (profile fbgemm: torch's
arithmetic) or ``torch`` (2.13); both run on ``common.THREADS`` threads.
``setup`` ends with one call of the timed operation (commented ``# compile``).
"""

import numpy as np

from . import common

IMPLS = ["qops", "torch"]
LAYOUTS = ["nchw", "nhwc"]
#: output elements: 64 channels of 128x128 and of 512x512
OUT_SIZES = [2**20, 2**24]
CHANNELS = 64
ZERO_POINT = 128


def _input(size, upsample):
    """``(1, 64, H, W)`` uint8 values whose 2x-upsampled (or unchanged) size is ``size``."""
    side = int(round((size // CHANNELS) ** 0.5)) // (2 if upsample else 1)
    q = common.int_data(CHANNELS * side * side, "quint8")
    return q.reshape(1, CHANNELS, side, side)


def _pair(impl, ints, layout):
    """The input as a qops QTensor or a torch tensor in ``layout``."""
    if impl == "qops":
        qops = common.qops_module()
        if layout == "nhwc":
            buf = np.ascontiguousarray(ints.transpose(0, 2, 3, 1))
            return qops, qops.make_per_tensor_qtensor(buf, common.SCALE, ZERO_POINT, qops.quint8).permute(0, 3, 1, 2)
        return qops, qops.make_per_tensor_qtensor(np.ascontiguousarray(ints), common.SCALE, ZERO_POINT, qops.quint8)
    torch = common.torch_module()
    t = torch._make_per_tensor_quantized_tensor(torch.from_numpy(ints.copy()), common.SCALE, ZERO_POINT)
    if layout == "nhwc":
        t = t.contiguous(memory_format=torch.channels_last)
    return torch, t


class Interpolate:
    """2x upsampling, nearest and bilinear (align_corners=False)."""

    params = [IMPLS, ["nearest", "bilinear"], LAYOUTS, OUT_SIZES]
    param_names = ["impl", "mode", "layout", "out_size"]

    def setup(self, impl, mode, layout, out_size):
        lib, x = _pair(impl, _input(out_size, True), layout)
        kw = dict(scale_factor=2.0, mode=mode)
        if mode == "bilinear":
            kw["align_corners"] = False
        if impl == "qops":
            self.fn = lambda: lib.functional.interpolate(x, **kw)
        else:
            self.fn = lambda: lib.nn.functional.interpolate(x, **kw)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_interpolate(self, impl, mode, layout, out_size):
        self.fn()


class ChannelShuffle:
    """channel_shuffle with 8 groups."""

    params = [IMPLS, LAYOUTS, OUT_SIZES]
    param_names = ["impl", "layout", "size"]

    def setup(self, impl, layout, size):
        lib, x = _pair(impl, _input(size, False), layout)
        if impl == "qops":
            self.fn = lambda: lib.functional.channel_shuffle(x, 8)
        else:
            self.fn = lambda: lib.nn.functional.channel_shuffle(x, 8)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_channel_shuffle(self, impl, layout, size):
        self.fn()
