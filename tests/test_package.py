"""The package around the ops: info(), the CLI, the loader's errors, the
emulation switch."""

import json
import subprocess
import sys

import pytest
import torch

import cnnfast
from cnnfast import _loader


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


def test_every_cuda_kernel_is_emulated():
    names = {k["name"]: k for k in cnnfast.info()["cuda_kernels"]}
    for op in ("relu", "tanh", "max_pool2d", "avg_pool2d", "local_response_norm", "relu_lrn_max_pool2d"):
        for direction in ("forward", "backward"):
            assert names[f"{op}_{direction}"]["emulated"] is True


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
