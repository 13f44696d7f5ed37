"""Quantized transposed convolution against torch 2.13 and the exact oracle.

``qops.functional.conv_transpose{1,2,3}d`` must return the integers of
``torch.ops.quantized.conv_transpose{n}d`` (with ``conv_transpose{n}d_prepack``)
under each engine's profile, and the exact result under ``reference``.  The
sweeps draw torch's own deconvolution test ranges (batch 1-2, channels per
group up to 16, groups up to depthwise, kernels 1-5, strides 1-3, padding 0-2,
output padding below the stride, dilation 1-2, bias or not) with full-range
activations, and run many cases per test so the kernels compile once.

Measured torch 2.13.0 behaviour these tests pin down (and the docs state):

* fbgemm, onednn (and x86) take per-tensor weights only; qnnpack also
  per-channel ones along axis 1 with groups 1.
* onednn reads each group's ``(C_in/g, C_out/g)`` weight block permuted
  unless ``C_in/g == C_out/g`` (``qops._conv_transpose.onednn_weight_order``),
  refuses output padding, and leaves output pixels that no input reaches
  ("holes") occasionally uninitialized.
* qnnpack's conv_transpose3d fills only the first output depth slice.
* fbgemm's direct kernel (2-D, groups 1, channels multiples of 8, kernel
  height 2, width <= 6, equal strides 1 or 2, no padding) is wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

import qops
from qops._conv_transpose import fbgemm_direct_path, onednn_weight_order
from tests.oracles import exact

torch = pytest.importorskip("torch")
from tests.oracles import torch_peer as peer  # noqa: E402

F = qops.functional


# ------------------------------------------------------------------ oracles
def _wrap32(a):
    return (a + 2**31) % 2**32 - 2**31


def out_size(spatial, kernel, stride, padding, output_padding, dilation):
    return tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1
                 for n, k, s, p, op, d in zip(spatial, kernel, stride, padding, output_padding, dilation))


def accumulate_transposed(x, zx, w, zw, stride, padding, output_padding, dilation, groups):
    """The plainest transposed convolution: every input pixel ``i`` and tap
    ``t`` add ``(x - zx)(w - zw)`` to output pixel ``i*s - p + t*d`` when it
    lies inside the output; exact int64, wrapped to int32 at the end.

    ``x`` ``(N, C_in, *sp)``, ``w`` ``(C_in, C_out/g, *k)``, ``zw`` a scalar
    or ``C_out/g`` values (per-channel along axis 1).  Returns
    ``(N, C_out, *out)`` int64 and the mask of output pixels no pair reaches.
    """
    nd = x.ndim - 2
    n, cin = x.shape[:2]
    og = w.shape[1]
    cg = cin // groups
    kernel = w.shape[2:]
    out = out_size(x.shape[2:], kernel, stride, padding, output_padding, dilation)
    # a full-size canvas, cropped by the padding at the end
    full = tuple((sz - 1) * s + d * (k - 1) + 1 + op
                 for sz, k, s, d, op in zip(x.shape[2:], kernel, stride, dilation, output_padding))
    full = tuple(max(f, o + p) for f, o, p in zip(full, out, padding))
    acc = np.zeros((n, groups, og) + full, np.int64)
    hits = np.zeros(full, np.int64)
    xd = (np.asarray(x, np.int64) - zx).reshape((n, groups, cg) + x.shape[2:])
    wd = (np.asarray(w, np.int64) - np.asarray(zw, np.int64).reshape((1, -1) + (1,) * nd))
    wd = wd.reshape((groups, cg, og) + tuple(kernel))
    for tap in np.ndindex(*kernel):
        contrib = np.einsum("ngc...,gco->ngo...", xd, wd[(slice(None),) * 3 + tap])
        index = tuple(slice(t * d, t * d + s * (sz - 1) + 1, s)
                      for t, d, s, sz in zip(tap, dilation, stride, x.shape[2:]))
        acc[(slice(None),) * 3 + index] += contrib
        hits[index] += 1
    crop = tuple(slice(p, p + o) for p, o in zip(padding, out))
    acc = acc[(slice(None),) * 3 + crop].reshape((n, groups * og) + out)
    return _wrap32(acc), hits[crop] == 0


def torch_conv_transpose(x, sx, zx, w, sw, zw, bias, so, zo, stride, padding, output_padding,
                         dilation, groups):
    """``torch.ops.quantized.conv_transpose{n}d`` under the selected engine;
    per-channel weights (array ``sw``) along axis 1."""
    nd = x.ndim - 2
    with peer.quiet():
        xq = peer.make_per_tensor(x, sx, zx)
        wq = peer.make_per_channel(w, sw, zw, 1) if np.ndim(sw) else peer.make_per_tensor(w, sw, zw)
        b = None if bias is None else torch.from_numpy(np.ascontiguousarray(bias, np.float32))
        prepack = getattr(torch.ops.quantized, f"conv_transpose{nd}d_prepack")
        packed = prepack(wq, b, list(stride), list(padding), list(output_padding), list(dilation),
                         int(groups))
        y = getattr(torch.ops.quantized, f"conv_transpose{nd}d")(xq, packed, float(so), int(zo))
        return y.int_repr().numpy()


def qops_conv_transpose(profile, x, sx, zx, w, sw, zw, bias, so, zo, stride, padding,
                        output_padding, dilation, groups, x_dtype=qops.quint8, w_dtype=qops.qint8):
    nd = x.ndim - 2
    xq = qops.make_per_tensor_qtensor(x, sx, zx, x_dtype)
    if np.ndim(sw):
        wq = qops.make_per_channel_qtensor(w, np.asarray(sw, np.float64), np.asarray(zw), 1, w_dtype)
    else:
        wq = qops.make_per_tensor_qtensor(w, sw, zw, w_dtype)
    f = getattr(F, f"conv_transpose{nd}d")
    y = f(xq, wq, bias, stride, padding, output_padding, groups, dilation, so, zo, numerics=profile)
    return y


# ------------------------------------------------------------------ case generator
def draw_case(rng, nd, *, per_channel=False, groups_choice=(1, 1, 2, 3, "dw"), max_op=None,
              zw_range=(-5, 6), nonzero_op=True):
    """One random case in the ranges of torch's deconvolution tests."""
    while True:
        g = groups_choice[rng.integers(len(groups_choice))]
        cg = int(rng.integers(1, 17)) if g != "dw" else 1
        groups = int(rng.integers(2, 9)) if g == "dw" else int(g)
        og = int(rng.integers(1, 17)) if g != "dw" else int(rng.choice([1, 2]))
        k = tuple(int(v) for v in rng.integers(1, 6 if nd < 3 else 4, nd))
        stride = tuple(int(v) for v in rng.integers(1, 4, nd))
        padding = tuple(int(v) for v in rng.integers(0, 3, nd))
        dilation = tuple(int(v) for v in rng.integers(1, 3, nd))
        if nonzero_op:
            output_padding = tuple(int(rng.integers(0, s)) for s in stride)
        else:
            output_padding = (0,) * nd
        n = int(rng.integers(1, 3))
        spatial = tuple(int(v) for v in rng.integers(1, {1: 9, 2: 7, 3: 4}[nd], nd))
        out = out_size(spatial, k, stride, padding, output_padding, dilation)
        if min(out) >= 1:
            break
    cin = cg * groups
    x = rng.integers(0, 256, (n, cin) + spatial).astype(np.uint8)
    w = rng.integers(-128, 128, (cin, og) + k).astype(np.int8)
    zx = int(rng.integers(0, 256))
    sx = float(np.float32(rng.uniform(0.002, 0.05)))
    if per_channel:
        sw = rng.uniform(0.002, 0.02, og)
        zw = rng.integers(*zw_range, og) if zw_range else np.zeros(og, np.int64)
    else:
        sw = float(np.float32(rng.uniform(0.002, 0.02)))
        zw = int(rng.integers(*zw_range)) if zw_range else 0
    bias = rng.normal(0, 2, og * groups).astype(np.float32) if rng.random() < 0.7 else None
    # an output scale that uses most of the range (and saturates some values)
    typical = sx * float(np.max(sw)) * 70 * np.sqrt(cg * np.prod(k))
    so = float(np.float32(typical / 40 * rng.uniform(0.5, 2.0)))
    zo = int(rng.integers(0, 256))
    return (x, sx, zx, w, sw, zw, bias, so, zo, stride, padding, output_padding, dilation, groups)


