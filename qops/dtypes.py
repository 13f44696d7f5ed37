"""Quantized dtypes and quantization schemes.

The names and ranges follow PyTorch 2.13 (``torch.quint8`` and friends).  A
:class:`QDType` knows its integer range, the NumPy dtype that stores one
element, and how many elements share a byte (sub-byte types).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "QDType",
    "QScheme",
    "quint8",
    "qint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "per_tensor_affine",
    "per_tensor_symmetric",
    "per_channel_affine",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
    "as_qdtype",
]


class QDType:
    """A quantized integer type.

    Attributes
    ----------
    name : str
        The torch-style name, e.g. ``"quint8"``.
    qmin, qmax : int
        The representable range.
    storage : numpy.dtype
        The NumPy dtype of one unpacked element (``uint8`` for the sub-byte
        types, which hold one value per byte until packed).
    bits : int
        Bits per element.
    per_byte : int
        Elements per stored byte in ``int_repr()`` (1 for the byte types,
        2 for quint4x2, 4 for quint2x4).
    """

    __slots__ = ("name", "qmin", "qmax", "storage", "bits", "per_byte")

    def __init__(self, name, qmin, qmax, storage, bits):
        self.name = name
        self.qmin = int(qmin)
        self.qmax = int(qmax)
        self.storage = np.dtype(storage)
        self.bits = int(bits)
        self.per_byte = 8 // bits if bits < 8 else 1

    @property
    def is_subbyte(self) -> bool:
        return self.bits < 8

    @property
    def is_signed(self) -> bool:
        return self.qmin < 0

    def __repr__(self) -> str:
        return f"qops.{self.name}"

    def __reduce__(self):
        return (as_qdtype, (self.name,))


class QScheme:
    """A quantization scheme (how scales and zero points are laid out)."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    @property
    def per_channel(self) -> bool:
        return self.name.startswith("per_channel")

    def __repr__(self) -> str:
        return f"qops.{self.name}"

    def __reduce__(self):
        return (_scheme_by_name, (self.name,))


quint8 = QDType("quint8", 0, 255, np.uint8, 8)
qint8 = QDType("qint8", -128, 127, np.int8, 8)
qint32 = QDType("qint32", -(2**31), 2**31 - 1, np.int32, 32)
quint4x2 = QDType("quint4x2", 0, 15, np.uint8, 4)
quint2x4 = QDType("quint2x4", 0, 3, np.uint8, 2)

_DTYPES = {d.name: d for d in (quint8, qint8, qint32, quint4x2, quint2x4)}

per_tensor_affine = QScheme("per_tensor_affine")
per_tensor_symmetric = QScheme("per_tensor_symmetric")
per_channel_affine = QScheme("per_channel_affine")
per_channel_symmetric = QScheme("per_channel_symmetric")
per_channel_affine_float_qparams = QScheme("per_channel_affine_float_qparams")

_SCHEMES = {
    s.name: s
    for s in (
        per_tensor_affine,
        per_tensor_symmetric,
        per_channel_affine,
        per_channel_symmetric,
        per_channel_affine_float_qparams,
    )
}


def _scheme_by_name(name):
    return _SCHEMES[name]


def as_qdtype(dtype) -> QDType:
    """Return the :class:`QDType` named by ``dtype``.

    Accepts a :class:`QDType`, its name (``"quint8"``), or the matching torch
    dtype object when torch is installed (``torch.quint8``).

    Raises
    ------
    TypeError
        If ``dtype`` names no quantized dtype.
    """
    if isinstance(dtype, QDType):
        return dtype
    name = dtype if isinstance(dtype, str) else str(dtype)
    name = name.removeprefix("torch.").removeprefix("qops.")
    try:
        return _DTYPES[name]
    except KeyError:
        known = ", ".join(f"qops.{n}" for n in _DTYPES)
        raise TypeError(
            f"{dtype!r} is not a quantized dtype; use one of {known}"
        ) from None
