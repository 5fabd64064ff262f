"""The benchmark's outputs: a Markdown table, JSON, and a PNG bar chart."""

import json
import textwrap

WIDTH = 100  # columns of the Markdown table; the JSON keeps every field


def _share(result):
    if "share" not in result:
        return ""
    return f"{result['share']:.0%}" + ("*" if result.get("share_above_estimate") else "")


def _row(cells):
    return "| " + " | ".join(cells) + " |"


def _fit(name, width):
    return name if len(name) <= width else name[: width - 1] + "…"


def markdown(report):
    """The header (device, torch, dtype, threads, precision, limits) and one row
    per case, at most WIDTH columns wide: the case, both times, the speedup
    and the share of the device's limit (throughputs, shapes and the
    reference's name are in the JSON)."""
    limits = report["limits"]
    bullets = [
        f"{report['device']}; {report['date']}",
        f"dtype {report['dtype']}; CPU threads {report['threads']} (both sides); CPU kernels {report['cpu_isa']}",
        f"precision {report['precision']}: TF32 for the reference: matmul {report['tf32']['matmul']}, "
        f"cuDNN {report['tf32']['cudnn']}; cudnn.benchmark {report['cudnn_benchmark']}",
        f"cnnfast: {report['cnnfast_math']}",
        f"limits: memory {_number(limits['memory_gbps'], 'GB/s')}, FP32 peak "
        f"{_number(limits['fp32_tflops'], 'TFLOP/s')} ({limits['source']})",
        "medians of interleaved runs (each side first in every other pair) after warm-up; speedup = "
        "reference ms / cnnfast ms; share: of the bandwidth (pooling, LRN, activations) or of the FP32 "
        "peak (conv2d, linear), * where above it: the limit is then only an estimate",
    ]
    lines = [f"# cnnfast {report['cnnfast']} against torch {report['torch']}", ""]
    lines += [textwrap.fill(bullet, WIDTH, initial_indent="- ", subsequent_indent="  ") for bullet in bullets]
    lines.append("")
    rows = []
    for result in report["results"]:
        if "error" in result:
            rows.append((result["name"], "", "", f"error: {result['error']}", ""))
            continue
        name = result["name"] + ("" if result.get("reference", "torch") == "torch" else f" ({result['reference']})")
        rows.append((name, f"{result['ref_ms']:.3f}", f"{result['cnnfast_ms']:.3f}", f"{result['speedup']:.2f}×",
                     _share(result)))
    header = ("case", "ref ms", "cnnfast ms", "speedup", "share")
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(1, 5)]
    name_width = max(len(header[0]), WIDTH - sum(widths) - 3 * len(header) - 1)
    lines.append(_row(header))
    lines.append("|---|--:|--:|--:|--:|")
    lines += [_row((_fit(row[0], name_width), *row[1:])) for row in rows]
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


# Speedups a person reads, on the plot's log axis.
SPEEDUP_TICKS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]


def write_plot(report, path):
    """The speedup figure (speedup_figure) as a PNG."""
    plt = require_matplotlib()
    figure = speedup_figure(report)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def speedup_figure(report):
    """A horizontal bar per case: its speedup on a log axis read as 0.5×,
    1×, 2×, 5×…, green where cnnfast is faster, red where slower, 1×
    marked."""
    plt = require_matplotlib()
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

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
    axes.xaxis.set_major_locator(FixedLocator(SPEEDUP_TICKS))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}×"))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.axvline(1.0, color="black", linewidth=0.8)
    for row, speedup in zip(rows, speedups):
        axes.text(speedup, row, f" {speedup:.2f}×", va="center", fontsize=6)
    low, high = min(speedups + [1.0]), max(speedups + [1.0])
    axes.set_xlim(low / 1.5, high * 2.0 if high > 1 else 2.0)
    axes.set_xlabel("speedup over the reference (reference time / cnnfast time)")
    axes.set_title(f"cnnfast vs torch {report['torch']}, {report['device']}, {report['dtype']}, "
                   f"{report['threads']} threads, {report['date']}", fontsize=8)
    figure.tight_layout()
    return figure
