"""QTensor: accessors, views, indexing, equality, repr and the factories."""

import numpy as np
import pytest

import qops


@pytest.fixture
def pc(rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    return qops.quantize_per_channel(x, [0.1, 0.2, 0.3, 0.4], [1, -2, 3, 0], 1, qops.qint8)


@pytest.fixture
def pt(rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    return qops.quantize_per_tensor(x, 0.05, 7, qops.quint8)


def assert_same_values(a, b):
    np.testing.assert_array_equal(a.int_repr(), b.int_repr())
    np.testing.assert_array_equal(a.dequantize().view(np.uint32), b.dequantize().view(np.uint32))


def test_accessors_per_tensor(pt):
    assert pt.dtype is qops.quint8
    assert pt.qscheme() is qops.per_tensor_affine
    assert pt.shape == (3, 4, 5) and pt.ndim == 3 and pt.size == 60
    assert pt.device == "cpu"
    assert pt.q_scale() == 0.05 and pt.q_zero_point() == 7
    assert pt.int_repr().dtype == np.uint8
    with pytest.raises(ValueError, match="q_per_channel_scales"):
        pt.q_per_channel_scales()
    with pytest.raises(ValueError, match="per-channel"):
        pt.q_per_channel_axis()


def test_accessors_per_channel(pc):
    assert pc.qscheme() is qops.per_channel_affine
    s = pc.q_per_channel_scales()
    z = pc.q_per_channel_zero_points()
    assert s.dtype == np.float64 and z.dtype == np.int64
    np.testing.assert_array_equal(z, [1, -2, 3, 0])
    assert pc.q_per_channel_axis() == 1
    with pytest.raises(ValueError, match="q_scale"):
        pc.q_scale()
    with pytest.raises(ValueError, match="per-tensor"):
        pc.q_zero_point()
    s[0] = 99.0  # accessors return copies
    assert pc.q_per_channel_scales()[0] == 0.1


def test_int_repr_is_a_copy(pt):
    a = pt.int_repr()
    a[...] = 0
    assert pt.int_repr().any()


def test_clone_and_contiguous(pt):
    c = pt.clone()
    assert c == pt and c._data is not pt._data
    t = pt.transpose(0, 2)
    assert not t.is_contiguous()
    tc = t.contiguous()
    assert tc.is_contiguous() and tc == t
    assert pt.contiguous() is pt


@pytest.mark.parametrize("shape", [(60,), (12, 5), (3, 20), (-1, 5), (1, 3, 4, 5)])
def test_reshape_per_tensor(pt, shape):
    r = pt.reshape(shape)
    np.testing.assert_array_equal(r.int_repr(), pt.int_repr().reshape(shape))
    assert r.q_scale() == pt.q_scale()
    assert pt.view(*shape) == r


def test_reshape_rejects_incompatible(pt, pc):
    with pytest.raises(ValueError, match="cannot reshape"):
        pt.reshape(7, 9)
    with pytest.raises(ValueError, match="channel axis"):
        pc.reshape(12, 5)  # merges the channel axis (length 4) with axis 0
    with pytest.raises(ValueError, match="channel axis"):
        pc.flatten()


def test_reshape_per_channel_moves_axis(pc):
    r = pc.reshape(3, 4, 5, 1)
    assert r.q_per_channel_axis() == 1
    r = pc.reshape(1, 3, 4, 5)
    assert r.q_per_channel_axis() == 2
    assert_same_values(r.reshape(3, 4, 5), pc)


def test_flatten(pt):
    f = pt.flatten()
    assert f.shape == (60,)
    np.testing.assert_array_equal(f.int_repr(), pt.int_repr().ravel())


def test_transpose_per_channel_moves_axis(pc):
    t = pc.transpose(0, 1)
    assert t.shape == (4, 3, 5) and t.q_per_channel_axis() == 0
    np.testing.assert_array_equal(t.int_repr(), pc.int_repr().transpose(1, 0, 2))
    np.testing.assert_array_equal(t.dequantize(), pc.dequantize().transpose(1, 0, 2))
    p = pc.permute(2, 0, 1)
    assert p.q_per_channel_axis() == 2
    np.testing.assert_array_equal(p.dequantize(), pc.dequantize().transpose(2, 0, 1))


def test_permute_validation(pc):
    with pytest.raises(ValueError, match="permutation"):
        pc.permute(0, 0, 1)
    with pytest.raises(ValueError, match="out of range"):
        pc.transpose(0, 3)


def test_slicing_per_channel_slices_qparams(pc):
    s = pc[:, 1:3]
    np.testing.assert_array_equal(s.q_per_channel_zero_points(), [-2, 3])
    assert s.q_per_channel_axis() == 1
    np.testing.assert_array_equal(s.dequantize(), pc.dequantize()[:, 1:3])
    s = pc[0]  # an index before the axis moves it down
    assert s.q_per_channel_axis() == 0 and s.shape == (4, 5)
    s = pc[..., ::2]
    assert s.q_per_channel_axis() == 1
    np.testing.assert_array_equal(s.dequantize(), pc.dequantize()[..., ::2])
    s = pc[None, :, ::-1]
    assert s.q_per_channel_axis() == 2
    np.testing.assert_array_equal(s.q_per_channel_zero_points(), [0, 3, -2, 1])
    np.testing.assert_array_equal(s.dequantize(), pc.dequantize()[None, :, ::-1])


def test_integer_index_on_channel_axis_gives_per_tensor(pc):
    # as torch 2.13 does: select on the channel axis -> per_tensor_affine
    s = pc[:, 2]
    assert s.qscheme() is qops.per_tensor_affine
    assert s.q_scale() == 0.3 and s.q_zero_point() == 3
    np.testing.assert_array_equal(s.int_repr(), pc.int_repr()[:, 2])
    # it now dequantizes with the per-tensor formula (float32 scale), like torch
    ints = pc.int_repr()[:, 2].astype(np.int32)
    np.testing.assert_array_equal(s.dequantize(), (ints - 3).astype(np.float32) * np.float32(0.3))
    s = pc[:, -1]
    assert s.q_scale() == 0.4
    with pytest.raises(IndexError):
        pc[:, 4]


def test_advanced_indexing(pt, pc):
    idx = np.array([2, 0])
    np.testing.assert_array_equal(pt[idx].int_repr(), pt.int_repr()[idx])
    with pytest.raises(NotImplementedError, match="basic indexing"):
        pc[idx]
    with pytest.raises(IndexError):
        pc[0, 0, 0, 0]


def test_squeeze_unsqueeze(pc, pt):
    u = pc.unsqueeze(0)
    assert u.shape == (1, 3, 4, 5) and u.q_per_channel_axis() == 2
    assert u.squeeze(0).q_per_channel_axis() == 1
    u = pt.unsqueeze(-1)
    assert u.shape == (3, 4, 5, 1)
    assert u.squeeze().shape == (3, 4, 5)
    one = pc[:, 1:2]  # channel axis of length 1: squeezing it selects that channel
    sq = one.squeeze(1)
    assert sq.qscheme() is qops.per_tensor_affine and sq.q_scale() == 0.2


def test_equality(pt, pc):
    assert pt == pt.clone()
    assert not (pt == pc)
    assert pt != qops.requantize(pt, 0.05, 8)
    other = qops.make_per_tensor_qtensor(pt.int_repr(), 0.05, 7, qops.quint8)
    assert other == pt
    other = qops.make_per_tensor_qtensor(pt.int_repr(), 0.051, 7, qops.quint8)
    assert other != pt
    assert pc == pc.clone()
    assert (pt == 3) is False
    with pytest.raises(TypeError, match="ambiguous"):
        bool(pt)


def test_not_an_array(pt):
    with pytest.raises(TypeError, match="dequantize"):
        np.asarray(pt)


def test_repr_like_torch():
    q = qops.quantize_per_tensor(np.float32([[0.1, 0.2], [0.3, -0.4]]), 0.1, 3, qops.quint8)
    r = repr(q)
    assert r.startswith("QTensor([[ 0.1000,  0.2000],")
    assert "size=(2, 2)" in r and "dtype=qops.quint8" in r
    assert "quantization_scheme=qops.per_tensor_affine" in r
    assert "scale=0.1, zero_point=3" in r
    q = qops.quantize_per_channel(np.float32([[1, 2], [3, 4]]), [0.5, 0.25], [0, 1], 0, qops.qint8)
    r = repr(q)
    assert "scale=[0.5 , 0.25]" in r or "scale=[0.5, 0.25]" in r
    assert "axis=0" in r and "per_channel_affine" in r


def test_make_per_tensor_qtensor_shares_and_checks():
    ints = np.array([0, 5, 255], np.uint8)
    q = qops.make_per_tensor_qtensor(ints, 0.5, 5, qops.quint8)
    np.testing.assert_array_equal(q.dequantize(), np.float32([-2.5, 0.0, 125.0]))
    with pytest.raises(TypeError, match="needs uint8"):
        qops.make_per_tensor_qtensor(ints.astype(np.int8), 0.5, 5, qops.quint8)
    with pytest.raises(TypeError, match="needs int32"):
        qops.make_per_tensor_qtensor(ints, 0.5, 5, qops.qint32)
    with pytest.raises(TypeError, match="packed uint8"):
        qops.make_per_tensor_qtensor(ints.astype(np.int8), 0.5, 5, qops.quint4x2)


def test_make_per_channel_qtensor():
    ints = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    q = qops.make_per_channel_qtensor(ints, [1.0, 2.0, 4.0, 8.0], [0, 1, 2, 3], 1, qops.qint8)
    expect = (ints.astype(np.float32) - np.float32([0, 1, 2, 3])) * np.float32([1, 2, 4, 8])
    np.testing.assert_array_equal(q.dequantize(), expect)
    with pytest.raises(ValueError, match="scales has 3 entries"):
        qops.make_per_channel_qtensor(ints, [1.0, 2.0, 4.0], [0, 1, 2], 1, qops.qint8)
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        qops.make_per_channel_qtensor(ints, [1.0] * 4, [0] * 4, 2, qops.qint8)
    f = qops.make_per_channel_qtensor(ints, [1.0] * 4, [0.5] * 4, 1, qops.qint8)
    assert f.qscheme() is qops.per_channel_affine_float_qparams


@pytest.mark.parametrize("dtype", [qops.quint4x2, qops.quint2x4])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8, 17])
def test_subbyte_pack_roundtrip(rng, dtype, n):
    vals = rng.integers(0, dtype.qmax + 1, n).astype(np.float32)
    q = qops.quantize_per_tensor(vals, 1.0, 0, dtype)
    packed = q.int_repr()
    assert packed.dtype == np.uint8 and packed.size == -(-n // dtype.per_byte)
    # first element in the low bits
    expect = np.zeros(packed.size, np.int64)
    for i, v in enumerate(vals.astype(np.int64)):
        expect[i // dtype.per_byte] |= v << ((i % dtype.per_byte) * dtype.bits)
    np.testing.assert_array_equal(packed, expect)
    back = qops.make_per_tensor_qtensor(packed, 1.0, 0, dtype, shape=(n,))
    assert back == q


def test_subbyte_example_from_torch():
    q = qops.quantize_per_tensor(np.float32([3, 2, 6, 8, 15]), 1.0, 0, qops.quint4x2)
    np.testing.assert_array_equal(q.int_repr(), np.uint8([35, 134, 15]))


def test_subbyte_shape_checks():
    with pytest.raises(ValueError, match="packed bytes hold"):
        qops.make_per_tensor_qtensor(np.uint8([1, 2]), 1.0, 0, qops.quint4x2, shape=(6,))
    q = qops.make_per_tensor_qtensor(np.uint8([35, 134, 15]), 1.0, 0, qops.quint4x2)
    assert q.shape == (6,)
    with pytest.raises(ValueError, match="only for packed sub-byte"):
        qops.make_per_tensor_qtensor(np.uint8([1]), 1.0, 0, qops.quint8, shape=(1,))


def test_empty_and_scalar():
    q = qops.quantize_per_tensor(np.zeros((0, 3), np.float32), 1.0, 0, qops.qint8)
    assert q.shape == (0, 3) and q.int_repr().shape == (0, 3)
    assert q.dequantize().shape == (0, 3)
    assert qops.requantize(q, 2.0, 1).shape == (0, 3)
    q = qops.quantize_per_tensor(np.float32(2.0), 1.0, 0, qops.qint8)
    assert q.shape == () and int(q.int_repr()) == 2


def test_noncontiguous_input(rng):
    x = rng.standard_normal((8, 6)).astype(np.float32)
    a = qops.quantize_per_tensor(x[:, ::2].T, 0.1, 0, qops.qint8)
    b = qops.quantize_per_tensor(np.ascontiguousarray(x[:, ::2].T), 0.1, 0, qops.qint8)
    assert a == b
    a = qops.quantize_per_channel(x[::2].T, np.full(4, 0.1), np.zeros(4, np.int64), 1, qops.qint8)
    b = qops.quantize_per_channel(np.ascontiguousarray(x[::2].T), np.full(4, 0.1), np.zeros(4, np.int64), 1, qops.qint8)
    assert a == b


def test_views_then_ops(pc):
    t = pc.transpose(0, 2)  # non-contiguous per-channel view
    r = qops.requantize(t, 0.1, 0)
    np.testing.assert_array_equal(r.int_repr(), qops.requantize(pc, 0.1, 0).int_repr().transpose(2, 1, 0))


def test_to_cpu_is_identity(pt):
    assert pt.to("cpu") is pt and pt.cpu() is pt
    with pytest.raises(ValueError, match="unknown device"):
        pt.to("tpu")
