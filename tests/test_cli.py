"""The ``qops`` command line and the ``qops report`` sweep engine.

End-to-end runs of ``python -m qops report`` in subprocesses (the quick sweep
compares about half a million values with the installed peers), plus
in-process tests of the parser, the progress bar, the distances and the
sweep registry; ``qops bench --quick`` and the benchmark set.
"""

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qops import _bench, _peers, cli, report
from qops._progress import Progress
from qops.numerics import available_numerics

ROOT = Path(__file__).resolve().parents[1]
TORCH_PROFILES = ("fbgemm", "qnnpack", "onednn")
#: The core ops, registered in qops/report.py itself; every op family adds its
#: own sweeps (qops/_sweeps_*.py) and the expected rows come from the registry.
CORE_OPS = (
    "quantize_per_tensor",
    "quantize_per_channel",
    "dequantize",
    "requantize",
    "fake_quantize_per_tensor_affine",
    "fake_quantize_per_channel_affine",
    "linear",
    "linear_relu",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv2d_relu",
)
WEIGHTED_OPS = CORE_OPS[6:]
OPS = tuple(report.sweeps())
ROW_KEYS = {
    "op", "profile", "peer", "peer_status", "peer_version", "unit", "cases", "cases_compared",
    "values", "values_compared", "mismatches", "max_diff_vs_reference", "worst_vs_reference",
    "mismatch_cases", "errors", "seconds", "failed",
}


