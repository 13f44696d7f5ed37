"""Observers on 16M float32 values: qops beside torch 2.13 in one run.

Each class times one observer's ``forward`` (a calibration step) with
``impl`` naming the implementation: ``qops`` (parallel Numba kernels) or
``torch`` (``torch.ao.quantization.observer``), both on ``common.THREADS``
threads and the same data (``common.float_data``, N(0, 4^2)).  ``setup`` ends
with one call of the timed operation (commented ``# compile``), which also
sets the observers' range: the timed calls are steady-state calibration steps.
"""

from . import common

IMPLS = ["qops", "torch"]


def _observer(impl, name, **kw):
    if impl == "qops":
        return getattr(common.qops_module().observer, name)(**kw)
    torch = common.torch_module()
    return getattr(torch.ao.quantization.observer, name)(**kw)


def _data(impl, shape=None):
    x = common.float_data(common.BIG)
    if shape is not None:
        x = x.reshape(shape)
    if impl == "torch":
        return common.torch_module().from_numpy(x.copy())
    return x


class MinMaxObserver:
    """MinMaxObserver.forward: one global min/max reduction."""

    params = [IMPLS]
    param_names = ["impl"]

    def setup(self, impl):
        obs = _observer(impl, "MinMaxObserver")
        x = _data(impl)
        self.fn = lambda: obs(x)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_forward(self, impl):
        self.fn()


class PerChannelMinMaxObserver:
    """PerChannelMinMaxObserver.forward, 64 channels on the first axis
    (weights) or the last one (channels-last activations)."""

    params = [IMPLS, ["first", "last"]]
    param_names = ["impl", "axis"]

    def setup(self, impl, axis):
        c = common.CHANNELS
        shape = (c, common.BIG // c) if axis == "first" else (common.BIG // c, c)
        obs = _observer(impl, "PerChannelMinMaxObserver", ch_axis=0 if axis == "first" else 1)
        x = _data(impl, shape)
        self.fn = lambda: obs(x)
        self.fn()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_forward(self, impl, axis):
        self.fn()


class HistogramObserver:
    """HistogramObserver.forward (min/max plus a 2048-bin histogram update)
    and calculate_qparams (the L2 range search) after one batch."""

    params = [IMPLS]
    param_names = ["impl"]

    def setup(self, impl):
        obs = _observer(impl, "HistogramObserver")
        x = _data(impl)
        self.obs = obs
        self.fn = lambda: obs(x)
        self.fn()  # compile
        obs.calculate_qparams()  # compile
        if impl == "qops":
            common.limit_numba_threads()

    def time_forward(self, impl):
        self.fn()

    def time_calculate_qparams(self, impl):
        self.obs.calculate_qparams()
