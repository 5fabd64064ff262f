"""The package around the ops: info(), the CLI, the loader's errors, the
emulation switch."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import cnnfast
from cnnfast import _loader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_info_fields():
    info = cnnfast.info()
    for key in ("version", "torch", "cuda_compiled", "cuda_archs", "cpu_isa", "cuda_available", "cuda_kernels"):
        assert key in info
    assert info["torch"] == torch.__version__ == info["built_with_torch"]
    assert info["cpu_isa"] in ("avx512", "avx2", "generic")
    assert info["cuda_available"] == torch.cuda.is_available()
    # A CUDA build of torch with a toolkit present compiles the CUDA kernels.
    if torch.version.cuda is not None and info["cuda_compiled"]:
        assert info["cuda_archs"], "a CUDA build names its architectures"


def test_kernel_table_names_each_kernel_once_with_its_header():
    table = cnnfast.info()["cuda_kernels"]
    names = [k["name"] for k in table]
    assert len(names) == len(set(names)) and "ImplicitGemmKernel" in names
    for kernel in table:
        assert kernel["header"].startswith("csrc/kernels/") and os.path.isfile(os.path.join(ROOT, kernel["header"]))
        with open(os.path.join(ROOT, kernel["header"])) as header:
            assert f"CNNFAST_KERNEL_NAME({kernel['name']})" in header.read()


def global_kernel_functors(library):
    """The functor of every __global__ kernel in the library: each is
    run_kernel<F> or run_block_kernel<F> (csrc/cuda/launch.cuh), whose host
    stub the library's symbol table names."""
    symbols = subprocess.run(["nm", "-C", "--defined-only", library], capture_output=True, text=True,
                             check=True).stdout
    return set(re.findall(r"cnnfast::run_(?:block_)?kernel<(?:cnnfast::)?(?:kernels::)?(\w+)", symbols))


@pytest.mark.skipif(not cnnfast.info()["cuda_compiled"], reason="a CPU-only build has no CUDA kernels")
@pytest.mark.skipif(shutil.which("nm") is None, reason="needs binutils' nm")
def test_kernel_table_is_every_cuda_kernel_of_the_build():
    built = global_kernel_functors(cnnfast._C.__file__)
    listed = {k["name"] for k in cnnfast.info()["cuda_kernels"]}
    assert built, "no __global__ kernel found in the library"
    assert built == listed, f"in the build, not the table: {built - listed}; in the table, not the build: {listed - built}"


def test_the_host_launcher_counts_launches():
    launches = {k["name"]: k["emulated_launches"] for k in cnnfast.info()["cuda_kernels"]}
    with cnnfast.testing.emulate_cuda(True):
        cnnfast.relu(torch.randn(5))
    after = {k["name"]: k["emulated_launches"] for k in cnnfast.info()["cuda_kernels"]}
    assert after["ActivationForwardKernel"] == launches["ActivationForwardKernel"] + 1
    assert {name: n for name, n in after.items() if name != "ActivationForwardKernel"} == {
        name: n for name, n in launches.items() if name != "ActivationForwardKernel"}


def test_emulation_switch_changes_the_code_path():
    # The CPU kernels refuse float16; the emulated CUDA kernels take it.
    x = torch.randn(1, 2, 6, 6, dtype=torch.float16)
    with cnnfast.testing.emulate_cuda(True):
        assert cnnfast.testing.emulating_cuda()
        out = cnnfast.max_pool2d(x, 2)
        torch.testing.assert_close(out, torch.nn.functional.max_pool2d(x.float(), 2).half())
    with cnnfast.testing.emulate_cuda(False):
        with pytest.raises(RuntimeError, match="float32 or float64"):
            cnnfast.max_pool2d(x, 2)


def test_cli_info_json():
    result = subprocess.run([sys.executable, "-m", "cnnfast", "info", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout)["cpu_isa"] == cnnfast.info()["cpu_isa"]


def test_loader_names_both_torch_versions(monkeypatch):
    import cnnfast._build_info as build

    monkeypatch.setattr(build, "torch_version", "1.0.0+elsewhere")
    with pytest.raises(ImportError) as error:
        _loader.load_extension()
    message = str(error.value)
    assert "1.0.0+elsewhere" in message and torch.__version__ in message and "--no-build-isolation" in message


def test_loader_refuses_a_cpu_without_the_build_isa(monkeypatch):
    import cnnfast._build_info as build

    monkeypatch.setattr(build, "cpu_flags", ["avx9000"])
    with pytest.raises(ImportError, match="avx9000"):
        _loader.load_extension()
