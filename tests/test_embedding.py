"""Quantized embeddings against torch 2.13: prepack / unpack, embedding_bag, embedding.

Float32 results compare as uint32 bit patterns (signed zeros and NaN
payloads included); packed rows compare byte for byte.  Rows mix random
magnitudes with adversarial ones: constant rows, signed zeros, tiny
ranges, values near float32's and float16's limits, NaN and infinity.
The table sizes cross fbgemm's 8-float vector and 32-column block
boundaries.
"""

import warnings
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import qops  # noqa: E402
import qops.functional as F  # noqa: E402
from tests.oracles import torch_peer as peer  # noqa: E402

pytestmark = pytest.mark.filterwarnings(f"ignore:{peer.DEPRECATION_MESSAGE}:UserWarning")

tq = torch.ops.quantized
NAME = {8: "byte", 4: "4bit", 2: "2bit"}
DIMS = (1, 2, 3, 4, 7, 8, 15, 16, 17, 24, 31, 32, 33, 64, 100, 130)


def bits_eq(a, b):
    """Assert equal float32 arrays bit for bit (dtype and shape too)."""
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def adversarial_rows(rng, d):
    """Random rows of many magnitudes plus the edge cases of the prepack."""
    f32 = np.float32
    with np.errstate(over="ignore"):
        parts = [
            rng.standard_normal((64, d)) * np.exp2(rng.uniform(-30, 30, (64, 1))),
            np.full((2, d), 3.25), np.zeros((2, d)),
            1.0 + rng.random((4, d)) * 1e-7,  # tiny ranges
            rng.standard_normal((6, d)) * 3e38,  # range overflows to inf
            rng.uniform(6.0e4, 7.0e4, (4, d)), -rng.uniform(6.0e4, 7.0e4, (4, d)),  # fp16 limits
            rng.standard_normal((4, d)) * 1e-30,
            rng.integers(-8, 8, (8, d)) * 0.5,  # exact ties
        ]
    z = np.where(rng.random((24, d)) < 0.5, -0.0, 0.0)  # signed zeros, with and without ones
    z[12:] += rng.random((12, d)) < 0.3
    special = rng.standard_normal((6, d))
    special[0, rng.integers(d)] = np.nan
    special[1, rng.integers(d)] = np.inf
    special[2, rng.integers(d)] = -np.inf
    special[3] = np.nan
    with np.errstate(over="ignore"):
        return np.concatenate(parts + [z, special]).astype(f32)


# ------------------------------------------------------------ prepack/unpack
@pytest.mark.parametrize("bits", [8, 4, 2])
def test_prepack_unpack_match_torch(rng, bits):
    per = 8 // bits
    rows = 0
    for d in DIMS:
        if d % per:
            continue
        x = adversarial_rows(rng, d)
        want = getattr(tq, f"embedding_bag_{NAME[bits]}_prepack")(torch.from_numpy(x)).numpy()
        got = getattr(F, f"embedding_bag_{NAME[bits]}_prepack")(x)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.uint8
        unpacked = getattr(tq, f"embedding_bag_{NAME[bits]}_unpack")(torch.from_numpy(want)).numpy()
        bits_eq(getattr(F, f"embedding_bag_{NAME[bits]}_unpack")(want), unpacked)
        rows += x.shape[0]
    assert rows > 800