def compare_sweep(engine, profile, cases, *, skip_holes=False):
    """Compare every case; return (values compared, hole values skipped)."""
    compared = skipped = 0
    with peer.engine(engine):
        for case in cases:
            want = torch_conv_transpose(*case)
            got = qops_conv_transpose(profile, *case)
            got_ints = got.int_repr()
            assert got_ints.dtype == np.uint8 and got_ints.shape == want.shape
            assert (got.q_scale(), got.q_zero_point()) == (case[7], case[8])
            mask = np.ones(want.shape, bool)
            if skip_holes:
                x, w = case[0], case[3]
                _, holes = accumulate_transposed(x[:1, :1], 0, w[:1, :1], 0, *case[9:13], 1)
                mask &= ~holes[None, None]
                skipped += int(np.sum(~mask))
            np.testing.assert_array_equal(got_ints[mask], want[mask], err_msg=repr(case[9:]))
            compared += int(mask.sum())
    return compared, skipped


# ------------------------------------------------------------------ fbgemm
def test_fbgemm_sweep_matches_torch(rng):
    """Per-tensor weights with nonzero zero points, groups up to depthwise,
    1-D/2-D/3-D: torch engine fbgemm, bit for bit (cases on fbgemm's direct
    path raise instead, tested below)."""
    cases = []
    for i in range(150):
        nd = (1, 2, 3)[i % 3]
        case = draw_case(rng, nd)
        cases.append(case)
    compared, _ = compare_sweep("fbgemm", "fbgemm", cases)
    assert compared > 50_000


