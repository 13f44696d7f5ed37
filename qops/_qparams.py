"""Choosing quantization parameters from a data range, as torch does."""

from __future__ import annotations

import numpy as np

_SMALL_SCALE = np.float32(6.1e-5)


def choose_qparams(min_val, max_val, qmin, qmax, *, preserve_sparsity=False, reduce_range=False):
    """torch's ``quant_utils::ChooseQuantizationParams`` (ATen, 2.13), exactly.

    ``min_val``/``max_val`` are float32 values.  Returns ``(scale, zero_point)``
    with the scale as the float64 torch stores (the kernels narrow it to
    float32) and an int zero point.
    """
    f32 = np.float32
    mn = f32(min_val)
    mx = f32(max_val)
    if reduce_range:
        qmin = int(qmin / 2)  # C++ integer division truncates toward zero
        qmax = int(qmax / 2)
    if mn < 0 and mx > 0 and preserve_sparsity:
        sym_qmin = -((qmax - qmin) // 2 + 1)
        sym_qmax = (qmax - qmin) // 2
        max_scale = max(abs(f32(mn / f32(sym_qmin))), abs(f32(mx / f32(sym_qmax))))
        mn = f32(max_scale * sym_qmin)
        mx = f32(max_scale * sym_qmax)
    mn = min(mn, f32(0.0))
    mx = max(mx, f32(0.0))
    scale = (float(mx) - float(mn)) / (qmax - qmin)
    with np.errstate(over="ignore", divide="ignore"):
        if f32(scale) == 0.0 or np.isinf(f32(1.0) / f32(scale)):
            scale = 0.1
    if scale < float(_SMALL_SCALE):
        org = f32(scale)
        scale = float(_SMALL_SCALE)
        if mn == 0.0:
            mx = f32(_SMALL_SCALE * f32(qmax - qmin))
        elif mx == 0.0:
            mn = f32(-_SMALL_SCALE * f32(qmax - qmin))
        else:
            amp = f32(_SMALL_SCALE / org)
            mn = f32(mn * amp)
            mx = f32(mx * amp)
    zp_from_min = qmin - float(mn) / scale
    zp_from_max = qmax - float(mx) / scale
    err_min = abs(qmin) + abs(float(mn) / scale)
    err_max = abs(qmax) + abs(float(mx) / scale)
    initial = zp_from_min if err_min < err_max else zp_from_max
    if mn < 0 and mx > 0 and preserve_sparsity:
        initial = (qmin + qmax) / 2
    if initial < qmin:
        zp = qmin
    elif initial > qmax:
        zp = qmax
    else:
        zp = int(np.rint(initial))
    return float(scale), int(zp)
