"""`python -m cnnfast bench`: cnnfast against the plain-PyTorch path (cuDNN
on a GPU, oneDNN on a CPU), case by case, as speedups measured side by side
in this process (docs/benchmarks.md). `run` measures, `report` formats."""

import datetime
import gc

import torch


class BenchError(Exception):
    """A benchmark that cannot run as asked (bad device, dtype or case
    pattern, or a missing optional package)."""


from .cases import Case, all_cases, select  # noqa: E402
from .limits import cpu_model, device_limits  # noqa: E402
from .timing import compare  # noqa: E402

__all__ = ["BenchError", "Case", "all_cases", "run", "select"]

CPU_DTYPES = (torch.float32, torch.float64)


def _check(device, dtype):
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda: no CUDA GPU is visible")
    if device.type == "cpu" and dtype not in CPU_DTYPES:
        raise BenchError(f"--dtype {str(dtype).removeprefix('torch.')}: cnnfast's CPU kernels take float32 or "
                         "float64 (16-bit types run on CUDA)")


PRECISIONS = ("default", "strict")


def _cnnfast_math(device, dtype):
    """What cnnfast's kernels compute in, by the rule of the CUDA engine's
    tensor_cores_for_matmul (csrc/kernels/gemm_engine.h): only linear's
    forward takes the tensor cores so far."""
    if device.type == "cpu":
        return f"CPU kernels in {str(dtype).removeprefix('torch.')}"
    tensor_cores = torch.cuda.get_device_capability(device)[0] >= 8 and (
        dtype in (torch.float16, torch.bfloat16)
        or (dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32))
    simt = "SIMT kernels, 16-bit types accumulated in float32"
    if not tensor_cores:
        return simt
    mode = "TF32" if dtype == torch.float32 else "float32 accumulation"
    return f"linear's forward on tensor cores ({mode}); the rest {simt}"


def _environment(device, dtype, built, limits, precision):
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU: {cpu_model()}",
        "device_type": device.type,
        "torch": torch.__version__,
        "cnnfast": built["version"],
        "cpu_isa": built["cpu_isa"],
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "precision": precision,
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
        "cnnfast_math": _cnnfast_math(device, dtype),
        "cudnn_benchmark": device.type == "cuda",
        "date": datetime.date.today().isoformat(),
        "limits": {"memory_gbps": limits.gbps, "fp32_tflops": limits.tflops, "source": limits.source},
    }


def _measure(case, device, dtype, budget_s):
    reference, ours = case.build(device, dtype)
    try:
        return compare(reference, ours, device, budget_s)
    finally:
        del reference, ours
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _result(case, ref_ms, cnnfast_ms, dtype, limits):
    result = {"name": case.name, "shape": list(case.shape), "reference": case.reference,
              "ref_ms": ref_ms, "cnnfast_ms": cnnfast_ms, "speedup": ref_ms / cnnfast_ms}
    seconds = cnnfast_ms * 1e-3
    if case.flops is not None:
        result["gflops"] = case.flops / seconds / 1e9
        if limits.tflops:
            result["share"] = result["gflops"] / (limits.tflops * 1e3)
    if case.elements is not None:
        nbytes = case.elements * dtype.itemsize
        result["gbps"] = nbytes / seconds / 1e9
        limit = limits.bandwidth_for(nbytes)
        if limit:
            result["limit_gbps"] = limit
            result["share"] = result["gbps"] / limit
    if result.get("share", 0) > 1:
        # Faster than the limit measured or looked up: the limit is an
        # estimate (a copy of the same bytes on a CPU) that this case beats.
        result["share_above_estimate"] = True
    return result


def _progress(cases, enabled):
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(cases, desc="bench", unit="case", leave=False)
        except ImportError:
            pass
    return cases


def run(device=None, dtype=torch.float32, quick=False, match=None, progress=True, precision="default",
        budget_s=None):
    """Measures the selected cases; returns {"device": …, "torch": …, …,
    "results": [{"name", "shape", "ref_ms", "cnnfast_ms", "speedup", …}]}.
    A case that fails is reported with its "error" and the rest go on.
    precision "default" leaves torch's switches as they are -- what users
    run: TF32 convolutions on sm_80 and newer GPUs, IEEE matmuls --, and
    "strict" turns TF32 off (IEEE float32 on both sides)."""
    if precision not in PRECISIONS:
        raise BenchError(f"--precision {precision}: default or strict")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    _check(device, dtype)
    cases = select(device, quick, match)
    if not cases:
        raise BenchError(f"no case matches {match!r} (python -m cnnfast bench --list shows them)")
    budget_s = budget_s if budget_s is not None else (0.8 if quick else 2.0)
    saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    if precision == "strict":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        from .. import info

        built = info()
        limits = device_limits(device)
        report = _environment(device, dtype, built, limits, precision)
        results = []
        for case in _progress(cases, progress):
            try:
                ref_ms, cnnfast_ms = _measure(case, device, dtype, budget_s)
            except (RuntimeError, ValueError) as error:  # out of memory, or an op refusing the input
                results.append({"name": case.name, "shape": list(case.shape), "error": str(error).splitlines()[0]})
                continue
            results.append(_result(case, ref_ms, cnnfast_ms, dtype, limits))
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = saved
    report["results"] = results
    return report
