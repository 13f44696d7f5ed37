"""The ``qops`` command line: ``qops report``, ``qops bench`` and ``qops precompile``.

``qops report`` runs the conformance sweep (:mod:`qops.report`) and prints
one row per (op, numerics profile): the peer it was compared with, how many
values were compared, how many differ, and the largest distance from the
``reference`` profile.  It exits with status 1 when any result differs from
an installed peer (or an op fails), 0 otherwise, and 2 on a usage error.

Set ``QOPS_REPORT_DISABLE_PEERS=torch,onnxruntime`` (any subset) to treat
those peers as not installed.

``qops bench`` times qops's linear and conv2d modules beside torch (engine
``x86``, prepacked weights) and onnxruntime on the fixed benchmark set of
:mod:`qops._bench` (the shapes of the asv classes ``QLinear`` / ``QConv2d``)
and prints one row per shape with the ratio of torch's time to qops's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from .numerics import available_numerics

__all__ = ["main", "build_parser"]


def _version() -> str:
    from . import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``qops`` argument parser (subcommands ``report``, ``bench`` and ``precompile``)."""
    from . import report

    parser = argparse.ArgumentParser(
        prog="qops",
        description="Bit-exact quantized operators: conformance report and utilities.",
    )
    parser.add_argument("--version", action="version", version=f"qops {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    rep = sub.add_parser(
        "report",
        help="compare every op under every numerics profile with its installed peer",
        description=(
            "Run every implemented op under every numerics profile on built-in "
            "deterministic data, compare each (op, profile) element by element with "
            "its peer (torch for fbgemm/qnnpack/onednn, onnxruntime for onnxruntime; "
            "the tflite profiles have none) and measure the distance from the "
            "reference profile.  Exit status 1 on any mismatch with an installed peer."
        ),
        epilog=(
            "The environment variable QOPS_REPORT_DISABLE_PEERS=torch,onnxruntime "
            "treats the listed peers as not installed."
        ),
    )
    rep.add_argument("--quick", action="store_true", help="a small sweep (seconds; for tests and CI)")
    rep.add_argument("--numerics", action="append", metavar="NAME",
                     help=f"restrict to this profile (repeatable): {', '.join(available_numerics())}")
    rep.add_argument("--op", action="append", metavar="NAME",
                     help=f"restrict to this op (repeatable): {', '.join(report.sweeps())}")
    rep.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    rep.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    rep.add_argument("--no-progress", action="store_true", help="do not draw the progress bar on stderr")
    rep.set_defaults(subparser=rep)

    ben = sub.add_parser(
        "bench",
        help="time qops's linear and conv2d beside torch and onnxruntime on the fixed set",
        description=(
            "Time qops.nn.Linear / Conv2d (pre-packed weights, profile fbgemm) beside torch "
            "(engine x86, prepacked) and onnxruntime (QLinearMatMul / QLinearConv) on the fixed "
            "benchmark set, all on the same number of threads.  Compilation is excluded (each "
            "callable runs once first); each time is the minimum over interleaved repeats.  "
            "Prints ms per call, torch/qops (qops's throughput relative to torch) and qops's GOPS, "
            "then the geometric mean of torch/qops."
        ),
    )
    ben.add_argument("--quick", action="store_true", help="tiny shapes, few repeats (a smoke test, seconds)")
    ben.add_argument("--threads", type=int, default=2, help="threads for every implementation (default 2)")
    ben.add_argument("--repeats", type=int, default=None,
                     help="interleaved samples per implementation (default 7; 2 with --quick)")
    ben.add_argument("--json", metavar="FILE", help="also write the timings as JSON to FILE")
    ben.set_defaults(subparser=ben)

    pre = sub.add_parser(
        "precompile",
        help="compile the kernels now (Numba caches them on disk)",
        description="Compile qops' kernels for every dtype and profile so later calls start at full speed.",
    )
    pre.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    pre.add_argument("--verbose", action="store_true", help="print each step")
    return parser


