"""Quantized elementwise and structure ops: add, add_relu, mul, mul_relu, add_scalar, mul_scalar, cat, matmul, softmax."""

__all__: list = []
