#!/usr/bin/env bash
# Check qops's CUDA kernels on a real GPU.
#
# Run from the repository root on a machine with an NVIDIA GPU and numba,
# numba-cuda, numpy, torch (a CUDA build) and onnxruntime installed; no network
# is needed.  It
#   1. installs qops in development mode (no dependencies, no build isolation),
#   2. runs every CUDA test on the GPU (tests/cuda, including the `gpu`-marked
#      ones the simulator skips), spread over worker processes when
#      pytest-xdist is installed, without stopping at the first failure,
#   3. (tools/gpu_timing.py quantize) times quantize and dequantize of 16M
#      float32 values, qops against torch.quantize_per_tensor / dequantize on
#      the same GPU, and counts where torch's CUDA integers differ from each
#      qops profile: timing.json,
#   4. (tools/gpu_timing.py linear_conv) times qops.functional.linear on
#      (M, K, N) = (512, 1024, 1024) with a prepacked weight and a 3x3 64->64
#      conv2d at 56x56, every output checked against the CPU path, against
#      torch._int_mm (int8 x int8 -> int32) on the same GPU: linear_timing.json.
# Logs and results go to $OUT (./gpu_out when OUT is unset), seven files at
# most.  QOPS_GPU_TEST_SECONDS bounds the test run (default 420 s) so that the
# timings still run.  The exit status is the test run's.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-./gpu_out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
py=${PYTHON:-python3}
test_seconds=${QOPS_GPU_TEST_SECONDS:-420}
unset NUMBA_ENABLE_CUDASIM
export PYTHONUNBUFFERED=1

# numba-cuda 0.30.4 registers an overload for numpy.row_stack, which numpy 2.5
# removed: give numpy the alias back before numba.cuda is imported.
if ! "$py" -c "import numpy; numpy.row_stack" 2>/dev/null; then
    shim=$(mktemp -d)
    printf 'import numpy\nif not hasattr(numpy, "row_stack"):\n    numpy.row_stack = numpy.vstack\n' \
        > "$shim/sitecustomize.py"
    export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"
fi

{
    date -u
    nvidia-smi || echo "nvidia-smi not available"
    nproc
    "$py" - <<'PYEOF'
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
PYEOF
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

workers=()
if "$py" -c "import xdist" 2>/dev/null; then
    workers=(-n "${QOPS_GPU_WORKERS:-8}" --dist loadfile)
fi
echo "== pytest tests/cuda on the GPU ${workers[*]}"
timeout "$test_seconds" "$py" -m pytest tests/cuda -q -ra -p no:cacheprovider "${workers[@]}" \
    --durations=15 --junitxml="$out/cuda_tests.xml" 2>&1 | tee "$out/cuda_tests.log"
test_rc=${PIPESTATUS[0]}

echo "== timing: quantize / dequantize, 16M float32 values" | tee "$out/timing.log"
timeout 120 "$py" tools/gpu_timing.py quantize "$out" 2>&1 | tee -a "$out/timing.log"
timing_rc=${PIPESTATUS[0]}

echo "== timing: linear (512, 1024, 1024) and conv2d 3x3 64->64 at 56x56" | tee -a "$out/timing.log"
timeout 120 "$py" tools/gpu_timing.py linear_conv "$out" 2>&1 | tee -a "$out/timing.log"
linear_rc=${PIPESTATUS[0]}

echo "gpu_check: tests exit $test_rc, quantize timing exit $timing_rc," \
     "linear/conv timing exit $linear_rc; results in $out"
exit $test_rc
