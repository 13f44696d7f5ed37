"""qops-vs-peer time ratios of asv benchmark classes, in one process.

``python tools/asv_ratios.py bench_activation.Activation [--filter op=relu]
[--repeat 15]`` imports the class from ``asv_benchmarks/benchmarks``, runs
``setup`` for every parameter combination whose first parameter is the
implementation (``impl``), and times each ``time_*`` method of qops and of each
peer in turn, ``--repeat`` rounds, keeping each one's minimum.  In a round each
implementation gets the machine to itself and warm, as asv's back-to-back
calls in one process give it: 60 ms of sleep first (a GNU OpenMP team keeps
polling about 8 ms after torch's last parallel call, an onnxruntime session's
threads about 40 ms after its last run, qops's part pool ``QOPS_SPIN_US``,
see ``docs/threading.md``), one untimed call, then
``--inner`` timed calls back to back.  It prints
one line per case: the minima in milliseconds and ``peer/qops`` (above 1:
qops is faster).  The geometric mean of the ratios ends the output.

asv itself is the record (``asv run``); this is the quick look while working
on a kernel, with the peers timed in the same rounds as qops so that a busy
machine slows both.
"""

import argparse
import importlib
import itertools
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "asv_benchmarks"))


#: Seconds of sleep before each implementation's calls in a round: longer
#: than any implementation's threads poll after a call (onnxruntime 1.32's
#: intra-op threads: about 40 ms, measured as the process's CPU time during
#: a sleep after a run), so that none runs beside another's polling threads.
SETTLE = 0.06


def _cases(cls, filters):
    names = cls.param_names
    if names[0] != "impl":
        raise SystemExit(f"{cls.__name__}: the first parameter is {names[0]!r}, not 'impl'")
    for combo in itertools.product(*cls.params[1:]):
        kw = dict(zip(names[1:], combo))
        if all(str(kw.get(k)) == v for k, v in filters):
            yield combo


def _timer(cls, impl, combo, method):
    obj = cls()
    try:
        obj.setup(impl, *combo)
    except NotImplementedError:
        return None
    fn = getattr(obj, method)
    return lambda: fn(impl, *combo)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", help="module.Class inside asv_benchmarks/benchmarks")
    ap.add_argument("--filter", action="append", default=[], metavar="NAME=VALUE",
                    help="keep only cases whose parameter NAME prints as VALUE (repeatable)")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--inner", type=int, default=3,
                    help="back-to-back calls per implementation and round (default 3)")
    args = ap.parse_args(argv)
    module, name = args.target.rsplit(".", 1)
    cls = getattr(importlib.import_module(f"benchmarks.{module}"), name)
    filters = [f.split("=", 1) for f in args.filter]
    impls = cls.params[0]
    ratios = []
    methods = [m for m in dir(cls) if m.startswith("time_")]
    for combo, method in itertools.product(_cases(cls, filters), methods):
        timers = {impl: _timer(cls, impl, combo, method) for impl in impls}
        if timers.get("qops") is None:
            continue
        best = {impl: math.inf for impl, t in timers.items() if t is not None}
        for _ in range(args.repeat):
            for impl in best:
                time.sleep(SETTLE)
                timers[impl]()
                for _ in range(args.inner):
                    t0 = time.perf_counter()
                    timers[impl]()
                    best[impl] = min(best[impl], time.perf_counter() - t0)
        cells = "  ".join(f"{impl} {best[impl] * 1e3:8.3f} ms" for impl in best)
        peers = [impl for impl in best if impl != "qops"]
        rel = "  ".join(f"{p}/qops {best[p] / best['qops']:5.2f}" for p in peers)
        ratios += [best[p] / best["qops"] for p in peers]
        label = " ".join(map(str, combo + ((method,) if len(methods) > 1 else ())))
        print(f"{label:40s} {cells}  {rel}", flush=True)
    if ratios:
        print(f"geometric mean peer/qops: {math.exp(sum(map(math.log, ratios)) / len(ratios)):.2f}"
              f" over {len(ratios)} cases")


if __name__ == "__main__":
    main()
