"""qops.nn.Embedding / EmbeddingBag against torch.ao.nn.quantized's (torch 2.13)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import qops  # noqa: E402
from qops import nn as qnn  # noqa: E402
from tests.oracles import torch_peer as peer  # noqa: E402

pytestmark = pytest.mark.filterwarnings(f"ignore:{peer.DEPRECATION_MESSAGE}:UserWarning")

nnq = torch.ao.nn.quantized
tqc = torch.ao.quantization


def bits_eq(a, b):
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("four_bit", [False, True])
def test_from_float_matches_torch(rng, four_bit):
    torch.manual_seed(int(rng.integers(1 << 30)))
    qconfig = tqc.float_qparams_weight_only_qconfig_4bit if four_bit else tqc.float_qparams_weight_only_qconfig
    fbag = torch.nn.EmbeddingBag(97, 18, mode="sum", include_last_offset=True)
    fbag.qconfig = qconfig
    tbag = nnq.EmbeddingBag.from_float(fbag)
    bag = qnn.EmbeddingBag.from_float(fbag)
    assert bag.dtype is (qops.quint4x2 if four_bit else qops.quint8)
    np.testing.assert_array_equal(bag.weight().q_per_channel_scales(), tbag.weight().q_per_channel_scales().numpy())
    idx = rng.integers(0, 97, 700)
    off = np.array([0, 0, 5, 400, 699, 700])
    psw = rng.standard_normal(700).astype(np.float32)
    bits_eq(bag(idx, off, psw), tbag(torch.from_numpy(idx), torch.from_numpy(off), torch.from_numpy(psw)).numpy())
    # a quantized torch module converts exactly, and so does qops's own qconfig
    bits_eq(qnn.EmbeddingBag.from_float(tbag)(idx, off), tbag(torch.from_numpy(idx), torch.from_numpy(off)).numpy())
    qc = qops.qconfig
    own = qc.float_qparams_weight_only_qconfig_4bit if four_bit else qc.float_qparams_weight_only_qconfig
    fbag.qconfig = None
    bits_eq(qnn.EmbeddingBag.from_float(fbag, own)(idx, off), bag(idx, off))

    femb = torch.nn.Embedding(97, 18)
    femb.qconfig = qconfig
    temb = nnq.Embedding.from_float(femb) if not four_bit else None
    emb = qnn.Embedding.from_float(femb)
    ii = rng.integers(0, 97, (6, 11))
    if temb is not None:  # torch's Embedding.from_float builds quint8 tables only
        bits_eq(emb(ii), temb(torch.from_numpy(ii)).numpy())
    t4 = nnq.Embedding(97, 18, dtype=torch.quint4x2 if four_bit else torch.quint8)
    t4.set_weight(tbag.weight())
    e4 = qnn.Embedding(97, 18, dtype=bag.dtype)
    e4.set_weight(bag.weight())
    bits_eq(e4(ii), t4(torch.from_numpy(ii)).numpy())


def test_repr_and_defaults_like_torch():
    t = nnq.EmbeddingBag(10, 12, include_last_offset=True, mode="sum")
    q = qnn.EmbeddingBag(10, 12, include_last_offset=True, mode="sum")
    assert repr(q) == repr(t).replace("torch.", "qops.")
    assert repr(qnn.Embedding(10, 12)) == repr(nnq.Embedding(10, 12)).replace("torch.", "qops.")
    # a fresh table is all zeros with scale 1 and bias 0
    np.testing.assert_array_equal(q(np.array([1, 2, 3]), np.array([0, 3])), np.zeros((1, 12), np.float32))


def test_module_errors_and_mean():
    with pytest.raises(NotImplementedError, match="max_norm"):
        qnn.EmbeddingBag(10, 4, max_norm=1.0)
    with pytest.raises(NotImplementedError, match="mode='max'"):
        qnn.EmbeddingBag(10, 4, mode="max")
    with pytest.raises(NotImplementedError, match="quint8 and quint4x2"):
        qnn.Embedding(10, 4, dtype=qops.qint8)
    bag = qnn.EmbeddingBag(10, 4, mode="mean", padding_idx=0)
    with pytest.raises(NotImplementedError, match="compressed_indices_mapping"):
        bag(np.array([1]), np.array([0]), compressed_indices_mapping=np.array([0]))
    with pytest.raises(ValueError, match="expected shape"):
        bag.set_weight(qops.quantize_per_channel(np.zeros((3, 4)), np.ones(3), np.zeros(3, np.float32), 0,
                                                 qops.quint8))
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    bag.set_weight(qops.quantize_per_channel(x, np.ones(10), np.zeros(10, np.float32), 0, qops.quint8))
    out = bag(np.array([0, 1, 3, 0]), np.array([0, 1]))
    np.testing.assert_array_equal(out, np.array([[0, 0, 0, 0], [8, 9, 10, 11]], np.float32))