def main(argv=None) -> int:
    """Run the ``qops`` command line; returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "precompile":
        return _precompile(args)
    if args.command == "bench":
        return _bench(args, argv)
    return _report(args, argv)


def _bench(args, argv) -> int:
    from . import _bench as bench

    if args.threads < 1:
        args.subparser.error(f"--threads must be a positive integer, got {args.threads}")
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 7)
    if repeats < 1:
        args.subparser.error(f"--repeats must be a positive integer, got {repeats}")
    cases = bench.QUICK_CASES if args.quick else bench.LINEAR_CASES + bench.CONV2D_CASES
    t0 = time.perf_counter()
    print(f"qops bench: {len(cases)} shapes, {args.threads} threads, min of {repeats} interleaved repeats",
          file=sys.stderr)
    rows = bench.time_cases(cases, threads=args.threads, repeats=repeats,
                            target=0.005 if args.quick else 0.05,
                            progress=lambda row: print(f"  {row.case.name} done", file=sys.stderr))
    wall = time.perf_counter() - t0
    print(bench.format_table(rows))
    gm = bench.geometric_mean_ratio(rows)
    print()
    print("ms: per call, minimum over repeats. torch/qops: torch's time over qops's "
          "(above 1: qops is faster). GOPS: 2*MACs / qops's time.")
    if gm is None:
        print("geometric mean of qops/torch throughput: — (torch not installed)")
    else:
        print(f"geometric mean of qops/torch throughput: {gm:.2f} over {len(rows)} shapes")
    wait_policy = os.environ.get("OMP_WAIT_POLICY")
    if wait_policy is None:
        print("note: torch's OpenMP threads spin while waiting; on a machine busy with other work this "
              "slows torch many times over: compare with OMP_WAIT_POLICY=PASSIVE set")
    if args.json:
        doc = {
            "schema": "qops-bench/1",
            "command": ["qops", *argv],
            "options": {"quick": args.quick, "threads": args.threads, "repeats": repeats,
                        "omp_wait_policy": wait_policy},
            "versions": _versions(),
            "cpu": _cpu(),
            "wall_s": round(wall, 3),
            "geometric_mean_ratio": gm,
            "rows": [r.as_dict() for r in rows],
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, allow_nan=False, default=_json_default)
            f.write("\n")
    return 0


def _precompile(args) -> int:
    from ._precompile import precompile

    t0 = time.perf_counter()
    precompile(args.device, verbose=args.verbose)
    print(f"qops precompile: {args.device} kernels ready in {time.perf_counter() - t0:.1f} s")
    return 0


def _dedupe(names):
    return None if names is None else list(dict.fromkeys(names))


def _report(args, argv) -> int:
    rep_parser = args.subparser
    profiles = _dedupe(args.numerics)
    if profiles is not None:
        unknown = [p for p in profiles if p not in available_numerics()]
        if unknown:
            rep_parser.error(f"unknown numerics profile {unknown[0]!r}; "
                             f"known profiles: {', '.join(available_numerics())}")
    from . import report
    from ._progress import Progress

    ops = _dedupe(args.op)
    if ops is not None:
        unknown = [o for o in ops if o not in report.sweeps()]
        if unknown:
            rep_parser.error(f"unknown op {unknown[0]!r}; known ops: {', '.join(report.sweeps())}")
    if not report._selection(ops, profiles):
        rep_parser.error(
            "nothing to run: none of the selected ops exists under the selected profiles "
            f"({', '.join(ops or report.sweeps())} under {', '.join(profiles or available_numerics())})"
        )

    t0 = time.perf_counter()
    with Progress(0, enabled=not args.no_progress) as bar:
        rows = report.run_report(ops, profiles, quick=args.quick, seed=args.seed, progress=bar)
    wall = time.perf_counter() - t0

    failed = any(r.failed for r in rows)
    mismatches = sum(r.mismatches for r in rows if r.compared)
    print(report.format_table(rows))
    print()
    print("compared: values compared with the peer (integers exactly, floats bit for bit).")
    print("max |diff| vs reference: integer results in LSB; dequantize in float32 ULPs; "
          "fake_quantize in units of the scale; NaN inputs are left out.")
    notes = report.format_reference_notes(rows)
    if notes:
        print()
        print("farthest from reference (beyond 1 LSB / ulp):")
        print(notes)
    details = report.format_details(rows)
    if details:
        print()
        print(details)
    print()
    verdict = "FAIL" if failed else "OK"
    print(f"{verdict}: {mismatches} mismatches vs installed peers in "
          f"{sum(r.values_compared for r in rows if r.compared)} values compared; "
          f"{len(rows)} rows, {wall:.1f} s")

    if args.json:
        doc = {
            "schema": "qops-report/1",
            "command": ["qops", *argv],
            "options": {"quick": args.quick, "seed": args.seed, "numerics": profiles, "ops": ops},
            "versions": _versions(),
            "cpu": _cpu(),
            "wall_s": round(wall, 3),
            "mismatches": mismatches,
            "failed": failed,
            "exit_status": 1 if failed else 0,
            "rows": [r.as_dict() for r in rows],
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, allow_nan=False, default=_json_default)
            f.write("\n")
    return 1 if failed else 0


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _dist_version(name):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _versions() -> dict:
    import llvmlite
    import numba
    import numpy

    from . import _peers

    off = _peers.disabled()
    v = {
        "qops": _version(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
    }
    for name, dist in (("torch", "torch"), ("onnxruntime", "onnxruntime"), ("onnx", "onnx")):
        peer = "onnxruntime" if name == "onnx" else name
        v[name] = None if peer in off else _dist_version(dist)
    return v


def _cpu() -> dict:
    info = {"machine": platform.machine(), "model": platform.processor() or None,
            "logical_cpus": os.cpu_count(), "flags": []}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            info["model"] = value.strip()
        elif key == "flags":
            flags = set(value.split())
            info["flags"] = sorted(flags & {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
                                            "avx_vnni", "avx512_bf16", "amx_int8"})
            break
    try:
        import llvmlite.binding as llvm

        info["llvm_host_cpu"] = llvm.get_host_cpu_name()
    except Exception:  # pragma: no cover - informational only
        info["llvm_host_cpu"] = None
    return info
