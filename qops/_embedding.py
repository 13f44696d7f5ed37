"""Quantized embeddings: embedding_bag (8-bit and 4-bit rowwise), embedding."""

__all__: list = []
