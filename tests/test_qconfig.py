"""QConfig, the named qconfigs and QConfigMapping against torch 2.13.

A qconfig matches torch's when its factories build observers of the same
class with the same settings that give the same qparams (bit for bit) on the
same data; a mapping matches when every lookup resolves to the same entry.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.ao.quantization.qconfig as tqc  # noqa: E402
import torch.ao.quantization.qconfig_mapping as tqm  # noqa: E402
from torch.ao.quantization.fx.qconfig_mapping_utils import (  # noqa: E402
    _maybe_adjust_qconfig_for_module_name_object_type_order,
    _maybe_adjust_qconfig_for_module_type_or_name,
)

import qops  # noqa: E402
from qops import fake_quantize as qfq  # noqa: E402
from qops import observer as qobs  # noqa: E402
from qops import qconfig as qqc  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*reduce_range will be deprecated:UserWarning",
    "ignore:.*must run observer before calling calculate_qparams:UserWarning",
    "ignore:.*QConfigDynamic.*:FutureWarning",
)

F32 = np.float32


def describe(obj):
    """Class name and the settings that decide an observer's results."""
    if obj is None or isinstance(obj, torch.nn.Identity):
        return ("identity",)
    out = [type(obj).__name__]
    for attr in ("quant_min", "quant_max", "reduce_range", "ch_axis", "averaging_constant", "bins",
                 "is_dynamic", "has_customized_qrange"):
        if hasattr(obj, attr):
            out.append((attr, getattr(obj, attr)))
    for attr in ("dtype", "qscheme"):
        if hasattr(obj, attr):
            v = getattr(obj, attr)
            out.append((attr, str(v).removeprefix("torch.").removeprefix("qops.")))
    if hasattr(obj, "eps"):
        eps = obj.eps
        out.append(("eps", float(np.asarray(eps.numpy() if hasattr(eps, "numpy") else eps).reshape(-1)[0])))
    if hasattr(obj, "activation_post_process"):
        out.append(("observer", describe(obj.activation_post_process)))
    return tuple(out)


def same_results(q, t, rng):
    """Feed both the same data; compare qparams bit for bit when they have any."""
    if q is None:
        return
    x = rng.normal(0, 2, (4, 25)).astype(F32)
    q(x)
    t(torch.from_numpy(x))
    try:
        tq = t.calculate_qparams()
    except Exception:  # placeholders: both refuse
        with pytest.raises(RuntimeError):
            q.calculate_qparams()
        return
    sq, zq = q.calculate_qparams()
    np.testing.assert_array_equal(np.asarray(sq, F32).view(np.uint32), tq[0].detach().numpy().view(np.uint32))
    np.testing.assert_array_equal(np.asarray(zq), tq[1].detach().numpy())


def assert_same_qconfig(qc, tc, rng, where):
    for role in ("activation", "weight"):
        qf, tf = getattr(qc, role), getattr(tc, role)
        q = qf() if qf is not None else None
        t = tf() if tf is not None else None
        dq, dt = describe(q), describe(t)
        assert dq == dt, f"{where} {role}: {dq} != {dt}"
        same_results(q, t, rng)


NAMED = [
    "default_qconfig", "default_debug_qconfig", "default_per_channel_qconfig", "default_dynamic_qconfig",
    "float16_dynamic_qconfig", "float16_static_qconfig", "per_channel_dynamic_qconfig",
    "float_qparams_weight_only_qconfig", "float_qparams_weight_only_qconfig_4bit",
    "default_quint8_weight_qconfig", "default_qat_qconfig", "default_dynamic_qat_qconfig",
    "default_weight_only_qconfig", "default_activation_only_qconfig", "default_qat_qconfig_v2",
    "default_reuse_input_qconfig", "default_symmetric_qnnpack_qconfig",
    "default_per_channel_symmetric_qnnpack_qconfig", "default_symmetric_qnnpack_qat_qconfig",
    "default_per_channel_symmetric_qnnpack_qat_qconfig", "default_embedding_qat_qconfig",
    "default_embedding_qat_qconfig_4bit",
]


@pytest.mark.parametrize("name", NAMED)
def test_named_qconfigs_build_torchs_observers(name, rng):
    assert_same_qconfig(getattr(qqc, name), getattr(tqc, name), rng, name)


@pytest.mark.parametrize("backend", ["x86", "fbgemm", "qnnpack", "onednn"])
def test_default_qconfigs_per_backend(backend, rng):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about oneDNN without VNNI on some CPUs
        assert_same_qconfig(qqc.get_default_qconfig(backend), tqc.get_default_qconfig(backend), rng, backend)
        for version in (0, 1):
            assert_same_qconfig(qqc.get_default_qat_qconfig(backend, version),
                                tqc.get_default_qat_qconfig(backend, version), rng, f"{backend} qat v{version}")


def torch_key(k):
    return k if isinstance(k, str) else k.__name__


