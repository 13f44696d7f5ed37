"""Modules over :mod:`qops._embedding`: Embedding and EmbeddingBag, shaped like
``torch.ao.nn.quantized.Embedding`` / ``EmbeddingBag``.

Each module keeps its rowwise-quantized weight (a float-qparams QTensor) and
the packed rows built from it once (:func:`qops.functional.embedding_bag_prepack`),
and looks up / sums rows of those on each call.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import _embedding
from .._ops import quantize_per_channel
from ..dtypes import as_qdtype, per_channel_affine_float_qparams, quint4x2, quint8
from ..qtensor import QTensor
from ._modules import Module, _check_numerics
from ._weights import is_torch_module

__all__ = ["Embedding", "EmbeddingBag"]


def _positive(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _table_dtype(dtype, name):
    d = _torch_to_qdtype(dtype) if not isinstance(dtype, str) and hasattr(dtype, "is_floating_point") else dtype
    d = as_qdtype(d)
    if d not in (quint8, quint4x2):
        raise NotImplementedError(f"{name} supports quint8 and quint4x2 tables, got {d.name}")
    return d


def _torch_to_qdtype(t):
    import torch

    m = {torch.quint8: quint8, torch.quint4x2: quint4x2}
    if t not in m:
        raise NotImplementedError(f"quantized embeddings support quint8 and quint4x2 tables, got {t}")
    return m[t]


def _qtensor_from_torch(t):
    """A torch float-qparams quantized table as a QTensor (copied exactly)."""
    import torch

    dtype = _torch_to_qdtype(t.dtype)
    if t.qscheme() != torch.per_channel_affine_float_qparams:
        raise ValueError(f"expected a per_channel_affine_float_qparams table, got {t.qscheme()}")
    n, d = t.shape
    ints = t.int_repr().numpy()
    if dtype is quint4x2:  # torch's int_repr keeps the packed bytes: two values a byte, first low
        b = np.ascontiguousarray(ints).reshape(-1)
        ints = np.stack([b & 15, b >> 4], axis=-1).reshape(-1)[: n * d].reshape(n, d)
    return QTensor._per_channel(
        np.ascontiguousarray(ints, dtype=np.uint8), dtype,
        t.q_per_channel_scales().numpy(), t.q_per_channel_zero_points().numpy().astype(np.float32), 0,
        per_channel_affine_float_qparams,
    )


def _observe_and_quantize(w, observer, name):
    """Quantize float table ``w`` with a float-qparams weight observer
    (qops's or torch's), as torch's ``from_float`` does."""
    dtype = observer.dtype
    if is_torch_module(observer):
        import torch

        if observer.qscheme != torch.per_channel_affine_float_qparams:
            raise ValueError(f"{name}.from_float: embedding quantization needs a float_qparams weight qconfig")
        observer(torch.from_numpy(w))
        s, z = observer.calculate_qparams()
        s, z = s.numpy(), z.numpy()
        dtype = _torch_to_qdtype(dtype)
    else:
        if observer.qscheme is not per_channel_affine_float_qparams:
            raise ValueError(f"{name}.from_float: embedding quantization needs a float_qparams weight qconfig")
        observer(w)
        s, z = observer.calculate_qparams()
        dtype = _table_dtype(dtype, name)
    return quantize_per_channel(w, np.asarray(s), np.asarray(z, np.float32), 0, dtype)


