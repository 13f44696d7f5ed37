"""The fused convolution kernels (im2col + GEMM + requantization per pixel
block; padded channels-last depthwise with fbgemm's int16 pair saturation in
registers) against the step-by-step path they replace, bit for bit, under
every profile and with the portable GEMM too.  Both are also checked against
the peers elsewhere; here the two implementations must agree on cases the
peer sweeps reach rarely: full-scale 7x7x7 depthwise that drives fbgemm's
int16 activation sum to its limit, nonzero weight zero points, int8
activations, strides and dilation."""

import warnings

import numpy as np
import pytest

import qops
from qops import _conv
from qops.functional import conv1d, conv2d, conv3d
from qops.numerics import available_numerics

CONVS = {1: conv1d, 2: conv2d, 3: conv3d}


def _case(rng, nd, c, o, groups, k, stride, dilation, act, full_scale=False):
    spatial = (9, 8, 7)[:nd]
    xdt, lo, hi = (qops.quint8, 0, 255) if act == "u8" else (qops.qint8, -128, 127)
    x = rng.integers(lo, hi + 1, (2, c) + spatial).astype(xdt.storage)
    w = rng.integers(-128, 128, (o, c // groups) + (k,) * nd).astype(np.int8)
    if full_scale:
        x[:] = hi
        w[:] = 127
    zw = np.array([0, 0, 2, -3][: o], np.int64) if o <= 4 else rng.integers(-5, 6, o)
    xq = qops.make_per_tensor_qtensor(x, 0.02, (lo + hi + 1) // 2, xdt)
    wq = qops.make_per_channel_qtensor(w, np.full(o, 0.003), zw, 0, qops.qint8)
    wsym = qops.make_per_tensor_qtensor(w, 0.003, 0, qops.qint8)
    return xq, wq, wsym, dict(stride=stride, padding=(k // 2) * dilation, dilation=dilation, groups=groups)


@pytest.mark.parametrize("threads", ["one", "parts"])
@pytest.mark.parametrize("disable", ["", "1"], ids=["vnni", "portable"])
def test_fused_and_step_by_step_paths_agree(rng, monkeypatch, disable, threads):
    """... with the fused depthwise kernel on one thread or in parts."""
    monkeypatch.setenv("QOPS_DISABLE_VNNI", disable)
    monkeypatch.setattr(_conv, "_DW_SERIAL_MACS", 1 << 62 if threads == "one" else 0)
    cases = [
        (2, 16, 16, 16, 3, 1, 1, "u8", False),   # depthwise, fbgemm's saturating kernel
        (2, 8, 8, 8, 5, 2, 1, "u8", False),
        (2, 8, 8, 8, 3, 1, 2, "s8", False),      # dilated, int8 activations
        (3, 8, 8, 8, 7, 1, 1, "u8", True),       # 7x7x7 full scale: int16 activation-sum limit
        (1, 8, 8, 8, 3, 1, 1, "u8", False),
        (2, 12, 20, 1, 3, 1, 1, "u8", False),    # plain GEMM conv
        (2, 8, 12, 2, 3, 2, 1, "s8", False),     # grouped, strided
        (2, 16, 8, 1, 1, 1, 1, "u8", False),     # 1x1 read in place
        (3, 4, 6, 1, 3, 1, 1, "u8", False),
    ]
    compared = 0
    for nd, c, o, groups, k, stride, dilation, act, full in cases:
        xq, wq, wsym, geo = _case(rng, nd, c, o, groups, k, stride, dilation, act, full)
        for profile in available_numerics():
            if (act == "u8") != (profile not in ("tflite", "tflite_single")) and profile not in (
                    "onnxruntime", "reference"):
                continue
            w = wsym if profile in ("onednn", "tflite", "tflite_single") else wq
            outs = []
            for fused in (True, False):
                monkeypatch.setattr(_conv, "_FUSED_CONV", fused)
                monkeypatch.setattr(_conv, "_FUSED_DEPTHWISE", fused)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # accumulator-overflow notice
                    outs.append(CONVS[nd](xq, w, None, scale=0.5, zero_point=int(xq.q_zero_point()),
                                          numerics=profile, **geo).int_repr())
            np.testing.assert_array_equal(outs[0], outs[1], err_msg=f"{profile} {nd}-D c={c} o={o} g={groups}")
            compared += outs[0].size
    assert compared > 50000


def test_fused_im2col_rows_match_the_patches(rng):
    """The fused kernels' im2col (runs of whole kernel rows by memcpy, or a
    copy per tap for groups and dilation; the border and the padded columns
    by memset) writes the bytes of the step-by-step ``im2col``, for any
    block of rows, on 1-D to 3-D geometries with borders on every side."""
    from qops.kernels.cpu import conv as K

    cases = [  # (C, c0, cg, kernel, stride, pad, dilation, spatial)
        (16, 0, 16, (1, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), (1, 7, 6)),
        (8, 0, 8, (1, 1, 5), (1, 1, 2), (0, 0, 3), (1, 1, 1), (1, 1, 9)),  # pads wider than a side
        (12, 4, 4, (1, 3, 3), (1, 2, 1), (0, 1, 2), (1, 1, 1), (1, 6, 5)),  # a group's channels
        (8, 0, 8, (1, 3, 3), (1, 1, 1), (0, 2, 2), (1, 2, 2), (1, 6, 6)),  # dilation
        (4, 0, 4, (3, 2, 3), (2, 1, 1), (1, 1, 1), (1, 1, 1), (4, 3, 5)),
        (3, 0, 3, (1, 1, 7), (1, 1, 1), (0, 0, 3), (1, 1, 1), (1, 1, 4)),  # kernel wider than the input
    ]
    for c, c0, cg, k, s, p, d, sp in cases:
        x = rng.integers(0, 256, (2,) + sp + (c,)).astype(np.uint8)
        o = tuple((sp[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(3))
        ktot = k[0] * k[1] * k[2] * cg
        kp = -(-ktot // 4) * 4 + 4  # padded columns too
        m = 2 * o[0] * o[1] * o[2]
        want = np.full(m * kp, 99, np.uint8)
        K.im2col(x, 77, c0, cg, *k, *s, *p, *d, *o, want, kp)
        want = want.reshape(m, kp)
        want[:, ktot:] = 0
        for r0, r1 in ((0, m), (1, m - 2), (m // 2, m // 2 + 1)):
            got = np.full((r1 - r0) * kp, 99, np.uint8)
            K._im2col_rows(x.reshape(-1), *x.shape, np.uint8(77), c0, cg, *k, *s, *p, *d, *o, r0, r1, got, kp)
            np.testing.assert_array_equal(got.reshape(r1 - r0, kp), want[r0:r1], err_msg=str((c, k, s, p, d)))


@pytest.mark.parametrize("disable", ["", "1"], ids=["vnni", "portable"])
def test_fused_conv_blocks_in_parts_both_hand_overs(rng, monkeypatch, disable):
    """The fused convolution's blocks in parts, handed to the pool as a
    compiled job (checked: the job was posted) and as Python calls, give the
    integers of one thread: dense 3x3 (padding, stride), grouped, 1x1 read in
    place, depthwise, nonzero weight zero points, int8 activations, fused
    ReLU, under the torch, onnxruntime and reference epilogues."""
    import numba

    from qops.kernels import _split
    from qops.kernels.cpu import conv as K
    from qops.kernels.cpu import gemm

    monkeypatch.setenv("QOPS_DISABLE_VNNI", disable)
    job = K._CONV_JOB_VNNI if gemm.vnni_available() else K._CONV_JOB_PORTABLE
    monkeypatch.setattr(_conv, "_DW_SERIAL_MACS", 0)  # the depthwise kernel in parts too
    cases = [  # (c, o, groups, k, stride, act)
        (16, 24, 1, 3, 1, "u8"), (16, 32, 2, 3, 2, "s8"), (32, 16, 1, 1, 1, "u8"), (8, 40, 1, 3, 1, "s8"),
        (16, 16, 16, 3, 1, "u8"), (24, 24, 24, 5, 2, "s8"),  # depthwise
    ]
    threads = numba.get_num_threads()
    for c, o, groups, k, stride, act in cases:
        xdt, lo, hi = (qops.quint8, 0, 255) if act == "u8" else (qops.qint8, -128, 127)
        x = rng.integers(lo, hi + 1, (2, c, 23, 21)).astype(xdt.storage)
        xq = qops.make_per_tensor_qtensor(x, 0.02, (lo + hi + 1) // 2 + 3, xdt)
        w = rng.integers(-128, 128, (o, c // groups, k, k)).astype(np.int8)
        wq = qops.make_per_channel_qtensor(w, rng.uniform(0.001, 0.004, o), rng.integers(-4, 5, o), 0,
                                           qops.qint8)
        bias = rng.standard_normal(o).astype(np.float32)
        geo = dict(stride=stride, padding=k // 2, groups=groups)
        for profile in ("fbgemm", "qnnpack", "onnxruntime", "reference"):
            if profile in ("fbgemm", "qnnpack") and act == "s8":  # torch takes quint8 only
                continue
            for op in (qops.functional.conv2d, qops.functional.conv2d_relu):
                def run():
                    return op(xq, wq, bias, scale=0.3, zero_point=9, numerics=profile, **geo).int_repr()

                numba.set_num_threads(1)
                try:
                    want = run()
                finally:
                    numba.set_num_threads(threads)
                got = run()
                if _split.parts() > 1:
                    posted = K._DW_JOB if groups == c == o else job
                    assert _split._pool.ctl[_split._HEADER + _split._FN] == posted.compile()
                with monkeypatch.context() as m:
                    m.setattr(K, "run_compiled", lambda *args: False)
                    by_python = run()
                np.testing.assert_array_equal(got, want, err_msg=f"{profile} c={c} o={o} g={groups}")
                np.testing.assert_array_equal(by_python, want, err_msg=f"{profile} c={c} o={o} g={groups}")
