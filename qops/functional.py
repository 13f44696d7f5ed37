"""Quantized functional ops (``torch.ao.nn.quantized.functional`` names).

Each family of ops lives in its own private module (``qops/_linear.py``,
``qops/_pool.py``, ...) that lists its public names in ``__all__``; this
module re-exports them all.
"""

from . import _activation, _conv_transpose, _elementwise, _embedding, _norm, _pool, _resample
from ._activation import *  # noqa: F401,F403
from ._conv import conv1d, conv1d_relu, conv2d, conv2d_relu, conv3d, conv3d_relu
from ._conv_transpose import *  # noqa: F401,F403
from ._elementwise import *  # noqa: F401,F403
from ._embedding import *  # noqa: F401,F403
from ._linear import linear, linear_relu
from ._norm import *  # noqa: F401,F403
from ._pool import *  # noqa: F401,F403
from ._resample import *  # noqa: F401,F403

__all__ = sorted(
    ["conv1d", "conv1d_relu", "conv2d", "conv2d_relu", "conv3d", "conv3d_relu", "linear", "linear_relu"]
    + _activation.__all__
    + _conv_transpose.__all__
    + _elementwise.__all__
    + _embedding.__all__
    + _norm.__all__
    + _pool.__all__
    + _resample.__all__
)
