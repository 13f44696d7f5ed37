"""Quantized modules, shaped like ``torch.ao.nn.quantized`` and its fused
(``intrinsic.quantized``) forms."""

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
