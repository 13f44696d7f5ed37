"""Every test in this folder needs numba.cuda: a GPU, or the simulator
(``NUMBA_ENABLE_CUDASIM=1`` set before numba is imported; ``.ci/run`` runs this
folder in its own pytest process for that)."""

import os

import pytest

HERE = os.path.dirname(__file__)


def _cuda_available():
    try:
        from numba import cuda

        return cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    ok = _cuda_available()
    skip = pytest.mark.skip(
        reason="no CUDA GPU; run `NUMBA_ENABLE_CUDASIM=1 pytest tests/cuda` for the simulator"
    )
    for item in items:
        if str(item.fspath).startswith(HERE):
            item.add_marker(pytest.mark.cuda)
            if not ok:
                item.add_marker(skip)
