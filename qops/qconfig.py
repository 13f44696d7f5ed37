"""QConfig and QConfigMapping: which observers quantize what, as torch 2.13.

A :class:`QConfig` pairs an activation and a weight observer *factory*
(a class or a ``with_args`` factory, never an instance); the named qconfigs
and ``get_default_qconfig`` / ``get_default_qat_qconfig`` build the same
observers torch builds for each backend.  :class:`QConfigMapping` chooses a
qconfig per operation with torch's priorities: global < object type <
module name regex < module name < (module name, object type, index).

Object types are keyed by name here (qops has no ``torch.nn`` classes):
``"ConvTranspose2d"`` stands for ``torch.nn.ConvTranspose2d``,
``"conv_transpose2d"`` for ``torch.nn.functional.conv_transpose2d``,
``"sigmoid"`` for ``torch.sigmoid`` and the ``"sigmoid"`` method.  A class or
function given to :meth:`QConfigMapping.lookup` matches its own key first,
then its ``__name__``.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections import OrderedDict, namedtuple

import numpy as np

from . import fake_quantize as _fq
from . import observer as _obs
from .dtypes import qint8

__all__ = [
    "QConfig",
    "QConfigDynamic",
    "QConfigMapping",
    "default_qconfig",
    "default_debug_qconfig",
    "default_per_channel_qconfig",
    "default_dynamic_qconfig",
    "float16_dynamic_qconfig",
    "float16_static_qconfig",
    "per_channel_dynamic_qconfig",
    "float_qparams_weight_only_qconfig",
    "float_qparams_weight_only_qconfig_4bit",
    "default_quint8_weight_qconfig",
    "default_qat_qconfig",
    "default_dynamic_qat_qconfig",
    "default_weight_only_qconfig",
    "default_activation_only_qconfig",
    "default_qat_qconfig_v2",
    "default_reuse_input_qconfig",
    "default_symmetric_qnnpack_qconfig",
    "default_per_channel_symmetric_qnnpack_qconfig",
    "default_symmetric_qnnpack_qat_qconfig",
    "default_per_channel_symmetric_qnnpack_qat_qconfig",
    "default_embedding_qat_qconfig",
    "default_embedding_qat_qconfig_4bit",
    "get_default_qconfig",
    "get_default_qat_qconfig",
    "get_default_qconfig_mapping",
    "get_default_qat_qconfig_mapping",
    "qconfig_equals",
]

_BACKENDS = ("fbgemm", "x86", "qnnpack", "onednn")


def _identity():
    """Stands for ``torch.nn.Identity``: no observer for this tensor."""
    return None


def _is_instance(obj):
    return isinstance(obj, (_obs.ObserverBase, _fq.FakeQuantizeBase))


class QConfig(namedtuple("QConfig", ["activation", "weight"])):
    """Observer factories for activations and weights.

    Parameters
    ----------
    activation, weight : class or factory
        Observer or fake-quantize classes, or ``with_args`` factories; every
        module quantized with this qconfig calls them for fresh observers.
        ``None`` (weight) means no weight observer.

    Raises
    ------
    ValueError
        If an observer instance is given instead of a factory.

    Examples
    --------
    >>> from qops import observer, qconfig
    >>> qc = qconfig.QConfig(activation=observer.MinMaxObserver.with_args(dtype="qint8"),
    ...                      weight=observer.default_weight_observer)
    >>> qc.activation().dtype
    qops.qint8
    """

    __slots__ = ()

    def __new__(cls, activation, weight):
        if _is_instance(activation) or _is_instance(weight):
            raise ValueError(
                "QConfig received an observer instance; pass the observer class instead, "
                "or MyObserver.with_args(x=1) to override constructor arguments"
            )
        return super().__new__(cls, activation, weight)


class QConfigDynamic(namedtuple("QConfigDynamic", ["activation", "weight"])):
    """Deprecated form of :class:`QConfig` for dynamic quantization (torch warns
    with a FutureWarning; so does qops)."""

    __slots__ = ()

    def __new__(cls, activation=_identity, weight=_identity):
        warnings.warn("QConfigDynamic is deprecated; use QConfig", FutureWarning, stacklevel=2)
        if _is_instance(weight):
            raise ValueError(
                "QConfigDynamic received an observer instance; pass the observer class instead"
            )
        return super().__new__(cls, activation, weight)


# ----------------------------------------------------------------- named qconfigs
default_qconfig = QConfig(activation=_obs.default_observer, weight=_obs.default_weight_observer)
default_debug_qconfig = QConfig(weight=_obs.default_weight_observer, activation=_obs.default_debug_observer)
default_per_channel_qconfig = QConfig(
    activation=_obs.default_observer, weight=_obs.default_per_channel_weight_observer
)
default_dynamic_qconfig = QConfig(
    activation=_obs.default_dynamic_quant_observer, weight=_obs.default_weight_observer
)
float16_dynamic_qconfig = QConfig(
    activation=_obs.PlaceholderObserver.with_args(dtype=np.float16, is_dynamic=True),
    weight=_obs.PlaceholderObserver.with_args(dtype=np.float16),
)
float16_static_qconfig = QConfig(
    activation=_obs.PlaceholderObserver.with_args(dtype=np.float16),
    weight=_obs.PlaceholderObserver.with_args(dtype=np.float16),
)
per_channel_dynamic_qconfig = QConfig(
    activation=_obs.default_dynamic_quant_observer, weight=_obs.default_per_channel_weight_observer
)
float_qparams_weight_only_qconfig = QConfig(
    activation=_obs.default_placeholder_observer, weight=_obs.default_float_qparams_observer
)
float_qparams_weight_only_qconfig_4bit = QConfig(
    activation=_obs.default_placeholder_observer, weight=_obs.default_float_qparams_observer_4bit
)
default_qat_qconfig = QConfig(activation=_fq.default_fake_quant, weight=_fq.default_weight_fake_quant)
default_dynamic_qat_qconfig = QConfig(
    activation=_fq.default_dynamic_fake_quant, weight=_fq.default_weight_fake_quant
)
default_weight_only_qconfig = QConfig(activation=_identity, weight=_fq.default_weight_fake_quant)
default_activation_only_qconfig = QConfig(activation=_fq.default_fake_quant, weight=_identity)
default_qat_qconfig_v2 = QConfig(
    activation=_fq.default_fused_act_fake_quant, weight=_fq.default_fused_wt_fake_quant
)
default_reuse_input_qconfig = QConfig(
    activation=_obs.default_reuse_input_observer, weight=_obs.NoopObserver
)
default_symmetric_qnnpack_qconfig = QConfig(
    activation=_obs.HistogramObserver.with_args(dtype=qint8, reduce_range=False, eps=2**-12),
    weight=_obs.weight_observer_range_neg_127_to_127,
)
default_per_channel_symmetric_qnnpack_qconfig = QConfig(
    activation=_obs.HistogramObserver.with_args(dtype=qint8, reduce_range=False, eps=2**-12),
    weight=_obs.per_channel_weight_observer_range_neg_127_to_127,
)
default_embedding_qat_qconfig = QConfig(
    activation=_obs.NoopObserver.with_args(dtype=np.float32), weight=_fq.default_embedding_fake_quant
)
default_embedding_qat_qconfig_4bit = QConfig(
    activation=_obs.NoopObserver.with_args(dtype=np.float32), weight=_fq.default_embedding_fake_quant_4bit
)
default_quint8_weight_qconfig = QConfig(activation=_obs.HistogramObserver, weight=_obs.MinMaxObserver)
default_symmetric_qnnpack_qat_qconfig = QConfig(
    activation=_fq.FusedMovingAvgObsFakeQuantize.with_args(
        observer=_obs.MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=qint8,
        reduce_range=False, eps=2**-12,
    ),
    weight=_fq.fused_wt_fake_quant_range_neg_127_to_127,
)
default_per_channel_symmetric_qnnpack_qat_qconfig = QConfig(
    activation=_fq.FusedMovingAvgObsFakeQuantize.with_args(
        observer=_obs.MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=qint8,
        reduce_range=False, eps=2**-12,
    ),
    weight=_fq.fused_per_channel_wt_fake_quant_range_neg_127_to_127,
)


def _check_backend(backend):
    if backend not in _BACKENDS:
        raise ValueError(f"backend {backend!r} is not supported; use one of {', '.join(_BACKENDS)}")


def get_default_qconfig(backend="x86", version=0):
    """The default post-training qconfig of ``backend``.

    x86 and fbgemm: HistogramObserver with ``reduce_range=True`` for
    activations, per-channel symmetric qint8 weights; qnnpack:
    ``reduce_range=False`` and per-tensor symmetric weights; onednn:
    ``reduce_range=False`` and per-channel weights (torch also warns on CPUs
    without VNNI; qops does not check the CPU).

    Raises
    ------
    ValueError
        Unknown backend or a version other than 0.
    """
    _check_backend(backend)
    if version != 0:
        raise ValueError(f"get_default_qconfig supports version 0 only, got {version!r}")
    if backend in ("fbgemm", "x86"):
        return QConfig(activation=_obs.HistogramObserver.with_args(reduce_range=True),
                       weight=_obs.default_per_channel_weight_observer)
    if backend == "qnnpack":
        return QConfig(activation=_obs.HistogramObserver.with_args(reduce_range=False),
                       weight=_obs.default_weight_observer)
    return QConfig(activation=_obs.HistogramObserver.with_args(reduce_range=False),
                   weight=_obs.default_per_channel_weight_observer)


def get_default_qat_qconfig(backend="x86", version=1):
    """The default quantization-aware-training qconfig of ``backend``.

    Version 1 (default) uses :class:`~qops.fake_quantize.FusedMovingAvgObsFakeQuantize`,
    version 0 :class:`~qops.fake_quantize.FakeQuantize`; activations are
    quint8 in [0, 255] (halved on x86 and fbgemm), weights per-channel
    symmetric (per-tensor on qnnpack).

    Raises
    ------
    ValueError
        Unknown backend or a version other than 0 and 1.
    """
    _check_backend(backend)
    if version not in (0, 1):
        raise ValueError(f"get_default_qat_qconfig supports versions 0 and 1, got {version!r}")
    fq = _fq.FakeQuantize if version == 0 else _fq.FusedMovingAvgObsFakeQuantize
    reduce = backend in ("fbgemm", "x86")
    if backend == "onednn":
        act = fq.with_args(observer=_obs.MovingAverageMinMaxObserver, quant_min=0, quant_max=255)
    else:
        act = fq.with_args(observer=_obs.MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                           reduce_range=reduce)
    if backend == "qnnpack":
        weight = _fq.default_weight_fake_quant if version == 0 else _fq.default_fused_wt_fake_quant
    else:
        weight = _fq.default_per_channel_weight_fake_quant if version == 0 else _fq.default_fused_per_channel_wt_fake_quant
    return QConfig(activation=act, weight=weight)


# ----------------------------------------------------------------- equality
def _partial_wrapper_equals(a, b):
    ka = copy.copy(a.p.keywords)
    kb = copy.copy(b.p.keywords)
    same = True
    if "observer" in ka and "observer" in kb:
        same = _ctr_equals(ka.pop("observer"), kb.pop("observer"))
    return a.p.func == b.p.func and a.p.args == b.p.args and same and ka == kb


def _ctr_equals(a, b):
    if isinstance(a, _obs._PartialWrapper) and isinstance(b, _obs._PartialWrapper):
        return _partial_wrapper_equals(a, b)
    return a == b


def qconfig_equals(q1, q2):
    """True if two qconfigs build the same observers (``with_args`` factories
    compare by class and arguments)."""
    if q1 is None or q2 is None:
        return q1 == q2
    try:
        return _ctr_equals(q1.activation, q2.activation) and _ctr_equals(q1.weight, q2.weight)
    except AttributeError:
        return q1 == q2


# ----------------------------------------------------------------- mapping
_GLOBAL_DICT_KEY = ""
_OBJECT_TYPE_DICT_KEY = "object_type"
_MODULE_NAME_REGEX_DICT_KEY = "module_name_regex"
_MODULE_NAME_DICT_KEY = "module_name"
_MODULE_NAME_OBJECT_TYPE_ORDER_DICT_KEY = "module_name_object_type_order"

_STYLE_ORDER = (
    "global_qconfig",
    "object_type_qconfigs",
    "module_name_regex_qconfigs",
    "module_name_qconfigs",
    "module_name_object_type_order_qconfigs",
)


class QConfigMapping:
    """Qconfigs per global default, object type, module name regex, module
    name, and (module name, object type, call index), in increasing priority.

    Examples
    --------
    >>> from qops import qconfig as Q
    >>> m = (Q.QConfigMapping().set_global(Q.default_qconfig)
    ...      .set_object_type("Linear", Q.default_per_channel_qconfig)
    ...      .set_module_name_regex("encoder.*", None)
    ...      .set_module_name("encoder.keep", Q.default_qconfig))
    >>> m.lookup("decoder.fc", "Linear") is Q.default_per_channel_qconfig
    True
    >>> m.lookup("encoder.fc", "Linear") is None
    True
    >>> m.lookup("encoder.keep.fc", "Linear") is Q.default_qconfig
    True
    """

    def __init__(self):
        self.global_qconfig = None
        self.object_type_qconfigs = OrderedDict()
        self.module_name_regex_qconfigs = OrderedDict()
        self.module_name_qconfigs = OrderedDict()
        self.module_name_object_type_order_qconfigs = OrderedDict()

    def set_global(self, global_qconfig):
        """Set the default qconfig."""
        self.global_qconfig = global_qconfig
        return self

    def set_object_type(self, object_type, qconfig):
        """Set the qconfig of an object type (a name, class or function)."""
        self.object_type_qconfigs[object_type] = qconfig
        return self

    def set_module_name_regex(self, module_name_regex, qconfig):
        """Set the qconfig of modules whose name matches ``module_name_regex``
        (``re.match``; the first registered pattern that matches wins)."""
        re.compile(module_name_regex)
        self.module_name_regex_qconfigs[module_name_regex] = qconfig
        return self

    def set_module_name(self, module_name, qconfig):
        """Set the qconfig of the module ``module_name`` and its submodules."""
        self.module_name_qconfigs[module_name] = qconfig
        return self

    def set_module_name_object_type_order(self, module_name, object_type, index, qconfig):
        """Set the qconfig of the ``index``-th call of ``object_type`` inside ``module_name``."""
        self.module_name_object_type_order_qconfigs[(module_name, object_type, index)] = qconfig
        return self

    # -- lookup -----------------------------------------------------------------
    def _object_type_qconfig(self, object_type, fallback):
        if object_type is None:
            return fallback
        d = self.object_type_qconfigs
        if object_type in d:
            return d[object_type]
        name = getattr(object_type, "__name__", None)
        if name is not None and name in d:
            return d[name]
        return fallback

    def _regex_qconfig(self, module_name, fallback):
        for pattern, qc in self.module_name_regex_qconfigs.items():
            if re.match(pattern, module_name):
                return qc
        return fallback

    def _name_qconfig(self, module_name, fallback):
        while module_name:
            if module_name in self.module_name_qconfigs:
                return self.module_name_qconfigs[module_name]
            module_name = module_name.rpartition(".")[0]
        return fallback

    def lookup(self, module_name="", object_type=None, index=None):
        """The qconfig for ``object_type`` used in module ``module_name``.

        Resolution as torch's FX prepare: the object type's qconfig (else the
        global one), overridden by the first matching regex, overridden by
        the qconfig of the module or its nearest named parent, overridden by
        a (module name, object type, index) entry when ``index`` is given.
        """
        qc = self._object_type_qconfig(object_type, self.global_qconfig)
        qc = self._regex_qconfig(module_name, qc)
        qc = self._name_qconfig(module_name, qc)
        if index is not None:
            for (name, otype, idx), q in self.module_name_object_type_order_qconfigs.items():
                if name == module_name and idx == index and (
                    otype == object_type or otype == getattr(object_type, "__name__", None)
                ):
                    return q
        return qc

    # -- dict form --------------------------------------------------------------
    def to_dict(self):
        """The torch-style dictionary form (lists of tuples per key)."""
        return {
            _GLOBAL_DICT_KEY: self.global_qconfig,
            _OBJECT_TYPE_DICT_KEY: list(self.object_type_qconfigs.items()),
            _MODULE_NAME_REGEX_DICT_KEY: list(self.module_name_regex_qconfigs.items()),
            _MODULE_NAME_DICT_KEY: list(self.module_name_qconfigs.items()),
            _MODULE_NAME_OBJECT_TYPE_ORDER_DICT_KEY: [
                (*k, v) for k, v in self.module_name_object_type_order_qconfigs.items()
            ],
        }

    @classmethod
    def from_dict(cls, qconfig_dict):
        """Build a mapping from :meth:`to_dict`'s form."""
        known = {_GLOBAL_DICT_KEY, _OBJECT_TYPE_DICT_KEY, _MODULE_NAME_REGEX_DICT_KEY,
                 _MODULE_NAME_DICT_KEY, _MODULE_NAME_OBJECT_TYPE_ORDER_DICT_KEY}
        unknown = set(qconfig_dict) - known
        if unknown:
            raise ValueError(f"unknown qconfig dict keys: {sorted(unknown)}")
        conf = cls()
        if _GLOBAL_DICT_KEY in qconfig_dict:
            conf.set_global(qconfig_dict[_GLOBAL_DICT_KEY])
        for object_type, qc in qconfig_dict.get(_OBJECT_TYPE_DICT_KEY, []):
            conf.set_object_type(object_type, qc)
        for pattern, qc in qconfig_dict.get(_MODULE_NAME_REGEX_DICT_KEY, []):
            conf.set_module_name_regex(pattern, qc)
        for name, qc in qconfig_dict.get(_MODULE_NAME_DICT_KEY, []):
            conf.set_module_name(name, qc)
        for name, object_type, index, qc in qconfig_dict.get(_MODULE_NAME_OBJECT_TYPE_ORDER_DICT_KEY, []):
            conf.set_module_name_object_type_order(name, object_type, index, qc)
        return conf

    def __repr__(self):
        out = type(self).__name__ + " ("
        for style in _STYLE_ORDER:
            out += f"\n {style}"
            value = getattr(self, style)
            if isinstance(value, OrderedDict) and value:
                for key, qc in value.items():
                    out += f"\n  {key}: {qc}"
            else:
                out += f"\n  {value}"
        return out + "\n)"


