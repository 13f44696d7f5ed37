"""Parts of one serial kernel's work on several Python threads at once.

qops's default threading layer, Numba's ``workqueue`` (see
``docs/threading.md``), wakes its workers while the calling thread sleeps.
For short memory-bound passes that buys little on the reference 2-core
machine: the AVX-512 min/max of 16M float32 took 2.0-2.2 ms on one thread and
1.0-2.3 ms (median 2.3) on two ``workqueue`` workers, but 0.81-1.37 ms (median
0.86-1.37) as two halves of the serial kernel, one on the calling thread and
one on a waiting Python thread (three processes, 30 calls each).  Kernels are
compiled ``nogil``, so such threads run in parallel.

:func:`run_parts` is that: the first part on the caller, the others on a
persistent pool of ``numba.get_num_threads() - 1`` threads.  A forked child
does not inherit the pool's threads; it gets a new pool on first use.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

__all__ = ["parts", "run_parts", "run_ranges"]

_lock = threading.Lock()
_pool = None
_pool_pid = None
_pool_size = 0


def parts() -> int:
    """How many parts to split work into: Numba's thread count
    (``numba.set_num_threads`` sets it, as for the ``prange`` kernels)."""
    return max(1, numba.get_num_threads())


def _executor(workers):
    global _pool, _pool_pid, _pool_size
    with _lock:
        if _pool is None or _pool_pid != os.getpid() or _pool_size < workers:
            if _pool is not None and _pool_pid == os.getpid():
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="qops-part")
            _pool_pid = os.getpid()
            _pool_size = workers
        return _pool


def run_parts(fn, arg_tuples):
    """``[fn(*args) for args in arg_tuples]``, the first on this thread and the
    others on the pool at the same time; returns once all have finished (also
    when one raised: the first exception is re-raised then)."""
    if len(arg_tuples) == 1:
        return [fn(*arg_tuples[0])]
    ex = _executor(len(arg_tuples) - 1)
    futures = [ex.submit(fn, *args) for args in arg_tuples[1:]]
    try:
        first = fn(*arg_tuples[0])
    finally:
        for f in futures:  # never return while a part still writes
            f.exception()
    return [first] + [f.result() for f in futures]


def run_ranges(fn, n, *args, align=64, tail=()):
    """``fn(*args, lo, hi, *tail)`` over ``parts()`` consecutive ranges
    covering ``[0, n)``, each starting at a multiple of ``align``; returns the
    results in order."""
    k = parts()
    per = -(-n // k)
    per += -per % align
    return run_parts(fn, [args + (min(n, i * per), min(n, (i + 1) * per)) + tuple(tail)
                          for i in range(k)])
