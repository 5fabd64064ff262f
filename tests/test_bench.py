"""python -m cnnfast bench: its cases compare like with like, it covers
what the benchmark suite promises, and its table, JSON and plot are
written (or refused with a clear message)."""

import json
import sys

import pytest
import torch

from cnnfast import bench
from cnnfast.bench import report
from cnnfast.cli import main
from helpers import ONCE

pytestmark = ONCE

QUICK_CASE = "tanh lenet1 fwd"
ONE_CASE = f"^{QUICK_CASE}$"  # --match is a regular expression


def names(device):
    return {case.name for case in bench.all_cases(device)}


def test_the_cases_cover_every_op_and_both_networks():
    cpu, cuda = names("cpu"), names("cuda")
    for batch in (1, 64, 256, 1024):
        assert f"lenet5 forward b{batch}" in cpu
    assert "lenet5 train step b256" in cpu
    for split in ("none", "streams"):
        assert f"alexnet forward b8 split={split}" in cpu and f"alexnet train step b8 split={split}" in cpu
        for batch in (32, 128):
            assert f"alexnet train step b{batch} split={split}" in cuda
    assert {"alexnet train step b32 streams vs none", "alexnet forward b128 streams vs none"} <= cuda
    for op in ("conv2d", "linear", "max_pool2d", "avg_pool2d", "local_response_norm", "relu_lrn_max_pool2d",
               "relu", "tanh"):
        for passes in ("fwd", "fwd+bwd"):
            assert any(name.startswith(f"{op} ") and name.endswith(f" {passes}") for name in cpu), (op, passes)
    quick = bench.select("cpu", quick=True)
    assert 0 < len(quick) < len(cpu) and all(case.quick for case in quick)


def _results(value):
    """A forward's output, or the tuple of gradients."""
    return list(value) if isinstance(value, tuple) else [value]


@pytest.mark.parametrize("case", [c for c in bench.all_cases("cpu") if "train step" not in c.name],
                         ids=lambda c: c.name)
def test_both_sides_of_a_case_compute_the_same(case):
    torch.manual_seed(0)
    reference, ours = case.build(torch.device("cpu"), torch.float32)
    expected, actual = _results(reference()), _results(ours())
    assert len(expected) == len(actual)
    for e, a in zip(expected, actual):
        scale = e.abs().max().item() + 1e-6
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4 * scale)


def test_run_measures_and_reports():
    results = bench.run("cpu", match=ONE_CASE, progress=False, budget_s=0.01)
    assert results["device"].startswith("CPU") and results["torch"] == torch.__version__
    assert results["threads"] == torch.get_num_threads() and results["dtype"] == "float32"
    (result,) = results["results"]
    assert result["name"] == QUICK_CASE and result["shape"] == [256, 6, 28, 28]
    assert result["ref_ms"] > 0 and result["cnnfast_ms"] > 0
    assert result["speedup"] == pytest.approx(result["ref_ms"] / result["cnnfast_ms"])
    # tanh reads and writes each element once: 2 × 4 bytes per element.
    assert result["gbps"] == pytest.approx(2 * 4 * 256 * 6 * 28 * 28 / (result["cnnfast_ms"] * 1e-3) / 1e9)
    table = report.markdown(results)
    assert "CPU threads" in table and "TF32" in table and f"| {QUICK_CASE} | {result['ref_ms']:.3f} |" in table
    assert all(len(line) <= report.WIDTH for line in table.splitlines())
    # The bandwidth limit is measured at the case's own size (a copy or sum
    # of as many bytes, best of several runs).
    assert result["limit_gbps"] > 0 and result["share"] == pytest.approx(result["gbps"] / result["limit_gbps"])


def fake_report(results):
    return {"cnnfast": "0", "torch": "2", "device": "CPU: a machine with a name long enough to wrap " * 2,
            "date": "2026-12-07", "dtype": "float32", "threads": 2, "cpu_isa": "avx512",
            "precision": "strict", "tf32": {"matmul": False, "cudnn": False}, "cudnn_benchmark": False,
            "cnnfast_math": "SIMT kernels",
            "limits": {"memory_gbps": 40.0, "fp32_tflops": 0.2, "source": "measured here, " * 10}, "results": results}


def test_precision_default_keeps_torchs_switches_and_strict_turns_tf32_off(monkeypatch):
    # Users run torch's defaults (cuDNN's TF32 convolutions on sm_80+ GPUs):
    # the bench keeps the switches as it finds them unless asked for strict
    # IEEE float32, says which in its report, and restores them.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    default = bench.run("cpu", match=ONE_CASE, progress=False, budget_s=0.01)
    assert default["precision"] == "default" and default["tf32"]["cudnn"] is True
    strict = bench.run("cpu", match=ONE_CASE, progress=False, budget_s=0.01, precision="strict")
    assert strict["precision"] == "strict" and strict["tf32"] == {"matmul": False, "cudnn": False}
    assert torch.backends.cudnn.allow_tf32 is True
    assert "precision strict: TF32 for the reference: matmul False, cuDNN False" in report.markdown(strict)
    assert strict["cnnfast_math"] == "CPU kernels in float32"
    assert "cnnfast: CPU kernels in float32" in report.markdown(strict)
    with pytest.raises(bench.BenchError, match="--precision fast: default or strict"):
        bench.run("cpu", match=ONE_CASE, progress=False, precision="fast")


