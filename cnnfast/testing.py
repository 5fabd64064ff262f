"""Test helpers: run the CUDA kernels' own code on CPU tensors."""

import contextlib

from . import _C


@contextlib.contextmanager
def emulate_cuda(enabled=True):
    """Within the block, ops on CPU tensors run the CUDA kernels' code
    through the host launcher instead of the CPU kernels (the same switch as
    CNNFAST_EMULATE_CUDA=1)."""
    before = _C._emulate_cuda()
    _C._set_emulate_cuda(enabled)
    try:
        yield
    finally:
        _C._set_emulate_cuda(before)


def emulating_cuda():
    return _C._emulate_cuda()