def test_fbgemm_is_x86_with_nonzero_weight_zero_point(rng):
    """torch's x86 engine runs transposed convolution with a nonzero weight
    zero point on fbgemm (with zero point 0 on onednn, tested below)."""
    cases = [draw_case(rng, 2, zw_range=(1, 6)) for _ in range(20)]
    compare_sweep("x86", "fbgemm", cases)


def test_fbgemm_near_the_direct_path_boundary(rng):
    """Shapes one step away from fbgemm's direct kernel take its im2col path
    and match; shapes on it raise NotImplementedError, and torch's result
    there is indeed not the convolution (so the refusal is needed)."""
    near = [  # (cin, cout, kernel, stride, padding)
        (8, 8, (2, 7), (1, 1), (0, 0)), (8, 8, (3, 2), (2, 2), (0, 0)), (8, 8, (2, 2), (3, 3), (0, 0)),
        (8, 8, (2, 1), (1, 3), (0, 0)), (8, 8, (2, 2), (2, 2), (1, 0)), (12, 8, (2, 2), (2, 2), (0, 0)),
        (8, 4, (2, 2), (2, 2), (0, 0)), (8, 8, (2, 2), (2, 2), (0, 0), (2, 2)),
    ]
    cases = []
    for cin, cout, k, s, p, *d in near:
        x = rng.integers(0, 256, (2, cin, 4, 5)).astype(np.uint8)
        w = rng.integers(-128, 128, (cin, cout) + k).astype(np.int8)
        d = d[0] if d else (1, 1)
        cases.append((x, 0.02, 3, w, 0.01, 0, None, 0.02 * 0.01 * cin * 40, 128, s, p, (0, 0), d, 1))
    compare_sweep("fbgemm", "fbgemm", cases)

    x = rng.integers(0, 256, (1, 8, 3, 4)).astype(np.uint8)
    w = rng.integers(-128, 128, (8, 8, 2, 2)).astype(np.int8)
    case = (x, 0.02, 3, w, 0.01, 0, None, 0.05, 128, (2, 2), (0, 0), (0, 0), (1, 1), 1)
    with pytest.raises(NotImplementedError, match="direct kernel"):
        qops_conv_transpose("fbgemm", *case)
    with peer.engine("fbgemm"):
        want = torch_conv_transpose(*case)
    ideal = qops_conv_transpose("reference", *case).int_repr()
    assert np.sum(np.abs(want.astype(int) - ideal.astype(int)) > 1) > want.size // 10


