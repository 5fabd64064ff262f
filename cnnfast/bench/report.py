"""The benchmark's outputs: a Markdown table, JSON, and a PNG bar chart."""

import json


def _shape(shape):
    return "×".join(str(size) for size in shape)


def _throughput(result):
    if "gflops" in result:
        return f"{result['gflops']:.1f} GFLOP/s"
    if "gbps" in result:
        return f"{result['gbps']:.1f} GB/s"
    return ""


def markdown(report):
    """The header (device, torch, dtype, threads, TF32, limits) and one
    table row per case."""
    limits = report["limits"]
    lines = [
        f"# cnnfast {report['cnnfast']} against torch {report['torch']} on {report['device']}",
        "",
        f"- {report['date']}; dtype {report['dtype']}; CPU threads {report['threads']} (both sides); "
        f"CPU kernels {report['cpu_isa']}",
        f"- TF32 for the reference: matmul {report['tf32']['matmul']}, cuDNN {report['tf32']['cudnn']}; "
        f"cudnn.benchmark {report['cudnn_benchmark']}",
        f"- limits: memory {_number(limits['memory_gbps'], 'GB/s')}, FP32 peak "
        f"{_number(limits['fp32_tflops'], 'TFLOP/s')} ({limits['source']})",
        "- medians of interleaved runs (each side first in every other pair) after warm-up; speedup = reference ms / cnnfast ms",
        "",
        "| case | shape | reference | ref ms | cnnfast ms | speedup | cnnfast throughput | share of limit |",
        "|---|---|---|--:|--:|--:|--:|--:|",
    ]
    for result in report["results"]:
        if "error" in result:
            lines.append(f"| {result['name']} | {_shape(result['shape'])} | | | | error: {result['error']} | | |")
            continue
        share = f"{result['share']:.1%}" if "share" in result else ""
        lines.append(
            f"| {result['name']} | {_shape(result['shape'])} | {result['reference']} | {result['ref_ms']:.3f} | "
            f"{result['cnnfast_ms']:.3f} | {result['speedup']:.2f}× | {_throughput(result)} | {share} |"
        )
    return "\n".join(lines) + "\n"


def _number(value, unit):
    return "unknown" if value is None else f"{value:.0f} {unit}" if value >= 100 else f"{value:.2f} {unit}"


def write_json(report, path):
    with open(path, "w") as out:
        json.dump(report, out, indent=2)
        out.write("\n")


def require_matplotlib():
    """matplotlib's pyplot on a file-only backend; a BenchError saying what
    to install when it is missing."""
    from . import BenchError

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BenchError("--plot needs matplotlib: pip install matplotlib (or pip install 'cnnfast[plot]')") from None
    return plt


def write_plot(report, path):
    """A horizontal bar per case: its speedup on a log axis, green where
    cnnfast is faster, red where slower, 1× marked."""
    plt = require_matplotlib()
    results = [r for r in report["results"] if "speedup" in r]
    height = 1.0 + 0.28 * len(results)
    figure, axes = plt.subplots(figsize=(9, height))
    names = [r["name"] + ("" if r["reference"] == "torch" else f" (vs {r['reference']})") for r in results]
    speedups = [r["speedup"] for r in results]
    rows = range(len(results))
    axes.barh(rows, speedups, color=["#2a9d3f" if s >= 1 else "#c8453a" for s in speedups])
    axes.set_yticks(list(rows), names, fontsize=7)
    axes.set_ylim(len(results) - 0.5, -0.5)  # first case on top, no empty margin
    axes.set_xscale("log")
    axes.axvline(1.0, color="black", linewidth=0.8)
    for row, speedup in zip(rows, speedups):
        axes.text(speedup, row, f" {speedup:.2f}×", va="center", fontsize=6)
    low, high = min(speedups + [1.0]), max(speedups + [1.0])
    axes.set_xlim(low / 1.5, high * 2.0 if high > 1 else 2.0)
    axes.set_xlabel("speedup over the reference (reference time / cnnfast time, log scale)")
    axes.set_title(f"cnnfast vs torch {report['torch']}, {report['device']}, {report['dtype']}, "
                   f"{report['threads']} threads, {report['date']}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
