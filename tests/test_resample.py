"""interpolate / upsample* / channel_shuffle against torch 2.13 (engine fbgemm).

Integers, dtypes and output quantization parameters must equal torch's for
quint8, qint8 and qint32, in both of torch's kernels: NCHW and channels-last
(a QTensor that is a permuted view of an ``(N, H, W, C)`` buffer, or a tensor
whose strides fit both orders, which torch sends to the channels-last kernel).
The sweeps cross the channel counts where torch's channels-last bilinear
changes its fused multiply-adds (8 and 16), give sizes and scale factors
(torch maps positions with ``1 / scale_factor`` then), and include size-1 and
same-size dimensions, non-contiguous views and the extreme zero points.

Two torch defects are compared around (docs/ops_resample.md): where an input
is contiguous both ways, torch runs its channels-last kernel but returns an
NCHW-strided tensor holding channels-last data (compared here through its
raw buffer), and its 3-D channels-last nearest kernel returns after copying
batch 0 when no size changes.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import qops  # noqa: E402
from qops import functional as qf  # noqa: E402
from qops import _resample  # noqa: E402
from qops.qtensor import QTensor  # noqa: E402
from qops.kernels.cpu import resample as cpu_resample  # noqa: E402
from tests.oracles import torch_peer as peer  # noqa: E402

pytestmark = pytest.mark.filterwarnings(f"ignore:{peer.DEPRECATION_MESSAGE}:UserWarning")

F = torch.nn.functional
DTYPES = (qops.quint8, qops.qint8, qops.qint32)
#: channel counts around torch's vector widths (16-lane loop, 8-lane tail)
CHANNELS = (1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 48)


@pytest.fixture(autouse=True, scope="module")
def fbgemm_engine():
    with peer.engine("fbgemm"):
        yield


# ------------------------------------------------------------------ helpers
def full_range(rng, dtype, shape):
    lo, hi = (dtype.qmin, dtype.qmax) if dtype is not qops.qint32 else (-2**31, 2**31 - 1)
    a = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    a.flat[: min(2, a.size)] = (lo, hi)[: min(2, a.size)]
    return a.astype(dtype.storage)


def zero_point(rng, dtype):
    if dtype is qops.qint32:
        return int(rng.integers(-1000, 1000))
    return int(rng.choice([dtype.qmin, dtype.qmax, rng.integers(dtype.qmin, dtype.qmax + 1) | 1]))


def pair(ints, dtype, scale, zp, layout):
    """The same logical tensor as a QTensor and a torch tensor.

    ``layout``: ``"nchw"`` (contiguous), ``"nhwc"`` (a permuted view of a
    channels-last buffer) or ``"strided"`` (every other row and column of a
    larger tensor: neither layout, torch copies it to NCHW).
    """
    nd = ints.ndim
    if layout == "nhwc":
        perm = (0,) + tuple(range(2, nd)) + (1,)
        inv = (0, nd - 1) + tuple(range(1, nd - 1))
        buf = np.ascontiguousarray(ints.transpose(perm))
        q = qops.make_per_tensor_qtensor(buf, scale, zp, dtype).permute(inv)
        t = torch._make_per_tensor_quantized_tensor(torch.from_numpy(buf), scale, zp).permute(inv)
        return q, t
    if layout == "strided":
        big = np.zeros(ints.shape[:2] + tuple(2 * s for s in ints.shape[2:]), ints.dtype)
        sl = (slice(None), slice(None)) + (slice(None, None, 2),) * (nd - 2)
        big[sl] = ints
        q = qops.make_per_tensor_qtensor(big, scale, zp, dtype)[sl]
        t = torch._make_per_tensor_quantized_tensor(torch.from_numpy(big), scale, zp)[sl]
        return q, t
    q = qops.make_per_tensor_qtensor(ints, scale, zp, dtype)
    t = torch._make_per_tensor_quantized_tensor(torch.from_numpy(ints), scale, zp)
    return q, t


def channels_last(t):
    fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
    return t.is_contiguous(memory_format=fmt)


def torch_values(y, nhwc_kernel):
    """torch's output integers in logical order.

    Where torch ran its channels-last kernel but allocated the output NCHW
    (inputs contiguous both ways), the buffer holds channels-last data: read
    it so, and say so.
    """
    if nhwc_kernel and not channels_last(y):
        nd = y.dim()
        dtype = y.int_repr().numpy().dtype
        buf = np.frombuffer(bytes(y.untyped_storage()), dtype=dtype)[: y.numel()]
        shape = (y.shape[0],) + tuple(y.shape[2:]) + (y.shape[1],)
        return buf.reshape(shape).transpose((0, nd - 1) + tuple(range(1, nd - 1))), True
    return y.int_repr().numpy(), False


def check_same(q_out, t_out, nhwc_kernel, context):
    values, _ = torch_values(t_out, nhwc_kernel)
    got = q_out.int_repr()
    assert got.dtype == values.dtype, context
    np.testing.assert_array_equal(got, values, err_msg=str(context))
    assert q_out.q_scale() == t_out.q_scale() and q_out.q_zero_point() == t_out.q_zero_point(), context
    return got.size


def random_geometry(rng, nd, allow_same=True):
    """Spatial input sizes and either a size or scale_factor kwarg."""
    spatial = tuple(int(v) for v in rng.integers(1, 8, size=nd - 2))
    kind = rng.integers(0, 4)
    if kind == 0 and allow_same:  # same size, or a factor that keeps it (torch still remaps)
        sf = tuple(float(rng.choice([1.0, 1.1, 1.2])) for _ in spatial)
        return spatial, dict(scale_factor=sf) if rng.integers(0, 2) else dict(size=spatial)
    if kind == 1:
        sf = float(rng.choice([2.0, 3.0, 0.5, 1.5, 2.5, 1 / 3, 0.7]))
        if all(int(s * sf) >= 1 for s in spatial):
            return spatial, dict(scale_factor=sf)
    if kind == 2:
        sf = tuple(float(rng.uniform(0.4, 3.3)) for _ in spatial)
        if all(int(s * f) >= 1 for s, f in zip(spatial, sf)):
            return spatial, dict(scale_factor=sf)
    return spatial, dict(size=tuple(int(v) for v in rng.integers(1, 14, size=nd - 2)))


# ------------------------------------------------------------------ interpolate sweeps
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_interpolate_matches_torch(rng, dtype, mode):
    compared = nhwc_cases = both_ways = 0
    for case in range(90):
        nd = 5 if mode != "bilinear" and case % 3 == 0 else 4
        n = int(rng.integers(1, 3))
        c = int(rng.choice(CHANNELS))
        spatial, kw = random_geometry(rng, nd)
        if mode == "bilinear":
            kw["align_corners"] = bool(case % 2)
        layout = ("nchw", "nhwc", "nhwc", "strided")[case % 4]
        zp = zero_point(rng, dtype)
        scale = float(rng.choice([1e-30, 0.1, 3.7, 1e30]))
        q, t = pair(full_range(rng, dtype, (n, c) + spatial), dtype, scale, zp, layout)
        nhwc = channels_last(t)
        nhwc_cases += nhwc
        y = F.interpolate(t, mode=mode, **kw)
        out = qf.interpolate(q, mode=mode, **kw)
        if nd == 5 and nhwc and tuple(y.shape[2:]) == spatial and n > 1:
            # torch's 3-D channels-last copy returns after batch 0 (test_torch_3d_channels_last_copy)
            y, out = y[:1], out[:1]
        compared += check_same(out, y, nhwc, (mode, dtype, q.shape, kw, layout, zp))
        both_ways += torch_values(y, nhwc)[1]
        if layout == "nhwc" and nd == 4 and c > 1:
            assert channels_last(y) and out._data.transpose(0, 2, 3, 1).flags.c_contiguous
    assert compared > 50_000 and nhwc_cases > 30


def test_interpolate_large_parallel(rng, monkeypatch):
    """Outputs above the parallel thresholds take the parallel drivers: the
    nearest copy in parts handed over in compiled code (8-bit and 32-bit
    elements, 4-D and 5-D), bilinear in chunks."""
    from qops.kernels import _split

    for layout in ("nchw", "nhwc"):
        for dtype in (qops.quint8, qops.qint8, qops.qint32):
            ints = full_range(rng, dtype, (2, 24, 61, 47))
            q, t = pair(ints, dtype, 0.05, 131 if dtype is qops.quint8 else -3, layout)
            cases = [("nearest", dict(scale_factor=2.3))]
            if dtype is qops.quint8:
                cases.append(("bilinear", dict(size=(97, 130), align_corners=False)))
            for mode, kw in cases:
                y = F.interpolate(t, mode=mode, **kw)
                out = qf.interpolate(q, mode=mode, **kw)
                assert out.size >= max(cpu_resample.PARALLEL_MIN, cpu_resample.NEAREST_CL_PARTS_MIN)
                check_same(out, y, channels_last(t), (layout, mode, dtype))
                if mode == "nearest" and _split.parts() > 1:
                    fn = _split._pool.ctl[_split._HEADER + _split._FN]
                    assert fn == cpu_resample._NEAREST_JOB.compile()
        ints = full_range(rng, qops.quint8, (1, 5, 9, 23, 31))
        q, t = pair(ints, qops.quint8, 0.05, 7, layout)
        y = F.interpolate(t, scale_factor=(1.5, 2.0, 2.7), mode="nearest")
        out = qf.interpolate(q, scale_factor=(1.5, 2.0, 2.7), mode="nearest")
        assert out.size >= cpu_resample.NEAREST_PARTS_MIN
        check_same(out, y, False, (layout, "nearest 3-D"))


def test_bilinear_layouts_differ_as_in_torch(rng):
    """The two kernels round differently; qops follows torch's choice of kernel."""
    ints = full_range(rng, qops.quint8, (2, 40, 8, 6))
    qa, ta = pair(ints, qops.quint8, 0.1, 37, "nchw")
    qb, tb = pair(ints, qops.quint8, 0.1, 37, "nhwc")
    kw = dict(size=(14, 9), mode="bilinear", align_corners=False)
    ya, yb = F.interpolate(ta, **kw).int_repr().numpy(), F.interpolate(tb, **kw).int_repr().numpy()
    assert (ya != yb).any(), "no case separates torch's two kernels; choose another input"
    np.testing.assert_array_equal(qf.interpolate(qa, **kw).int_repr(), ya)
    np.testing.assert_array_equal(qf.interpolate(qb, **kw).int_repr(), yb)