@pytest.mark.parametrize("bits", [8, 4])
def test_prepack_in_parts_matches_torch(rng, bits):
    """Tables of several chunks of rows (the AVX-512 prepack runs them in parts
    on threads), every row as torch packs it."""
    from qops.kernels.cpu import embedding as E

    for d in (64, 130):
        x = np.concatenate([adversarial_rows(rng, d) for _ in range(3 * E._FAST_ROWS // 128 + 1)])
        assert x.shape[0] > 3 * E._FAST_ROWS
        want = getattr(tq, f"embedding_bag_{NAME[bits]}_prepack")(torch.from_numpy(x)).numpy()
        np.testing.assert_array_equal(getattr(F, f"embedding_bag_{NAME[bits]}_prepack")(x), want)


def test_prepack_batched_and_empty(rng):
    x = rng.standard_normal((3, 5, 16)).astype(np.float32)
    want = tq.embedding_bag_byte_prepack(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(F.embedding_bag_byte_prepack(x), want)
    # torch packs 4-bit tables in 2-D only; qops packs each row the same way
    want = tq.embedding_bag_4bit_prepack(torch.from_numpy(x.reshape(15, 16))).numpy()
    np.testing.assert_array_equal(F.embedding_bag_4bit_prepack(x), want.reshape(3, 5, 12))
    assert F.embedding_bag_byte_prepack(np.zeros((0, 4), np.float32)).shape == (0, 12)


def test_hardware_float16_rounding_matches_the_bitwise_one():
    """The AVX-512 prepack rounds scales and biases to float16 with the
    hardware conversion; it must give the bit-level rounding's bits for every
    non-NaN float32.  Checked on one bit pattern in 251 and on every pattern
    within 64 units of each float16 rounding boundary of the normal and
    subnormal range."""
    from numba import njit

    from qops.kernels.cpu._avx512 import avx512bw_available
    from qops.kernels.cpu.embedding import _f16_bits, _f16_bits_fast

    if not avx512bw_available():
        pytest.skip("the hardware conversion runs on AVX-512 hosts only")

    @njit
    def mismatches(u):
        bad = 0
        for i in range(u.size):
            f = u[i:i + 1].view(np.float32)[0]
            bad += _f16_bits_fast(f) != _f16_bits(f)
        return bad

    every = np.arange(0, 2**32, 251, dtype=np.uint64).astype(np.uint32)
    # float16 halfway points: the 13 dropped mantissa bits are 0x1000
    mant = np.arange(1024, dtype=np.uint32) << np.uint32(13)
    exps = np.arange(100, 144, dtype=np.uint32) << np.uint32(23)  # up to overflow at 2**16
    ties = (exps[:, None] | mant[None, :] | np.uint32(0x1000)).reshape(-1)
    near = (ties[:, None] + np.arange(-64, 65, dtype=np.int64)[None, :]).reshape(-1).astype(np.uint32)
    u = np.concatenate([every, near, near | np.uint32(0x80000000)])
    assert u.size > 17_000_000
    assert mismatches(u) == 0


def test_prepack_of_qtensor_matches_torch(rng):
    """The rows packed from a float-qparams QTensor dequantize as torch's
    packed params do (every row looked up once with embedding_byte/4bit)."""
    for qd, td, d, bits in ((qops.quint8, torch.quint8, 33, 8), (qops.quint4x2, torch.quint4x2, 34, 4)):
        x = rng.standard_normal((50, d)).astype(np.float32) * 4
        mn, mx = x.min(1), x.max(1)
        scales = ((mx - mn) / qd.qmax).astype(np.float32)
        zps = (-mn / scales).astype(np.float32)  # float zero points, as the observer's
        wq = torch.quantize_per_channel(torch.from_numpy(x), torch.from_numpy(scales),
                                        torch.from_numpy(zps), 0, td)
        params = tq.embedding_bag_prepack(wq)
        want = getattr(tq, f"embedding_{NAME[bits]}")(params, torch.arange(50)).numpy()
        packed = F.embedding_bag_prepack(qops.quantize_per_channel(x, scales, zps, 0, qd))
        assert packed.shape == (50, d + 8 if bits == 8 else d // 2 + 4)
        bits_eq(getattr(F, f"embedding_bag_{NAME[bits]}_unpack")(packed), want)


# ---------------------------------------------------------------- bag sums
def _torch_bag(bits, packed, idx, offsets, psw, last):
    fn = getattr(tq, f"embedding_bag_{NAME[bits]}_rowwise_offsets")
    return fn(torch.from_numpy(packed), torch.from_numpy(idx), torch.from_numpy(offsets), False, 0, False,
              None if psw is None else torch.from_numpy(psw), None, last).numpy()


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_embedding_bag_matches_torch(rng, bits):
    """Every dim, int32/int64 indices and offsets, with and without per-sample
    weights and the last offset, empty bags, adversarial rows."""
    per = 8 // bits
    compared = 0
    for d in DIMS:
        if d % per:
            continue
        table = np.concatenate([adversarial_rows(rng, d)[:-6], rng.standard_normal((200, d)).astype(np.float32)])
        packed = getattr(F, f"embedding_bag_{NAME[bits]}_prepack")(table)
        n = 3000
        idx = rng.integers(0, table.shape[0], n)
        offsets = np.sort(rng.integers(0, n, 300))
        offsets[0] = 0
        offsets[5:9] = offsets[4]  # empty bags
        psw = (rng.standard_normal(n) * np.exp2(rng.integers(-3, 4, n))).astype(np.float32)
        for k, (it, ot) in enumerate([(np.int64, np.int64), (np.int32, np.int32), (np.int32, np.int64),
                                       (np.int64, np.int32)]):
            w = psw if k % 2 else None
            last = k >= 2
            off = np.concatenate([offsets, [n]]) if last else offsets
            want = _torch_bag(bits, packed, idx.astype(it), off.astype(ot), w, last)
            got = F.embedding_bag(idx.astype(it), packed, off.astype(ot), per_sample_weights=w,
                                  include_last_offset=last, bit_width=bits)
            bits_eq(got, want)
            compared += want.size
    assert compared > 100_000


@pytest.mark.parametrize("bits", [8, 4])
def test_bags_and_prepack_in_parts_both_hand_overs(rng, monkeypatch, bits):
    """The prepack and the bag sums in parts, handed to the pool as compiled
    jobs (checked: the job was posted) and as Python calls: the packed rows
    equal torch's, the bags torch's (sums, per-sample weights) or one
    thread's (mean, padding_idx, which torch's op does not take)."""
    import numba

    from qops.kernels import _split
    from qops.kernels.cpu import _avx512
    from qops.kernels.cpu import embedding as E

    table = rng.standard_normal((3 * E._FAST_ROWS + 77, 64)).astype(np.float32)
    prepack = getattr(F, f"embedding_bag_{NAME[bits]}_prepack")
    want_packed = getattr(tq, f"embedding_bag_{NAME[bits]}_prepack")(torch.from_numpy(table)).numpy()
    n = 12 * E._BAGS * 20
    idx = rng.integers(0, table.shape[0], n)
    offsets = np.sort(rng.integers(0, n, 12 * E._BAGS))
    offsets[0] = 0
    psw = rng.standard_normal(n).astype(np.float32)
    variants = [dict(per_sample_weights=psw), dict(mode="mean"), dict(mode="mean", padding_idx=7),
                dict(padding_idx=int(idx[3]))]
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = [F.embedding_bag(idx, want_packed, offsets, bit_width=bits, **kw) for kw in variants]
    finally:
        numba.set_num_threads(threads)
    split = _split.parts() > 1

    def posted(job):
        return _split._pool is not None and _split._pool.ctl[_split._HEADER + _split._FN] == job.compile()

    for hand_over in ("compiled", "python"):
        if hand_over == "python":
            monkeypatch.setattr(E, "run_compiled", lambda *args: False)
        packed = prepack(table)
        np.testing.assert_array_equal(packed, want_packed)
        if _avx512.avx512bw_available():  # the fast prepack, in parts
            assert posted(E._PREPACK_JOB) == (split and hand_over == "compiled")
        got = F.embedding_bag(idx, packed, offsets, per_sample_weights=psw, bit_width=bits)
        bits_eq(got, _torch_bag(bits, packed, idx, offsets, psw, False))
        assert posted(E._BAG_SUM_JOB) == (split and hand_over == "compiled")
        for kw, want in zip(variants, one):
            bits_eq(F.embedding_bag(idx, packed, offsets, bit_width=bits, **kw), want)


def test_embedding_bag_engines_and_2d_input(rng):
    table = rng.standard_normal((40, 24)).astype(np.float32)
    packed = F.embedding_bag_byte_prepack(table)
    idx = rng.integers(0, 40, (9, 5))
    for engine in ("qnnpack", "onednn", "x86", "fbgemm"):
        with peer.engine(engine):
            want = tq.embedding_bag_byte_rowwise_offsets(torch.from_numpy(packed), torch.from_numpy(idx),
                                                         None, False, 0, False, None, None, False).numpy()
        for profile in ("fbgemm", "qnnpack", "onednn"):
            bits_eq(F.embedding_bag(idx, packed, bit_width=8, numerics=profile), want)


def test_qtensor_weights_match_torch_modules(rng):
    import torch.ao.nn.quantized as nnq

    for qd, td in ((qops.quint8, torch.quint8), (qops.quint4x2, torch.quint4x2)):
        x = rng.standard_normal((70, 18)).astype(np.float32)
        obs = torch.ao.quantization.PerChannelMinMaxObserver(
            dtype=td, qscheme=torch.per_channel_affine_float_qparams, ch_axis=0)
        obs(torch.from_numpy(x))
        s, z = obs.calculate_qparams()
        wq = torch.quantize_per_channel(torch.from_numpy(x), s, z, 0, td)
        qw = qops.quantize_per_channel(x, s.numpy(), z.numpy(), 0, qd)
        bag = nnq.EmbeddingBag(70, 18, include_last_offset=True, dtype=td)
        bag.set_weight(wq)
        idx = rng.integers(0, 70, 400)
        off = np.array([0, 1, 1, 150, 399, 400])
        psw = rng.standard_normal(400).astype(np.float32)
        want = bag(torch.from_numpy(idx), torch.from_numpy(off), torch.from_numpy(psw)).numpy()
        bits_eq(F.embedding_bag(idx, qw, off, per_sample_weights=psw, include_last_offset=True), want)
        emb = nnq.Embedding(70, 18, dtype=td)
        emb.set_weight(wq)
        for shape in ((13,), (4, 6)):
            ii = rng.integers(0, 70, shape)
            bits_eq(F.embedding(ii.astype(np.int32), qw), emb(torch.from_numpy(ii.astype(np.int32))).numpy())


def test_embedding_packed_matches_torch(rng):
    for bits in (8, 4):
        table = adversarial_rows(rng, 16)[:-6]
        packed = getattr(F, f"embedding_bag_{NAME[bits]}_prepack")(table)
        ii = rng.integers(0, table.shape[0], (5, 7))
        # the embedding_byte op takes packed params; its rows are these
        want = _torch_bag(bits, packed, ii.reshape(-1), np.arange(ii.size), None, False).reshape(5, 7, 16)
        bits_eq(F.embedding(ii, packed, bit_width=bits), want)
        assert F.embedding(np.zeros(0, np.int64), packed, bit_width=bits).shape == (0, 16)


@pytest.mark.parametrize("bits, dim", [(4, 20), (8, 20), (8, 64), (8, 128), (4, 64)])
def test_mean_and_padding_idx(rng, bits, dim):
    """'mean' is torch's sum divided by the count in float32; padding_idx
    drops its rows (and from the count), as removing them from the input.
    Dimensions of whole 64-column blocks take the compiled bag loops."""
    table = rng.standard_normal((30, dim)).astype(np.float32)
    packed = getattr(F, f"embedding_bag_{NAME[bits]}_prepack")(table)
    idx = rng.integers(0, 30, 500)
    off = np.sort(rng.integers(0, 500, 40))
    off[0] = 0
    pad = 7
    keep = idx != pad
    kept_off = np.array([keep[:o].sum() for o in off])
    counts = np.diff(np.concatenate([kept_off, [keep.sum()]]))
    psw = rng.standard_normal(500).astype(np.float32)
    sums = _torch_bag(bits, packed, idx[keep], kept_off, None, False)
    bits_eq(F.embedding_bag(idx, packed, off, padding_idx=pad, bit_width=bits), sums)
    bits_eq(F.embedding_bag(idx, packed, off, padding_idx=pad - 30, bit_width=bits), sums)
    want = (torch.from_numpy(sums) / torch.from_numpy(np.maximum(counts, 1).astype(np.float32))[:, None]).numpy()
    bits_eq(F.embedding_bag(idx, packed, off, mode="mean", padding_idx=pad, bit_width=bits), want)
    weighted = _torch_bag(bits, packed, idx[keep], kept_off, psw[keep], False)
    bits_eq(F.embedding_bag(idx, packed, off, per_sample_weights=psw, padding_idx=pad, bit_width=bits),
            weighted)


# --------------------------------------------------------------- reference
def _round_f32(fr):
    """Fraction -> nearest float32 (ties to even), exactly."""
    f = np.float32(float(fr))
    best = f
    for g in (np.nextafter(f, np.float32(np.inf)), np.nextafter(f, np.float32(-np.inf))):
        db, dg = abs(Fraction(float(best)) - fr), abs(Fraction(float(g)) - fr)
        if dg < db or (dg == db and int(g.view(np.uint32)) % 2 == 0):
            best = g
    return best


def test_reference_is_exact_sum_rounded_once(rng):
    for bits in (8, 4):
        table = (rng.standard_normal((12, 8)) * np.exp2(rng.uniform(-8, 8, (12, 1)))).astype(np.float32)
        packed = getattr(F, f"embedding_bag_{NAME[bits]}_prepack")(table)
        deq = getattr(F, f"embedding_bag_{NAME[bits]}_unpack")(packed)  # exact: one fma per value
        idx = rng.integers(0, 12, 60)
        off = np.array([0, 3, 3, 20, 59])
        psw = rng.standard_normal(60).astype(np.float32)
        for mode, w in (("sum", None), ("sum", psw), ("mean", None)):
            got = F.embedding_bag(idx, packed, off, mode=mode, per_sample_weights=w, bit_width=bits,
                                  numerics="reference")
            bounds = list(off) + [60]
            for b in range(len(off)):
                rows = range(bounds[b], bounds[b + 1])
                for j in range(8):
                    s = sum((_exact_value(packed, bits, idx[p], j) * (Fraction(float(w[p])) if w is not None else 1)
                             for p in rows), Fraction(0))
                    if mode == "mean" and len(rows):
                        s /= len(rows)
                    assert got[b, j].view(np.uint32) == _round_f32(s).view(np.uint32), (mode, b, j)
        assert np.abs(deq).max() > 0


def _exact_value(packed, bits, r, j):
    row = packed[r]
    if bits == 8:
        q = int(row[j])
        s, b = row[-8:].copy().view(np.float32)
    else:
        q = (int(row[j // 2]) >> (4 * (j % 2))) & 15
        s, b = row[-4:].copy().view(np.float16).astype(np.float32)
    return Fraction(float(s)) * q + Fraction(float(b))


# -------------------------------------------------------------- validation
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("hand_over", ["compiled", "python", "one thread"])
def test_bag_kernel_checks_every_part(rng, monkeypatch, hand_over, bits):
    """The CPU bag kernel checks offsets and indices itself, each part its
    own before it reads them (the Python checks only run after it reports):
    a bad index or offset in any part, under each hand-over, is reported by
    ``bag_sum`` and raised by ``embedding_bag`` with the Python message."""
    import numba

    from qops.kernels import _split
    from qops.kernels.cpu import embedding as E

    packed = getattr(F, f"embedding_bag_{NAME[bits]}_prepack")(rng.standard_normal((50, 64)).astype(np.float32))
    B = 10 * E._BAGS  # ten chunks: parts on two or more threads
    idx = rng.integers(0, 50, 3 * B)
    offsets = np.arange(B + 1, dtype=np.int64) * 3
    if hand_over == "python":
        monkeypatch.setattr(E, "run_compiled", lambda *args: False)
    threads = numba.get_num_threads()
    if hand_over == "one thread":
        numba.set_num_threads(1)
    try:
        def kernel(i, o):
            out = np.full((B, 64), np.nan, np.float32)
            return E.bag_sum(packed, 64, bits, i, o, np.zeros(1, np.float32), False, -1, False, out), out

        bad, out = kernel(idx, offsets)
        assert bad == 0
        bits_eq(out, F.embedding_bag(idx, packed, offsets[:-1], bit_width=bits))
        if hand_over == "compiled" and _split.parts() > 1:
            assert _split._pool.ctl[_split._HEADER + _split._FN] == E._BAG_SUM_JOB.compile()
        for pos in (0, len(idx) // 2, len(idx) - 1):  # the first, a middle and the last part
            for v in (50, -1, 2**40):
                i = idx.copy()
                i[pos] = v
                assert kernel(i, offsets)[0] == E.BAD_INDEX
                with pytest.raises(IndexError, match=f"index {v} at position {pos} is out of range"):
                    F.embedding_bag(i, packed, offsets[:-1], bit_width=bits)
        for b in (5, B // 2 + 3, B - 1):
            for v, msg in ((offsets[b - 1] - 1, "non-decreasing"), (-2, "non-decreasing"),
                           (len(idx) + 1, "past the end")):
                o = offsets.copy()
                o[b] = v
                assert kernel(idx, o)[0] == E.BAD_OFFSETS
                with pytest.raises(ValueError, match=msg):
                    F.embedding_bag(idx, packed, o[:-1], bit_width=bits)
    finally:
        numba.set_num_threads(threads)


def test_validation_errors(rng):
    packed = F.embedding_bag_byte_prepack(rng.standard_normal((10, 4)).astype(np.float32))
    idx = np.array([0, 1, 2, 3])
    off = np.array([0, 2])
    with pytest.raises(IndexError, match="index 10 at position 1"):
        F.embedding_bag(np.array([0, 10]), packed, np.array([0]), bit_width=8)
    with pytest.raises(IndexError, match="index -1"):
        F.embedding(np.array([[3, -1]]), packed, bit_width=8)
    with pytest.raises(TypeError, match="bit_width=8"):
        F.embedding_bag(idx, packed, off)
    with pytest.raises(NotImplementedError, match="mode='max'"):
        F.embedding_bag(idx, packed, off, mode="max", bit_width=8)
    with pytest.raises(ValueError, match="unknown mode"):
        F.embedding_bag(idx, packed, off, mode="avg", bit_width=8)
    with pytest.raises(ValueError, match="only supported with mode='sum'"):
        F.embedding_bag(idx, packed, off, mode="mean", per_sample_weights=np.ones(4, np.float32), bit_width=8)
    with pytest.raises(ValueError, match="one weight per index"):
        F.embedding_bag(idx, packed, off, per_sample_weights=np.ones(3, np.float32), bit_width=8)
    with pytest.raises(ValueError, match="offsets\\[0\\] must be 0"):
        F.embedding_bag(idx, packed, np.array([1, 2]), bit_width=8)
    with pytest.raises(ValueError, match="non-decreasing"):
        F.embedding_bag(idx, packed, np.array([0, 3, 2]), bit_width=8)
    with pytest.raises(ValueError, match="past the end"):
        F.embedding_bag(idx, packed, np.array([0, 5]), include_last_offset=True, bit_width=8)
    with pytest.raises(ValueError, match="offsets must be None"):
        F.embedding_bag(idx.reshape(2, 2), packed, off, bit_width=8)
    with pytest.raises(ValueError, match="needs offsets"):
        F.embedding_bag(idx, packed, bit_width=8)
    with pytest.raises(TypeError, match="int32 or int64 indices"):
        F.embedding_bag(idx.astype(np.float32), packed, off, bit_width=8)
    with pytest.raises(TypeError, match="uint8"):
        F.embedding_bag(idx, packed.astype(np.int16), off, bit_width=8)
    with pytest.raises(ValueError, match="bit_width must be"):
        F.embedding_bag(idx, packed, off, bit_width=3)
    with pytest.raises(ValueError, match="padding_idx"):
        F.embedding_bag(idx, packed, off, padding_idx=10, bit_width=8)
    with pytest.raises(NotImplementedError, match="numerics='fbgemm' or 'reference'"):
        F.embedding_bag(idx, packed, off, bit_width=8, numerics="onnxruntime")
    with pytest.raises(NotImplementedError, match="embedding under numerics 'tflite'"):
        F.embedding(idx, packed, bit_width=8, numerics="tflite")
    qt = qops.quantize_per_tensor(rng.standard_normal((10, 4)), 0.1, 3, qops.quint8)
    with pytest.raises(ValueError, match="per_channel_affine_float_qparams"):
        F.embedding_bag(idx, qt, off)
    with pytest.raises(TypeError, match="quint8 or quint4x2"):
        F.embedding_bag(idx, qops.quantize_per_tensor(np.zeros((2, 2)), 0.1, 0, qops.qint8), off)
    with pytest.raises(ValueError, match="multiple of 2"):
        F.embedding_bag_4bit_prepack(np.zeros((3, 5), np.float32))
    with pytest.raises(TypeError, match="float weights"):
        F.embedding_bag_byte_prepack(np.zeros((3, 5), np.int32))
    # empty input and no bags
    assert F.embedding_bag(np.zeros(0, np.int64), packed, np.zeros(0, np.int64), bit_width=8).shape == (0, 4)
    np.testing.assert_array_equal(
        F.embedding_bag(np.zeros(0, np.int64), packed, np.zeros(3, np.int64), bit_width=8),
        np.zeros((3, 4), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.embedding_bag(idx, packed, off, bit_width=8)


def test_float16_per_sample_weights_4bit(rng):
    """torch converts float16 per-sample weights of 4-bit bags to float32 (exactly); so does qops."""
    packed = F.embedding_bag_4bit_prepack(rng.standard_normal((25, 12)).astype(np.float32))
    idx = rng.integers(0, 25, 90)
    off = np.array([0, 7, 40])
    psw = rng.standard_normal(90).astype(np.float16)
    want = tq.embedding_bag_4bit_rowwise_offsets(torch.from_numpy(packed), torch.from_numpy(idx),
                                                  torch.from_numpy(off), False, 0, False,
                                                  torch.from_numpy(psw), None, False).numpy()
    bits_eq(F.embedding_bag(idx, packed, off, per_sample_weights=psw, bit_width=4), want)
