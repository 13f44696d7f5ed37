"""``QTensor``: integers plus the quantization parameters that give them meaning."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._device import check_device, device_of, is_cuda_array, to_device
from .dtypes import (
    QDType,
    QScheme,
    per_channel_affine,
    per_channel_affine_float_qparams,
    per_tensor_affine,
)

__all__ = ["QTensor"]


class QTensor:
    """A quantized tensor: an integer array with its scale(s) and zero point(s).

    Create one with :func:`qops.quantize_per_tensor`,
    :func:`qops.quantize_per_channel` or :func:`qops.make_per_tensor_qtensor`;
    the constructor is not public.

    The integers are held unpacked (one element per array element, also for
    the sub-byte types) in a NumPy array on the CPU or a numba.cuda device
    array on the GPU.  Views (reshape, transpose, slicing) share them, as in
    torch.  ``int_repr()`` returns a copy (packed bytes for quint4x2 and
    quint2x4, first element in the low bits).

    Per-channel tensors keep their channel axis through every view: transpose
    and permute move it, slicing along it slices the scales and zero points,
    and an integer index on it gives a per-tensor tensor with that channel's
    parameters.
    """

    __slots__ = ("_data", "_dtype", "_qscheme", "_scale", "_zero_point", "_scales", "_zero_points", "_axis")
    __array_priority__ = 1000  # so ndarray == QTensor defers to QTensor.__eq__

    # ------------------------------------------------------------------ build
    @classmethod
    def _per_tensor(cls, data, dtype: QDType, scale: float, zero_point: int, qscheme=per_tensor_affine):
        t = object.__new__(cls)
        t._data = data
        t._dtype = dtype
        t._qscheme = qscheme
        t._scale = float(scale)
        t._zero_point = int(zero_point)
        t._scales = t._zero_points = t._axis = None
        return t

    @classmethod
    def _per_channel(cls, data, dtype: QDType, scales, zero_points, axis: int, qscheme=None):
        t = object.__new__(cls)
        t._data = data
        t._dtype = dtype
        zp = np.asarray(zero_points)
        if qscheme is None:
            qscheme = per_channel_affine_float_qparams if zp.dtype.kind == "f" else per_channel_affine
        t._qscheme = qscheme
        t._scale = t._zero_point = None
        if qscheme is per_channel_affine_float_qparams:
            # torch 2.13 keeps float-qparams scales and zero points as float32
            t._scales = np.asarray(scales, dtype=np.float64).astype(np.float32)
            t._zero_points = zp.astype(np.float64).astype(np.float32)
        else:
            t._scales = np.asarray(scales, dtype=np.float64)
            t._zero_points = zp.astype(np.int64)
        t._axis = int(axis)
        return t

    def _affine_like(self, data):
        """A per-tensor affine QTensor of ``data`` with this per-tensor
        one's dtype, scale and zero point (a float and an int already): the
        short paths' result, as torch's integer selections return it."""
        t = object.__new__(QTensor)
        t._data = data
        t._dtype = self._dtype
        t._qscheme = per_tensor_affine
        t._scale = self._scale
        t._zero_point = self._zero_point
        t._scales = t._zero_points = t._axis = None
        return t

    def _with_data(self, data, axis=None):
        """Same quantization parameters, new (view of the) integers."""
        if self._axis is None:
            return QTensor._per_tensor(data, self._dtype, self._scale, self._zero_point, self._qscheme)
        return QTensor._per_channel(
            data, self._dtype, self._scales, self._zero_points,
            self._axis if axis is None else axis, self._qscheme,
        )

    # -------------------------------------------------------------- accessors
    @property
    def dtype(self) -> QDType:
        return self._dtype

    @property
    def shape(self) -> tuple:
        return tuple(self._data.shape)

    @property
    def ndim(self) -> int:
        return len(self._data.shape)

    @property
    def size(self) -> int:
        return math.prod(self._data.shape)

    @property
    def device(self) -> str:
        return device_of(self._data)

    @property
    def is_per_channel(self) -> bool:
        return self._axis is not None

    def qscheme(self) -> QScheme:
        return self._qscheme

    def _need_per_tensor(self, what):
        if self._axis is not None:
            raise ValueError(
                f"{what}() is for per-tensor tensors; this one is {self._qscheme.name}: "
                "use q_per_channel_scales() / q_per_channel_zero_points()"
            )

    def _need_per_channel(self, what):
        if self._axis is None:
            raise ValueError(
                f"{what}() is for per-channel tensors; this one is {self._qscheme.name}: "
                "use q_scale() / q_zero_point()"
            )

    def q_scale(self) -> float:
        """The scale (per-tensor tensors only), as the float64 given."""
        self._need_per_tensor("q_scale")
        return self._scale

    def q_zero_point(self) -> int:
        """The zero point (per-tensor tensors only)."""
        self._need_per_tensor("q_zero_point")
        return self._zero_point

    def q_per_channel_scales(self) -> np.ndarray:
        """The per-channel scales (a copy): float64, or float32 for float
        qparams, as torch stores them."""
        self._need_per_channel("q_per_channel_scales")
        return self._scales.copy()

    def q_per_channel_zero_points(self) -> np.ndarray:
        """The per-channel zero points (a copy): int64, or float32 for float qparams."""
        self._need_per_channel("q_per_channel_zero_points")
        return self._zero_points.copy()

    def q_per_channel_axis(self) -> int:
        self._need_per_channel("q_per_channel_axis")
        return self._axis

    def int_repr(self):
        """The integers as a new array on this tensor's device.

        uint8 / int8 / int32 with this tensor's shape, or for quint4x2 and
        quint2x4 the flat packed bytes (``ceil(size / per_byte)`` of them,
        first element in the low bits), as torch returns them.
        """
        if not self._dtype.is_subbyte:
            if is_cuda_array(self._data):
                return _cuda_copy(self._data)
            return np.array(self._data, copy=True)
        from . import _ops

        return _ops.pack_values(self._data, self._dtype)

    def dequantize(self, *, numerics=None):
        """Float32 values on this tensor's device; see :func:`qops.dequantize`."""
        from ._ops import dequantize

        return dequantize(self, numerics=numerics)

    # ----------------------------------------------------------------- views
    def clone(self) -> "QTensor":
        if is_cuda_array(self._data):
            return self._with_data(_cuda_copy(self._data))
        return self._with_data(np.array(self._data, copy=True))

    def contiguous(self) -> "QTensor":
        if is_cuda_array(self._data):
            if self._data.is_c_contiguous():
                return self
            raise NotImplementedError("making a strided CUDA QTensor contiguous is not supported; use .cpu()")
        if self._data.flags.c_contiguous:
            return self
        return self._with_data(np.ascontiguousarray(self._data))

    def is_contiguous(self) -> bool:
        if is_cuda_array(self._data):
            return bool(self._data.is_c_contiguous())
        return bool(self._data.flags.c_contiguous)

    def reshape(self, *shape) -> "QTensor":
        """Reshape like ``torch.reshape`` (``-1`` allowed).

        A per-channel tensor's channel axis must survive as one dimension of
        the same length with the same number of elements before it.
        """
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(int(s) for s in shape)
        try:
            if is_cuda_array(self._data):
                data = self._data.reshape(*_resolve_shape(shape, self.size))
            else:
                data = self._data.reshape(shape)
        except (ValueError, NotImplementedError) as e:
            raise ValueError(f"cannot reshape a QTensor of shape {self.shape} to {shape}: {e}") from None
        if self._axis is None:
            return self._with_data(data)
        return self._with_data(data, axis=_channel_axis_after_reshape(self.shape, self._axis, data.shape))

    view = reshape

    def flatten(self) -> "QTensor":
        return self.reshape(-1)

    def squeeze(self, dim=None) -> "QTensor":
        nd = self.ndim
        if dim is None:
            dims = [i for i, n in enumerate(self.shape) if n == 1]
        else:
            d = _norm_dim(dim, nd)
            dims = [d] if self.shape[d] == 1 else []
        t = self
        for d in sorted(dims, reverse=True):
            t = t[(slice(None),) * d + (0,)]
        return t

    def unsqueeze(self, dim) -> "QTensor":
        d = _norm_dim(dim, self.ndim + 1)
        return self[(slice(None),) * d + (None,)]

    def permute(self, *dims) -> "QTensor":
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        nd = self.ndim
        dims = tuple(_norm_dim(d, nd) for d in dims)
        if sorted(dims) != list(range(nd)):
            raise ValueError(f"permute needs a permutation of 0..{nd - 1}, got {dims}")
        if is_cuda_array(self._data):
            raise NotImplementedError("permute/transpose of a CUDA QTensor is not supported; use .cpu() first")
        data = self._data.transpose(dims)
        return self._with_data(data, axis=None if self._axis is None else dims.index(self._axis))

    def transpose(self, dim0, dim1) -> "QTensor":
        nd = self.ndim
        d0, d1 = _norm_dim(dim0, nd), _norm_dim(dim1, nd)
        perm = list(range(nd))
        perm[d0], perm[d1] = perm[d1], perm[d0]
        return self.permute(perm)

    def __getitem__(self, key) -> "QTensor":
        if not isinstance(key, tuple):
            key = (key,)
        if self._axis is None:
            if any(isinstance(k, (QTensor,)) for k in key):
                raise TypeError("cannot index with a QTensor")
            return self._with_data(self._data[key])
        return _index_per_channel(self, key)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d QTensor")
        return self.shape[0]

    # --------------------------------------------------------------- devices
    def to(self, device) -> "QTensor":
        dev = check_device(device)
        if dev == self.device:
            return self
        data = self._data
        if dev == "cuda" and not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        return self._with_data(to_device(data, dev))

    def cpu(self) -> "QTensor":
        return self.to("cpu")

    def cuda(self) -> "QTensor":
        return self.to("cuda")

    # ---------------------------------------------------------- comparisons
    def equal(self, other) -> bool:
        """torch.equal semantics: same dtype, scheme, parameters, shape and integers."""
        if not isinstance(other, QTensor):
            return False
        if self._dtype is not other._dtype or self._qscheme is not other._qscheme:
            return False
        if self.shape != other.shape:
            return False
        if self._axis is None:
            if self._scale != other._scale or self._zero_point != other._zero_point:
                return False
        else:
            if self._axis != other._axis:
                return False
            if not (np.array_equal(self._scales, other._scales)
                    and np.array_equal(self._zero_points, other._zero_points)):
                return False
        a = self._data if not is_cuda_array(self._data) else self._data.copy_to_host()
        b = other._data if not is_cuda_array(other._data) else other._data.copy_to_host()
        return bool(np.array_equal(a, b))

    def __eq__(self, other):
        if not isinstance(other, QTensor):
            return NotImplemented
        return self.equal(other)

    def __ne__(self, other):
        if not isinstance(other, QTensor):
            return NotImplemented
        return not self.equal(other)

    __hash__ = None

    def __bool__(self):
        raise TypeError("the truth value of a QTensor is ambiguous; compare int_repr() arrays instead")

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "a QTensor is not a NumPy array: use .dequantize() for float values "
            "or .int_repr() for the integers"
        )

    def __repr__(self) -> str:
        values = self.dequantize()
        if is_cuda_array(values):
            values = values.copy_to_host()
        body = np.array2string(
            values, precision=4, separator=", ", prefix="QTensor(", floatmode="fixed",
            threshold=1000, edgeitems=3,
        )
        pad = " " * len("QTensor(")
        parts = [f"size={self.shape}", f"dtype={self._dtype!r}"]
        if self.device != "cpu":
            parts.append(f"device='{self.device}'")
        parts.append(f"quantization_scheme={self._qscheme!r}")
        if self._axis is None:
            parts.append(f"scale={self._scale!r}, zero_point={self._zero_point}")
        else:
            parts.append(f"scale={np.array2string(self._scales, separator=', ')}")
            parts.append(f"zero_point={np.array2string(self._zero_points, separator=', ')}")
            parts.append(f"axis={self._axis}")
        return f"QTensor({body}, " + (",\n" + pad).join(parts) + ")"


