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
  microseconds (default 300) in a compiled loop (:func:`_serve`: ``nogil``,
  an atomic acquire load and the CPU's spin-wait hint per iteration), then
  sleeps until a caller wakes it (below);
* after its own part, the caller polls the workers' done counters.

Two kinds of jobs go through the same counters:

* **Python jobs** (:func:`run_parts`, :func:`run_ranges`): the worker leaves
  its loop, takes the GIL, calls ``fn(*args)`` and releases its ``done``
  lock; the caller polls, then acquires every ``done`` lock.  Taking the GIL
  and unboxing the arguments cost several microseconds a call: two parts of
  16.4 µs took 24 µs.
* **Compiled jobs** (:func:`run_compiled`): a compiled caller writes each
  part's arguments (addresses, shapes, integers, float bits) into the
  worker's slots and posts the address of a C callback (a Numba ``cfunc``,
  :class:`CompiledJob`) that rebuilds the arrays and runs the serial kernel
  on its range.  The worker runs it inside its polling loop, without the
  GIL.  Each part has a claim word: the worker claims its part when it sees
  the job, and the caller, once its own part is done, claims and runs every
  part still unclaimed (a sleeping worker's), so a call never waits for a
  wake-up; a sleeping worker is woken as the call starts, and is polling by
  the next one.  A polling worker that finds itself on the caller's CPU
  (the scheduler tends to wake a thread where its waker runs) moves off it
  in compiled code too.  The hand-over costs well under a microsecond: relu
  of 1M bytes in two parts 13-14 µs against 23-24 on one thread.

A worker moves itself between polling, busy and asleep; whoever wakes it
moves it from asleep to waking, then wakes it, once.  On Linux (x86-64,
arm64) a worker sleeps on a futex on its state word, in compiled code, and
wakers (also compiled callers, as they post a job) wake it there: it is
back to polling without touching the GIL.  A worker that slept on a Python
lock had to take the GIL on its way back, and lost it to the calling
thread's short Python stretches for milliseconds: after an idle gap, the
first few calls then ran on one thread.  Elsewhere the worker sleeps on its
``go`` lock, which the waker releases (a waker interrupted between the two
steps would leave it asleep: a sleeping worker looks at its state every
``_NAP`` seconds).

``QOPS_SPIN_US=0`` turns polling off (every Python hand-over sleeps and
wakes; the caller runs the parts of compiled jobs, but for a part a worker
woken by the call claims first).  A spinning worker occupies its
core for at most that long after each call.

Only one call uses the pool at a time; a call that finds it busy (another
Python thread's, or a part that itself splits) runs its parts one after the
other on its own thread.  A forked child does not inherit the pool's threads;
it builds a new pool on first use.
"""

import _thread
import ctypes
import os
import platform
import sys
import threading
import time

import numba
import numpy as np
from llvmlite import ir
from numba import literal_unroll, types
from numba.core.cgutils import get_or_insert_function as cgutils_get_or_insert_function
from numba.extending import intrinsic

from ._options import CPU, CPU_INLINE

__all__ = ["parts", "run_parts", "run_ranges", "run_compiled", "spin_microseconds", "CompiledJob",
           "ARG_SLOTS", "claim", "args_of", "launch", "finish", "part_bounds", "pointer", "put_array",
           "array1", "array2", "array3", "array5", "put_float", "float_at", "put_ints"]

#: The counter array: a header line (the pool's busy word and the last job
#: number), then ``_SLOTS`` int64 per worker: on its first line the job
#: counter, the CPU of the caller that posted the job, the job's address (0:
#: a Python job), the worker's state and a compiled job's claim word; its
#: done counter on the second; a compiled job's arguments on the others.  No
#: two workers' counters share a cache line.
_HEADER = 16
_BUSY = 0
_SEQ = 1
#: 1 when this pool's workers sleep on futexes (``_FUTEX`` and
#: ``USE_FUTEX`` when it was built), 0 when on their Python locks.
_FUTEX_ON = 2
_SLOTS = 128
_CALLER_CPU = 1
_FN = 2
_STATE = 3
_TAKEN = 4
_DONE = 8
_ARGS = 16
#: Int64 argument slots of a compiled job.
ARG_SLOTS = _SLOTS - _ARGS
#: The worker states in ``_STATE``.  The worker moves itself between
#: polling, busy (in Python: running a Python job, or moving off the caller's
#: CPU) and asleep (blocked on its ``go`` lock); whoever wakes it moves it
#: from asleep to waking and then releases that lock, exactly once.
_POLLING = 0
_BUSY_STATE = 1
_ASLEEP = 2
_WAKING = 3
#: Seconds between a sleeping worker's looks at its state (see _Worker._loop).
_NAP = 0.1
#: What :func:`_serve` returns to the worker's Python loop.
_PYTHON_JOB = 0
_SLEEP = 1
#: uint64 words of a worker's CPU set (1024 CPUs, glibc's ``cpu_set_t``).
_MASK_WORDS = 16
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


#: Linux's futex system call number on this machine, or None: there the
#: workers sleep and are woken in compiled code (no GIL on the way back to
#: polling); elsewhere they sleep on a Python lock.
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine().lower()) \
    if _LINUX else None
_FUTEX = _SYS_FUTEX is not None
#: Whether pools built from now on use futexes where the system has them
#: (the tests turn it off to run the Python-lock sleep of other systems).
USE_FUTEX = True
_FUTEX_WAIT_PRIVATE = 128
_FUTEX_WAKE_PRIVATE = 129


@intrinsic
def _futex(typingctx, ctl, i, op, val):
    """``futex(&ctl[i], op, val)`` on the low 32 bits of the slot (Linux,
    little-endian): wait while it holds ``val``, or wake ``val`` waiters."""

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        if not _FUTEX:
            return ir.Constant(i64, -1)
        fnty = ir.FunctionType(i64, [i64], var_arg=True)
        fn = cgutils_get_or_insert_function(builder.module, fnty, "syscall")
        addr = builder.ptrtoint(_slot(context, builder, sig, args), i64)
        null = ir.Constant(i64, 0)
        # every argument a full register: syscall() reads each as a long
        return builder.call(fn, [ir.Constant(i64, _SYS_FUTEX), addr, args[2], args[3], null, null, null])

    return types.int64(ctl, i, types.int64, types.int64), codegen


@intrinsic
def _affinity(typingctx, mask, set_it):
    """``sched_getaffinity`` (``set_it`` False) or ``sched_setaffinity`` of
    the calling thread, with the CPU bit set ``mask`` (a uint64 array); the
    call's result (0: done).  Linux; -1 elsewhere."""

    def codegen(context, builder, sig, args):
        if not _LINUX:
            return ir.Constant(ir.IntType(32), -1)
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()])
        get = cgutils_get_or_insert_function(builder.module, fnty, "sched_getaffinity")
        put = cgutils_get_or_insert_function(builder.module, fnty, "sched_setaffinity")
        size = builder.mul(ary.nitems, ir.Constant(ir.IntType(64), 8))
        ptr = builder.bitcast(ary.data, ir.IntType(8).as_pointer())
        zero = ir.Constant(ir.IntType(32), 0)
        return builder.select(args[1], builder.call(put, [zero, size, ptr]), builder.call(get, [zero, size, ptr]))

    return types.int32(mask, types.boolean), codegen


