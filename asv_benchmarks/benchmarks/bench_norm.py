"""Quantized normalisation: qops (profile ``fbgemm``) beside torch 2.13.

One class per op, ``impl`` first so one run gives the ratio; quint8 tensors
of 1M and 16M elements, both on ``common.THREADS`` threads.  ``setup`` ends
with one call of the timed op (``# compile``).  Group norm runs on a
contiguous (NCHW) input and on a channels-last one (torch's other kernel).
"""

import numpy as np

from . import common

IMPLS = ["qops", "torch"]
SIZES = [2**20, 2**24]
CHANNELS = 64


def _input(size, channels_last=False):
    """A quint8 (N, 64, H, W) tensor of ``size`` elements for qops and torch."""
    hw = size // CHANNELS
    h = 1 << (hw.bit_length() - 1) // 2
    shape = (1, CHANNELS, h, hw // h)
    q = common.int_data(size, "quint8").reshape(shape)
    if channels_last:
        q = np.moveaxis(np.ascontiguousarray(np.moveaxis(q, 1, -1)), -1, 1)
    return q


def _params(seed=3):
    rng = np.random.default_rng(seed)
    w = rng.normal(1.0, 0.2, CHANNELS).astype(np.float32)
    b = rng.normal(0.0, 0.2, CHANNELS).astype(np.float32)
    mean = rng.normal(0.0, 1.0, CHANNELS).astype(np.float32)
    var = rng.uniform(0.5, 2.0, CHANNELS).astype(np.float32)
    return w, b, mean, var


class _Norm:
    params = [IMPLS, SIZES]
    param_names = ["impl", "size"]
    channels_last = False

    def setup(self, impl, size):
        q = _input(size, self.channels_last)
        if impl == "qops":
            qops = common.qops_module()
            x = qops.make_per_tensor_qtensor(q, common.SCALE, 128, qops.quint8)
            self.fn = self.qops_call(qops.functional, x)
        else:
            torch = common.torch_module()
            x = torch._make_per_tensor_quantized_tensor(torch.from_numpy(np.array(q, order="C")),
                                                        common.SCALE, 128)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self.fn = self.torch_call(torch, x)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()


class LayerNorm(_Norm):
    """layer_norm over the last two dims (H, W)."""

    def qops_call(self, F, x):
        ns = x.shape[2:]
        return lambda: F.layer_norm(x, ns, None, None, 1e-5, 0.02, 128)

    def torch_call(self, torch, x):
        ns = list(x.shape[2:])
        return lambda: torch.ops.quantized.layer_norm(x, ns, None, None, 1e-5, 0.02, 128)

    def time_layer_norm(self, impl, size):
        self.fn()


class GroupNorm(_Norm):
    """group_norm, 8 groups, contiguous input."""

    def qops_call(self, F, x):
        w, b, _, _ = _params()
        return lambda: F.group_norm(x, 8, w, b, 1e-5, 0.02, 128, torch_threads=common.THREADS)

    def torch_call(self, torch, x):
        w, b = (torch.from_numpy(a) for a in _params()[:2])
        return lambda: torch.ops.quantized.group_norm(x, 8, w, b, 1e-5, 0.02, 128)

    def time_group_norm(self, impl, size):
        self.fn()


class GroupNormChannelsLast(GroupNorm):
    """group_norm, 8 groups, channels-last input."""

    channels_last = True


class BatchNorm2d(_Norm):
    """batch_norm2d with running statistics."""

    def qops_call(self, F, x):
        p = _params()
        return lambda: F.batch_norm2d(x, *p, 1e-5, 0.02, 128)

    def torch_call(self, torch, x):
        p = [torch.from_numpy(a) for a in _params()]
        return lambda: torch.ops.quantized.batch_norm2d(x, *p, 1e-5, 0.02, 128)

    def time_batch_norm2d(self, impl, size):
        self.fn()
