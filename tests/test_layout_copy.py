"""The 8-bit NC(D)HW -> N(D)HWC copy kernel (``conv.pad_channels_last``):
blocked 8x8 transposes, the last block overlapping when W is not a multiple
of 8, a scalar loop for the rest; with a border and the int8 -> uint8 flip."""

import numpy as np
import pytest

from qops.kernels.cpu import conv as K


def _reference(x, flip, zx, pd, ph, pw):
    n, c, d, h, w = x.shape
    out = np.full((n, d + 2 * pd, h + 2 * ph, w + 2 * pw, c), zx, np.uint8)
    out[:, pd:pd + d, ph:ph + h, pw:pw + w, :] = x.transpose(0, 2, 3, 4, 1) ^ np.uint8(flip)
    return out


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_pad_channels_last_matches_numpy(rng, parallel):
    fn = K.pad_channels_last if parallel else K.pad_channels_last_serial
    for c in (1, 3, 8, 16, 24, 64):
        for w in (1, 5, 7, 8, 9, 15, 16, 20, 28):
            d, h = int(rng.integers(1, 4)), int(rng.integers(1, 6))
            x = rng.integers(0, 256, (2, c, d, h, w)).astype(np.uint8)
            pads = (0, 0, 0) if w % 2 else (1, 2, 1)
            flip, zx = (0x80, 77) if c % 2 == 0 else (0, 0)
            out = np.empty((2, d + 2 * pads[0], h + 2 * pads[1], w + 2 * pads[2], c), np.uint8)
            fn(x.reshape(-1), False, flip, zx, 2, c, d, h, w, *pads, out)
            np.testing.assert_array_equal(out, _reference(x, flip, zx, *pads), err_msg=str((c, w)))
