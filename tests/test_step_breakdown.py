"""tools/step_breakdown.py: kernel names shortened, and a profiled AlexNet
step listed op by op on the CPU."""

import sys
from pathlib import Path

from helpers import ONCE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import step_breakdown  # noqa: E402


def test_short_names_keep_the_kernel_and_its_template_arguments():
    gemm = ("void cnnfast::run_block_kernel<cnnfast::kernels::ImplicitGemmKernel<cnnfast::FpropGemm<float>, "
            "cnnfast::kernels::GemmTile<128, 128> > >(cnnfast::kernels::ImplicitGemmKernel<"
            "cnnfast::FpropGemm<float>, cnnfast::kernels::GemmTile<128, 128> >)")
    assert step_breakdown.short_name(gemm) == "ImplicitGemmKernel<FpropGemm<float>, GemmTile<128, 128> >"
    pool = "void cnnfast::run_kernel<cnnfast::kernels::MaxPool2dForwardKernel<float, unsigned char, int, 3> >(x)"
    assert step_breakdown.short_name(pool) == "MaxPool2dForwardKernel<float, unsigned char, int, 3>"
    assert step_breakdown.short_name("sm90_xmma_fprop_implicit_gemm_f32f32") == "sm90_xmma_fprop_implicit_gemm_f32f32"


@ONCE
def test_lists_each_networks_ops_on_the_cpu(capsys):
    step_breakdown.main(["--device", "cpu", "--batch", "1", "--steps", "1", "--warmup", "0", "--rows", "50"])
    out = capsys.readouterr().out
    ours, theirs = out.split("### torch")
    assert "### cnnfast (split=none)" in ours
    assert "`cnnfast::conv2d`" in ours and "`cnnfast::_conv2d_backward`" in ours
    assert "cnnfast::" not in theirs and "`aten::" in theirs
    shares = [float(line.rsplit("|", 2)[1].strip().rstrip("%")) for line in ours.splitlines()
              if line.startswith("| `")]
    assert shares == sorted(shares, reverse=True) and sum(shares) <= 100.05