def test_fbgemm_direct_path_rule():
    packed = qops._conv_transpose.PackedConvTransposeWeight(
        qops.make_per_tensor_qtensor(np.zeros((16, 8, 2, 6), np.int8), 0.1, 0, qops.qint8), nd=2)
    assert fbgemm_direct_path(packed, (2, 2), (0, 0), (1, 1))
    assert fbgemm_direct_path(packed, (2, 1), (0, 0), (1, 1))
    assert not fbgemm_direct_path(packed, (3, 1), (0, 0), (1, 1))
    assert not fbgemm_direct_path(packed, (1, 1), (0, 0), (2, 2))
    assert not fbgemm_direct_path(packed, (1, 1), (0, 1), (1, 1))


# ------------------------------------------------------------------ qnnpack
def test_qnnpack_sweep_matches_torch(rng):
    """1-D and 2-D, per-tensor (any groups) and per-channel along axis 1
    (groups 1), nonzero weight zero points: torch engine qnnpack, bit for bit,
    every output pixel."""
    cases = [draw_case(rng, 1 + i % 2) for i in range(80)]
    cases += [draw_case(rng, 1 + i % 2, per_channel=True, groups_choice=(1,)) for i in range(60)]
    compared, _ = compare_sweep("qnnpack", "qnnpack", cases)
    assert compared > 30_000


def test_qnnpack_3d_is_refused_because_torch_fills_one_depth_slice(rng):
    x = rng.integers(0, 256, (1, 3, 2, 3, 3)).astype(np.uint8)
    w = rng.integers(-128, 128, (3, 2, 2, 2, 2)).astype(np.int8)
    case = (x, 0.02, 10, w, 0.01, 0, None, 0.2, 100, (1,) * 3, (0,) * 3, (0,) * 3, (1,) * 3, 1)
    with pytest.raises(NotImplementedError, match="first output depth slice"):
        qops_conv_transpose("qnnpack", *case)
    with peer.engine("qnnpack"):
        want = torch_conv_transpose(*case)
    with peer.engine("fbgemm"):
        good = torch_conv_transpose(*case)
    np.testing.assert_array_equal(want[:, :, 0], good[:, :, 0])
    assert np.any(want[:, :, 1:] != good[:, :, 1:])


# ------------------------------------------------------------------ onednn
@pytest.mark.parametrize("engine", ["onednn", "x86"])
def test_onednn_sweep_matches_torch(rng, engine):
    """Weight zero point 0, output padding 0, all groups: torch engines onednn
    and x86 (which routes these to onednn), bit for bit outside the "holes"
    (output pixels no input reaches, where torch occasionally returns
    uninitialized values)."""
    cases = [draw_case(rng, (1, 2, 3)[i % 3], zw_range=None, nonzero_op=False)
             for i in range(90 if engine == "onednn" else 30)]
    compared, skipped = compare_sweep(engine, "onednn", cases, skip_holes=True)
    assert compared > (20_000 if engine == "onednn" else 5_000)