@numba.njit(**CPU)
def _leave_cpu(mask, cpu):
    """:func:`leave_cpu` in compiled code (no GIL): narrow this thread's CPU
    set by ``cpu`` for a moment, which moves it now; ``mask``: work space of
    ``_MASK_WORDS`` uint64."""
    if cpu < 0 or cpu >= 64 * mask.size or _affinity(mask, False) != 0:
        return
    word = cpu // 64
    bit = np.uint64(1) << np.uint64(cpu % 64)
    old = mask[word]
    mask[word] = old & ~bit
    others = False
    for w in range(mask.size):
        others |= mask[w] != 0
    if others and old & bit:
        _affinity(mask, True)
        mask[word] = old
        _affinity(mask, True)


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


@intrinsic
def _cas(typingctx, ctl, i, old, new):
    """``ctl[i] = new`` if it is ``old`` (one atomic compare-and-exchange,
    acquire and release); True if it was."""

    def codegen(context, builder, sig, args):
        pair = builder.cmpxchg(_slot(context, builder, sig, args), args[2], args[3],
                               "acq_rel", "acquire")
        return builder.extract_value(pair, 1)

    return types.boolean(ctl, i, old, new), codegen


@intrinsic
def _call_job(typingctx, fn, argp):
    """Call the C function at address ``fn`` with the int64 pointer ``argp``:
    a compiled job (``void job(int64 *args)``, a Numba ``cfunc``)."""

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(ir.VoidType(), [i64.as_pointer()])
        builder.call(builder.inttoptr(args[0], fnty.as_pointer()),
                     [builder.inttoptr(args[1], i64.as_pointer())])
        return context.get_dummy_value()

    return types.void(types.int64, types.int64), codegen


