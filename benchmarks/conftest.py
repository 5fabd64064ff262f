"""Prints, after the run, each cnnfast case's speedup over its reference
(torch, unless the case names another; both measured in this process;
same group = same case), and for cases that count their FLOPs (conv2d,
linear) cnnfast's GFLOP/s and, on a GPU with a known FP32 peak, its share."""

import torch

# FP32 (non-tensor-core) peaks in TFLOP/s, from NVIDIA's data sheets.
FP32_PEAK_TFLOPS = {"H100 80GB HBM3": 66.9, "H100 PCIe": 51.2, "H200": 66.9}


def fp32_peak():
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in FP32_PEAK_TFLOPS.items() if key in name), None)


def pytest_report_header(config):
    threads = torch.get_num_threads()
    cuda = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    return (f"torch {torch.__version__}; CPU threads {threads} (both sides); GPU {cuda}; "
            f"cudnn.benchmark on for the reference; TF32 matmul/cudnn {tf32}")


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups, flops = {}, {}
    for bench in session.benchmarks:
        side = "cnnfast" if bench.name.startswith("test_cnnfast") else "torch"
        groups.setdefault(bench.group, {})[side] = bench.stats.median * 1e3
        if "flops" in bench.extra_info:
            flops[bench.group] = bench.extra_info["flops"]
    peak = fp32_peak()
    terminalreporter.section("cnnfast speedup over the reference (median)")
    share = "  of FP32 peak" if peak else ""
    terminalreporter.write_line(f"{'case':<60} {'ref ms':>10} {'cnnfast ms':>11} {'speedup':>8} {'GFLOP/s':>9}{share}")
    for group, sides in sorted(groups.items()):
        if "cnnfast" in sides and "torch" in sides:
            speedup = sides["torch"] / sides["cnnfast"]
            line = f"{group:<60} {sides['torch']:>10.3f} {sides['cnnfast']:>11.3f} {speedup:>7.2f}x"
            if group in flops:
                gflops = flops[group] / sides["cnnfast"] / 1e6
                line += f" {gflops:>9.1f}"
                if peak:
                    line += f"  {gflops / 1e3 / peak:>6.1%}"
            terminalreporter.write_line(line)
