"""Quantized resampling and channel shuffle: interpolate, upsample, upsample_nearest, upsample_bilinear, channel_shuffle."""

__all__: list = []