@intrinsic
def pointer(typingctx, addr, dtype):
    """The address ``addr`` as a pointer to ``dtype`` (a NumPy scalar type),
    for ``numba.carray`` in a compiled job."""
    target = dtype.instance_type

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(target).as_pointer())

    return types.CPointer(target)(addr, dtype), codegen


@numba.njit(**CPU)
def _serve(ctl, base, done, budget, grace, mask):
    """A worker's compiled loop: publish ``done`` (the job it finished last),
    then poll its job counter.

    A compiled job is claimed (its claim word from ``-seq`` to ``seq``; the
    caller may have claimed it first and run the part itself), run right
    here without the GIL, and polling starts over.  The loop returns
    ``_PYTHON_JOB`` when a Python job is posted (after ``grace`` more
    iterations), ``_SLEEP`` when ``budget`` iterations passed without a job
    (the worker then blocks on its ``go`` lock until someone wakes it).  A
    worker that finds itself on the caller's CPU moves off it (Linux)."""
    _store_release(ctl, base + _STATE, _POLLING)
    _store_release(ctl, base + _DONE, done)
    while True:
        seen = _worker_poll(ctl, base, done, budget)
        if seen == 2:  # on the caller's CPU: the caller's own part would share it
            _leave_cpu(mask, _load_acquire(ctl, base + _CALLER_CPU))
            continue
        if seen == 1:
            seq = _load_acquire(ctl, base)
            if _load_acquire(ctl, base + _FN) == 0:
                _store_release(ctl, base + _STATE, _BUSY_STATE)
                for _ in range(grace):
                    _relax()
                return _PYTHON_JOB
            cpu = _shared_cpu(ctl, base)
            if cpu >= 0:  # move first: the part waits (or the caller runs it)
                _leave_cpu(mask, cpu)
            done = seq
            if not _cas(ctl, base + _TAKEN, -seq, seq):
                continue  # the caller ran this part, or a newer job is posted
            _call_job(_load_acquire(ctl, base + _FN), ctl.ctypes.data + 8 * (base + _ARGS))
            _store_release(ctl, base + _DONE, done)
        elif _cas(ctl, base + _STATE, _POLLING, _ASLEEP):
            # a job posted just before: keep polling, unless its poster is
            # already waking this worker
            if _load_acquire(ctl, base) > done and _cas(ctl, base + _STATE, _ASLEEP, _POLLING):
                continue
            if ctl[_FUTEX_ON] == 0:
                return _SLEEP  # on the go lock, in Python
            while _load_acquire(ctl, base + _STATE) == _ASLEEP:
                _futex(ctl, base + _STATE, _FUTEX_WAIT_PRIVATE, _ASLEEP)
            _store_release(ctl, base + _STATE, _POLLING)


