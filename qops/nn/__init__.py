"""Quantized modules, shaped like ``torch.ao.nn.quantized`` and its fused
(``intrinsic.quantized``) forms."""

from . import _activation, _conv_transpose, _elementwise, _embedding, _norm
from ._activation import *  # noqa: F401,F403
from ._conv_transpose import *  # noqa: F401,F403
from ._elementwise import *  # noqa: F401,F403
from ._embedding import *  # noqa: F401,F403
from ._modules import (
    Conv1d,
    Conv2d,
    Conv3d,
    ConvReLU1d,
    ConvReLU2d,
    ConvReLU3d,
    DeQuantize,
    Linear,
    LinearReLU,
    Module,
    Quantize,
)
from ._norm import *  # noqa: F401,F403

__all__ = [
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvReLU1d",
    "ConvReLU2d",
    "ConvReLU3d",
    "DeQuantize",
    "Linear",
    "LinearReLU",
    "Module",
    "Quantize",
]
__all__ += _activation.__all__ + _conv_transpose.__all__ + _elementwise.__all__ + _embedding.__all__
__all__ += _norm.__all__
