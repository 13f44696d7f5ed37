"""qops from many Python threads and in forked worker processes.

Each scenario runs in a fresh interpreter: Numba's threading layer is chosen
once per process, at its first parallel launch.
"""

import os
import subprocess
import sys
import textwrap

import pytest

# large enough for the parallel kernels (kernels._options.PARALLEL_MIN)
PRELUDE = """
import numpy as np, qops
from qops.kernels._options import PARALLEL_MIN
x = np.random.default_rng(0).standard_normal(2 * PARALLEL_MIN).astype(np.float32)
def run():
    q = qops.quantize_per_tensor(x, 0.02, 3, qops.quint8)
    return (q.int_repr(), qops.requantize(q, 0.05, 7).int_repr(), q.dequantize(),
            qops.functional.relu(q).int_repr())
ref = run()
def same(r):
    return all(np.array_equal(a, b) for a, b in zip(r, ref))
"""


def _python(code, env_extra=None, timeout=240):
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PRELUDE) + textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


def _check(res):
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout.split()


def test_fork_pool_after_parent_used_qops():
    res = _python(
        """
        import multiprocessing as mp
        def work(i):
            return same(run())
        with mp.get_context("fork").Pool(2) as pool:
            out = pool.map(work, range(4))
        print(all(out), qops.threading_layer())
        """
    )
    assert _check(res) == ["True", "workqueue"]


def test_eight_threads_at_once():
    res = _python(
        """
        import threading
        results = []
        def worker():
            for _ in range(10):
                results.append(same(run()))
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(len(results), all(results))
        """
    )
    assert _check(res) == ["80", "True"]


def test_threads_then_fork():
    res = _python(
        """
        import threading, multiprocessing as mp
        def work(i):
            return same(run())
        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        with mp.get_context("fork").Pool(2) as pool:
            print(all(pool.map(work, range(2))))
        """
    )
    assert _check(res) == ["True"]


@pytest.mark.parametrize("layer", ["workqueue", "omp"])
def test_user_environment_choice_wins(layer):
    res = _python("print(qops.threading_layer())", {"NUMBA_THREADING_LAYER": layer})
    if res.returncode != 0 and "No threading layer could be loaded" in res.stderr:
        pytest.skip(f"Numba's {layer} layer is not available here")
    assert _check(res) == [layer]


def test_user_config_choice_wins():
    code = """
    import numba
    numba.config.THREADING_LAYER = "omp"
    """
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + textwrap.dedent(PRELUDE) + "print(qops.threading_layer())"],
        capture_output=True, text=True, timeout=240,
        env={k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"},
    )
    if res.returncode != 0 and "No threading layer could be loaded" in res.stderr:
        pytest.skip("Numba's omp layer is not available here")
    assert _check(res) == ["omp"]


def test_import_alone_changes_nothing():
    res = subprocess.run(
        [sys.executable, "-c", "import numba, qops; print(numba.config.THREADING_LAYER)"],
        capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"},
    )
    assert _check(res) == ["default"]


def test_a_first_relu_chooses_the_layer():
    """The clamps' short path skips the kernel lock, not the layer choice:
    a process whose first qops call is a relu in parts ends on workqueue,
    and forks safely after it."""
    code = """
        import multiprocessing as mp
        import numpy as np, qops
        from qops.kernels.cpu.activation import CLAMP_PARTS_MIN
        q = qops.make_per_tensor_qtensor(np.arange(2 * CLAMP_PARTS_MIN, dtype=np.int64).astype(np.uint8),
                                         0.1, 100, qops.quint8)
        want = np.maximum(q.int_repr(), 100)
        ok = all(np.array_equal(qops.functional.relu(q).int_repr(), want) for _ in range(3))
        def child(i):
            return np.array_equal(qops.functional.relu(q).int_repr(), want)
        with mp.get_context("fork").Pool(2) as pool:
            forked = all(pool.map(child, range(2)))
        print(ok, forked, qops.threading_layer())
    """
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=240,
        env={k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"},
    )
    assert _check(res) == ["True", "True", "workqueue"]