@numba.njit(**CPU)
def _worker_poll(ctl, base, done, budget):
    """A worker's poll of its job counter for a job after ``done``, at most
    ``budget`` iterations: 1 when one is posted, 0 when none came; 2 when,
    at one of its looks every ``_YIELD_EVERY`` iterations, this thread is on
    the CPU of the caller that posted last (the scheduler tends to wake a
    thread on its waker's CPU, and a polling worker there would share that
    core with the caller's own part)."""
    for k in range(budget):
        if _load_acquire(ctl, base) > done:
            return 1
        _relax()
        if k % _YIELD_EVERY == _YIELD_EVERY - 1:
            _yield_cpu()
            if _shared_cpu(ctl, base) >= 0:
                return 2
    return 1 if _load_acquire(ctl, base) > done else 0


@numba.njit(**CPU)
def _shared_cpu(ctl, base):
    """The CPU this worker shares with the caller that posted its job, or -1."""
    c = _cpu()
    return c if c >= 0 and c == _load_acquire(ctl, base + _CALLER_CPU) else -1


@numba.njit(**CPU)
def _post(ctl, nworkers, fn):
    """Publish a new job (``fn``: a compiled job's address, 0 for a Python
    job) to workers ``0 .. nworkers-1``, with the CPU the caller runs on;
    returns its number.  A compiled job's parts are open to whoever claims
    them first (the worker or, once its own part is done, the caller)."""
    seq = ctl[_SEQ] + 1
    ctl[_SEQ] = seq
    c = _cpu()
    for w in range(nworkers):
        b = _HEADER + w * _SLOTS
        _store_release(ctl, b + _FN, fn)
        _store_release(ctl, b + _CALLER_CPU, c)
        _store_release(ctl, b + _TAKEN, -seq)
        _store_release(ctl, b, seq)
    return seq


@numba.njit(**CPU)
def _asleep(ctl, nworkers):
    """Move each of workers ``0 .. nworkers-1`` that sleeps to waking and, on
    Linux, wake it (futex); elsewhere return the bit mask of those, whose
    ``go`` locks the caller must now release."""
    mask = 0
    for w in range(nworkers):
        i = _HEADER + w * _SLOTS + _STATE
        if _cas(ctl, i, _ASLEEP, _WAKING):
            if ctl[_FUTEX_ON]:
                _futex(ctl, i, _FUTEX_WAKE_PRIVATE, 1)
                # the scheduler may have queued it on this CPU, behind this
                # thread, until the next tick (4 ms): let it run now; it
                # moves itself off this CPU when it finds itself here
                _yield_cpu()
            else:
                mask |= 1 << w
    return mask


@numba.njit(**CPU)
def _join(ctl, nworkers, seq, budget):
    """Poll until every done counter of workers ``0 .. nworkers-1`` reaches
    ``seq``, at most ``budget`` iterations each; True if all did."""
    for w in range(nworkers):
        if not _poll(ctl, _HEADER + w * _SLOTS + _DONE, seq - 1, budget):
            return False
    return True


@numba.njit(**CPU)
def _give(ctl):
    _store_release(ctl, _BUSY, 0)


@numba.njit(**CPU)
def claim(ctl):
    """Take the pool (its busy word) for a call; False if another call holds
    it (the caller then runs its work serially)."""
    return _cas(ctl, _BUSY, 0, 1)


@numba.njit(**CPU)
def args_of(ctl, w):
    """Where worker ``w``'s compiled-job arguments start in ``ctl``
    (``ARG_SLOTS`` int64)."""
    return _HEADER + w * _SLOTS + _ARGS


@numba.njit(**CPU)
def launch(ctl, nworkers, fn):
    """Post the compiled job at address ``fn`` (``void fn(int64 *args)``) to
    workers ``0 .. nworkers-1``, their arguments written with
    :func:`args_of`; returns the job's number.  On Linux a sleeping worker
    is woken here (elsewhere :func:`run_compiled` wakes it)."""
    seq = _post(ctl, nworkers, fn)
    if ctl[_FUTEX_ON]:
        _asleep(ctl, nworkers)
    return seq