class Embedding(Module):
    """Quantized embedding table (``torch.ao.nn.quantized.Embedding``).

    Parameters
    ----------
    num_embeddings, embedding_dim : int
    padding_idx : int, optional
        Kept for torch's signature; a lookup returns the stored row, as
        torch's float and quantized Embedding do.
    max_norm : None
        Renormalising rows at lookup is not supported for quantized tables
        (NotImplementedError otherwise; torch ignores it silently).
    norm_type, scale_grad_by_freq, sparse
        Training options of torch's signature: no effect on lookups.
    _weight : QTensor, optional
        The initial table.
    dtype : qops.quint8 or qops.quint4x2 (torch dtypes accepted)
    numerics : str, optional
        The profile its calls use (default: the active one).

    Notes
    -----
    The table starts as zeros with scales 1 and zero points 0; use
    :meth:`set_weight` or :meth:`from_float`.  It is packed once, when set;
    each call runs :func:`qops.functional.embedding` on the packed rows.
    """

    _name = "QuantizedEmbedding"

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, dtype=quint8, *, numerics=None):
        self.num_embeddings = _positive(num_embeddings, "num_embeddings")
        self.embedding_dim = _positive(embedding_dim, "embedding_dim")
        if max_norm is not None:
            raise NotImplementedError(
                f"{type(self).__name__}: max_norm renormalises rows at lookup, which a quantized table "
                "cannot do; renormalise the float weights before quantizing"
            )
        if padding_idx is not None and not -self.num_embeddings <= int(padding_idx) < self.num_embeddings:
            raise ValueError(f"padding_idx must be in [-{num_embeddings}, {num_embeddings}), got {padding_idx}")
        self.padding_idx = None if padding_idx is None else int(padding_idx) % self.num_embeddings
        self.max_norm = None
        self.norm_type = float(norm_type)
        self.scale_grad_by_freq = bool(scale_grad_by_freq)
        self.sparse = bool(sparse)
        self.dtype = _table_dtype(dtype, type(self).__name__)
        self.numerics = _check_numerics(numerics)
        if self.dtype is quint4x2 and self.embedding_dim % 2:
            raise ValueError(f"a quint4x2 table needs an even embedding_dim, got {embedding_dim}")
        if _weight is None:
            n, d = self.num_embeddings, self.embedding_dim
            _weight = QTensor._per_channel(np.zeros((n, d), np.uint8), self.dtype, np.ones(n, np.float32),
                                           np.zeros(n, np.float32), 0, per_channel_affine_float_qparams)
        self.set_weight(_weight)

    def set_weight(self, w):
        """Set (and pack) the table: a QTensor ``(num_embeddings, embedding_dim)``,
        ``per_channel_affine_float_qparams`` on axis 0, of the module's dtype."""
        name = type(self).__name__
        if not isinstance(w, QTensor):
            raise TypeError(f"{name}.set_weight expects a QTensor, got {type(w).__name__}")
        if w.shape != (self.num_embeddings, self.embedding_dim):
            raise ValueError(
                f"{name}.set_weight: expected shape {(self.num_embeddings, self.embedding_dim)}, got {w.shape}"
            )
        if w.dtype is not self.dtype:
            raise TypeError(f"{name}.set_weight: the module's dtype is {self.dtype.name}, got {w.dtype.name}")
        self._packed = _embedding.embedding_bag_prepack(w)
        self._qweight = w
        self._bits = 8 if self.dtype is quint8 else 4

    def weight(self) -> QTensor:
        """The quantized table (as given to :meth:`set_weight`)."""
        return self._qweight

    def forward(self, indices):
        return _embedding.embedding(indices, self._packed, bit_width=self._bits, numerics=self.numerics)

    @classmethod
    def _from_float_table(cls, mod, qconfig):
        name = cls.__name__
        if isinstance(mod, QTensor):
            return mod
        if is_torch_module(mod):
            w = getattr(mod, "weight", None)
            if callable(w):  # a quantized torch module: copy its table
                return _qtensor_from_torch(mod.weight())
            fq = getattr(mod, "weight_fake_quant", None)
            qc = qconfig if qconfig is not None else getattr(mod, "qconfig", None)
            if fq is not None:
                observer = fq
            elif qc is not None and getattr(qc, "weight", None) is not None:
                observer = qc.weight()
            else:
                from ..qconfig import float_qparams_weight_only_qconfig

                observer = float_qparams_weight_only_qconfig.weight()
            table = mod.weight.detach().cpu().numpy().astype(np.float32)
            return _observe_and_quantize(table, observer, name)
        raise TypeError(f"{name}.from_float expects a torch module or a QTensor table, got {type(mod).__name__}")

    @classmethod
    def from_float(cls, mod, qconfig=None, *, numerics=None):
        """Build from a float ``torch.nn.Embedding`` (its ``qconfig``, or
        ``qconfig``, or qops's ``float_qparams_weight_only_qconfig``, whose
        weight observer must use ``per_channel_affine_float_qparams``), a
        quantized torch module (its table is copied exactly) or a QTensor."""
        qw = cls._from_float_table(mod, qconfig)
        n, d = qw.shape
        pad = getattr(mod, "padding_idx", None) if is_torch_module(mod) else None
        m = cls(n, d, padding_idx=pad, dtype=qw.dtype, numerics=numerics)
        m.set_weight(qw)
        return m

    def _extra_repr(self):
        return (f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}, "
                f"dtype={self.dtype!r}, qscheme={self._qweight.qscheme()!r}")

    def __repr__(self):
        return f"{self._name}({self._extra_repr()})"


