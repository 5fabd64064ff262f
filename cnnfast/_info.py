"""cnnfast.info(): what was built, and what this machine can run."""

import torch


def _cuda_kernels(table):
    kernels = []
    for line in table.strip().splitlines():
        name, _, status = line.partition(":")
        emulated = status == "emulated"
        entry = {"name": name, "emulated": emulated}
        if not emulated:
            entry["reason"] = status.partition(":")[2].strip()
        kernels.append(entry)
    return kernels


def info():
    """A dict: version, torch, cuda_compiled, cuda_archs, cpu_isa,
    cuda_available, emulate_cuda and cuda_kernels (each CUDA kernel with
    whether the CPU emulation runs it)."""
    from . import _C, __version__

    return {
        "version": __version__,
        "torch": torch.__version__,
        "built_with_torch": _C.torch_version,
        "cuda_compiled": bool(_C.cuda_compiled),
        "cuda_archs": [arch for arch in _C.cuda_archs.replace(",", ";").split(";") if arch],
        "cpu_isa": _C.cpu_isa,
        "cuda_available": torch.cuda.is_available(),
        "emulate_cuda": _C._emulate_cuda(),
        "cuda_kernels": _cuda_kernels(_C._cuda_kernels()),
    }
