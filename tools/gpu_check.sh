#!/usr/bin/env bash
# Check qops's CUDA kernels on a real GPU.
#
# Run from the repository root on a machine with an NVIDIA GPU and numba,
# numba-cuda, numpy, torch (a CUDA build) and onnxruntime installed; no network
# is needed.  It
#   1. installs qops in development mode (no dependencies, no build isolation),
#   2. runs the CUDA tests on the GPU (tests/cuda, including the `gpu`-marked
#      ones the simulator skips),
#   3. times quantize and dequantize of 16M float32 values on the GPU, qops
#      against torch.quantize_per_tensor / dequantize on the same GPU, and
#      counts where torch's CUDA integers differ from qops's profiles,
#   4. runs the linear / conv CUDA tests again on their own (tests/cuda/
#      test_cuda_linear_conv.py), then times qops.functional.linear on
#      (M, K, N) = (512, 1024, 1024) with a prepacked weight (fbgemm,
#      onnxruntime, reference; every output checked against the CPU path) and
#      a 3x3 64->64 conv2d at 56x56, against torch._int_mm (int8 x int8 ->
#      int32, no requantization) on the same GPU: linear_timing.json.
# Logs and results go to $OUT (./gpu_out when OUT is unset).  The exit status
# is the first failing test run's.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-./gpu_out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
py=${PYTHON:-python}
unset NUMBA_ENABLE_CUDASIM

{
    date -u
    nvidia-smi || echo "nvidia-smi not available"
    "$py" - <<'EOF'
import platform, numpy, numba
print("python", platform.python_version(), "numpy", numpy.__version__, "numba", numba.__version__)
try:
    import numba_cuda
    print("numba-cuda", getattr(numba_cuda, "__version__", "?"))
except ImportError:
    print("numba-cuda not importable")
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
except ImportError:
    print("torch not importable")
from numba import cuda
print("numba.cuda available:", cuda.is_available())
if cuda.is_available():
    d = cuda.get_current_device()
    print("device:", d.name, "compute capability", d.compute_capability)
EOF
} > "$out/environment.txt" 2>&1
cat "$out/environment.txt"

echo "== pip install -e ."
"$py" -m pip install --no-deps --no-build-isolation -e . > "$out/pip_install.log" 2>&1
pip_rc=$?
tail -n 3 "$out/pip_install.log"
if [[ $pip_rc -ne 0 ]]; then
    echo "gpu_check: pip install failed (see $out/pip_install.log)" >&2
    exit $pip_rc
fi

echo "== pytest tests/cuda on the GPU"
"$py" -m pytest tests/cuda -x -q -ra --junitxml="$out/cuda_tests.xml" 2>&1 | tee "$out/cuda_tests.log"
test_rc=${PIPESTATUS[0]}

echo "== timing: 16M float32 values"
"$py" - "$out" <<'EOF' 2>&1 | tee "$out/timing.log"
"""Quantize / dequantize 16M float32 values on the GPU: qops vs torch."""
import json
import sys
import time

import numpy as np
from numba import cuda

import qops