#: Operations with fixed output parameters, and their observers (torch's
#: ``_FIXED_QPARAMS_OP_TO_OBSERVER``, keyed by name).
_FIXED_QPARAMS_OPS = (
    ("Hardsigmoid", _obs.default_fixed_qparams_range_0to1_observer),
    ("hardsigmoid", _obs.default_fixed_qparams_range_0to1_observer),
    ("hardsigmoid_", _obs.default_fixed_qparams_range_0to1_observer),
    ("Sigmoid", _obs.default_fixed_qparams_range_0to1_observer),
    ("sigmoid", _obs.default_fixed_qparams_range_0to1_observer),
    ("sigmoid_", _obs.default_fixed_qparams_range_0to1_observer),
    ("Softmax", _obs.default_fixed_qparams_range_0to1_observer),
    ("Tanh", _obs.default_fixed_qparams_range_neg1to1_observer),
    ("tanh", _obs.default_fixed_qparams_range_neg1to1_observer),
    ("tanh_", _obs.default_fixed_qparams_range_neg1to1_observer),
)


def _default_mapping(is_qat, backend, version):
    qc = get_default_qat_qconfig(backend, version) if is_qat else get_default_qconfig(backend, version)
    default_weight = _fq.default_weight_fake_quant if is_qat else _obs.default_weight_observer
    if backend in ("fbgemm", "x86"):
        qc_transpose = QConfig(activation=qc.activation, weight=default_weight)
    else:
        qc_transpose = qc
    qc_layernorm = QConfig(activation=qc.activation, weight=_obs.default_placeholder_observer)
    mapping = QConfigMapping().set_global(qc).set_object_type("reshape", default_reuse_input_qconfig)
    for name in ("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
                 "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        mapping.set_object_type(name, qc_transpose)
    mapping.set_object_type("layer_norm", qc_layernorm)
    mapping.set_object_type("LayerNorm", qc_layernorm)
    mapping.set_object_type("PReLU", default_quint8_weight_qconfig)
    fixed = {}
    for op, observer in _FIXED_QPARAMS_OPS:
        key = id(observer)
        if key not in fixed:
            act = _fq.FixedQParamsFakeQuantize.with_args(observer=observer) if is_qat else observer
            fixed[key] = QConfig(activation=act, weight=default_weight)
        mapping.set_object_type(op, fixed[key])
    return mapping


def get_default_qconfig_mapping(backend="x86", version=0):
    """torch's default post-training :class:`QConfigMapping` for ``backend``.

    The backend's default qconfig globally; ``reshape`` reuses its input's
    observer; transposed convolutions get per-tensor weights on x86/fbgemm;
    layer norm keeps float weights; PReLU gets quint8 weights; sigmoid,
    hardsigmoid, softmax and tanh get their fixed output parameters.
    """
    return _default_mapping(False, backend, version)


def get_default_qat_qconfig_mapping(backend="x86", version=1):
    """torch's default quantization-aware-training :class:`QConfigMapping`."""
    return _default_mapping(True, backend, version)
