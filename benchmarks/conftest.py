"""Prints, after the run, each cnnfast case's speedup over its reference
(torch, unless the case names another; both measured in this process;
same group = same case)."""

import torch


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
    groups = {}
    for bench in session.benchmarks:
        side = "cnnfast" if bench.name.startswith("test_cnnfast") else "torch"
        groups.setdefault(bench.group, {})[side] = bench.stats.median * 1e3
    terminalreporter.section("cnnfast speedup over the reference (median)")
    terminalreporter.write_line(f"{'case':<60} {'ref ms':>10} {'cnnfast ms':>11} {'speedup':>8}")
    for group, sides in sorted(groups.items()):
        if "cnnfast" in sides and "torch" in sides:
            speedup = sides["torch"] / sides["cnnfast"]
            terminalreporter.write_line(f"{group:<60} {sides['torch']:>10.3f} {sides['cnnfast']:>11.3f} {speedup:>7.2f}x")
