"""Modules over :mod:`qops._elementwise`: QFunctional, FloatFunctional and Softmax,
shaped like ``torch.ao.nn.quantized``'s."""

from __future__ import annotations

import numbers

import numpy as np

from .. import _elementwise as E
from .._validate import check_scale
from ..numerics import resolve_numerics
from ._modules import Module

__all__ = ["QFunctional", "FloatFunctional", "Softmax"]


def _numerics(numerics):
    if numerics is not None:
        resolve_numerics(numerics)
    return numerics


def _zp(zero_point):
    if isinstance(zero_point, (bool, np.bool_)) or not isinstance(zero_point, numbers.Integral):
        raise TypeError(f"zero_point must be an integer, got {zero_point!r}")
    return int(zero_point)


def _identity(x):
    return x


class FloatFunctional(Module):
    """Float twin of :class:`QFunctional` (``torch.ao.nn.quantized.FloatFunctional``).

    Works on float32 NumPy arrays.  ``activation_post_process`` (default: the
    identity) is called on the results of ``add``, ``mul``, ``cat``,
    ``add_relu`` and ``matmul`` (not on ``add_scalar`` / ``mul_scalar``), as in
    torch: set it to an observer (e.g. ``qops.observer.MinMaxObserver()``) to
    calibrate, then build the quantized twin with
    :meth:`QFunctional.from_float`.

    Examples
    --------
    >>> import numpy as np, qops
    >>> from qops.observer import MinMaxObserver
    >>> f = qops.nn.FloatFunctional()
    >>> f.activation_post_process = MinMaxObserver()
    >>> _ = f.add(np.float32([0.0, 1.0]), np.float32([1.0, 1.0]))
    >>> q = qops.nn.QFunctional.from_float(f)
    >>> round(q.scale, 6), q.zero_point
    (0.007843, 0)
    """

    def __init__(self):
        self.activation_post_process = _identity

    def forward(self, x):
        raise RuntimeError(
            "FloatFunctional is not intended to use the 'forward'. Please use the underlying operation"
        )

    @staticmethod
    def _f(x):
        return np.asarray(x, dtype=np.float32)

    def add(self, x, y):
        return self.activation_post_process(self._f(x) + self._f(y))

    def add_scalar(self, x, y):
        return self._f(x) + np.float32(y)

    def mul(self, x, y):
        return self.activation_post_process(self._f(x) * self._f(y))

    def mul_scalar(self, x, y):
        return self._f(x) * np.float32(y)

    def cat(self, x, dim=0):
        return self.activation_post_process(np.concatenate([self._f(t) for t in x], axis=dim))

    def add_relu(self, x, y):
        return self.activation_post_process(np.maximum(self._f(x) + self._f(y), np.float32(0)))

    def matmul(self, x, y):
        return self.activation_post_process(np.matmul(self._f(x), self._f(y)))

    def __repr__(self):
        return "FloatFunctional()"