class EmbeddingBag(Embedding):
    """Quantized embedding bag (``torch.ao.nn.quantized.EmbeddingBag``).

    Parameters
    ----------
    num_embeddings, embedding_dim : int
    max_norm, norm_type, scale_grad_by_freq, sparse
        As :class:`Embedding`.
    mode : {'sum', 'mean'}
        torch 2.13's quantized EmbeddingBag always sums, whatever its mode;
        qops computes the mean for ``'mean'`` (see
        :func:`qops.functional.embedding_bag`).
    _weight : QTensor, optional
    include_last_offset : bool
    dtype : qops.quint8 or qops.quint4x2
    padding_idx : int, optional
        Indices skipped in the bags (as torch.nn.EmbeddingBag).
    numerics : str, optional
    """

    _name = "QuantizedEmbeddingBag"

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                 mode="sum", sparse=False, _weight=None, include_last_offset=False, dtype=quint8,
                 padding_idx=None, *, numerics=None):
        if mode not in ("sum", "mean"):
            if mode == "max":
                raise NotImplementedError("EmbeddingBag: mode='max' is not implemented; use 'sum' or 'mean'")
            raise ValueError(f"EmbeddingBag: unknown mode {mode!r}; use 'sum' or 'mean'")
        super().__init__(num_embeddings, embedding_dim, padding_idx, max_norm, norm_type, scale_grad_by_freq,
                         sparse, _weight, dtype, numerics=numerics)
        self.mode = mode
        self.include_last_offset = bool(include_last_offset)

    def forward(self, indices, offsets=None, per_sample_weights=None, compressed_indices_mapping=None):
        if compressed_indices_mapping is not None:
            raise NotImplementedError("EmbeddingBag: pruned tables (compressed_indices_mapping) are not supported")
        return _embedding.embedding_bag(
            indices, self._packed, offsets, self.mode, per_sample_weights, self.include_last_offset,
            self.padding_idx, bit_width=self._bits, numerics=self.numerics,
        )

    @classmethod
    def from_float(cls, mod, qconfig=None, *, numerics=None):
        """Build from a float ``torch.nn.EmbeddingBag`` (its mode,
        include_last_offset and padding_idx carry over), a quantized torch
        module or a QTensor; the table is quantized as :meth:`Embedding.from_float`."""
        qw = cls._from_float_table(mod, qconfig)
        n, d = qw.shape
        kw = {}
        if is_torch_module(mod):
            kw = dict(mode=getattr(mod, "mode", "sum"),
                      include_last_offset=getattr(mod, "include_last_offset", False),
                      padding_idx=getattr(mod, "padding_idx", None))
        m = cls(n, d, dtype=qw.dtype, numerics=numerics, **kw)
        m.set_weight(qw)
        return m
