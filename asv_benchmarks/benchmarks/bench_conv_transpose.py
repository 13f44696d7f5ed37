"""conv_transpose1d/2d/3d: qops's modules beside torch's in the same class.

* ``qops``: ``qops.nn.ConvTranspose{n}d`` (weight packed once), profile
  ``fbgemm``;
* ``torch``: ``torch.ops.quantized.conv_transpose{n}d`` with a prepacked
  weight, engine ``fbgemm``.

uint8 activations (full range), qint8 per-tensor weights, float bias; both on
``common.THREADS`` threads.  Shapes are decoder up-samplers (kernel 4 or 3,
stride 2) with outputs of 0.5-2M elements (the kernel-2 stride-2 shape with
channels multiples of 8 takes fbgemm's direct kernel, which qops refuses:
see ``docs/ops_conv_transpose.md``).
"""

import numpy as np

from . import common

#: name -> (input shape, out_channels, kernel, stride, padding, output_padding)
SHAPES = {
    "1d_n4_c128_l4096": ((4, 128, 4096), 64, 4, 2, 1, 0),
    "2d_c64_64x64": ((1, 64, 64, 64), 32, 4, 2, 1, 0),
    "3d_c16_16x16x16": ((1, 16, 16, 16, 16), 16, 3, 2, 1, 1),
}


def _data(shape_name):
    shape, cout, k, s, p, op = SHAPES[shape_name]
    nd = len(shape) - 2
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, shape).astype(np.uint8)
    w = rng.integers(-128, 128, (shape[1], cout) + (k,) * nd).astype(np.int8)
    b = rng.normal(size=cout).astype(np.float32)
    return nd, x, w, b, (k,) * nd, (s,) * nd, (p,) * nd, (op,) * nd


class QConvTranspose:
    """Transposed convolution, batch-1 (2-D, 3-D) or batch-4 (1-D) up-samplers."""

    params = [["qops", "torch"], list(SHAPES)]
    param_names = ["impl", "shape"]

    def setup(self, impl, shape):
        nd, x, w, b, k, s, p, op = _data(shape)
        if impl == "qops":
            qops = common.qops_module()
            xq = qops.make_per_tensor_qtensor(x, 0.05, 128, qops.quint8)
            wq = qops.make_per_tensor_qtensor(w, 0.01, 0, qops.qint8)
            cls = getattr(qops.nn, f"ConvTranspose{nd}d")
            m = cls(x.shape[1], w.shape[1], k, s, p, op, numerics="fbgemm")
            m.set_weight_bias(wq, b)
            m.scale, m.zero_point = 2.0, 120
            self.fn = lambda: m(xq)
            self.fn()
            common.limit_numba_threads()
        else:
            torch = common.torch_module()
            torch.backends.quantized.engine = "fbgemm"
            xq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(x), 0.05, 128)
            wq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(w), 0.01, 0)
            prepack = getattr(torch.ops.quantized, f"conv_transpose{nd}d_prepack")
            packed = prepack(wq, torch.from_numpy(b), list(s), list(p), list(op), [1] * nd, 1)
            op_fn = getattr(torch.ops.quantized, f"conv_transpose{nd}d")
            self.fn = lambda: op_fn(xq, packed, 2.0, 120)
        self.fn()  # compile

    def time_conv_transpose(self, impl, shape):
        self.fn()
