"""Quantized activations: qops beside torch 2.13 on 1M and 16M elements.

One class, ``impl`` first so one run gives the ratios.  qops builds a
256-entry table per call (with torch's float arithmetic) and looks every
element up; torch dequantizes, evaluates in float32 and quantizes (or, for
relu / clamp, compares integers).  Both run on ``common.THREADS`` threads;
``setup`` ends with one call (``# compile``).
"""

import numpy as np

from . import common

IMPLS = ["qops", "torch"]
OPS = ["relu", "hardtanh", "leaky_relu", "hardswish", "sigmoid", "tanh", "gelu", "elu", "prelu"]
SIZES = [2**20, 2**24]


def _qops_call(qops, op, x, w):
    F = qops.functional
    return {
        "relu": lambda: F.relu(x),
        "hardtanh": lambda: F.hardtanh(x, -0.5, 0.5),
        "leaky_relu": lambda: F.leaky_relu(x, 0.1),
        "hardswish": lambda: F.hardswish(x, 0.04, 20),
        "sigmoid": lambda: F.sigmoid(x),
        "tanh": lambda: F.tanh(x),
        "gelu": lambda: F.gelu(x),
        "elu": lambda: F.elu(x, 0.04, 100),
        "prelu": lambda: F.prelu(x, w, 0.05, 100),
    }[op]


def _torch_call(torch, op, xt, wt):
    qF = torch.ao.nn.quantized.functional
    return {
        "relu": lambda: torch.relu(xt),
        "hardtanh": lambda: qF.hardtanh(xt, -0.5, 0.5),
        "leaky_relu": lambda: qF.leaky_relu(xt, 0.1),
        "hardswish": lambda: qF.hardswish(xt, 0.04, 20),
        "sigmoid": lambda: torch.sigmoid(xt),
        "tanh": lambda: torch.tanh(xt),
        "gelu": lambda: torch.nn.functional.gelu(xt),
        "elu": lambda: qF.elu(xt, 0.04, 100),
        "prelu": lambda: torch.ops.quantized.prelu(xt, wt, 0.05, 100),
    }[op]


class Activation:
    """An activation of a (size / 64, 64) quint8 tensor (prelu: 64 channels on axis 1)."""

    params = [IMPLS, OPS, SIZES]
    param_names = ["impl", "op", "size"]

    def setup(self, impl, op, size):
        raw = common.int_data(size, "quint8").reshape(size // 64, 64)
        wraw = np.arange(64, dtype=np.uint8) * 3
        if impl == "qops":
            qops = common.qops_module()
            x = qops.make_per_tensor_qtensor(raw, common.SCALE, common.ZERO_POINT["quint8"], qops.quint8)
            w = qops.make_per_tensor_qtensor(wraw, 0.01, 100, qops.quint8)
            self.fn = _qops_call(qops, op, x, w)
        else:
            torch = common.torch_module()
            xt = torch._make_per_tensor_quantized_tensor(
                torch.from_numpy(raw.copy()), common.SCALE, common.ZERO_POINT["quint8"])
            wt = torch._make_per_tensor_quantized_tensor(torch.from_numpy(wraw), 0.01, 100)
            self.fn = _torch_call(torch, op, xt, wt)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_activation(self, impl, op, size):
        self.fn()
