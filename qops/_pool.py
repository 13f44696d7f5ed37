"""Quantized pooling: max_pool1d/2d, avg_pool2d/3d, adaptive_avg_pool2d/3d."""

__all__: list = []