def test_onednn_weight_permutation(rng):
    """torch's onednn uses a permuted weight when C_in/g != C_out/g: its
    result differs from the ideal one by far more than rounding, and the
    permutation qops applies is exactly that."""
    assert np.array_equal(onednn_weight_order(3, 3), np.arange(9))
    assert np.array_equal(onednn_weight_order(1, 4), np.arange(4))
    assert onednn_weight_order(3, 2).tolist() == [0, 4, 3, 2, 1, 5]
    x = rng.integers(0, 256, (1, 6, 5, 5)).astype(np.uint8)
    w = rng.integers(-128, 128, (6, 4, 3, 3)).astype(np.int8)
    case = (x, 0.03, 120, w, 0.01, 0, None, 0.5, 128, (2, 2), (0, 0), (0, 0), (1, 1), 1)
    with peer.engine("onednn"):
        want = torch_conv_transpose(*case)
    np.testing.assert_array_equal(qops_conv_transpose("onednn", *case).int_repr(), want)
    ideal = qops_conv_transpose("reference", *case).int_repr().astype(int)
    assert np.max(np.abs(want.astype(int) - ideal)) > 10


# ------------------------------------------------------------------ reference
@pytest.mark.parametrize("x_dtype", [qops.quint8, qops.qint8])
def test_reference_is_exact(rng, x_dtype):
    """The exact oracle (rational arithmetic) on small cases: per-tensor and
    per-channel (axis 1, with groups), float and int32 bias, quint8 and qint8
    activations, a quint8 weight."""
    total = 0
    for i in range(8):
        per_channel = i % 2 == 1
        while True:  # small enough for the rational oracle
            case = draw_case(rng, 1 + i % 3, per_channel=per_channel)
            x, sx, zx, w, sw, zw, bias, so, zo, stride, padding, op, dil, groups = case
            outs = out_size(x.shape[2:], w.shape[2:], stride, padding, op, dil)
            if x.shape[0] * w.shape[1] * groups * np.prod(outs) <= 600:
                break
        w_dtype = qops.qint8
        if x_dtype is qops.qint8:
            x = (x.astype(np.int16) - 128).astype(np.int8)
            zx -= 128
            zo -= 128
        if i == 3:  # quint8 weight
            w = (w.astype(np.int16) + 128).astype(np.uint8)
            zw = np.asarray(zw) + 128 if per_channel else zw + 128
            w_dtype = qops.quint8
        if i == 5:
            bias = rng.integers(-3000, 3000, w.shape[1] * groups).astype(np.int32)
        got = qops_conv_transpose("reference", x, sx, zx, w, sw, zw, bias, so, zo, stride, padding, op,
                                  dil, groups, x_dtype=x_dtype, w_dtype=w_dtype).int_repr()
        acc, _ = accumulate_transposed(x, zx, w, zw, stride, padding, op, dil, groups)
        og = w.shape[1]
        sw_o = np.tile(np.broadcast_to(np.asarray(sw, np.float32), (og,)), groups)
        kw = dict(int_bias=bias) if bias is not None and bias.dtype == np.int32 else dict(bias=bias)
        want = exact.linear(np.moveaxis(acc, 1, -1), sx, sw_o, so, zo, x_dtype.qmin, x_dtype.qmax, **kw)
        np.testing.assert_array_equal(got, np.moveaxis(want, -1, 1).astype(x_dtype.storage))
        total += got.size
    assert total > 100


def test_accumulator_oracle_agrees_with_torch_float(rng):
    """The scatter oracle equals torch's float conv_transpose on integers."""
    for nd in (1, 2, 3):
        case = draw_case(rng, nd)
        x, _, zx, w, _, zw, _, _, _, s, p, op, d, g = case
        acc, _ = accumulate_transposed(x, zx, w, zw, s, p, op, d, g)
        f = getattr(torch.nn.functional, f"conv_transpose{nd}d")
        ref = f(torch.from_numpy(x.astype(np.float64) - zx), torch.from_numpy(w.astype(np.float64) - zw),
                None, s, p, op, g, d).numpy()
        np.testing.assert_array_equal(acc, _wrap32(ref.astype(np.int64)))