@numba.njit(**CPU)
def finish(ctl, nworkers, seq, fn):
    """After the caller's own part: run each part no worker has claimed yet
    (a sleeping or slow worker's) on this thread, wait for the claimed ones,
    free the pool.  Returns the mask of sleeping workers to wake (for the
    next call: :meth:`_Pool.wake`)."""
    for w in range(nworkers):
        b = _HEADER + w * _SLOTS
        if _cas(ctl, b + _TAKEN, -seq, seq):
            _call_job(fn, ctl.ctypes.data + 8 * (b + _ARGS))
            continue
        k = 0
        while _load_acquire(ctl, b + _DONE) < seq:
            _relax()
            k += 1
            if k % _YIELD_EVERY == 0:
                _yield_cpu()
    mask = _asleep(ctl, nworkers)
    _give(ctl)
    return mask


@intrinsic
def _bits(typingctx, v):
    """The bits of float64 ``v`` as an int64."""

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _float(typingctx, v):
    """The float64 whose bits are int64 ``v``."""

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@numba.njit(**CPU_INLINE)
def put_float(ctl, i, v):
    """Write float ``v`` (float32 or float64: exactly) into slot ``i``."""
    ctl[i] = _bits(np.float64(v))


@numba.njit(**CPU_INLINE)
def float_at(p, i):
    """The float that :func:`put_float` wrote at slot ``i`` of ``p`` (float64)."""
    return _float(p[i])


@numba.njit(**CPU_INLINE)
def put_array(ctl, i, a):
    """Write C-contiguous array ``a``'s address and shape into ``ctl`` from
    slot ``i`` (for :func:`array_at`); returns the next free slot."""
    ctl[i] = a.ctypes.data
    for d in range(a.ndim):
        ctl[i + 1 + d] = a.shape[d]
    return i + 1 + a.ndim


@numba.njit(**CPU)  # (literal_unroll: not in an inlined function)
def put_ints(ctl, i, values):
    """Write the integers (or booleans) of the tuple ``values`` into ``ctl``
    from slot ``i``, in order; returns the next free slot."""
    for v in literal_unroll(values):
        ctl[i] = v
        i += 1
    return i


@numba.njit(**CPU_INLINE)
def array1(p, i, dtype):
    """The 1-D array that :func:`put_array` wrote at slot ``i`` of ``p``."""
    return numba.carray(pointer(p[i], dtype), p[i + 1])


@numba.njit(**CPU_INLINE)
def array2(p, i, dtype):
    """The 2-D array that :func:`put_array` wrote at slot ``i`` of ``p``."""
    return numba.carray(pointer(p[i], dtype), (p[i + 1], p[i + 2]))


@numba.njit(**CPU_INLINE)
def array3(p, i, dtype):
    """The 3-D array that :func:`put_array` wrote at slot ``i`` of ``p``."""
    return numba.carray(pointer(p[i], dtype), (p[i + 1], p[i + 2], p[i + 3]))


@numba.njit(**CPU_INLINE)
def array5(p, i, dtype):
    """The 5-D array that :func:`put_array` wrote at slot ``i`` of ``p``."""
    return numba.carray(pointer(p[i], dtype), (p[i + 1], p[i + 2], p[i + 3], p[i + 4], p[i + 5]))


