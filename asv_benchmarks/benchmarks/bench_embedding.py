"""Quantized embedding_bag and prepack: qops beside torch 2.13.

A realistic recommendation-model lookup: a table of 1M rows x 64 columns
(8-bit rows 72 bytes, 4-bit rows 36), 16384 bags of 20 random indices each,
summed; the first parameter, ``impl``, names the implementation (``qops``
under its default ``fbgemm`` profile, or ``torch``'s
``quantized.embedding_bag_{byte,4bit}_rowwise_offsets``), so one run gives
the ratio.  Prepacking quantizes a 256k x 64 float32 table (16M values).
Both run on ``common.THREADS`` threads; ``setup`` ends with one call of the
timed operation (commented ``# compile``).
"""

import functools

import numpy as np

from . import common

IMPLS = ["qops", "torch"]
BITS = [8, 4]
ROWS, DIM, BAGS, PER_BAG = 1_000_000, 64, 16384, 20
PREPACK_ROWS = 2**18


@functools.lru_cache(maxsize=2)
def _table(rows, seed=3):
    return np.random.default_rng(seed).standard_normal((rows, DIM), dtype=np.float32)


@functools.lru_cache(maxsize=2)
def _packed(bits):
    qops = common.qops_module()
    f = qops.functional.embedding_bag_byte_prepack if bits == 8 else qops.functional.embedding_bag_4bit_prepack
    return f(_table(ROWS))


@functools.lru_cache(maxsize=1)
def _bags(seed=4):
    rng = np.random.default_rng(seed)
    return rng.integers(0, ROWS, BAGS * PER_BAG), np.arange(BAGS, dtype=np.int64) * PER_BAG


class EmbeddingBag:
    """Sum of 16384 bags of 20 rows of a 1M x 64 rowwise-quantized table."""

    params = [IMPLS, BITS]
    param_names = ["impl", "bits"]
    timeout = 300

    def setup(self, impl, bits):
        packed = _packed(bits)
        idx, off = _bags()
        if impl == "qops":
            F = common.qops_module().functional
            self.fn = lambda: F.embedding_bag(idx, packed, off, bit_width=bits)
        else:
            torch = common.torch_module()
            name = "byte" if bits == 8 else "4bit"
            op = getattr(torch.ops.quantized, f"embedding_bag_{name}_rowwise_offsets")
            w, i, o = torch.from_numpy(packed), torch.from_numpy(idx), torch.from_numpy(off)
            self.fn = lambda: op(w, i, o, False, 0, False, None, None, False)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_embedding_bag(self, impl, bits):
        self.fn()


class EmbeddingBagPrepack:
    """Rowwise quantization of a 256k x 64 float32 table into the packed format."""

    params = [IMPLS, BITS]
    param_names = ["impl", "bits"]
    timeout = 300

    def setup(self, impl, bits):
        x = _table(PREPACK_ROWS)
        name = "byte" if bits == 8 else "4bit"
        if impl == "qops":
            F = common.qops_module().functional
            f = getattr(F, f"embedding_bag_{name}_prepack")
            self.fn = lambda: f(x)
        else:
            torch = common.torch_module()
            op = getattr(torch.ops.quantized, f"embedding_bag_{name}_prepack")
            xt = torch.from_numpy(x)
            self.fn = lambda: op(xt)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_prepack(self, impl, bits):
        self.fn()