# ------------------------------------------------------------------ layouts and edges
def test_noncontiguous_input_and_unit_dims(rng):
    """A channels-last view, a sliced view and size-1 spatial dims give the
    same integers as the contiguous input (and as torch)."""
    x = rng.integers(0, 256, (2, 5, 1, 7)).astype(np.uint8)
    w = rng.integers(-128, 128, (5, 3, 3, 2)).astype(np.int8)
    xq = qops.make_per_tensor_qtensor(x, 0.02, 7, qops.quint8)
    wq = qops.make_per_tensor_qtensor(w, 0.01, 1, qops.qint8)
    base = F.conv_transpose2d(xq, wq, None, 2, 1, 1, 1, 1, 0.3, 100).int_repr()
    cl = qops.make_per_tensor_qtensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), 0.02, 7,
                                      qops.quint8).permute(0, 3, 1, 2)
    np.testing.assert_array_equal(F.conv_transpose2d(cl, wq, None, 2, 1, 1, 1, 1, 0.3, 100).int_repr(), base)
    wide = np.zeros((2, 5, 1, 14), np.uint8)
    wide[..., ::2] = x
    sliced = qops.make_per_tensor_qtensor(wide, 0.02, 7, qops.quint8)[..., ::2]
    y = F.conv_transpose2d(sliced, wq, None, 2, 1, 1, 1, 1, 0.3, 100)
    np.testing.assert_array_equal(y.int_repr(), base)
    with peer.engine("fbgemm"):
        want = torch_conv_transpose(x, 0.02, 7, w, 0.01, 1, None, 0.3, 100, (2, 2), (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_array_equal(base, want)


def test_extreme_scales_and_zero_points(rng):
    """Tiny and huge output scales (everything saturates or rounds to zo),
    zero points at the ends of the range, against torch fbgemm and qnnpack."""
    cases = []
    for so, zo, zx in [(1e-6, 0, 255), (1e6, 255, 0), (1e-3, 1, 128), (3.0, 254, 1)]:
        x = rng.integers(0, 256, (1, 4, 6)).astype(np.uint8)
        w = rng.integers(-128, 128, (4, 3, 3)).astype(np.int8)
        cases.append((x, 0.05, zx, w, 0.02, 0, rng.normal(size=3).astype(np.float32), so, zo,
                      (2,), (1,), (1,), (1,), 1))
    compare_sweep("fbgemm", "fbgemm", cases)
    compare_sweep("qnnpack", "qnnpack", cases)


def test_packed_weight_is_reused(rng):
    """A PackedConvTransposeWeight carries its bias and gives the same result."""
    w = qops.make_per_tensor_qtensor(rng.integers(-128, 128, (4, 3, 3)).astype(np.int8), 0.02, 0, qops.qint8)
    b = rng.normal(size=6).astype(np.float32)
    x = qops.make_per_tensor_qtensor(rng.integers(0, 256, (2, 4, 5)).astype(np.uint8), 0.05, 9, qops.quint8)
    packed = qops._conv_transpose.PackedConvTransposeWeight(w, b, 2, 1)
    a = F.conv_transpose1d(x, w, b, 2, 0, 1, 2, 1, 0.2, 7).int_repr()
    for profile in ("fbgemm", "qnnpack", "reference"):
        np.testing.assert_array_equal(
            F.conv_transpose1d(x, packed, None, 2, 0, 1, 2, 1, 0.2, 7, numerics=profile).int_repr(),
            F.conv_transpose1d(x, w, b, 2, 0, 1, 2, 1, 0.2, 7, numerics=profile).int_repr())
    np.testing.assert_array_equal(F.conv_transpose1d(x, packed, None, 2, 0, 1, 2, 1, 0.2, 7).int_repr(), a)
    with pytest.raises(ValueError, match="carries its own bias"):
        F.conv_transpose1d(x, packed, b, 2, 0, 1, 2, 1, 0.2, 7)