def test_the_table_fits_100_columns_and_flags_a_share_above_the_limit():
    rows = [{"name": "relu_lrn_max_pool2d alexnet1 vs unfused fwd+bwd and then some more words", "shape": [1],
             "reference": "cnnfast unfused", "ref_ms": 12345.678, "cnnfast_ms": 0.001, "speedup": 12345678.0,
             "share": 1.17, "share_above_estimate": True, "gbps": 47.0},
            {"name": "relu alexnet1 fwd", "shape": [1], "reference": "torch", "ref_ms": 1.0, "cnnfast_ms": 2.0,
             "speedup": 0.5, "share": 0.5},
            {"name": "conv2d alexnet conv1 fwd", "shape": [1], "error": "out of memory"}]
    table = report.markdown(fake_report(rows))
    assert all(len(line) <= report.WIDTH for line in table.splitlines()), max(map(len, table.splitlines()))
    assert "| 117%* |" in table and "| 50% |" in table and "* where above it" in table
    assert "relu_lrn_max_pool2d alexnet1 vs unfused" in table and "…" in table
    assert "error: out of memory" in table


def test_a_share_above_the_measured_limit_is_flagged():
    case = bench.Case("relu x", (1,), build=None, elements=10**6)
    limits = bench.limits.Limits(gbps=40.0, tflops=None, source="", gbps_at=lambda nbytes: 10.0)
    below = bench._result(case, 1.0, 1.0, torch.float32, limits)  # 4 MB in 1 ms: 4 GB/s of 10
    above = bench._result(case, 1.0, 0.1, torch.float32, limits)  # 40 GB/s of 10
    assert below["share"] == pytest.approx(0.4) and "share_above_estimate" not in below
    assert above["share"] == pytest.approx(4.0) and above["share_above_estimate"] is True


def test_the_plot_reads_speedups_as_times():
    rows = [{"name": f"case {i}", "reference": "torch", "speedup": s} for i, s in enumerate((0.4, 1.0, 3.0, 9.0))]
    figure = report.speedup_figure(fake_report(rows))
    figure.canvas.draw()
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels() if label.get_text()]
    assert labels and all(label.endswith("×") for label in labels)
    assert {"0.5×", "1×", "2×", "5×"} <= set(labels)
    assert not any("10^" in label or "$" in label for label in labels)


def test_the_command_writes_json_and_plot(tmp_path, capsys):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    assert main(["bench", "--device", "cpu", "--match", ONE_CASE, "--json", str(out_json), "--plot", str(out_png),
                 "--no-progress"]) == 0
    written = json.loads(out_json.read_text())
    assert set(written) >= {"device", "torch", "results"}
    assert {"name", "ref_ms", "cnnfast_ms", "speedup"} <= set(written["results"][0])
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"| {QUICK_CASE} |" in capsys.readouterr().out


def test_the_command_lists_and_refuses_clearly(tmp_path, capsys, monkeypatch):
    assert main(["bench", "--device", "cpu", "--quick", "--list"]) == 0
    listed = capsys.readouterr().out.split("\n")
    assert "lenet5 forward b256" in listed and "lenet5 forward b1" not in listed
    assert main(["bench", "--device", "cpu", "--dtype", "float16"]) == 2
    assert "CPU kernels take float32 or float64" in capsys.readouterr().err
    assert main(["bench", "--device", "cpu", "--match", "no such case"]) == 2
    assert "no case matches 'no such case'" in capsys.readouterr().err
    assert main(["bench", "--device", "cpu", "--match", "conv2d("]) == 2
    assert "--match 'conv2d(': not a regular expression" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert main(["bench", "--device", "cpu", "--match", ONE_CASE, "--plot", str(tmp_path / "x.png")]) == 2
    assert "--plot needs matplotlib: pip install matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where no GPU is visible")
def test_cuda_without_a_gpu_is_refused(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--device", "cuda", "--quick"])
    assert exited.value.code == 2
    assert "cnnfast: --device: cuda: no CUDA GPU is visible" in capsys.readouterr().err


def test_demo_trains_lenet5_then_benchmarks(tmp_path, capsys, monkeypatch):
    """make demo's command, on one epoch and one bench case (the full
    --quick run is what make demo itself shows)."""
    from cnnfast import demo

    quick_run = bench.run
    monkeypatch.setattr(demo.bench, "run", lambda *args, **kw: quick_run(*args, **kw, match=ONE_CASE, budget_s=0.01))
    assert main(["demo", "--epochs", "1", "--output", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("held-out accuracy after 1 epoch: ")[1].split("%")[0])
    assert accuracy > 80  # one epoch on 6,000 digits
    assert f"| {QUICK_CASE} |" in out
    assert {p.name for p in tmp_path.iterdir()} == {"lenet5.pt", "bench.md", "bench.json", "speedups.png"}