# ---------------------------------------------------------------- helpers
def _cuda_copy(a):
    from numba import cuda

    out = cuda.device_array(a.shape, dtype=a.dtype)
    out.copy_to_device(a)
    return out


def _norm_dim(d, nd):
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral):
        raise TypeError(f"dimension must be an integer, got {d!r}")
    d = int(d)
    if not -nd <= d < nd:
        raise ValueError(f"dimension {d} is out of range for {nd} dimensions")
    return d % nd


def _resolve_shape(shape, size):
    if shape.count(-1) > 1:
        raise ValueError("only one dimension can be -1")
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        if known == 0 or size % known:
            raise ValueError(f"cannot infer -1 for {size} elements")
        shape = tuple(size // known if s == -1 else s for s in shape)
    if int(np.prod(shape, dtype=np.int64)) != size:
        raise ValueError(f"{size} elements do not fit shape {shape}")
    return shape


def _channel_axis_after_reshape(old_shape, axis, new_shape):
    before = int(np.prod(old_shape[:axis], dtype=np.int64))
    n = old_shape[axis]
    acc = 1
    for i, s in enumerate(new_shape):
        if acc == before and s == n:
            return i
        acc *= s
    raise ValueError(
        f"reshape from {old_shape} to {tuple(new_shape)} would split or merge the "
        f"channel axis {axis} (length {n}) of a per-channel QTensor; keep that "
        "dimension intact"
    )


def _index_per_channel(t: QTensor, key: tuple) -> QTensor:
    nd = t.ndim
    for k in key:
        if not (k is None or k is Ellipsis or isinstance(k, (slice, numbers.Integral))) or isinstance(
            k, (bool, np.bool_)
        ):
            raise NotImplementedError(
                "per-channel QTensors support basic indexing (integers, slices, None, ...); "
                "for advanced indexing use int_repr() and make_per_channel_qtensor"
            )
    consumed = sum(1 for k in key if k is not None and k is not Ellipsis)
    if consumed > nd:
        raise IndexError(f"too many indices for a {nd}-D QTensor")
    if sum(1 for k in key if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis")
    full = []
    for k in key:
        if k is Ellipsis:
            full.extend([slice(None)] * (nd - consumed))
        else:
            full.append(k)
    data = t._data[tuple(full)]
    in_dim = out_dim = 0
    new_axis = None
    for k in full:
        if k is None:
            out_dim += 1
            continue
        if in_dim == t._axis:
            if isinstance(k, slice):
                new_axis = out_dim
                sel = k
            else:
                c = int(k)
                if not -t.shape[in_dim] <= c < t.shape[in_dim]:
                    raise IndexError(f"index {c} is out of bounds for axis {in_dim} with size {t.shape[in_dim]}")
                if t._qscheme is per_channel_affine_float_qparams:
                    raise NotImplementedError(
                        "an integer index on the channel axis of a float-qparams tensor would "
                        "need a float zero point per tensor; slice it (c:c+1) instead"
                    )
                return QTensor._per_tensor(data, t._dtype, t._scales[c], int(t._zero_points[c]))
        if isinstance(k, slice):
            out_dim += 1
        in_dim += 1
    if new_axis is None:  # the axis lies after the indexed dims
        new_axis = out_dim + (t._axis - in_dim)
        sel = slice(None)
    return QTensor._per_channel(
        data, t._dtype, t._scales[sel], t._zero_points[sel], new_axis, t._qscheme
    )