def qops_cli(*args, env=None, pythonpath=None):
    """Run ``python -m qops ARGS`` with a clean peer setting; returns the CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if k != _peers.DISABLE_ENV}
    full_env.update(env or {})
    if pythonpath is not None:
        full_env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), full_env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "qops", *args],
                          cwd=ROOT, env=full_env, capture_output=True, timeout=600)
    # decoded by hand: text=True would turn the progress bar's "\r" into "\n"
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    return proc


def installed(module):
    return importlib.util.find_spec(module) is not None


def expected_rows():
    """(op, profile) in registration order, each op under the profiles its sweep names."""
    return [(name, p) for name, sweep in report.sweeps().items()
            for p in available_numerics() if p in sweep.profiles]


def expected_peer(op, profile):
    peers = report.sweeps()[op].peers
    if profile in TORCH_PROFILES and "torch" in peers:
        return "torch"
    if profile == "onnxruntime" and "onnxruntime" in peers:
        return "onnxruntime"
    return None


def test_core_ops_are_registered_with_their_peers():
    for op in CORE_OPS:
        sweep = report.sweeps()[op]
        assert "torch" in sweep.peers
        if op.startswith("fake_quantize"):
            assert tuple(sweep.profiles) == TORCH_PROFILES and "onnxruntime" not in sweep.peers
        else:
            assert tuple(sweep.profiles) == available_numerics() and "onnxruntime" in sweep.peers


# ------------------------------------------------------------ the quick sweep
@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.json"
    proc = qops_cli("report", "--quick", "--json", str(path))
    assert path.exists(), proc.stderr
    return proc, json.loads(path.read_text())


def test_report_json_schema(quick_report):
    proc, doc = quick_report
    assert doc["schema"] == "qops-report/1"
    assert doc["options"] == {"quick": True, "seed": 0, "numerics": None, "ops": None}
    for name in ("qops", "python", "numpy", "numba", "llvmlite", "torch", "onnxruntime", "onnx"):
        assert name in doc["versions"]
    assert doc["versions"]["qops"] == "0.1.0"
    assert {"machine", "model", "logical_cpus", "flags"} <= set(doc["cpu"])
    assert doc["exit_status"] == proc.returncode
    assert doc["failed"] == any(r["failed"] for r in doc["rows"])
    assert doc["mismatches"] == sum(r["mismatches"] for r in doc["rows"])
    for row in doc["rows"]:
        assert set(row) == ROW_KEYS
        assert row["cases"] > 0 and row["values"] > 0
        assert row["unit"] == report.sweeps()[row["op"]].unit in ("LSB", "ulp")
        if row["op"] in CORE_OPS:
            assert row["unit"] == ("ulp" if row["op"] == "dequantize" else "LSB")
        assert row["max_diff_vs_reference"] >= 0


def test_report_has_every_row_with_its_peer(quick_report):
    _, doc = quick_report
    assert [(r["op"], r["profile"]) for r in doc["rows"]] == expected_rows()
    for row in doc["rows"]:
        assert row["peer"] == expected_peer(row["op"], row["profile"]), row["op"]
        if row["peer"] is None:
            assert row["peer_status"] == "none"
        elif installed(row["peer"]) and (row["peer"] != "onnxruntime" or installed("onnx")):
            assert row["peer_status"] == "ok", row
            assert row["values_compared"] > 0
        if row["profile"] == "reference":
            assert row["max_diff_vs_reference"] == 0


def test_report_no_mismatch_with_installed_peers(quick_report):
    proc, doc = quick_report
    bad = [
        (r["op"], r["profile"], r["mismatches"], r["errors"], r["mismatch_cases"][:3])
        for r in doc["rows"] if r["errors"] or (r["peer_status"] == "ok" and r["mismatches"])
    ]
    assert bad == []
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_report_prints_table_and_progress(quick_report):
    proc, doc = quick_report
    lines = proc.stdout.splitlines()
    header = lines[0].split()
    assert header[:7] == ["op", "profile", "peer", "cases", "compared", "mismatches", "max"]
    for row in doc["rows"]:
        assert any(line.split()[:2] == [row["op"], row["profile"]] for line in lines[2:])
    # one rewritten line on stderr, ending with the completed bar
    bar_lines = [line for line in proc.stderr.split("\n") if "qops report [" in line]
    assert len(bar_lines) == 1, proc.stderr[-2000:]
    total = sum(r["cases"] for r in doc["rows"])
    assert f"{total}/{total} 100%" in bar_lines[0].split("\r")[-1]


def test_report_linear_and_conv_rows(quick_report):
    """linear and conv rows: each profile runs the cases of its activation dtype
    (uint8 for the torch profiles, int8 for tflite, both for onnxruntime and
    reference) and, where it needs symmetric weights, only those."""
    _, doc = quick_report
    rows = {(r["op"], r["profile"]): r for r in doc["rows"]}
    for op in WEIGHTED_OPS:
        n = rows[(op, "reference")]["cases"]
        assert n > 0 and n % 4 == 0
        assert rows[(op, "onnxruntime")]["cases"] == n
        for profile in ("fbgemm", "qnnpack"):
            assert rows[(op, profile)]["cases"] == n // 2
        for profile in ("onednn", "tflite", "tflite_single"):
            assert rows[(op, profile)]["cases"] == n // 4
        for profile in TORCH_PROFILES + ("onnxruntime",):
            row = rows[(op, profile)]
            assert row["errors"] == [], row["errors"][:3]
            if row["peer_status"] == "ok":
                assert row["cases_compared"] == row["cases"]
                assert row["values_compared"] == row["values"] > 0
                assert row["mismatches"] == 0, row["mismatch_cases"][:3]


def test_report_shows_fbgemm_depthwise_saturation(quick_report):
    """The 16-channel depthwise 3x3 case runs fbgemm's int16-saturating kernel:
    qops matches torch there (0 mismatches above) and is far from the exact
    result, which qnnpack reaches."""
    _, doc = quick_report
    rows = {(r["op"], r["profile"]): r for r in doc["rows"]}
    for op in ("conv2d", "conv2d_relu"):
        fb = rows[(op, "fbgemm")]
        assert fb["max_diff_vs_reference"] > 8, fb["worst_vs_reference"]
        assert "w[16, 1, 3, 3]" in fb["worst_vs_reference"]["case"]
        assert rows[(op, "qnnpack")]["max_diff_vs_reference"] <= 1


# --------------------------------------------------------- selection, peers
def test_unknown_profile_exits_2_and_lists_profiles():
    proc = qops_cli("report", "--numerics", "bogus")
    assert proc.returncode == 2
    assert "unknown numerics profile 'bogus'" in proc.stderr
    for profile in available_numerics():
        assert profile in proc.stderr
    assert proc.stdout == ""


def test_unknown_op_exits_2_and_lists_ops():
    proc = qops_cli("report", "--op", "conv9d", "--quick")
    assert proc.returncode == 2
    assert "unknown op 'conv9d'" in proc.stderr
    assert all(op in proc.stderr for op in OPS)


def test_op_filter_disabled_peer_and_no_progress(tmp_path):
    """``--op``/``--numerics`` select rows; a disabled peer is "not installed", not a failure."""
    path = tmp_path / "r.json"
    proc = qops_cli(
        "report", "--quick", "--no-progress", "--op", "quantize_per_channel", "--op", "dequantize",
        "--numerics", "fbgemm", "--numerics", "tflite", "--json", str(path),
        env={_peers.DISABLE_ENV: "torch"},
    )
    doc = json.loads(path.read_text())
    assert [(r["op"], r["profile"]) for r in doc["rows"]] == [
        ("quantize_per_channel", "fbgemm"), ("quantize_per_channel", "tflite"),
        ("dequantize", "fbgemm"), ("dequantize", "tflite"),
    ]
    assert [r["peer_status"] for r in doc["rows"]] == ["not installed", "none"] * 2
    assert all(r["values_compared"] == 0 and r["mismatches"] == 0 for r in doc["rows"])
    assert doc["versions"]["torch"] is None
    assert "torch: not installed" in proc.stdout
    assert "qops report [" not in proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_blocked_import_reports_not_installed(tmp_path):
    """A peer whose import fails (here: blocked by a sitecustomize) is "not installed"."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['onnxruntime'] = None\n")
    proc = qops_cli("report", "--quick", "--no-progress", "--op", "quantize_per_tensor",
                    "--numerics", "onnxruntime", pythonpath=tmp_path)
    row = [line for line in proc.stdout.splitlines() if line.startswith("quantize_per_tensor")]
    assert len(row) == 1
    assert "onnxruntime: not installed" in row[0]
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------ in process
def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert "report" in err and "precompile" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == "qops 0.1.0"