def test_bilinear_ties_and_extremes(rng):
    """Half-way blends (neighbours of opposite parity, weights 1/2) with the
    extreme zero points, every channel count, both layouts."""
    for dtype in (qops.quint8, qops.qint8):
        for c in (7, 8, 16, 24, 33):
            ints = full_range(rng, dtype, (1, c, 4, 6))
            ints[..., 1::2] = np.where(ints[..., 1::2] % 2 == ints[..., ::2] % 2,
                                       ints[..., 1::2] ^ 1, ints[..., 1::2]).astype(dtype.storage)
            for zp in (dtype.qmin, dtype.qmax, dtype.qmin + 1):
                for layout in ("nchw", "nhwc"):
                    q, t = pair(ints, dtype, 0.25, zp, layout)
                    for kw in (dict(scale_factor=(1.0, 0.5)), dict(size=(7, 12), align_corners=True),
                               dict(scale_factor=2.0)):
                        y = F.interpolate(t, mode="bilinear", **kw)
                        check_same(qf.interpolate(q, mode="bilinear", **kw), y, channels_last(t), (dtype, c, zp, kw))


def test_source_indices_match_torch(rng):
    """The float32 index rules (``nearest``: float product; ``nearest-exact``:
    double product rounded to float) on many sizes, some large, read from
    torch through a qint32 ramp."""
    cases = [(38, None, 0.3), (24, None, 0.3), (32, 129, None), (1000, 2999, None), (4097, None, 2.9),
             (5, None, 1.1), (7, 7, None), (3, None, 1 / 3 * 9)]
    for _ in range(150):
        n_in = int(rng.integers(1, 300))
        if rng.integers(0, 2):
            cases.append((n_in, int(rng.integers(1, 700)), None))
        else:
            sf = float(rng.choice([rng.uniform(0.05, 6.0), rng.integers(1, 9) / rng.integers(1, 9)]))
            if int(n_in * sf) >= 1:
                cases.append((n_in, None, sf))
    separated = 0
    for n_in, n_out, sf in cases:
        ramp = torch.arange(n_in, dtype=torch.int32).reshape(1, 1, 1, n_in)
        ramp = torch._make_per_tensor_quantized_tensor(ramp, 1.0, 0)
        kw = dict(size=(2, n_out)) if sf is None else dict(scale_factor=(2.0, sf))
        out_n = n_out if sf is None else int(n_in * sf)
        for mode in ("nearest", "nearest-exact"):
            want = F.interpolate(ramp, mode=mode, **kw).int_repr().numpy()[0, 0, 0].astype(np.int64)
            got = _resample.nearest_indices(n_in, out_n, sf, mode == "nearest-exact")
            np.testing.assert_array_equal(got, want, err_msg=str((n_in, n_out, sf, mode)))
        # nearest-exact's double product must be rounded to float32 (floorf's argument)
        i = np.arange(out_n)
        scale = _resample._scale32(n_in, out_n, sf)
        in_double = np.minimum(np.floor((i + 0.5) * np.float64(scale)).astype(np.int64), n_in - 1)
        separated += int((in_double != _resample.nearest_indices(n_in, out_n, sf, True)).any())
    assert separated > 0