def test_parts_on_python_threads_from_threads_and_forks():
    """The min/max pass above MINMAX_PARALLEL_MIN runs in parts on a Python
    thread pool (kernels._split): from 8 threads at once, and in forked
    children after the parent used the pool (a child builds its own)."""
    res = _python(
        """
        import threading, multiprocessing as mp
        from qops.kernels.cpu.observe import MINMAX_PARALLEL_MIN
        y = np.random.default_rng(1).standard_normal(MINMAX_PARALLEL_MIN + 77).astype(np.float32)
        y[12345] = -9.5
        y[-3] = 9.25
        def mm():
            o = qops.observer.MinMaxObserver()
            o(y)
            return float(o.min_val), float(o.max_val)
        assert mm() == (-9.5, 9.25)
        results = []
        def worker():
            for _ in range(5):
                results.append(mm() == (-9.5, 9.25))
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        def work(i):
            return mm() == (-9.5, 9.25)
        with mp.get_context("fork").Pool(2) as pool:
            out = pool.map(work, range(4))
        print(len(results), all(results), all(out))
        """
    )
    assert _check(res) == ["40", "True", "True"]


# ---------------------------------------------------------------- the part pool


@pytest.fixture
def split():
    import numba

    from qops.kernels import _split

    saved = numba.get_num_threads()
    numba.set_num_threads(min(3, numba.config.NUMBA_NUM_THREADS))
    yield _split
    numba.set_num_threads(saved)


def test_parts_return_in_order_and_wait_for_slow_parts(split):
    """A part slower than the polling budget still lands before run_parts
    returns (the hand-over sleeps on the done lock), in argument order."""
    import time

    k = split.parts()
    if k < 2:
        pytest.skip("needs two Numba threads")

    def part(i, delay):
        time.sleep(delay)
        return i * i

    for delays in ([0.0] * k, [0.0] + [0.05] * (k - 1), [0.05] + [0.0] * (k - 1)):
        assert split.run_parts(part, [(i, d) for i, d in enumerate(delays)]) == [i * i for i in range(k)]
    assert split.run_ranges(lambda lo, hi: (lo, hi), 1000, align=64)[-1][1] == 1000


def test_a_failing_part_raises_after_all_parts_finished(split):
    import time

    k = split.parts()
    if k < 2:
        pytest.skip("needs two Numba threads")
    finished = []

    def part(i):
        if i == 1:
            raise ArithmeticError(f"part {i}")
        time.sleep(0.05)
        finished.append(i)
        return i

    with pytest.raises(ArithmeticError, match="part 1"):
        split.run_parts(part, [(i,) for i in range(k)])
    assert sorted(finished) == [i for i in range(k) if i != 1]
    assert split.run_parts(lambda i: -i, [(i,) for i in range(k)]) == [-i for i in range(k)]


def test_a_part_that_splits_again_runs_its_parts_in_turn(split):
    k = split.parts()
    if k < 2:
        pytest.skip("needs two Numba threads")

    def inner(i, j):
        return 10 * i + j

    def outer(i):
        return split.run_parts(inner, [(i, j) for j in range(k)])

    assert split.run_parts(outer, [(i,) for i in range(k)]) == [
        [10 * i + j for j in range(k)] for i in range(k)
    ]


def test_interrupted_wait_replaces_the_pool(split, monkeypatch):
    """An exception while waiting for the workers (Ctrl-C) leaves their locks
    out of step: the pool is dropped and the next call builds a new one."""
    k = split.parts()
    if k < 2:
        pytest.skip("needs two Numba threads")
    split.run_parts(abs, [(i,) for i in range(k)])
    old = split._pool

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(split, "_join", interrupted)
    with pytest.raises(KeyboardInterrupt):
        split.run_parts(abs, [(-i,) for i in range(k)])
    monkeypatch.undo()
    assert split.run_parts(abs, [(-i,) for i in range(k)]) == list(range(k))
    assert split._pool is not old


@pytest.mark.parametrize("value", ["fast", "-1", "2e6"])
def test_spin_setting_is_validated(value, monkeypatch):
    from qops.kernels import _split

    monkeypatch.setenv("QOPS_SPIN_US", value)
    with pytest.raises(ValueError, match="QOPS_SPIN_US"):
        _split.spin_microseconds()


@pytest.mark.parametrize("futex", [True, False], ids=["futex", "lock"])
def test_a_stray_python_post_retires_the_pool(futex):
    """A worker that finds a Python job posted but none handed to it (only a
    foreign write to the counter array does that) retires its pool instead of
    dying: the next call in parts builds a new pool and gets its results,
    where it used to wait forever for the dead thread."""
    res = _python(
        f"""
        import time, numba
        from qops.kernels import _split
        _split.USE_FUTEX = {futex}
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        pool = _split._pool_with(1)
        ctl = pool.ctl
        _split._post(ctl, 1, 0)  # a Python job's post, with no job for the worker
        pool.wake(_split._asleep(ctl, 1))
        t0 = time.time()
        while not pool.broken and time.time() - t0 < 30:
            time.sleep(0.01)
        parts = _split.run_ranges(lambda a, b: (a, b), 1000)
        print(pool.broken, _split._pool is not pool, parts == [(0, 512), (512, 1000)])
        """,
        timeout=120,
    )
    assert _check(res) == ["True", "True", "True"]