def test_precompile_subcommand_calls_precompile(monkeypatch, capsys):
    import qops._precompile

    calls = []
    monkeypatch.setattr(qops._precompile, "precompile", lambda device, verbose: calls.append((device, verbose)))
    assert cli.main(["precompile"]) == 0
    assert calls == [("cpu", False)]
    assert "cpu kernels ready" in capsys.readouterr().out


def test_ulp_distance():
    one = np.float32(1.0)
    a = np.array([one, 0.0, -0.0, np.float32(1e-45), -1.0], np.float32)
    b = np.array([np.nextafter(one, np.float32(2)), -0.0, 0.0, np.float32(-1e-45), 1.0], np.float32)
    np.testing.assert_array_equal(report.ulp_distance(a, b, None), [1, 0, 0, 2, 2 * 0x3F800000])


def test_progress_bar_is_one_rewritten_line():
    buf = io.StringIO()
    with Progress(3, stream=buf, min_interval=0) as bar:
        for i in range(3):
            bar.set_label(f"case {i}" * (3 - i))  # shrinking labels are padded over
            bar.advance()
    text = buf.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    frames = text[:-1].split("\r")[1:]
    assert all(f.startswith("qops report [") for f in frames)
    assert "3/3 100%" in frames[-1]
    for prev, cur in zip(frames, frames[1:]):
        assert len(cur) >= len(prev.rstrip())  # a shorter frame pads over the previous text
    quiet = io.StringIO()
    with Progress(3, stream=quiet, enabled=False) as bar:
        bar.advance(3)
    assert quiet.getvalue() == ""


class _FakePeer:
    version = "0.0"


def test_registered_sweep_counts_mismatches(monkeypatch):
    """A new op registers with a few lines; the engine counts and locates mismatches."""
    monkeypatch.setattr(report, "_SWEEPS", dict(report._SWEEPS))
    monkeypatch.setattr(_peers, "load", lambda name: _FakePeer())
    x = np.arange(-4, 5, dtype=np.int32)

    def peer(adapter, case, profile):
        if case.label == "skip":
            return None  # the peer has no such operation: not compared
        y = x * 2
        y[7] = 0
        return y

    report.register(report.Sweep(
        name="double",
        cases=lambda data: [report.Case("all", {}, inputs=x), report.Case("skip", {}, inputs=x)],
        run=lambda case, profile: x * 2 if profile != "reference" else x * 2 + (x == 1),
        peers={"torch": peer},
        profiles=("fbgemm", "tflite", "reference"),
    ))
    rows = report.run_report(["double"], None, quick=True)
    assert [(r.profile, r.peer_status) for r in rows] == [("fbgemm", "ok"), ("tflite", "none"), ("reference", "none")]
    fb = rows[0]
    assert (fb.cases, fb.cases_compared, fb.values, fb.values_compared, fb.mismatches) == (2, 1, 18, 9, 1)
    assert fb.failed and not rows[1].failed
    assert fb.mismatch_cases == [{"case": "all", "mismatches": 1,
                                  "example": {"index": [7], "input": 3, "qops": 6, "peer": 0}}]
    assert fb.max_diff_vs_reference == 1 and fb.worst_vs_reference["input"] == 1
    assert "double" in report.format_table(rows)


