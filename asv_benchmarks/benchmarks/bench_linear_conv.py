"""linear and conv2d: qops's modules beside torch and onnxruntime on the fixed set.

The shapes, data and implementations come from :mod:`qops._bench`, the same
definitions ``qops bench`` times, so the two never drift apart:

* ``qops``: ``qops.nn.Linear`` / ``qops.nn.Conv2d`` (weights packed once,
  profile ``fbgemm``);
* ``torch``: engine ``x86``, weights prepacked with
  ``torch.ops.quantized.linear_prepack`` / ``conv2d_prepack``;
* ``onnxruntime``: QLinearMatMul / QLinearConv with the weight as a constant
  initializer.

uint8 activations (full range), int8 weights symmetric per output channel,
float bias; batch 1 NCHW for convolutions.  All run on ``common.THREADS``
threads.  ``setup`` ends with one call (commented ``# compile``); a missing
peer raises ``NotImplementedError`` there, which asv reports as a skip.
"""

from qops import _bench

from . import common

IMPLS = list(_bench.IMPLS)


class QLinear:
    """``linear`` (M, K, N): input (M, K) quint8, weight (N, K) qint8 per channel."""

    params = [IMPLS, [c.name for c in _bench.LINEAR_CASES]]
    param_names = ["impl", "shape"]
    _cases = {c.name: c for c in _bench.LINEAR_CASES}

    def setup(self, impl, shape):
        self.fn = _bench.build(impl, self._cases[shape], common.THREADS)
        self.fn()  # compile

    def time_linear(self, impl, shape):
        self.fn()


class QConv2d:
    """``conv2d``, batch 1, NCHW, padding "same" for 3x3 kernels (depthwise: groups = channels)."""

    params = [IMPLS, [c.name for c in _bench.CONV2D_CASES]]
    param_names = ["impl", "shape"]
    _cases = {c.name: c for c in _bench.CONV2D_CASES}

    def setup(self, impl, shape):
        self.fn = _bench.build(impl, self._cases[shape], common.THREADS)
        self.fn()  # compile

    def time_conv2d(self, impl, shape):
        self.fn()
