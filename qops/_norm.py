"""Quantized normalisation: layer_norm, group_norm, instance_norm, batch_norm."""

__all__: list = []
