"""qops: bit-exact quantized operators in Numba.

Reproduces the integer arithmetic of PyTorch's quantized backends (fbgemm,
qnnpack, oneDNN), ONNX Runtime and TFLite, selected by a *numerics profile*,
on NumPy arrays (parallel CPU kernels) and CUDA device arrays.
"""

from ._ops import (
    dequantize,
    fake_quantize_per_channel_affine,
    fake_quantize_per_tensor_affine,
    make_per_channel_qtensor,
    make_per_tensor_qtensor,
    quantize_per_channel,
    quantize_per_tensor,
    quantize_per_tensor_dynamic,
    requantize,
)
from ._precompile import precompile
from ._threading import threading_layer
from .dtypes import (
    QDType,
    QScheme,
    per_channel_affine,
    per_channel_affine_float_qparams,
    per_channel_symmetric,
    per_tensor_affine,
    per_tensor_symmetric,
    qint8,
    qint32,
    quint2x4,
    quint4x2,
    quint8,
)
from .numerics import available_numerics, numerics
from .qtensor import QTensor

__version__ = "0.1.0"

__all__ = [
    "QDType",
    "QScheme",
    "QTensor",
    "available_numerics",
    "dequantize",
    "fake_quantize_per_channel_affine",
    "fake_quantize_per_tensor_affine",
    "make_per_channel_qtensor",
    "make_per_tensor_qtensor",
    "numerics",
    "per_channel_affine",
    "per_channel_affine_float_qparams",
    "per_channel_symmetric",
    "per_tensor_affine",
    "per_tensor_symmetric",
    "precompile",
    "qint8",
    "qint32",
    "quantize_per_channel",
    "quantize_per_tensor",
    "quantize_per_tensor_dynamic",
    "quint2x4",
    "quint4x2",
    "quint8",
    "requantize",
    "threading_layer",
]

from . import functional  # noqa: E402

__all__ += ["functional"]

# observers, fake quantization, qconfig and calibration
from . import fake_quantize, observer, qconfig  # noqa: E402
from ._calibrate import calibrate  # noqa: E402

__all__ += ["calibrate", "observer", "fake_quantize", "qconfig"]

from . import nn  # noqa: E402

__all__ += ["nn"]