def test_area_is_adaptive_average_pooling(rng):
    """torch's quantized ``area`` mode is adaptive average pooling to the output size."""
    for shape, kw in [((2, 5, 7, 9), dict(size=(3, 4))), ((1, 3, 6, 5), dict(scale_factor=0.6)),
                      ((1, 2, 4, 5, 3), dict(size=(2, 3, 2)))]:
        for layout in ("nchw", "nhwc"):
            q, t = pair(full_range(rng, qops.quint8, shape), qops.quint8, 0.1, 7, layout)
            check_same(qf.interpolate(q, mode="area", **kw), F.interpolate(t, mode="area", **kw), False,
                       (shape, kw, layout))


def test_upsample_aliases_match_torch(rng):
    from torch.ao.nn.quantized import functional as tqf

    ints = full_range(rng, qops.quint8, (1, 5, 4, 6))
    for layout in ("nchw", "nhwc"):
        q, t = pair(ints, qops.quint8, 0.2, 99, layout)
        cl = channels_last(t)
        check_same(qf.upsample(q, scale_factor=1.7), tqf.upsample(t, scale_factor=1.7), cl, "upsample")
        check_same(qf.upsample(q, size=(9, 7), mode="bilinear"), tqf.upsample(t, size=(9, 7), mode="bilinear"), cl,
                   "upsample bilinear")
        check_same(qf.upsample_nearest(q, size=(5, 13)), tqf.upsample_nearest(t, size=(5, 13)), cl, "upsample_nearest")
        check_same(qf.upsample_bilinear(q, scale_factor=2.5), tqf.upsample_bilinear(t, scale_factor=2.5), cl,
                   "upsample_bilinear (align_corners=True)")
        check_same(qf.interpolate(q, size=7, mode="bilinear", align_corners=True),
                   tqf.interpolate(t, size=7, mode="bilinear", align_corners=True), cl, "interpolate")