# ----------------------------------------------------------------- qops bench
def test_bench_quick_prints_table_and_json(tmp_path):
    """``qops bench --quick`` times the tiny shapes; a disabled peer shows as not installed."""
    path = tmp_path / "bench.json"
    proc = qops_cli("bench", "--quick", "--json", str(path), env={_peers.DISABLE_ENV: "onnxruntime"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["case", "qops", "ms", "torch", "ms", "onnxruntime", "ms", "torch/qops",
                                "qops", "GOPS"]
    doc = json.loads(path.read_text())
    assert doc["schema"] == "qops-bench/1"
    assert doc["options"] == {"quick": True, "threads": 2, "repeats": 2,
                              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    assert [r["case"] for r in doc["rows"]] == [c.name for c in _bench.QUICK_CASES]
    for row, line in zip(doc["rows"], lines[2:]):
        assert line.startswith(row["case"])
        assert "not installed" in line
        assert row["status"]["onnxruntime"] == "not installed"
        assert row["seconds"]["onnxruntime"] is None
        assert row["seconds"]["qops"] > 0 and row["qops_gops"] > 0
        if installed("torch"):
            assert row["seconds"]["torch"] > 0
            assert row["ratio_torch_over_qops"] == pytest.approx(row["seconds"]["torch"] / row["seconds"]["qops"])
    if installed("torch"):
        assert "geometric mean of qops/torch throughput" in proc.stdout
        assert doc["geometric_mean_ratio"] > 0


def test_bench_fixed_set_and_ops():
    """The fixed set of the benchmarks (the asv classes take the same cases)."""
    lin = [(c.m, c.k, c.n) for c in _bench.LINEAR_CASES]
    assert lin == [(1, 768, 768), (16, 768, 3072), (128, 768, 768), (512, 1024, 1024)]
    conv = [(c.kernel, c.c, c.o, c.size, c.stride, c.groups, c.out_size) for c in _bench.CONV2D_CASES]
    assert conv == [(3, 64, 64, 56, 1, 1, 56), (3, 128, 128, 28, 1, 1, 28), (1, 256, 64, 56, 1, 1, 56),
                    (3, 32, 32, 112, 1, 32, 112), (3, 64, 128, 56, 2, 1, 28)]
    assert _bench.LINEAR_CASES[0].ops == 2 * 768 * 768
    assert _bench.CONV2D_CASES[3].ops == 2 * 32 * 112 * 112 * 9
    assert _bench.CONV2D_CASES[4].ops == 2 * 128 * 28 * 28 * 64 * 9
    with pytest.raises(KeyError, match="unknown implementation"):
        _bench.build("tvm", _bench.QUICK_CASES[0])


def test_bench_table_and_geometric_mean():
    case = _bench.QUICK_CASES[0]
    rows = [_bench.BenchRow(case, {"qops": 1e-3, "torch": 2e-3, "onnxruntime": None},
                            {"qops": "ok", "torch": "ok", "onnxruntime": "not installed"}),
            _bench.BenchRow(case, {"qops": 4e-3, "torch": 2e-3, "onnxruntime": 1e-3},
                            {"qops": "ok", "torch": "ok", "onnxruntime": "ok"})]
    assert _bench.geometric_mean_ratio(rows) == pytest.approx(1.0)
    table = _bench.format_table(rows).splitlines()
    assert table[2].split()[2:] == ["1.000", "2.000", "not", "installed", "2.00", f"{case.ops / 1e-3 / 1e9:.1f}"]
    assert table[3].split()[2:] == ["4.000", "2.000", "1.000", "0.50", f"{case.ops / 4e-3 / 1e9:.1f}"]
    assert _bench.geometric_mean_ratio([_bench.BenchRow(case, {"qops": 1.0}, {})]) is None


def test_case_profiles_restrict_where_a_case_runs(monkeypatch):
    """A case with ``profiles`` runs only there; rows count only the cases that ran."""
    monkeypatch.setattr(report, "_SWEEPS", dict(report._SWEEPS))
    monkeypatch.setattr(_peers, "load", lambda name: _FakePeer())
    x = np.arange(4, dtype=np.int32)
    ran = []

    def run(case, profile):
        ran.append((case.label, profile))
        return x

    report.register(report.Sweep(
        name="restricted",
        cases=lambda data: [report.Case("everywhere", {}), report.Case("torch only", {}, profiles=("fbgemm",))],
        run=run,
        peers={"torch": lambda adapter, case, profile: x},
        profiles=("fbgemm", "tflite", "reference"),
    ))
    rows = report.run_report(["restricted"], None, quick=True)
    assert [(r.profile, r.cases, r.values, r.cases_compared) for r in rows] == [
        ("fbgemm", 2, 8, 2), ("tflite", 1, 4, 0), ("reference", 1, 4, 0)]
    assert ("torch only", "tflite") not in ran and ("torch only", "fbgemm") in ran