@numba.njit(**CPU_INLINE)
def line_start(a, i, j):
    """The first index in ``[i, j]`` whose element of the 1-D array ``a``
    starts a 64-byte cache line (``j`` if none does).  A loop that starts
    its vector body there stores whole lines: NumPy's buffers are 16-byte
    aligned, and a 1M-byte clamp whose every 64-byte store straddled two
    lines took 1-2 us longer in two parts (15-19 instead of 14 us)."""
    item = np.uint64(a.itemsize)
    at = np.uint64(a.ctypes.data) + np.uint64(i) * item
    return min(np.int64(j), np.int64(i) + np.int64((np.uint64(64) - at % np.uint64(64)) % np.uint64(64) // item))


@numba.njit(**CPU)
def part_bounds(n, k, i, align):
    """Part ``i`` of ``k`` of ``[0, n)`` as :func:`run_ranges` splits it."""
    per = -(-n // k)
    per += -per % align
    return min(n, i * per), min(n, (i + 1) * per)


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


_threads_now = None


def parts() -> int:
    """How many parts to split work into: Numba's thread count
    (``numba.set_num_threads`` sets it, as for the ``prange`` kernels).

    After the first call this reads the count through Numba's own entry
    point of the threading layer: the public function also checks, under a
    lock, that the layer was launched, which took most of its 0.7 us."""
    global _threads_now
    get = _threads_now
    if get is None:
        n = numba.get_num_threads()  # launches the layer
        get = getattr(numba.np.ufunc.parallel, "_get_num_threads", None)
        if get is None:
            return max(1, n)
        # the same C function, called without releasing the GIL (a ctypes
        # CFUNCTYPE releases and retakes it around the call)
        get = ctypes.PYFUNCTYPE(ctypes.c_int)(ctypes.cast(get, ctypes.c_void_p).value)
        _threads_now = get
    return max(1, get())


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
        self.base = _HEADER + index * _SLOTS
        self.go = _thread.allocate_lock()
        self.go.acquire()
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.job = None
        self.result = None
        threading.Thread(target=self._loop, name=f"qops-part-{index}", daemon=True).start()

    def _loop(self):
        ctl, base, budget = self.pool.ctl, self.base, self.pool.budget
        mask = np.zeros(_MASK_WORDS, np.uint64)
        seq = 0
        while True:
            why = _serve(ctl, base, seq, budget, self.pool.grace, mask)
            if why == _SLEEP:  # until a caller wakes it (_Pool.wake)
                seq = int(ctl[base + _DONE])  # the last compiled job it ran, if any
                # a waker that was interrupted between moving this worker to
                # waking and releasing the lock would leave it asleep for
                # good: a look every _NAP seconds ends that
                while not self.go.acquire(timeout=_NAP) and ctl[base + _STATE] == _ASLEEP:
                    pass
                continue
            if self.job is None:
                # the job counter moved with a Python job's function slot but
                # no job for this thread, which only a foreign write to the
                # counter array makes: retire the pool (the next call builds
                # a new one) rather than die here and leave a later caller
                # waiting for this thread
                self.pool.broken = True
                return
            seq, fn, args = self.job
            self.job = None
            try:  # whatever fails here is the caller's to see, never a dead worker
                cpu = _shared_cpu(ctl, base)
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
        size = _HEADER + nworkers * _SLOTS
        buf = np.zeros(size + 8, np.int64)
        off = (-buf.ctypes.data % 64) // 8
        self.ctl = buf[off:off + size]
        for i in range(nworkers):  # nobody wakes a thread before it polled
            self.ctl[_HEADER + i * _SLOTS + _STATE] = _BUSY_STATE
        self.ctl[_FUTEX_ON] = int(_FUTEX and USE_FUTEX)
        self.futex = bool(self.ctl[_FUTEX_ON])
        self.budget = budget
        self.grace = int(_GRACE_US * _per_us)
        self.broken = False
        self.workers = [_Worker(self, i) for i in range(nworkers)]

    def run(self, fn, arg_tuples):
        workers = self.workers[:len(arg_tuples) - 1]
        seq = int(self.ctl[_SEQ]) + 1  # what _post numbers this job
        for w, args in zip(workers, arg_tuples[1:]):
            w.job = (seq, fn, args)
        _post(self.ctl, len(workers), 0)
        self.wake(_asleep(self.ctl, len(workers)))
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

    def wake(self, mask):
        """Release the ``go`` lock of each worker in ``mask`` (moved from
        asleep to waking by :func:`_asleep`: each such move is one release)."""
        w = 0
        while mask:
            if mask & 1:
                try:
                    self.workers[w].go.release()
                except RuntimeError:  # released already (see _NAP): it wakes either way
                    pass
            mask >>= 1
            w += 1

class CompiledJob:
    """A module-level job function ``job(p)`` (``p``: the int64 argument
    slots; :func:`array1` ... :func:`array5` rebuild the arrays that
    :func:`put_array` wrote, :func:`float_at` the floats of
    :func:`put_float`), compiled as a C callback (``void job(int64 *p)``,
    cached on disk) on first use."""

    def __init__(self, pyfunc):
        self.pyfunc = pyfunc
        self.address = 0  #: the callback's address once :meth:`compile` ran

    def compile(self):
        """Compile (or load from the cache) the callback; its address."""
        if not self.address:
            self.address = numba.cfunc(types.void(types.CPointer(types.int64)), **CPU)(self.pyfunc).address
        return self.address


_lock = threading.Lock()
_pool = None
_per_us = None


def _forget_pool():
    global _lock, _pool
    _lock = threading.Lock()
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def _pool_with(nworkers):
    """The pool, rebuilt first if it is broken or has fewer than ``nworkers``
    workers."""
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
        return pool


def _pool_for(nworkers):
    """The pool with at least ``nworkers`` workers, held for this call; None
    when it is busy."""
    pool = _pool_with(nworkers)
    return pool if claim(pool.ctl) else None


def contiguous(*arrays):
    """Whether every array is C-contiguous, as those a compiled job rebuilds
    from their address and shape (:func:`put_array`) must be."""
    return all(a.flags.c_contiguous for a in arrays)


def compiled_pool():
    """``(pool, nworkers)`` for a compiled hand-over now, or None when the
    work is not to be split (one Numba thread): :func:`run_compiled`'s
    first half, for a caller that calls its driver itself, as
    ``driver(..., pool.ctl, nworkers, job.address or job.compile())``, and
    then wakes the workers in the mask it returns (``pool.wake``)."""
    get = _threads_now  # parts(), briefly
    k = get() if get is not None else parts()
    if k < 2:
        return None
    pool = _pool
    if pool is None or pool.broken or len(pool.workers) < k - 1:
        pool = _pool_with(k - 1)
    if not pool.futex:
        ctl = pool.ctl
        for w in range(k - 1):
            if ctl[_HEADER + w * _SLOTS + _STATE] == _ASLEEP:
                # wake them now: they come up while this call runs (its parts
                # not claimed by then are run here), ready for the next one;
                # woken after the call, a worker still waited for the GIL or
                # its CPU during the next calls, which then ran on one thread
                pool.wake(_asleep(ctl, k - 1))
                break
    return pool, k - 1


def run_compiled(driver, job, *args):
    """``driver(*args, ctl, nworkers, job_address)`` on the pool: a compiled
    caller that splits its work in ``nworkers + 1`` parts, writes the
    workers' arguments (:func:`args_of`), posts :class:`CompiledJob` ``job``
    (:func:`launch`), runs the first part and ends with :func:`finish`; it
    starts with :func:`claim` and returns -1 if that fails, else the mask of
    workers to wake (none with futexes: :func:`launch` wakes them).  The
    hand-over takes no GIL and no lock: a polling worker starts its part
    within a microsecond or so; a sleeping one's part is run by the caller
    after its own (so a call never waits for a wake-up), and the worker is
    woken for the next call.  False when the work is not to be split (one
    Numba thread) or the pool is busy with another call: run it serially
    then.  Every kernel call in parts passes here (the clamps through
    :func:`compiled_pool` alone), so it is kept short."""
    use = compiled_pool()
    if use is None:
        return False
    pool, nworkers = use
    mask = driver(*args, pool.ctl, nworkers, job.address or job.compile())
    if mask > 0:
        pool.wake(mask)
    return mask >= 0


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
        _give(pool.ctl)


def run_ranges(fn, n, *args, align=64, tail=()):
    """``fn(*args, lo, hi, *tail)`` over ``parts()`` consecutive ranges
    covering ``[0, n)``, each starting at a multiple of ``align``; returns the
    results in order."""
    k = parts()
    per = -(-n // k)
    per += -per % align
    return run_parts(fn, [args + (min(n, i * per), min(n, (i + 1) * per)) + tuple(tail)
                          for i in range(k)])