# ------------------------------------------------------------------ profiles
@pytest.mark.parametrize("engine", ["qnnpack", "onednn"])
def test_other_torch_engines(rng, engine):
    """torch 2.13 runs the same ATen kernels under every engine: the qnnpack and
    onednn profiles equal torch with that engine (and fbgemm)."""
    with peer.engine(engine):
        for layout in ("nchw", "nhwc"):
            ints = full_range(rng, qops.quint8, (2, 19, 5, 7))
            q, t = pair(ints, qops.quint8, 0.1, 77, layout)
            for mode, kw in [("bilinear", dict(size=(9, 4), align_corners=False)), ("nearest", dict(scale_factor=1.6)),
                             ("nearest-exact", dict(size=(3, 11)))]:
                y = F.interpolate(t, mode=mode, **kw)
                out = qf.interpolate(q, mode=mode, numerics=engine, **kw)
                check_same(out, y, channels_last(t), (engine, mode))
                fbgemm = qf.interpolate(q, mode=mode, numerics="fbgemm", **kw)
                np.testing.assert_array_equal(out.int_repr(), fbgemm.int_repr())
            check_same(qf.channel_shuffle(q, 19, numerics=engine), F.channel_shuffle(t, 19), False, engine)


def naive_bilinear_reference(ints, zp, qmin, qmax, out_hw, align_corners, sf):
    """Plain loops in float64: the ideal blend of ``q - zp``, one rounding."""
    n, c, h, w = ints.shape
    oh, ow = out_hw
    if (oh, ow) == (h, w):  # no resampling
        return ints.astype(np.int64)

    def coord(i, n_in, n_out, s):
        if align_corners:
            return i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        scale = 1.0 / s if s is not None else n_in / n_out
        return max(scale * (i + 0.5) - 0.5, 0.0)

    out = np.empty((n, c, oh, ow), np.int64)
    for y in range(oh):
        ry = coord(y, h, oh, sf[0])
        y0 = min(int(np.floor(ry)), h - 1)
        y1 = min(y0 + 1, h - 1)
        ly = ry - y0
        for x in range(ow):
            rx = coord(x, w, ow, sf[1])
            x0 = min(int(np.floor(rx)), w - 1)
            x1 = min(x0 + 1, w - 1)
            lx = rx - x0
            v = ints.astype(np.int64) - zp
            top = (1 - lx) * v[:, :, y0, x0] + lx * v[:, :, y0, x1]
            bot = (1 - lx) * v[:, :, y1, x0] + lx * v[:, :, y1, x1]
            out[:, :, y, x] = np.clip(np.rint((1 - ly) * top + ly * bot) + zp, qmin, qmax)
    return out


