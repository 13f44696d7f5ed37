#!/usr/bin/env bash
# Check qops's CUDA kernels on a real GPU.
#
# Run from the repository root on a machine with an NVIDIA GPU and numba,
# numba-cuda, numpy, torch (a CUDA build) and onnxruntime installed; no network
# is needed.  It
#   1. installs qops in development mode (no dependencies, no build isolation),
#   2. runs the CUDA tests on the GPU (tests/cuda, including the `gpu`-marked
#      ones the simulator skips),
#   3. (tools/gpu_timing.py) times quantize and dequantize of 16M float32 values on the GPU, qops
#      against torch.quantize_per_tensor / dequantize on the same GPU, and
#      counts where torch's CUDA integers differ from qops's profiles,
#   4. runs the linear / conv CUDA tests again on their own (tests/cuda/
#      test_cuda_linear_conv.py), then (tools/gpu_timing.py) times qops.functional.linear on
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
"$py" tools/gpu_timing.py quantize "$out" 2>&1 | tee "$out/timing.log"
timing_rc=${PIPESTATUS[0]}

echo "== linear / conv: the CUDA tests again, verbose"
"$py" -m pytest tests/cuda/test_cuda_linear_conv.py -q -ra -p no:cacheprovider \
    --junitxml="$out/cuda_linear_conv_tests.xml" 2>&1 | tee "$out/cuda_linear_conv_tests.log"
lc_test_rc=${PIPESTATUS[0]}

echo "== timing: linear (512, 1024, 1024) and conv2d 3x3 64->64 at 56x56"
"$py" tools/gpu_timing.py linear_conv "$out" 2>&1 | tee "$out/linear_timing.log"
linear_rc=${PIPESTATUS[0]}

echo "gpu_check: tests exit $test_rc, timing exit $timing_rc, linear/conv tests exit $lc_test_rc," \
     "linear/conv timing exit $linear_rc; results in $out"
if [[ $test_rc -ne 0 ]]; then
    exit $test_rc
fi
exit $lc_test_rc
