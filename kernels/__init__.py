"""Numba kernels behind qops (installed as ``qops.kernels``).

``cpu`` and ``cuda`` are siblings with the same function names and argument
order. Kernels take arrays, scalars and a preallocated ``out``; they do no
validation: that is the job of the public API in ``qops``.
"""

from ._cache import install as _install_cache_locators

# before any kernel module defines a cached function
_install_cache_locators()
