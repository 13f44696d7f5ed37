"""Quantized activations: relu, relu6, hardtanh, clamp, threshold, leaky_relu, hardswish, elu, celu, hardsigmoid, sigmoid, tanh, gelu, prelu."""

__all__: list = []
