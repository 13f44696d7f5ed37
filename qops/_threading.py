"""Thread and fork safety of qops's parallel CPU kernels.

Numba runs ``prange`` loops on one process-wide *threading layer*.  Its
default choice on Linux is OpenMP when TBB is absent, and GNU OpenMP kills
children forked after the parent ran a parallel loop ("fork() called from a
process already using GNU OpenMP"), which hangs ``multiprocessing`` pools and
data loaders.  The ``workqueue`` layer survives fork but aborts on concurrent
launches from several threads.

qops's answer (documented in ``docs/threading.md``):

* unless the user chose a layer (``NUMBA_THREADING_LAYER`` in the environment,
  or ``numba.config.THREADING_LAYER`` set before qops's first kernel call), and
  unless the process already launched parallel Numba code, qops selects
  ``workqueue`` just before its first parallel kernel runs (not at import);
* every qops CPU kernel launch holds one process-wide lock, so concurrent
  calls from many Python threads take turns on the parallel layer instead of
  aborting it.  Each call still uses all cores.  (The clamps' short path,
  which runs no ``prange`` loop and takes the part pool atomically, skips
  it: ``qops._activation._clamp_short``.)
"""

from __future__ import annotations

import os
import threading

import numba

_lock = threading.RLock()
_configured = False


def _configure() -> None:
    global _configured
    with _lock:
        if _configured:
            return
        _configured = True
        if os.environ.get("NUMBA_THREADING_LAYER"):
            return
        if getattr(numba.config, "THREADING_LAYER", "default") != "default":
            return
        try:
            numba.threading_layer()
            return  # already launched: it cannot change any more
        except ValueError:
            pass
        numba.config.THREADING_LAYER = "workqueue"


def kernel_lock():
    """The lock every CPU kernel launch holds (a re-entrant lock, used as a
    context manager), after choosing the layer on the first call."""
    if not _configured:
        _configure()
    return _lock


def threading_layer() -> str:
    """Return the Numba threading layer in use (after the first parallel kernel),
    or the one that will be chosen."""
    try:
        return numba.threading_layer()
    except ValueError:
        return os.environ.get("NUMBA_THREADING_LAYER") or (
            numba.config.THREADING_LAYER
            if numba.config.THREADING_LAYER != "default"
            else "workqueue"
        )