class QFunctional(Module):
    """Quantized operations with fixed output parameters (``torch.ao.nn.quantized.QFunctional``).

    Parameters
    ----------
    numerics : str, optional
        The profile every call uses (default: the active one).

    Attributes
    ----------
    scale, zero_point : float, int
        Output parameters of ``add``, ``mul``, ``cat``, ``add_relu`` and
        ``matmul`` (torch's defaults 1.0 and 0); ``add_scalar`` /
        ``mul_scalar`` choose their own, as torch.
    """

    def __init__(self, *, numerics=None):
        self.scale = 1.0
        self.zero_point = 0
        self.numerics = _numerics(numerics)
        self.activation_post_process = _identity

    def forward(self, x):
        raise RuntimeError(
            "Functional is not intended to use the 'forward'. Please use the underlying operation"
        )

    def add(self, x, y):
        return self.activation_post_process(E.add(x, y, self.scale, self.zero_point, numerics=self.numerics))

    def add_scalar(self, x, y):
        return E.add_scalar(x, y, numerics=self.numerics)

    def mul(self, x, y):
        return self.activation_post_process(E.mul(x, y, self.scale, self.zero_point, numerics=self.numerics))

    def mul_scalar(self, x, y):
        return E.mul_scalar(x, y, numerics=self.numerics)

    def cat(self, x, dim=0):
        return self.activation_post_process(
            E.cat(x, dim, self.scale, self.zero_point, numerics=self.numerics))

    def add_relu(self, x, y):
        return self.activation_post_process(
            E.add_relu(x, y, self.scale, self.zero_point, numerics=self.numerics))

    def matmul(self, x, y):
        return E.matmul(x, y, self.scale, self.zero_point, numerics=self.numerics)

    @classmethod
    def from_float(cls, mod, *, numerics=None):
        """Build from a calibrated :class:`FloatFunctional` (qops or torch): the
        output parameters are its observer's ``calculate_qparams()``."""
        post = getattr(mod, "activation_post_process", None)
        if post is None or not hasattr(post, "calculate_qparams"):
            raise ValueError(
                "QFunctional.from_float needs a FloatFunctional whose activation_post_process "
                "is an observer (set one and run calibration data through it)"
            )
        s, z = post.calculate_qparams()
        q = cls(numerics=numerics)
        q.scale = check_scale(float(np.asarray(s).reshape(-1)[0]))
        q.zero_point = _zp(int(np.asarray(z).reshape(-1)[0]))
        return q

    def __repr__(self):
        return f"QFunctional(scale={self.scale}, zero_point={self.zero_point})"


class Softmax(Module):
    """Quantized softmax (``torch.ao.nn.quantized.Softmax``): :func:`qops.functional.softmax`.

    Parameters
    ----------
    dim : int, optional
        ``None`` picks torch's legacy default (0 for 0-, 1- and 3-D inputs,
        else 1).
    scale, zero_point : float, int
        Output parameters (torch's defaults 1.0 and 0).
    numerics : str, optional
    torch_threads : int, optional
        torch's intra-op thread count to reproduce over a non-last dim (see
        :func:`qops.functional.softmax`); default ``numba.get_num_threads()``
        at each call.
    """

    def __init__(self, dim=None, scale=1.0, zero_point=0, *, numerics=None, torch_threads=None):
        if dim is not None and (isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral)):
            raise TypeError(f"dim must be an integer or None, got {dim!r}")
        if torch_threads is not None and (isinstance(torch_threads, (bool, np.bool_))
                                          or not isinstance(torch_threads, numbers.Integral)):
            raise TypeError(f"torch_threads must be an integer or None, got {torch_threads!r}")
        if torch_threads is not None and torch_threads < 1:
            raise ValueError(f"torch_threads must be at least 1, got {torch_threads}")
        self.dim = None if dim is None else int(dim)
        self.scale = check_scale(scale)
        self.zero_point = _zp(zero_point)
        self.numerics = _numerics(numerics)
        self.torch_threads = None if torch_threads is None else int(torch_threads)

    def forward(self, input):
        dim = self.dim
        if dim is None:
            nd = len(input.shape)
            dim = 0 if nd in (0, 1, 3) else 1
        return E.softmax(input, dim, self.scale, self.zero_point, numerics=self.numerics,
                         torch_threads=self.torch_threads)

    @classmethod
    def from_float(cls, mod, *, numerics=None):
        """From a prepared torch ``nn.Softmax`` (its observer's qparams)."""
        post = getattr(mod, "activation_post_process", None)
        if post is None:
            raise ValueError("Softmax.from_float needs a module with an activation_post_process observer")
        s, z = post.calculate_qparams()
        return cls(getattr(mod, "dim", None), float(np.asarray(s).reshape(-1)[0]),
                   int(np.asarray(z).reshape(-1)[0]), numerics=numerics)

    def __repr__(self):
        return f"QuantizedSoftmax(dim={self.dim}, scale={self.scale}, zero_point={self.zero_point})"