def test_parts_without_polling():
    """QOPS_SPIN_US=0: every hand-over sleeps and wakes; results unchanged."""
    res = _python(
        """
        from qops.kernels import _split
        from qops.kernels.cpu.observe import MINMAX_PARALLEL_MIN
        import numba
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        y = np.random.default_rng(2).standard_normal(MINMAX_PARALLEL_MIN + 5).astype(np.float32)
        y[7] = -11.0
        o = qops.observer.MinMaxObserver()
        for _ in range(20):
            o(y)
        print(float(o.min_val) == -11.0, float(o.max_val) == float(y.max()), getattr(_split._pool, 'budget', 0))
        """,
        env_extra={"QOPS_SPIN_US": "0"},
    )
    assert _check(res) == ["True", "True", "0"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sched_getcpu / affinity are Linux's")
def test_a_worker_leaves_the_callers_cpu():
    """leave_cpu (and its compiled twin) moves the calling thread off a CPU and
    keeps its affinity; _shared_cpu reports the CPU only when the caller
    posted from it."""
    import ctypes
    import threading

    import numpy as np

    from qops.kernels import _split

    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    getcpu = ctypes.CDLL(None).sched_getcpu
    seen = {}

    def body():
        here = getcpu()
        ctl = np.zeros(_split._SLOTS, np.int64)
        ctl[_split._CALLER_CPU] = here
        seen["shared"] = (_split._shared_cpu(ctl, 0), here)
        ctl[_split._CALLER_CPU] = here + 1
        seen["other"] = (_split._shared_cpu(ctl, 0), getcpu())
        moves = []
        for _ in range(20):
            here = getcpu()
            _split.leave_cpu(here)
            moves.append(getcpu() != here)
        seen["moved"] = (moves, os.sched_getaffinity(0))
        mask = np.zeros(_split._MASK_WORDS, np.uint64)
        moves = []
        for _ in range(20):  # the compiled twin the polling workers call
            here = getcpu()
            _split._leave_cpu(mask, here)
            moves.append(getcpu() != here)
        seen["moved compiled"] = (moves, os.sched_getaffinity(0))

    t = threading.Thread(target=body)
    t.start()
    t.join()
    shared, here = seen["shared"]
    # the thread may migrate between the two reads; then -1 is right too
    assert shared in (here, -1)
    other, now = seen["other"]
    assert other == -1 or other == now == here + 1
    for key in ("moved", "moved compiled"):
        moves, affinity = seen[key]
        assert all(moves), key
        assert affinity == cpus, key


def test_the_pool_keeps_no_reference_to_a_call(split):
    """Once run_parts returns, no pool thread holds the call's arrays (a large
    output would stay alive, and the next call could not reuse its memory)."""
    import numpy as np

    k = split.parts()
    if k < 2:
        pytest.skip("needs two Numba threads")
    a = np.zeros(1000)
    before = sys.getrefcount(a)
    assert split.run_parts(lambda v, i: v.shape[0] + i, [(a, i) for i in range(k)]) == [
        1000 + i for i in range(k)]
    assert sys.getrefcount(a) == before


# ------------------------------------------------- compiled jobs on the pool

COMPILED = """
import threading, multiprocessing as mp, numba, os
from qops.kernels import _split
from qops.kernels.cpu import activation as A
numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
if os.environ.get("TEST_NO_FUTEX"):  # the Python-lock sleep of systems without futexes
    _split.USE_FUTEX = False
    _split._forget_pool()
rng = np.random.default_rng(3)
n = 3 * A.CLAMP_PARTS_MIN + 77
cases = [
    (rng.integers(0, 256, n).astype(np.uint8), np.uint8(20), np.uint8(200)),
    (rng.integers(-128, 128, n).astype(np.int8), np.int8(-100), np.int8(3)),
    (rng.integers(-2**31, 2**31, n).astype(np.int32), np.int32(-5000), np.int32(70000)),
]
def clamps():
    ok, posted, by_worker = True, 0, 0
    for v, lo, hi in cases:
        out = np.empty_like(v)
        A.clamp_apply(v, out, lo, hi)
        ctl = _split._pool.ctl
        posted += int(ctl[_split._HEADER + _split._FN] == A._CLAMP_JOB.compile())
        by_worker += int(ctl[_split._HEADER + _split._DONE] == ctl[_split._SEQ])
        ok &= bool(np.array_equal(out, np.clip(v, lo, hi)))
    return ok, posted, by_worker
ok, posted, by_worker = True, 0, 0
for _ in range(10):
    o, p, w = clamps()
    ok &= o
    posted += p
    by_worker += w
    k = _split.parts()
    ok &= _split.run_parts(lambda i: 3 * i, [(i,) for i in range(k)]) == [3 * i for i in range(k)]
results = []
def worker():
    for _ in range(5):
        results.append(clamps()[0])
threads = [threading.Thread(target=worker) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
def child(i):
    return all(clamps()[0] for _ in range(3))
with mp.get_context("fork").Pool(2) as pool:
    forked = pool.map(child, range(2))
print(ok, posted, by_worker, all(results) and len(results) == 40, all(forked),
      _split._pool.ctl[_split._BUSY], _split._pool.ctl[_split._FUTEX_ON] == int(_split._FUTEX and
                                                                              _split.USE_FUTEX))
"""


@pytest.mark.parametrize("futex", ["futex", "lock"])
@pytest.mark.parametrize("spin", ["1000000", "0"])
def test_compiled_parts_of_the_clamp(spin, futex):
    """The clamp above CLAMP_PARTS_MIN posts its parts as a compiled job
    (uint8, int8, int32; odd length), between Python jobs, from 8 threads at
    once and in forked children, with identical results.  Workers that poll
    (for a second after each job here) run their parts; with QOPS_SPIN_US=0
    they sleep, and the caller runs the parts itself.  Sleeping workers wait
    on futexes (Linux) or on their Python locks (elsewhere; run here too)."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two Numba threads")
    env = {"QOPS_SPIN_US": spin}
    if futex == "lock":
        env["TEST_NO_FUTEX"] = "1"
    ok, posted, by_worker, threads, forked, busy, mode = _check(_python(COMPILED, env_extra=env))
    assert (ok, posted, threads, forked, busy, mode) == ("True", "30", "True", "True", "0", "True")
    if spin != "0":  # a busy machine may delay a worker past the caller's own part
        assert int(by_worker) >= 10


@pytest.mark.parametrize("futex", [0, 1])
def test_the_caller_runs_the_parts_no_worker_claimed(split, futex):
    """With no worker polling, a compiled call runs every part itself, frees
    the pool, and wakes the sleeping workers (moved to waking; elsewhere
    than Linux it returns them for the caller to wake);
    claim() fails while the pool is held.  part_bounds splits as run_ranges
    does."""
    import numpy as np

    from qops.kernels.cpu import activation as A

    ctl = np.zeros(split._HEADER + 3 * split._SLOTS, np.int64)
    ctl[split._FUTEX_ON] = futex
    state = [split._HEADER + w * split._SLOTS + split._STATE for w in range(3)]
    ctl[state] = [split._ASLEEP, split._BUSY_STATE, split._ASLEEP]
    if futex and not split._FUTEX:
        pytest.skip("no futexes here")
    x = np.random.default_rng(5).integers(0, 256, 100_003).astype(np.uint8)
    out = np.zeros_like(x)
    mask = A._clamp_parts(x, out, np.uint8(9), np.uint8(201), 0, ctl, 3, A._CLAMP_JOB.compile())
    assert np.array_equal(out, np.clip(x, 9, 201))
    # woken: with futexes in compiled code, else by the caller, from the mask
    assert mask == (0 if futex else 0b101)
    assert list(ctl[state]) == [split._WAKING, split._BUSY_STATE, split._WAKING]
    assert ctl[split._BUSY] == 0 and ctl[split._SEQ] == 1
    assert split.claim(ctl)
    assert A._clamp_parts(x, out, np.uint8(9), np.uint8(201), 0, ctl, 3, A._CLAMP_JOB.compile()) == -1
    k = split.parts()
    for n in (0, 1, 63, 64, 1000, 12345):
        ranges = split.run_ranges(lambda lo, hi: (lo, hi), n, align=64)
        assert [split.part_bounds(n, k, i, 64) for i in range(k)] == ranges
