"""Prints, after the run, each case's speedup over its reference (both
measured in this process, one group per case), and cnnfast's throughput:
GFLOP/s for convolution and linear, GB/s for the memory-bound ops."""

import torch


def pytest_report_header(config):
    threads = torch.get_num_threads()
    cuda = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return (f"torch {torch.__version__}; CPU threads {threads} (both sides); GPU {cuda}; "
            "cudnn.benchmark on and TF32 off for the reference")


def _throughput(info, seconds):
    if "flops" in info:
        return f"{info['flops'] / seconds / 1e9:.1f} GFLOP/s"
    if "bytes" in info:
        return f"{info['bytes'] / seconds / 1e9:.1f} GB/s"
    return ""


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups = {}
    for bench in session.benchmarks:
        groups.setdefault(bench.group, {})[bench.extra_info["side"]] = bench
    terminalreporter.section("cnnfast speedup over the reference (median)")
    terminalreporter.write_line(f"{'case':<56} {'ref ms':>10} {'cnnfast ms':>11} {'speedup':>8}  cnnfast throughput")
    for group, sides in groups.items():
        if "cnnfast" in sides and "torch" in sides:
            ours, theirs = sides["cnnfast"].stats.median, sides["torch"].stats.median
            terminalreporter.write_line(
                f"{group:<56} {theirs * 1e3:>10.3f} {ours * 1e3:>11.3f} {theirs / ours:>7.2f}x  "
                f"{_throughput(sides['cnnfast'].extra_info, ours)}"
            )