out_dir = sys.argv[1]
N = 1 << 24
SCALE, ZP = 0.02, 128
REPEAT = 20
rng = np.random.default_rng(0)
x = rng.normal(scale=1.5, size=N).astype(np.float32)
x[: N // 8] = ((rng.integers(-140, 140, N // 8) + 0.5) * SCALE).astype(np.float32)  # near-ties
name = getattr(cuda.get_current_device(), "name", "unknown")
results = {"n": N, "scale": SCALE, "zero_point": ZP, "repeat": REPEAT,
           "device": name.decode() if isinstance(name, bytes) else str(name)}


def best_of(fn, sync):
    fn()  # warm-up (and compile)
    sync()
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


xd = cuda.to_device(x)
for profile in ("fbgemm", "onnxruntime", "reference"):
    holder = {}

    def q_fn():
        holder["q"] = qops.quantize_per_tensor(xd, SCALE, ZP, qops.quint8, numerics=profile)

    def dq_fn():
        holder["y"] = qops.dequantize(holder["q"], numerics=profile)

    tq = best_of(q_fn, cuda.synchronize)
    tdq = best_of(dq_fn, cuda.synchronize)
    q_dev = holder["q"].int_repr().copy_to_host()
    q_cpu = qops.quantize_per_tensor(x, SCALE, ZP, qops.quint8, numerics=profile).int_repr()
    results[f"qops_{profile}"] = {
        "quantize_s_best": tq[0], "quantize_s_median": tq[1],
        "dequantize_s_best": tdq[0], "dequantize_s_median": tdq[1],
        "quantize_GBps": (N * 5) / tq[0] / 1e9,
        "mismatches_vs_cpu": int((q_dev != q_cpu).sum()),
    }
    holder[profile] = q_dev
    print(profile, results[f"qops_{profile}"], flush=True)

try:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("torch has no CUDA device")
    xt = torch.from_numpy(x).cuda()
    th = {}

    def tq_fn():
        th["q"] = torch.quantize_per_tensor(xt, SCALE, ZP, torch.quint8)

    def tdq_fn():
        th["y"] = th["q"].dequantize()

    tq = best_of(tq_fn, torch.cuda.synchronize)
    tdq = best_of(tdq_fn, torch.cuda.synchronize)
    t_ints = th["q"].int_repr().cpu().numpy()
    results["torch_cuda"] = {
        "version": torch.__version__,
        "quantize_s_best": tq[0], "quantize_s_median": tq[1],
        "dequantize_s_best": tdq[0], "dequantize_s_median": tdq[1],
        "quantize_GBps": (N * 5) / tq[0] / 1e9,
        # torch's CUDA kernel is not its CPU (fbgemm) kernel: count the differences
        "int_mismatches_vs_qops": {p: int((t_ints != holder[p]).sum())
                                   for p in ("fbgemm", "onnxruntime", "reference")},
    }
    print("torch_cuda", results["torch_cuda"], flush=True)
    q = results["qops_fbgemm"]
    t = results["torch_cuda"]
    results["ratio_qops_fbgemm_over_torch"] = {
        "quantize": q["quantize_s_best"] / t["quantize_s_best"],
        "dequantize": q["dequantize_s_best"] / t["dequantize_s_best"],
    }
except Exception as e:  # torch missing or without CUDA: qops timings still count
    results["torch_cuda"] = {"error": f"{type(e).__name__}: {e}"}
    print("torch_cuda unavailable:", e, flush=True)

with open(f"{out_dir}/timing.json", "w") as f:
    json.dump(results, f, indent=2)
print(json.dumps(results, indent=2))
EOF
timing_rc=${PIPESTATUS[0]}

echo "== linear / conv: the CUDA tests again, verbose"
"$py" -m pytest tests/cuda/test_cuda_linear_conv.py -q -ra -p no:cacheprovider \
    --junitxml="$out/cuda_linear_conv_tests.xml" 2>&1 | tee "$out/cuda_linear_conv_tests.log"
lc_test_rc=${PIPESTATUS[0]}

echo "== timing: linear (512, 1024, 1024) and conv2d 3x3 64->64 at 56x56"
"$py" - "$out" <<'EOF' 2>&1 | tee "$out/linear_timing.log"
"""qops linear / conv2d on the GPU against torch._int_mm on the same GPU."""
import json
import sys
import time

import numpy as np
from numba import cuda

import qops
from qops._packed import PackedLinearWeight

out_dir = sys.argv[1]
M, K, N = 512, 1024, 1024
REPEAT = 20
rng = np.random.default_rng(0)
name = getattr(cuda.get_current_device(), "name", "unknown")
results = {"shape_MKN": [M, K, N], "repeat": REPEAT,
           "device": name.decode() if isinstance(name, bytes) else str(name)}


def best_of(fn, sync):
    fn()  # warm-up (and compile)
    sync()
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


ops = 2.0 * M * K * N
xq = rng.integers(0, 256, (M, K)).astype(np.uint8)
x = qops.make_per_tensor_qtensor(xq, 0.02, 128, qops.quint8)
wq = rng.integers(-128, 128, (N, K)).astype(np.int8)
w = qops.make_per_tensor_qtensor(wq, 0.001, 0, qops.qint8)
bias = rng.normal(size=N).astype(np.float32)
xd = x.to("cuda")
for profile in ("fbgemm", "onnxruntime", "reference"):
    packed = PackedLinearWeight(w, bias)  # prepacked, as the module wrappers hold it
    holder = {}

    def run():
        holder["y"] = qops.functional.linear(xd, packed, None, 0.5, 100, numerics=profile)

    best, med = best_of(run, cuda.synchronize)
    y_dev = holder["y"].int_repr().copy_to_host()
    y_cpu = qops.functional.linear(x, w, bias, 0.5, 100, numerics=profile).int_repr()
    results[f"qops_linear_{profile}"] = {
        "s_best": best, "s_median": med, "GOPS": ops / best / 1e9,
        "mismatches_vs_cpu": int((y_dev != y_cpu).sum()), "compared": int(y_cpu.size),
    }
    print(profile, results[f"qops_linear_{profile}"], flush=True)

# conv2d 3x3 64->64 at 56x56, batch 1 (fbgemm profile)
xc = qops.make_per_tensor_qtensor(rng.integers(0, 256, (1, 64, 56, 56)).astype(np.uint8),
                                  0.02, 128, qops.quint8)
wc = qops.make_per_tensor_qtensor(rng.integers(-128, 128, (64, 64, 3, 3)).astype(np.int8),
                                  0.001, 0, qops.qint8)
xcd = xc.to("cuda")
holder = {}


def run_conv():
    holder["y"] = qops.functional.conv2d(xcd, wc, None, padding=1, scale=0.5, zero_point=100)


best, med = best_of(run_conv, cuda.synchronize)
y_cpu = qops.functional.conv2d(xc, wc, None, padding=1, scale=0.5, zero_point=100).int_repr()
conv_ops = 2.0 * 56 * 56 * 64 * 64 * 9
results["qops_conv2d_fbgemm"] = {
    "s_best": best, "s_median": med, "GOPS": conv_ops / best / 1e9,
    "mismatches_vs_cpu": int((holder["y"].int_repr().copy_to_host() != y_cpu).sum()),
    "compared": int(y_cpu.size),
}
print("conv2d", results["qops_conv2d_fbgemm"], flush=True)

try:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("torch has no CUDA device")
    a = torch.from_numpy((xq.astype(np.int16) - 128).astype(np.int8)).cuda()
    b = torch.from_numpy(np.ascontiguousarray(wq.T)).cuda()
    th = {}

    def t_run():
        th["c"] = torch._int_mm(a, b)

    best, med = best_of(t_run, torch.cuda.synchronize)
    results["torch_int_mm"] = {"version": torch.__version__, "s_best": best, "s_median": med,
                               "GOPS": ops / best / 1e9}
    results["ratio_qops_fbgemm_time_over_torch"] = results["qops_linear_fbgemm"]["s_best"] / best
    print("torch._int_mm", results["torch_int_mm"], flush=True)
except Exception as e:  # torch missing or without CUDA: qops timings still count
    results["torch_int_mm"] = {"error": f"{type(e).__name__}: {e}"}
    print("torch._int_mm unavailable:", e, flush=True)

with open(f"{out_dir}/linear_timing.json", "w") as f:
    json.dump(results, f, indent=2)
print(json.dumps(results, indent=2))
EOF
linear_rc=${PIPESTATUS[0]}

echo "gpu_check: tests exit $test_rc, timing exit $timing_rc, linear/conv tests exit $lc_test_rc," \
     "linear/conv timing exit $linear_rc; results in $out"
if [[ $test_rc -ne 0 ]]; then
    exit $test_rc
fi
exit $lc_test_rc
