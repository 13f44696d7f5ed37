"""Shared fixtures: a seeded RNG per test, hypothesis settings, optional peers."""

import os

import numpy as np
import pytest

try:
    from hypothesis import settings

    # the first call of a kernel compiles it: no per-example deadline
    settings.register_profile("qops", deadline=None, max_examples=200)
    settings.load_profile(os.environ.get("QOPS_HYPOTHESIS_PROFILE", "qops"))
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def rng(request):
    """A ``numpy.random.Generator`` seeded from the test's name (stable across runs)."""
    seed = sum(request.node.nodeid.encode()) * 7919 % (2**32)
    return np.random.default_rng(seed)
