"""Quantized embeddings: embedding_bag (8-bit and 4-bit rowwise), embedding.

Weights are rowwise quantized, in torch's packed rowwise format (a uint8
array, each row the quantized values followed by the row's scale and bias:
float32 for 8-bit, float16 for 4-bit and 2-bit) or as a qops
:class:`~qops.QTensor` with ``per_channel_affine_float_qparams`` on axis 0
(quint8 or quint4x2), which is packed on the fly as
``torch.ops.quantized.embedding_bag_prepack`` packs it.

validate -> canonicalise (int64 indices, ``B + 1`` offsets) -> allocate ->
kernel (:mod:`qops.kernels.cpu.embedding` / ``cuda.embedding``) -> float32
result.
"""

from __future__ import annotations

import numpy as np

from . import _dispatch
from ._device import device_of, is_cuda_array
from .dtypes import per_channel_affine_float_qparams, quint2x4, quint4x2, quint8
from .kernels.cpu._avx512 import MINMAX_BLOCK, avx512bw_available
from .numerics import resolve_numerics
from .qtensor import QTensor

__all__ = [
    "embedding_bag",
    "embedding",
    "embedding_bag_prepack",
    "embedding_bag_byte_prepack",
    "embedding_bag_4bit_prepack",
    "embedding_bag_2bit_prepack",
    "embedding_bag_byte_unpack",
    "embedding_bag_4bit_unpack",
    "embedding_bag_2bit_unpack",
]

_TORCH = ("fbgemm", "qnnpack", "onednn")
_BITS = {quint8: 8, quint4x2: 4, quint2x4: 2}
_MODES = ("sum", "mean")


# ------------------------------------------------------------------ helpers
def _profile(numerics, op):
    p = resolve_numerics(numerics)
    if p not in _TORCH and p != "reference":
        raise NotImplementedError(
            f"{op} under numerics {p!r} is not implemented: neither ONNX Runtime nor TFLite has a "
            "rowwise-quantized embedding bag to reproduce; use numerics='fbgemm' or 'reference'"
        )
    return p


def _check_bits(bits, op):
    if bits not in (8, 4, 2):
        raise ValueError(f"{op}: bit_width must be 8, 4 or 2, got {bits!r}")
    return bits


def _row_bytes(dim, bits):
    """Columns of a packed row holding ``dim`` values."""
    if bits == 8:
        return dim + 8
    per = 8 // bits
    return (dim + per - 1) // per + 4


