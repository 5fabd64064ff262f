"""cnnfast.info(): what was built, and what this machine can run."""

import torch


def cuda_kernels():
    """The CUDA kernels of this build (csrc/common/kernel_table.h): each
    kernel functor's name, the header that defines it, and how many times
    this process has launched it under the CUDA emulation. Every kernel is
    a functor of its (block, thread) that the emulation runs on the CPU."""
    from . import _C

    return [{"name": name, "header": header, "emulated": True, "emulated_launches": launches}
            for name, header, launches in _C._cuda_kernels()]


def info():
    """A dict: version, torch, cuda_compiled, cuda_archs, cpu_isa,
    cuda_available, emulate_cuda and cuda_kernels (cuda_kernels())."""
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
        "cuda_kernels": cuda_kernels(),
    }
