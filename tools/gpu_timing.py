"""Timings of qops's CUDA kernels on a real GPU, against torch on the same GPU.

``python tools/gpu_timing.py quantize OUT`` times quantize / dequantize of 16M
float32 values (qops per profile vs ``torch.quantize_per_tensor`` /
``dequantize``) and counts where torch's CUDA integers differ from each
profile; ``python tools/gpu_timing.py linear_conv OUT`` times
``qops.functional.linear`` (512, 1024, 1024) with a prepacked weight and a
3x3 64->64 conv2d at 56x56 against ``torch._int_mm``.  Every qops GPU result
is compared with the CPU path.  Results go to ``OUT/timing.json`` and
``OUT/linear_timing.json``.  Run by ``tools/gpu_check.sh``.
"""

import json
import sys
import time

import numpy as np
from numba import cuda

import qops
from qops._packed import PackedLinearWeight

REPEAT = 20


def best_of(fn, sync):
    """(best, median) seconds of ``REPEAT`` calls of ``fn`` after one warm-up."""
    fn()  # warm-up (and compile)
    sync()
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def device_name():
    name = getattr(cuda.get_current_device(), "name", "unknown")
    return name.decode() if isinstance(name, bytes) else str(name)


def quantize(out_dir, N=1 << 24):
    SCALE, ZP = 0.02, 128
    rng = np.random.default_rng(0)
    x = rng.normal(scale=1.5, size=N).astype(np.float32)
    x[: N // 8] = ((rng.integers(-140, 140, N // 8) + 0.5) * SCALE).astype(np.float32)  # near-ties
    results = {"n": N, "scale": SCALE, "zero_point": ZP, "repeat": REPEAT,
               "device": device_name()}
    xd = cuda.to_device(x)
    ints = {}  # each profile's GPU integers, compared with torch's below
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
        ints[profile] = q_dev
        print(profile, results[f"qops_{profile}"], flush=True)

    results["breakdown_fbgemm"] = breakdown(xd, SCALE, ZP)
    print("breakdown", results["breakdown_fbgemm"], flush=True)

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
            "int_mismatches_vs_qops": {p: int((t_ints != ints[p]).sum())
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


def breakdown(xd, scale, zp):
    """Where a quantize call's time goes: the kernel alone on preallocated
    arrays (CUDA events), the output allocation, the parameter copies, and the
    host functions that take the most time over ``REPEAT`` whole calls."""
    import cProfile
    import io
    import pstats

    from qops._ops import channel_params, quantize_recipe
    from qops.kernels.cuda import quantize as kq

    n = xd.size
    mode, nanq = quantize_recipe("fbgemm", qops.quint8, False, False)
    s32, inv32, _s64, zpf32, zpi = channel_params(np.array([scale]), np.array([zp]))
    params = [cuda.to_device(np.ascontiguousarray(a)) for a in (s32, inv32, zpf32, zpi)]
    out = cuda.device_array(n, np.uint8)
    flat = xd.reshape(n)

    def kernel():
        kq.quantize(flat, out, n, mode, *params, 0, 255, nanq)

    kernel()
    cuda.synchronize()
    start, stop = cuda.event(), cuda.event()
    start.record()
    for _ in range(REPEAT):
        kernel()
    stop.record()
    stop.synchronize()
    res = {"kernel_events_s_mean": start.elapsed_time(stop) / 1e3 / REPEAT}
    res["launch_only_s"] = best_of(kernel, cuda.synchronize)[0]
    res["alloc_16M_s"] = best_of(lambda: cuda.device_array(n, np.uint8), cuda.synchronize)[0]
    res["params_to_device_s"] = best_of(
        lambda: [cuda.to_device(np.ascontiguousarray(a)) for a in (s32, inv32, zpf32, zpi)],
        cuda.synchronize)[0]
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(REPEAT):
        qops.quantize_per_tensor(xd, scale, zp, qops.quint8)
    cuda.synchronize()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(12)
    print(text.getvalue(), flush=True)
    return res


def linear_conv(out_dir, M=512, K=1024, N=1024, conv_hw=56):
    rng = np.random.default_rng(0)
    results = {"shape_MKN": [M, K, N], "repeat": REPEAT,
               "device": device_name()}


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

    # conv2d 3x3 64->64 at conv_hw x conv_hw, batch 1 (fbgemm profile)
    xc = qops.make_per_tensor_qtensor(rng.integers(0, 256, (1, 64, conv_hw, conv_hw)).astype(np.uint8),
                                      0.02, 128, qops.quint8)
    wc = qops.make_per_tensor_qtensor(rng.integers(-128, 128, (64, 64, 3, 3)).astype(np.int8),
                                      0.001, 0, qops.qint8)
    xcd = xc.to("cuda")
    holder = {}

    def run_conv():
        holder["y"] = qops.functional.conv2d(xcd, wc, None, padding=1, scale=0.5, zero_point=100)

    best, med = best_of(run_conv, cuda.synchronize)
    y_cpu = qops.functional.conv2d(xc, wc, None, padding=1, scale=0.5, zero_point=100).int_repr()
    conv_ops = 2.0 * conv_hw * conv_hw * 64 * 64 * 9
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


if __name__ == "__main__":
    {"quantize": quantize, "linear_conv": linear_conv}[sys.argv[1]](sys.argv[2])