@pytest.mark.parametrize("backend", ["x86", "fbgemm", "qnnpack", "onednn"])
@pytest.mark.parametrize("qat", [False, True])
def test_default_qconfig_mappings_match_torch(backend, qat, rng):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if qat:
            q, t = qqc.get_default_qat_qconfig_mapping(backend), tqm.get_default_qat_qconfig_mapping(backend)
        else:
            q, t = qqc.get_default_qconfig_mapping(backend), tqm.get_default_qconfig_mapping(backend)
        assert_same_qconfig(q.global_qconfig, t.global_qconfig, rng, "global")
        tkeys = {}
        for k, v in t.object_type_qconfigs.items():
            tkeys.setdefault(torch_key(k), v)
        assert list(q.object_type_qconfigs) == list(tkeys)
        for k, qc in q.object_type_qconfigs.items():
            assert_same_qconfig(qc, tkeys[k], rng, k)


def test_qconfig_mapping_priorities_match_torch():
    """global < object type < module name regex < module name (and parents)
    < (module name, object type, index), on the same mapping in both."""
    specs = [
        ("set_global", ("G",)),
        ("set_object_type", ("Linear", "T-linear")),
        ("set_object_type", ("Conv2d", "T-conv")),
        ("set_module_name_regex", ("encoder\\..*conv[0-9]+", "R-encconv")),
        ("set_module_name_regex", ("encoder\\..*", "R-enc")),
        ("set_module_name_regex", ("decoder", "R-dec")),
        ("set_module_name", ("encoder.block1", "N-block1")),
        ("set_module_name", ("decoder.head", "N-head")),
        ("set_module_name", ("encoder.block1.conv2", None)),
        ("set_module_name_object_type_order", ("decoder", "Linear", 1, "O-dec-linear-1")),
    ]
    q, t = qqc.QConfigMapping(), tqm.QConfigMapping()
    for method, args in specs:
        getattr(q, method)(*args)
        getattr(t, method)(*args)
    names = ["", "fc", "encoder", "encoder.conv1", "encoder.block1", "encoder.block1.conv2",
             "encoder.block1.conv3", "encoder.block2.conv1", "decoder", "decoder.head", "decoder.head.fc",
             "decoderx.fc", "other.decoder"]
    checked = 0
    for name in names:
        for otype in ("Linear", "Conv2d", "ReLU"):
            want = _maybe_adjust_qconfig_for_module_type_or_name(t, otype, name, t.global_qconfig)
            assert q.lookup(name, otype) == want, (name, otype)
            for index in (0, 1):
                w2 = _maybe_adjust_qconfig_for_module_name_object_type_order(t, name, otype, index, want)
                assert q.lookup(name, otype, index) == w2, (name, otype, index)
                checked += 1
    assert checked == len(names) * 3 * 2
    # classes match their own key, then their name
    assert q.lookup("fc", qobs.MinMaxObserver) == "G"
    q.set_object_type(qobs.MinMaxObserver, "by-class")
    q.set_object_type("HistogramObserver", "by-name")
    assert q.lookup("fc", qobs.MinMaxObserver) == "by-class"
    assert q.lookup("fc", qobs.HistogramObserver) == "by-name"


def test_dict_round_trip_and_repr():
    m = (qqc.QConfigMapping().set_global(qqc.default_qconfig).set_object_type("Linear", None)
         .set_module_name_regex("a.*", qqc.default_qat_qconfig).set_module_name("b", qqc.default_qconfig)
         .set_module_name_object_type_order("c", "Linear", 0, None))
    d = m.to_dict()
    m2 = qqc.QConfigMapping.from_dict(d)
    assert m2.to_dict() == d
    assert "module_name_regex_qconfigs" in repr(m)
    with pytest.raises(ValueError, match="unknown qconfig dict keys"):
        qqc.QConfigMapping.from_dict({"modules": []})


def test_qconfig_checks():
    with pytest.raises(ValueError, match="observer instance"):
        qqc.QConfig(activation=qobs.MinMaxObserver(), weight=qobs.default_weight_observer)
    with pytest.raises(ValueError, match="observer instance"):
        qqc.QConfig(activation=qobs.MinMaxObserver, weight=qfq.default_fake_quant())
    with pytest.warns(FutureWarning, match="deprecated"):
        qd = qqc.QConfigDynamic(weight=qobs.default_weight_observer)
    assert qd.activation() is None
    with pytest.raises(ValueError, match="backend 'arm' is not supported"):
        qqc.get_default_qconfig("arm")
    with pytest.raises(ValueError, match="version 0 only"):
        qqc.get_default_qconfig("x86", version=1)
    with pytest.raises(ValueError, match="versions 0 and 1"):
        qqc.get_default_qat_qconfig("x86", version=2)
    assert qqc.qconfig_equals(qqc.get_default_qconfig("x86"), qqc.get_default_qconfig("fbgemm"))
    assert not qqc.qconfig_equals(qqc.get_default_qconfig("x86"), qqc.get_default_qconfig("qnnpack"))
    assert qqc.qconfig_equals(qqc.get_default_qat_qconfig("x86"), qqc.get_default_qat_qconfig("x86"))
    assert qqc.qconfig_equals(None, None) and not qqc.qconfig_equals(None, qqc.default_qconfig)
    assert qops.qconfig is qqc
