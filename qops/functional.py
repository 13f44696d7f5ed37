"""Quantized functional ops (``torch.ao.nn.quantized.functional`` names).

Each op lives in its own private module (``qops/_linear.py``, ...) and is
imported here; ``__all__`` lists the public names.
"""

from ._conv import conv1d, conv1d_relu, conv2d, conv2d_relu, conv3d, conv3d_relu
from ._linear import linear, linear_relu

__all__ = [
    "conv1d",
    "conv1d_relu",
    "conv2d",
    "conv2d_relu",
    "conv3d",
    "conv3d_relu",
    "linear",
    "linear_relu",
]