def _dim_of(width, bits, op):
    """Embedding dimension of packed rows ``width`` bytes wide."""
    extra = 8 if bits == 8 else 4
    if width < extra:
        raise ValueError(
            f"{op}: a {bits}-bit packed row has {extra} bytes of scale and bias after the values; "
            f"got rows of {width} bytes"
        )
    return (width - extra) * (8 // bits)


def _float_rows(x, op, bits):
    """``x`` as a C-contiguous float32 ``(R, C)`` array plus its leading shape."""
    if isinstance(x, QTensor):
        raise TypeError(
            f"{op} packs float weights; for a quantized QTensor use qops.functional.embedding_bag_prepack"
        )
    if is_cuda_array(x):
        raise NotImplementedError(f"{op} runs on the CPU; copy the weights to the host first")
    a = np.asarray(x)
    if a.dtype.kind != "f":
        raise TypeError(f"{op} expects float weights, got {a.dtype}")
    if a.ndim < 2:
        raise ValueError(f"{op} expects weights of shape (..., num_embeddings, embedding_dim), got {a.shape}")
    per = 8 // bits
    if bits != 8 and a.shape[-1] % per:
        raise ValueError(
            f"{op}: embedding_dim must be a multiple of {per} for {bits}-bit rows (torch's rule), "
            f"got {a.shape[-1]}"
        )
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a.reshape(-1, a.shape[-1]), a.shape[:-1]


def _fbgemm_prepack(x, bits, op, numerics):
    _profile(numerics, op)
    rows, lead = _float_rows(x, op, bits)
    R, C = rows.shape
    if C == 0 and R:
        raise ValueError(f"{op}: embedding_dim must be at least 1")
    out = np.empty((R, _row_bytes(C, bits)), dtype=np.uint8)  # the kernel writes every byte
    if R:
        fast = C >= MINMAX_BLOCK and avx512bw_available()
        _dispatch.run("embedding.prepack_rows_fast" if fast else "embedding.prepack_rows", "cpu",
                      rows, bits, out)
    return out.reshape(lead + (out.shape[1],))


def _packed_rows(w, bits, op):
    """Packed weights as a C-contiguous uint8 ``(N, W)`` array (host or device)."""
    if is_cuda_array(w):
        if w.dtype != np.uint8 or len(w.shape) != 2:
            raise TypeError(f"{op} expects packed weights as a 2-D uint8 array, got {w.dtype} {w.shape}")
        if not w.is_c_contiguous():
            raise NotImplementedError(f"{op}: strided CUDA weights are not supported; make them contiguous")
        return w
    a = np.asarray(w)
    if a.dtype != np.uint8:
        raise TypeError(
            f"{op} expects packed rowwise weights (uint8, from embedding_bag_{_NAME[bits]}_prepack), "
            f"got {a.dtype}; quantized weights go in as a float-qparams QTensor"
        )
    if a.ndim != 2:
        raise ValueError(f"{op} expects packed weights of shape (num_embeddings, row_bytes), got {a.shape}")
    return np.ascontiguousarray(a)


_NAME = {8: "byte", 4: "4bit", 2: "2bit"}


def _unpack(packed, bits, op, numerics):
    _profile(numerics, op)
    if is_cuda_array(packed):
        raise NotImplementedError(f"{op} runs on the CPU; copy the packed weights to the host first")
    a = np.asarray(packed)
    if a.dtype != np.uint8 or a.ndim < 2:
        raise TypeError(f"{op} expects packed uint8 rows of shape (..., row_bytes), got {a.dtype} {a.shape}")
    rows = np.ascontiguousarray(a).reshape(-1, a.shape[-1])
    D = _dim_of(rows.shape[1], bits, op)
    out = np.empty((rows.shape[0], D), np.float32)
    if out.size:
        _dispatch.run("embedding.unpack_rows", "cpu", rows, D, bits, out)
    return out.reshape(a.shape[:-1] + (D,))


# ------------------------------------------------------------ prepack API
def embedding_bag_byte_prepack(weight, *, numerics=None) -> np.ndarray:
    """Quantize float weights into torch's 8-bit packed rowwise format.

    Bit-exact ``torch.ops.quantized.embedding_bag_byte_prepack`` (torch 2.13,
    fbgemm's AVX2 ``FloatOrHalfToFused8BitRowwiseQuantizedSBFloat``).

    Parameters
    ----------
    weight : array_like, float, shape (..., num_embeddings, embedding_dim)
        Float weights (converted to float32).
    numerics : str, optional
        Any torch profile or ``'reference'`` (the format is defined by this
        construction, the same under each); ONNX Runtime and TFLite profiles
        raise NotImplementedError.

    Returns
    -------
    numpy.ndarray, uint8, shape (..., num_embeddings, embedding_dim + 8)
        Per row: ``q = lrintf((x - min) * (255 / (range + 1e-8)))`` as bytes,
        then the float32 scale ``range / 255`` and bias ``min``.

    Examples
    --------
    >>> import numpy as np, qops
    >>> p = qops.functional.embedding_bag_byte_prepack(np.array([[0.0, 1.0, 2.0]]))
    >>> p[0, :3].tolist(), p.shape
    ([0, 128, 255], (1, 11))
    """
    return _fbgemm_prepack(weight, 8, "embedding_bag_byte_prepack", numerics)


def embedding_bag_4bit_prepack(weight, *, numerics=None) -> np.ndarray:
    """Quantize float weights into torch's 4-bit packed rowwise format.

    Bit-exact ``torch.ops.quantized.embedding_bag_4bit_prepack`` with its
    default ``optimized_qparams=False`` (fbgemm's
    ``FloatOrHalfToFusedNBitRowwiseQuantizedSBHalf``): the row minimum is
    rounded to float16 first, ``scale = fp16(range / 15)`` (1 for an empty
    range or a scale that rounds to 0 or whose inverse overflows), then
    ``q = clamp(lrintf((x - min16) * (1 / scale)), 0, 15)``.

    Parameters
    ----------
    weight : array_like, float, shape (..., num_embeddings, embedding_dim)
        ``embedding_dim`` even.
    numerics : str, optional
        As :func:`embedding_bag_byte_prepack`.

    Returns
    -------
    numpy.ndarray, uint8, shape (..., num_embeddings, embedding_dim // 2 + 4)
        Two values a byte (the first in the low nibble), then the float16
        scale and bias.
    """
    return _fbgemm_prepack(weight, 4, "embedding_bag_4bit_prepack", numerics)


def embedding_bag_2bit_prepack(weight, *, numerics=None) -> np.ndarray:
    """Quantize float weights into torch's 2-bit packed rowwise format
    (``torch.ops.quantized.embedding_bag_2bit_prepack``; as the 4-bit form
    with ``range / 3`` and four values a byte; ``embedding_dim`` a multiple
    of 4)."""
    return _fbgemm_prepack(weight, 2, "embedding_bag_2bit_prepack", numerics)


def embedding_bag_byte_unpack(packed, *, numerics=None) -> np.ndarray:
    """Dequantize 8-bit packed rows to float32: ``fma(q, scale, bias)``, one
    rounding, as ``torch.ops.quantized.embedding_bag_byte_unpack``.

    Parameters
    ----------
    packed : numpy.ndarray, uint8, shape (..., embedding_dim + 8)
    numerics : str, optional
        Torch profiles and ``'reference'`` (the fused result is the exact
        value rounded once, so both agree).

    Returns
    -------
    numpy.ndarray, float32, shape (..., embedding_dim)
    """
    return _unpack(packed, 8, "embedding_bag_byte_unpack", numerics)


def embedding_bag_4bit_unpack(packed, *, numerics=None) -> np.ndarray:
    """Dequantize 4-bit packed rows to float32 (``embedding_bag_4bit_unpack``;
    shape ``(..., 2 * (row_bytes - 4))``)."""
    return _unpack(packed, 4, "embedding_bag_4bit_unpack", numerics)


def embedding_bag_2bit_unpack(packed, *, numerics=None) -> np.ndarray:
    """Dequantize 2-bit packed rows to float32 (``embedding_bag_2bit_unpack``)."""
    return _unpack(packed, 2, "embedding_bag_2bit_unpack", numerics)


def embedding_bag_prepack(weight, *, numerics=None) -> np.ndarray:
    """Pack a quantized embedding table, as ``torch.ops.quantized.embedding_bag_prepack``.

    Parameters
    ----------
    weight : QTensor, shape (num_embeddings, embedding_dim)
        quint8 or quint4x2, ``per_channel_affine_float_qparams`` on axis 0
        (e.g. from :func:`qops.quantize_per_channel` with float zero points).
    numerics : str, optional
        As :func:`embedding_bag_byte_prepack`.

    Returns
    -------
    numpy.ndarray, uint8
        The values, then per row ``scale`` and ``bias = -(zero_point * scale)``
        (float32 product; for quint4x2 both rounded to float16).
    """
    _profile(numerics, "embedding_bag_prepack")
    q, bits = _check_qweight(weight, "embedding_bag_prepack")
    return _pack_qtensor(q, bits)


def _check_qweight(w, op):
    if w._dtype not in (quint8, quint4x2):
        raise TypeError(f"{op} expects a quint8 or quint4x2 weight, got {w._dtype.name}")
    if w._qscheme is not per_channel_affine_float_qparams or w._axis != 0:
        raise ValueError(
            f"{op} expects weights quantized per row with float qparams "
            f"(per_channel_affine_float_qparams, axis 0), got {w._qscheme.name}"
            + (f" on axis {w._axis}" if w._axis is not None else "")
            + "; quantize with qops.quantize_per_channel(x, scales, float zero_points, 0, dtype)"
        )
    if w.ndim != 2:
        raise ValueError(f"{op} expects a 2-D weight (num_embeddings, embedding_dim), got shape {w.shape}")
    bits = _BITS[w._dtype]
    if bits != 8 and w.shape[1] % 2:
        raise ValueError(f"{op}: a quint4x2 weight needs an even embedding_dim, got {w.shape[1]}")
    return w, bits


def _pack_qtensor(w, bits):
    data = w._data.copy_to_host() if is_cuda_array(w._data) else np.asarray(w._data)
    data = np.ascontiguousarray(data, dtype=np.uint8)
    N, D = data.shape
    scale = w._scales.astype(np.float32)
    with np.errstate(all="ignore"):
        bias = (w._zero_points.astype(np.float32) * scale) * np.float32(-1)
    out = np.empty((N, _row_bytes(D, bits)), np.uint8)
    if bits == 8:
        out[:, :D] = data
        out[:, D:D + 4] = scale.view(np.uint8).reshape(N, 4)
        out[:, D + 4:] = bias.astype(np.float32).view(np.uint8).reshape(N, 4)
    else:
        nb = D // 2
        out[:, :nb] = (data[:, 0::2] & 15) | ((data[:, 1::2] & 15) << 4)
        out[:, nb:nb + 2] = scale.astype(np.float16).view(np.uint8).reshape(N, 2)
        out[:, nb + 2:] = bias.astype(np.float16).view(np.uint8).reshape(N, 2)
    return out


def _weight_rows(weight, bit_width, op):
    """(packed rows, bits, embedding_dim) for a QTensor or packed weight."""
    if isinstance(weight, QTensor):
        if bit_width is not None and bit_width != _BITS.get(weight._dtype):
            raise ValueError(f"{op}: bit_width={bit_width} contradicts the weight's dtype {weight._dtype.name}")
        w, bits = _check_qweight(weight, op)
        rows = _pack_qtensor(w, bits)
        if is_cuda_array(weight._data):
            from numba import cuda

            rows = cuda.to_device(rows)
        return rows, bits, weight.shape[1]
    if bit_width is None:
        raise TypeError(
            f"{op}: packed rowwise weights need bit_width=8 (values then float32 scale and bias) "
            "or bit_width=4 / 2 (packed values then float16 scale and bias)"
        )
    bits = _check_bits(bit_width, op)
    rows = _packed_rows(weight, bits, op)
    return rows, bits, _dim_of(rows.shape[1], bits, op)


def _index_array(a, what, op):
    if is_cuda_array(a):
        a = a.copy_to_host()
    if isinstance(a, QTensor):
        raise TypeError(f"{op} expects integer {what}, got a QTensor")
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu" or arr.dtype == np.uint64:
        raise TypeError(f"{op} expects int32 or int64 {what}, got {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_range(idx, n, op):
    if idx.size == 0:
        return
    lo = int(idx.min())
    hi = int(idx.max())
    if lo < 0 or hi >= n:
        bad = lo if lo < 0 else hi
        pos = int(np.flatnonzero(idx == bad)[0])
        raise IndexError(
            f"{op}: index {bad} at position {pos} is out of range for a table of {n} rows "
            f"(valid: 0 to {n - 1})"
        )


def _check_offsets(bounds, nidx, op):
    """``bounds`` (the ``B + 1`` bag starts and the end) start at 0, never
    decrease and stay within the ``nidx`` indices."""
    if bounds.size > 1:
        if bounds[0] != 0:
            raise ValueError(f"{op}: offsets[0] must be 0, got {int(bounds[0])}")
        if bounds.max() > nidx:
            raise ValueError(f"{op}: offsets run past the end of input ({int(bounds.max())} > {nidx})")
        if np.any(np.diff(bounds) < 0):
            raise ValueError(f"{op}: offsets must be non-decreasing")


def _run_bags(rows, bits, D, idx, bounds, psw, padding_idx, mean, profile, device, op):
    """The bag sums of ``idx`` (C-contiguous int64) split by ``bounds``,
    after checking both: in Python, except where the CPU kernel of the torch
    profiles checks them itself as it reads them (a pass less over the
    indices: the check took 0.3 of 3.1 ms in the benchmark's bags); its
    report then comes back here to be said in full."""
    B = bounds.shape[0] - 1
    has_psw = psw is not None
    psw_arr = psw if has_psw else np.zeros(1, np.float32)
    N = rows.shape[0]
    fast = (device != "cuda" and profile in _TORCH and B > 0 and D > 0
            and bounds[0] == 0 and bounds[-1] <= idx.size)
    if not fast:
        _check_offsets(bounds, idx.size, op)
        _check_range(idx, N, op)
    if device == "cuda":
        from numba import cuda

        out = cuda.device_array((B, D), dtype=np.float32)
        if B and D:
            args = [cuda.to_device(a) for a in (idx if idx.size else np.zeros(1, np.int64), bounds, psw_arr)]
            kernel = "embedding.bag_sum" if profile in _TORCH else "embedding.bag_sum_exact"
            _dispatch.run(kernel, "cuda", rows, D, bits, args[0], args[1], args[2], has_psw,
                          padding_idx, mean, out)
        return out
    out = np.empty((B, D), np.float32)
    if fast:
        bad = _dispatch.run("embedding.bag_sum", "cpu", rows, D, bits, idx, bounds, psw_arr, has_psw,
                            padding_idx, mean, out)
        if bad:  # say what the kernel found
            _check_offsets(bounds, idx.size, op)
            _check_range(idx, N, op)
            raise RuntimeError(f"{op}: the bag kernel reported bad offsets or indices ({bad}) that "
                               "the Python checks do not find; please report this")
    elif B and D:
        hi = np.empty((B, D), np.float64)
        lo = np.empty((B, D), np.float64)
        _dispatch.run("embedding.bag_sum_exact", "cpu", rows, D, bits, idx, bounds, psw_arr, has_psw,
                      padding_idx, mean, out, hi, lo)
    return out


# ------------------------------------------------------------------- ops
def embedding_bag(input, weight, offsets=None, mode="sum", per_sample_weights=None,
                  include_last_offset=False, padding_idx=None, *, bit_width=None, numerics=None):
    """Sums (or means) of bags of rows of a rowwise-quantized embedding table.

    ``torch.ops.quantized.embedding_bag_byte_rowwise_offsets`` /
    ``embedding_bag_4bit_rowwise_offsets`` (and torch.ao.nn.quantized's
    EmbeddingBag), bit for bit under the torch profiles.

    Parameters
    ----------
    input : array_like of int32 / int64
        Row indices: 1-D with ``offsets``, or 2-D ``(B, L)`` (``offsets``
        None): ``B`` bags of ``L`` rows each.
    weight : QTensor or numpy.ndarray
        A float-qparams QTensor ``(num_embeddings, embedding_dim)`` (quint8
        or quint4x2, packed per call; modules keep it packed), or packed
        rowwise rows (uint8, see :func:`embedding_bag_byte_prepack`) with
        ``bit_width``.  CUDA data runs on the GPU.
    offsets : array_like of int32 / int64, optional
        Start of each bag in ``input`` (1-D input): non-decreasing, starting
        at 0, at most ``len(input)``.
    mode : {'sum', 'mean'}
        ``'mean'`` divides each sum by the number of rows taken (float32
        division, an empty bag gives zeros).  torch 2.13's quantized
        kernels ignore ``mode`` and always sum; ``'max'`` raises
        NotImplementedError.
    per_sample_weights : array_like of float32, optional
        One weight per index (``'sum'`` only, as torch): row ``i`` enters as
        ``w * scale``, ``w * bias``.
    include_last_offset : bool
        ``offsets`` has ``B + 1`` entries, the last closing the last bag.
    padding_idx : int, optional
        Indices equal to it (negative counts from the end) are skipped and
        not counted by ``'mean'``, as in ``torch.nn.functional.embedding_bag``
        (torch's quantized kernels have no ``padding_idx``).
    bit_width : {8, 4, 2}, optional
        Required for packed weights; taken from the dtype of a QTensor.
    numerics : str, optional
        ``'fbgemm'`` (default), ``'onednn'``, ``'qnnpack'``: torch's float32
        arithmetic (the same kernel for every engine), per row and element
        in index order ``acc = fma(scale, q, acc + bias)``.  ``'reference'``:
        the exact sum, rounded once to float32.  Others raise
        NotImplementedError.

    Returns
    -------
    numpy.ndarray (or CUDA device array), float32, shape (B, embedding_dim)

    Raises
    ------
    IndexError
        An index outside ``[0, num_embeddings)``.
    ValueError, TypeError
        Bad offsets, shapes, dtypes or arguments (the message says which).

    Examples
    --------
    >>> import numpy as np, qops
    >>> F = qops.functional
    >>> w = F.embedding_bag_byte_prepack(np.array([[0.0, 255.0], [10.0, 265.0], [0.0, 510.0]]))
    >>> F.embedding_bag(np.array([0, 1, 2]), w, np.array([0, 2]), bit_width=8)
    array([[ 10., 520.],
           [  0., 510.]], dtype=float32)
    """
    op = "embedding_bag"
    profile = _profile(numerics, op)
    if mode not in _MODES:
        if mode == "max":
            raise NotImplementedError(
                "embedding_bag: mode='max' is not implemented (torch's quantized kernels only sum); "
                "use mode='sum' or 'mean'"
            )
        raise ValueError(f"embedding_bag: unknown mode {mode!r}; use 'sum' or 'mean'")
    rows, bits, D = _weight_rows(weight, bit_width, op)
    device = device_of(rows)
    N = rows.shape[0]
    idx = _index_array(input, "indices", op)
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError(
                "embedding_bag: 2-D input is a batch of fixed-length bags; offsets must be None"
            )
        B, L = idx.shape
        bounds = np.arange(B + 1, dtype=np.int64) * L
        idx = np.ascontiguousarray(idx).reshape(-1)
    elif idx.ndim == 1:
        if offsets is None:
            raise ValueError("embedding_bag: 1-D input needs offsets (the start of each bag)")
        off = _index_array(offsets, "offsets", op)
        if off.ndim != 1:
            raise ValueError(f"embedding_bag: offsets must be 1-D, got shape {off.shape}")
        if include_last_offset:
            if off.size == 0:
                raise ValueError("embedding_bag: include_last_offset=True needs at least one offset")
            bounds = np.ascontiguousarray(off)
        else:
            bounds = np.concatenate([off, np.array([idx.size], np.int64)])
    else:
        raise ValueError(f"embedding_bag: input must be 1-D (with offsets) or 2-D, got shape {idx.shape}")
    idx = np.ascontiguousarray(idx)  # (checked with the offsets by _run_bags)
    psw = None
    if per_sample_weights is not None:
        if mode != "sum":
            raise ValueError("embedding_bag: per_sample_weights are only supported with mode='sum' (as torch)")
        psw_in = per_sample_weights.copy_to_host() if is_cuda_array(per_sample_weights) else per_sample_weights
        pa = np.asarray(psw_in)
        if pa.dtype.kind != "f":
            raise TypeError(f"embedding_bag expects float per_sample_weights, got {pa.dtype}")
        if pa.size != idx.size:
            raise ValueError(
                f"embedding_bag: per_sample_weights must have one weight per index ({idx.size}), got shape {pa.shape}"
            )
        psw = np.ascontiguousarray(pa.reshape(-1), dtype=np.float32)
    pad = -1
    if padding_idx is not None:
        p = int(padding_idx)
        if not -N <= p < N:
            raise ValueError(f"embedding_bag: padding_idx must be in [-{N}, {N}), got {padding_idx}")
        pad = p + N if p < 0 else p
    return _run_bags(rows, bits, D, idx, bounds, psw, pad, mode == "mean", profile, device, op)


def embedding(input, weight, *, bit_width=None, numerics=None):
    """Look up rows of a rowwise-quantized embedding table, dequantized.

    ``torch.ops.quantized.embedding_byte`` / ``embedding_4bit``:
    ``fma(scale, q, 0 + bias)`` per element (float32).

    Parameters
    ----------
    input : array_like of int32 / int64, any shape
        Row indices (torch takes 1-D and 2-D).
    weight : QTensor or numpy.ndarray
        As :func:`embedding_bag`.
    bit_width : {8, 4, 2}, optional
        Required for packed weights.
    numerics : str, optional
        Torch profiles or ``'reference'`` (identical here: one rounding).

    Returns
    -------
    numpy.ndarray (or CUDA device array), float32, shape ``input.shape + (embedding_dim,)``

    Examples
    --------
    >>> import numpy as np, qops
    >>> w = qops.functional.embedding_bag_byte_prepack(np.array([[0.0, 2.0], [1.0, 3.0]]))
    >>> qops.functional.embedding(np.array([1, 0]), w, bit_width=8)
    array([[1., 3.],
           [0., 2.]], dtype=float32)
    """
    op = "embedding"
    profile = _profile(numerics, op)
    rows, bits, D = _weight_rows(weight, bit_width, op)
    device = device_of(rows)
    idx = _index_array(input, "indices", op)
    shape = idx.shape
    flat = np.ascontiguousarray(idx).reshape(-1)
    bounds = np.arange(flat.size + 1, dtype=np.int64)
    out = _run_bags(rows, bits, D, flat, bounds, None, -1, False, profile, device, op)
    return out.reshape(shape + (D,))


def _precompile(device="cpu", verbose=False):
    """Compile the embedding kernels (for :func:`qops.precompile`): prepack,
    unpack and the bag sums under the torch and reference profiles, for
    8-bit, 4-bit and 2-bit rows."""
    x = np.linspace(-3, 3, 64, dtype=np.float32).reshape(4, 16)
    idx = np.array([0, 3, 1, 2, 2])
    off = np.array([0, 2])
    for bits, prepack, unpack in ((8, embedding_bag_byte_prepack, embedding_bag_byte_unpack),
                                  (4, embedding_bag_4bit_prepack, embedding_bag_4bit_unpack),
                                  (2, embedding_bag_2bit_prepack, embedding_bag_2bit_unpack)):
        if verbose:
            print(f"precompile {device} embedding {bits}-bit")
        packed = prepack(x)
        if device == "cpu":
            unpack(packed)
        else:
            from numba import cuda

            packed = cuda.to_device(packed)
        for profile in ("fbgemm", "reference"):
            embedding_bag(idx, packed, off, per_sample_weights=np.ones(5, np.float32), bit_width=bits,
                          numerics=profile)
            embedding_bag(idx, packed, off, mode="mean", bit_width=bits, numerics=profile)