def test_reference_profile(rng):
    """``reference`` bilinear is the ideal blend; nearest and shuffle are the
    same under every profile; bilinear stays within 1 LSB of torch's."""
    worst = 0
    for dtype in (qops.quint8, qops.qint8):
        for _ in range(12):
            c = int(rng.choice(CHANNELS))
            spatial, kw = random_geometry(rng, 4, allow_same=False)
            ac = bool(rng.integers(0, 2))
            zp = zero_point(rng, dtype)
            ints = full_range(rng, dtype, (2, c) + spatial)
            q, _ = pair(ints, dtype, 0.3, zp, "nhwc" if c % 2 else "nchw")
            ref = qf.interpolate(q, mode="bilinear", align_corners=ac, numerics="reference", **kw)
            out_hw = ref.shape[2:]
            sf = kw.get("scale_factor", (None, None))
            sf = sf if isinstance(sf, tuple) else (sf, sf)
            want = naive_bilinear_reference(ints, zp, dtype.qmin, dtype.qmax, out_hw, ac, sf)
            np.testing.assert_array_equal(ref.int_repr().astype(np.int64), want)
            torch_like = qf.interpolate(q, mode="bilinear", align_corners=ac, **kw).int_repr().astype(np.int64)
            worst = max(worst, int(np.abs(torch_like - want).max()))
    assert worst <= 1  # torch's float32 blend is at most one LSB from the ideal
    ints = full_range(rng, qops.qint8, (1, 6, 3, 5))
    q = qops.make_per_tensor_qtensor(ints, 0.1, -3, qops.qint8)
    base = qf.interpolate(q, scale_factor=2.2).int_repr()
    base_x = qf.interpolate(q, scale_factor=2.2, mode="nearest-exact").int_repr()
    shuf = qf.channel_shuffle(q, 3).int_repr()
    for profile in qops.available_numerics():
        np.testing.assert_array_equal(qf.interpolate(q, scale_factor=2.2, numerics=profile).int_repr(), base)
        np.testing.assert_array_equal(
            qf.interpolate(q, scale_factor=2.2, mode="nearest-exact", numerics=profile).int_repr(), base_x)
        np.testing.assert_array_equal(qf.channel_shuffle(q, 3, numerics=profile).int_repr(), shuf)
        if profile in ("onnxruntime", "tflite", "tflite_single"):
            with pytest.raises(NotImplementedError, match=f"under numerics '{profile}'.*fbgemm"):
                qf.interpolate(q, scale_factor=2.0, mode="bilinear", numerics=profile)


# ------------------------------------------------------------------ torch defects
def test_torch_3d_channels_last_copy(rng):
    """torch 2.13's 3-D channels-last nearest kernel returns after copying batch 0
    when no size changes; qops copies every batch."""
    ints = full_range(rng, qops.quint8, (3, 4, 2, 3, 2))
    q, t = pair(ints, qops.quint8, 0.1, 3, "nhwc")
    y = F.interpolate(t, size=(2, 3, 2), mode="nearest").int_repr().numpy()
    out = qf.interpolate(q, size=(2, 3, 2), mode="nearest").int_repr()
    np.testing.assert_array_equal(out, ints)
    np.testing.assert_array_equal(y[0], ints[0])


