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


@pytest.mark.parametrize("path", ["serial", "compiled", "python"])
def test_pad_channels_last_matches_numpy(rng, monkeypatch, path):
    """Every path: one thread, parts handed over in compiled code (the job
    checked as posted where the rows make two tiles), parts as Python calls;
    NC(D)HW and channels-last sources."""
    from qops.kernels import _split

    if path == "python":
        monkeypatch.setattr(K, "run_compiled", lambda *args: False)
    fn = K.pad_channels_last_serial if path == "serial" else K.pad_channels_last
    split = path == "compiled" and _split.parts() > 1
    shapes = [(c, w, int(rng.integers(1, 4)), int(rng.integers(1, 6))) for c in (1, 3, 8, 16, 24, 64)
              for w in (1, 5, 7, 8, 9, 15, 16, 20, 28)]
    shapes += [(8, 9, 2, 19), (24, 16, 1, 40), (64, 28, 3, 11)]  # two or more tiles of rows
    for c, w, d, h in shapes:
        x = rng.integers(0, 256, (2, c, d, h, w)).astype(np.uint8)
        pads = (0, 0, 0) if w % 2 else (1, 2, 1)
        flip, zx = (0x80, 77) if c % 2 == 0 else (0, 0)
        want = _reference(x, flip, zx, *pads)
        for cl in (False, True):
            src = np.ascontiguousarray(x.transpose(0, 2, 3, 4, 1)) if cl else x
            out = np.empty((2, d + 2 * pads[0], h + 2 * pads[1], w + 2 * pads[2], c), np.uint8)
            seq = _split._pool.ctl[_split._SEQ] if _split._pool is not None else None
            fn(src.reshape(-1), cl, flip, zx, 2, c, d, h, w, *pads, out)
            np.testing.assert_array_equal(out, want, err_msg=str((c, w, d, h, cl)))
            if split and 2 * (d + 2 * pads[0]) * (h + 2 * pads[1]) >= 2 * K._TILE:
                ctl = _split._pool.ctl
                assert ctl[_split._SEQ] != seq and ctl[_split._HEADER + _split._FN] == K._PAD_JOB.compile()
