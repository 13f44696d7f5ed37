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
persistent pool of ``numba.get_num_threads() - 1`` threads.

Handing a part over
-------------------
Waking a sleeping thread is what costs: a call whose two parts were empty took
45-57 µs (median) through ``concurrent.futures`` on that machine, most of it
two wake-ups, one of the worker and one of the caller when the worker is done.
So each side first *spins* a while before it sleeps, as OpenMP runtimes do:

* after its part, a worker polls its job counter for ``QOPS_SPIN_US``
  microseconds (default 300) before it blocks on its lock;
* after its own part, the caller polls the workers' done counters as long.

The polls are compiled loops (``nogil``, an atomic acquire load and the
CPU's spin-wait hint per iteration) over one 64-byte line per counter.  The
locks stay the only synchronisation that matters: each job is one release of
the worker's ``go`` lock and, when done, one release of its ``done`` lock,
and every wait ends with acquiring that lock; a poll only decides whether
that acquire finds the lock already free or has to sleep.  A counter is
written after its lock is released, so a poll that sees it never makes the
acquire sleep.  With both sides polling, two empty parts take 4.2 µs and
two parts of 16.4 µs take 18.9 µs (instead of 45 and 68).

``QOPS_SPIN_US=0`` turns polling off (every hand-over sleeps and wakes).  A
spinning worker occupies its core for at most that long after each call.

Only one call uses the pool at a time; a call that finds it busy (another
Python thread's, or a part that itself splits) runs its parts one after the
other on its own thread.  A forked child does not inherit the pool's threads;
it builds a new pool on first use.
"""

import _thread
import os
import platform
import sys
import threading
import time

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core.cgutils import get_or_insert_function as cgutils_get_or_insert_function
from numba.extending import intrinsic

from ._options import CPU

__all__ = ["parts", "run_parts", "run_ranges", "spin_microseconds"]

#: int64 slots per worker in the counter array: the job counter at 0, the done
#: counter at 8, 64 bytes apart, so that no two counters share a cache line.
_SLOTS = 16
_DONE = 8
_CALLER_CPU = 1
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
_LINUX = sys.platform.startswith("linux")
#: Polling iterations between two ``sched_yield`` calls.
_YIELD_EVERY = 128
#: Microseconds a worker keeps polling after its job is posted, so that the
#: caller, which posts and then starts its own part, has released the GIL
#: when the worker asks for it (a worker that finds the GIL held sleeps, and
#: waking it took 20-30 us: relu of 1M bytes in two parts took 28 or 50 us
#: at the median from one process to the next, 29 us every time with 3 us).
_GRACE_US = 3


def _slot(context, builder, sig, args):
    ary = context.make_array(sig.args[0])(context, builder, args[0])
    return builder.gep(ary.data, [args[1]])


@intrinsic
def _load_acquire(typingctx, ctl, i):
    """``ctl[i]`` as an atomic acquire load (never hoisted out of a loop)."""

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_slot(context, builder, sig, args), "acquire", 8)

    return types.int64(ctl, i), codegen


@intrinsic
def _store_release(typingctx, ctl, i, v):
    """``ctl[i] = v`` as an atomic release store."""

    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _slot(context, builder, sig, args), "release", 8)
        return context.get_dummy_value()

    return types.void(ctl, i, v), codegen


@intrinsic
def _relax(typingctx):
    """The CPU's spin-wait hint (x86 ``pause``); nothing elsewhere."""

    def codegen(context, builder, sig, args):
        if _X86:
            fnty = ir.FunctionType(ir.VoidType(), [])
            builder.call(builder.module.declare_intrinsic("llvm.x86.sse2.pause", fnty=fnty), [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _yield_cpu(typingctx):
    """``sched_yield()`` on Linux: a thread woken onto this CPU runs now
    instead of waiting for the poll to end; nothing elsewhere."""

    def codegen(context, builder, sig, args):
        if _LINUX:
            fnty = ir.FunctionType(ir.IntType(32), [])
            fn = cgutils_get_or_insert_function(builder.module, fnty, "sched_yield")
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _cpu(typingctx):
    """``sched_getcpu()`` on Linux: the CPU this thread runs on; -1 elsewhere."""

    def codegen(context, builder, sig, args):
        if _LINUX:
            fnty = ir.FunctionType(ir.IntType(32), [])
            fn = cgutils_get_or_insert_function(builder.module, fnty, "sched_getcpu")
            return builder.sext(builder.call(fn, []), ir.IntType(64))
        return ir.Constant(ir.IntType(64), -1)

    return types.int64(), codegen


@numba.njit(**CPU)
def _poll(ctl, i, above, budget):
    """Poll until ``ctl[i] > above``, at most ``budget`` iterations; True if seen."""
    for k in range(budget):
        if _load_acquire(ctl, i) > above:
            return True
        _relax()
        if k % _YIELD_EVERY == _YIELD_EVERY - 1:
            _yield_cpu()
    return _load_acquire(ctl, i) > above


@numba.njit(**CPU)
def _worker_wait(ctl, base, done, budget, grace):
    """A worker's hand-back: publish ``done`` in its done counter, then poll
    its job counter for a job after ``done`` (``budget`` iterations); once
    one is posted, ``grace`` more iterations before returning."""
    _store_release(ctl, base + _DONE, done)
    seen = _poll(ctl, base, done, budget)
    if seen:
        for _ in range(grace):
            _relax()
    return seen


@numba.njit(**CPU)
def _shared_cpu(ctl, base):
    """The CPU this worker shares with the caller that posted its job, or -1."""
    c = _cpu()
    return c if c >= 0 and c == _load_acquire(ctl, base + _CALLER_CPU) else -1


@numba.njit(**CPU)
def _post(ctl, nworkers, seq):
    """Publish job ``seq`` in the job counters of workers ``0 .. nworkers-1``,
    with the CPU the caller runs on."""
    c = _cpu()
    for w in range(nworkers):
        _store_release(ctl, w * _SLOTS + _CALLER_CPU, c)
        _store_release(ctl, w * _SLOTS, seq)


@numba.njit(**CPU)
def _join(ctl, nworkers, seq, budget):
    """Poll until every done counter of workers ``0 .. nworkers-1`` reaches
    ``seq``, at most ``budget`` iterations each; True if all did."""
    for w in range(nworkers):
        if not _poll(ctl, w * _SLOTS + _DONE, seq - 1, budget):
            return False
    return True


def spin_microseconds() -> float:
    """``QOPS_SPIN_US``: how long a side of a hand-over polls before it sleeps."""
    raw = os.environ.get("QOPS_SPIN_US", "300")
    try:
        us = float(raw)
    except ValueError:
        raise ValueError(f"QOPS_SPIN_US must be a number of microseconds, got {raw!r}") from None
    if not 0 <= us <= 1e6:
        raise ValueError(f"QOPS_SPIN_US must be between 0 and 1000000 microseconds, got {raw!r}")
    return us


def _iterations_per_us():
    """Polling iterations per microsecond on this CPU, measured once."""
    ctl = np.zeros(_SLOTS, np.int64)
    _poll(ctl, 0, 0, 1)  # compile / load from the cache
    n = 1 << 14
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        _poll(ctl, 0, 0, n)
        best = min(best, time.perf_counter() - t0)
    return n / max(best * 1e6, 1e-3)


def parts() -> int:
    """How many parts to split work into: Numba's thread count
    (``numba.set_num_threads`` sets it, as for the ``prange`` kernels)."""
    return max(1, numba.get_num_threads())


def leave_cpu(cpu):
    """Move the calling thread off CPU ``cpu`` (Linux; elsewhere, or when it
    may run nowhere else, it stays).  A worker that finds itself on the CPU
    of the caller that posted its job does this: the scheduler sometimes
    wakes or keeps a worker there, and both parts then share one core, call
    after call (a 1M-byte average pool in two parts: 106 us at the median in
    such a process, 55 us once the worker moves)."""
    try:
        cpus = os.sched_getaffinity(0)
        if cpus - {cpu}:
            os.sched_setaffinity(0, cpus - {cpu})  # moves this thread now
            os.sched_setaffinity(0, cpus)
    except (AttributeError, OSError):  # no affinity calls here
        pass


class _Worker:
    """One pool thread: runs the jobs posted to it, one at a time."""

    def __init__(self, pool, index):
        self.pool = pool
        self.base = index * _SLOTS
        self.go = _thread.allocate_lock()
        self.go.acquire()
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.job = None
        self.result = None
        threading.Thread(target=self._loop, name=f"qops-part-{index}", daemon=True).start()

    def _loop(self):
        ctl, budget = self.pool.ctl, self.pool.budget
        seq = 0
        while True:
            _worker_wait(ctl, self.base, seq, budget, self.pool.grace)
            self.go.acquire()
            seq, fn, args = self.job
            self.job = None
            try:  # whatever fails here is the caller's to see, never a dead worker
                cpu = _shared_cpu(ctl, self.base)
                if cpu >= 0:
                    leave_cpu(cpu)
                self.result = (fn(*args), None)
            except BaseException as exc:  # handed to the caller
                self.result = (None, exc)
            # drop the job's arrays now: held until the next job, the caller's
            # output of this call stayed alive while it allocated the next one
            # (two output buffers in turn instead of one, out of cache)
            del fn, args
            self.done.release()


class _Pool:
    def __init__(self, nworkers, budget):
        buf = np.zeros(nworkers * _SLOTS + 8, np.int64)
        off = (-buf.ctypes.data % 64) // 8
        self.ctl = buf[off:off + nworkers * _SLOTS]
        self.budget = budget
        self.grace = int(_GRACE_US * _per_us)
        self.seq = 0
        self.busy = threading.Lock()
        self.broken = False
        self.workers = [_Worker(self, i) for i in range(nworkers)]

    def run(self, fn, arg_tuples):
        workers = self.workers[:len(arg_tuples) - 1]
        self.seq += 1
        seq = self.seq
        for w, args in zip(workers, arg_tuples[1:]):
            w.job = (seq, fn, args)
            w.go.release()
        _post(self.ctl, len(workers), seq)
        finished = False
        try:
            try:
                first = (fn(*arg_tuples[0]), None)
            except BaseException as exc:
                first = (None, exc)
            _join(self.ctl, len(workers), seq, self.budget)
            for w in workers:  # never return while a part still writes
                w.done.acquire()
            finished = True
        finally:
            if not finished:  # interrupted while waiting: the locks are out of step
                self.broken = True
        results = [first] + [w.result for w in workers]
        for w in workers:
            w.result = None
        for _, exc in results:
            if exc is not None:
                raise exc
        return [r for r, _ in results]


_lock = threading.Lock()
_pool = None
_per_us = None


def _forget_pool():
    global _lock, _pool
    _lock = threading.Lock()
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def _pool_for(nworkers):
    """The pool with at least ``nworkers`` workers, held for this call; None
    when it is busy."""
    global _pool, _per_us
    with _lock:
        pool = _pool
        if pool is None or pool.broken or len(pool.workers) < nworkers:
            if _per_us is None:
                _per_us = _iterations_per_us()
            budget = int(spin_microseconds() * _per_us)
            if pool is not None and not pool.broken:
                nworkers = max(nworkers, len(pool.workers))
            pool = _pool = _Pool(nworkers, budget)
        if not pool.busy.acquire(blocking=False):
            return None
        return pool


def run_parts(fn, arg_tuples):
    """``[fn(*args) for args in arg_tuples]``, the first on this thread and the
    others on the pool at the same time; returns once all have finished (also
    when one raised: the first exception in ``arg_tuples`` order is re-raised
    then)."""
    if len(arg_tuples) == 1:
        return [fn(*arg_tuples[0])]
    pool = _pool_for(len(arg_tuples) - 1)
    if pool is None:
        return [fn(*args) for args in arg_tuples]
    try:
        return pool.run(fn, arg_tuples)
    finally:
        pool.busy.release()


def run_ranges(fn, n, *args, align=64, tail=()):
    """``fn(*args, lo, hi, *tail)`` over ``parts()`` consecutive ranges
    covering ``[0, n)``, each starting at a multiple of ``align``; returns the
    results in order."""
    k = parts()
    per = -(-n // k)
    per += -per % align
    return run_parts(fn, [args + (min(n, i * per), min(n, (i + 1) * per)) + tuple(tail)
                          for i in range(k)])