def test_torch_ambiguous_layout(rng):
    """(N, C, 1, 1) is contiguous both ways: torch blends in its channels-last
    kernel and writes channels-last data into an NCHW-strided result; qops
    returns those values in logical order."""
    ints = full_range(rng, qops.quint8, (2, 5, 1, 1))
    q, t = pair(ints, qops.quint8, 0.1, 3, "nchw")
    y = F.interpolate(t, size=(2, 3), mode="bilinear", align_corners=False)
    values, scrambled = torch_values(y, True)
    assert scrambled and not np.array_equal(y.int_repr().numpy(), values)
    out = qf.interpolate(q, size=(2, 3), mode="bilinear").int_repr()
    np.testing.assert_array_equal(out, values)
    np.testing.assert_array_equal(out, np.broadcast_to(ints, (2, 5, 2, 3)))


# ------------------------------------------------------------------ channel shuffle
def shuffle_oracle(a, groups):
    n, c = a.shape[:2]
    return a.reshape((n, groups, c // groups) + a.shape[2:]).swapaxes(1, 2).reshape(a.shape)


def test_channel_shuffle(rng):
    compared = 0
    for case in range(40):
        g = int(rng.integers(1, 6))
        c = g * int(rng.integers(1, 7))
        spatial = tuple(int(v) for v in rng.integers(1, 6, size=2))
        layout = ("nchw", "nhwc", "strided")[case % 3]
        ints = full_range(rng, qops.quint8, (int(rng.integers(1, 3)), c) + spatial)
        q, t = pair(ints, qops.quint8, 0.5, int(rng.integers(0, 256)), layout)
        out = qf.channel_shuffle(q, g)
        compared += check_same(out, F.channel_shuffle(t, g), False, (g, c, layout))
    big = full_range(rng, qops.quint8, (2, 64, 60, 40))
    for layout in ("nchw", "nhwc"):
        q, t = pair(big, qops.quint8, 0.5, 0, layout)
        compared += check_same(qf.channel_shuffle(q, 8), F.channel_shuffle(t, 8), False, ("big", layout))
    # torch takes quint8, 4-D only; the other dtypes and ranks move the same way
    for dtype, shape in [(qops.qint8, (2, 6, 3, 4)), (qops.qint32, (1, 6, 5)), (qops.qint8, (1, 6, 2, 3, 2))]:
        ints = full_range(rng, dtype, shape)
        for layout in ("nchw", "nhwc") if len(shape) > 3 else ("nchw",):
            q, _ = pair(ints, dtype, 0.5, 1, layout)
            np.testing.assert_array_equal(qf.channel_shuffle(q, 3).int_repr(), shuffle_oracle(ints, 3))
    assert compared > 600_000


# ------------------------------------------------------------------ validation
def test_validation():
    q = qops.make_per_tensor_qtensor(np.zeros((1, 2, 3, 4), np.uint8), 0.1, 3, qops.quint8)
    q5 = qops.make_per_tensor_qtensor(np.zeros((1, 2, 3, 4, 2), np.uint8), 0.1, 3, qops.quint8)
    q3 = qops.make_per_tensor_qtensor(np.zeros((1, 2, 3), np.uint8), 0.1, 3, qops.quint8)
    bad = [
        (TypeError, "quantized input", lambda: qf.interpolate(np.zeros((1, 2, 3, 4)), size=2)),
        (ValueError, "unknown mode 'bogus'", lambda: qf.interpolate(q, size=2, mode="bogus")),
        (NotImplementedError, "no upsample_bicubic2d", lambda: qf.interpolate(q, size=2, mode="bicubic")),
        (NotImplementedError, "upsample_trilinear3d", lambda: qf.interpolate(q5, size=2, mode="trilinear")),
        (NotImplementedError, "no adaptive_avg_pool1d", lambda: qf.interpolate(q3, size=2, mode="area")),
        (ValueError, "align_corners can only be set", lambda: qf.interpolate(q, size=2, mode="area",
                                                                              align_corners=False)),
        (ValueError, "only one of size or scale_factor", lambda: qf.interpolate(q, size=2, scale_factor=2.0)),
        (ValueError, "either size or scale_factor", lambda: qf.interpolate(q)),
        (ValueError, "align_corners can only be set", lambda: qf.interpolate(q, size=2, align_corners=False)),
        (ValueError, "align_corners can only be set", lambda: qf.interpolate(q5, size=2, mode="nearest-exact",
                                                                              align_corners=True)),
        (TypeError, "align_corners must be a bool", lambda: qf.interpolate(q, size=2, mode="bilinear",
                                                                            align_corners=1)),
        (ValueError, "4-D .N, C, H, W. input", lambda: qf.interpolate(q5, size=2, mode="bilinear")),
        (NotImplementedError, "no upsample_nearest1d", lambda: qf.interpolate(q3, size=2)),
        (ValueError, "expects a 4-D", lambda: qf.interpolate(q[0, 0], size=2)),
        (ValueError, "must give 2 spatial sizes", lambda: qf.interpolate(q, size=(2, 3, 4))),
        (ValueError, "must give 3 factors", lambda: qf.interpolate(q5, scale_factor=(2.0, 2.0))),
        (TypeError, "size must be an int", lambda: qf.interpolate(q, size=(2.5, 2))),
        (TypeError, "size must be an int", lambda: qf.interpolate(q, size=True)),
        (ValueError, "sizes must be positive", lambda: qf.interpolate(q, size=(0, 3))),
        (ValueError, "sizes must be positive", lambda: qf.interpolate(q, size=(-1, 3))),
        (ValueError, "sizes must be positive", lambda: qf.interpolate(q, scale_factor=0.1)),
        (ValueError, "finite and positive", lambda: qf.interpolate(q, scale_factor=-2.0)),
        (ValueError, "finite and positive", lambda: qf.interpolate(q, scale_factor=float("nan"))),
        (ValueError, "finite and positive", lambda: qf.interpolate(q, scale_factor=float("inf"))),
        (TypeError, "scale_factor must be a number", lambda: qf.interpolate(q, scale_factor="2")),
        (TypeError, "mode must be a string", lambda: qf.interpolate(q, size=2, mode=None)),
        (ValueError, "no channels", lambda: qf.interpolate(
            qops.make_per_tensor_qtensor(np.zeros((1, 0, 3, 4), np.uint8), 0.1, 3, qops.quint8), size=2)),
        (ValueError, "sizes must be positive", lambda: qf.interpolate(
            qops.make_per_tensor_qtensor(np.zeros((1, 2, 0, 4), np.uint8), 0.1, 3, qops.quint8), size=2)),
        (TypeError, "quint8, qint8 or qint32", lambda: qf.interpolate(
            QTensor._per_tensor(np.zeros((1, 2, 2, 2), np.uint8), qops.quint4x2, 0.1, 3), size=2)),
        (ValueError, "per-tensor", lambda: qf.interpolate(
            qops.make_per_channel_qtensor(np.zeros((1, 2, 2, 2), np.uint8), [0.1, 0.2], [0, 0], 1, qops.quint8),
            size=2)),
        (ValueError, "unknown numerics profile", lambda: qf.interpolate(q, size=2, numerics="bogus")),
        (TypeError, "groups must be an int", lambda: qf.channel_shuffle(q, 2.0)),
        (ValueError, "groups must be positive", lambda: qf.channel_shuffle(q, 0)),
        (ValueError, "must divide the 2 channels", lambda: qf.channel_shuffle(q, 3)),
        (ValueError, "at least one spatial", lambda: qf.channel_shuffle(q[0, 0], 1)),
        (TypeError, "quantized input", lambda: qf.channel_shuffle(torch.zeros(1, 2, 2, 2), 2)),
    ]
    for exc, match, call in bad:
        with pytest.raises(exc, match=match):
            call()
    # the torch side of a few of these
    t = torch._make_per_tensor_quantized_tensor(torch.zeros((1, 2, 3, 4), dtype=torch.uint8), 0.1, 3)
    for call in (lambda: F.interpolate(t, size=(0, 3)), lambda: F.interpolate(t, size=2, align_corners=False),
                 lambda: F.channel_shuffle(t, 3)):
        with pytest.raises((RuntimeError, ValueError)):
            call()


def test_empty_batch():
    q = qops.make_per_tensor_qtensor(np.zeros((0, 3, 4, 4), np.uint8), 0.1, 3, qops.quint8)
    t = torch._make_per_tensor_quantized_tensor(torch.zeros((0, 3, 4, 4), dtype=torch.uint8), 0.1, 3)
    for mode in ("nearest", "bilinear"):
        out = qf.interpolate(q, size=(3, 5), mode=mode)
        assert out.shape == tuple(F.interpolate(t, size=(3, 5), mode=mode).shape) == (0, 3, 3, 5)
