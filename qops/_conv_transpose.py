"""Quantized transposed convolution: conv_transpose1d/2d/3d."""

__all__: list = []
