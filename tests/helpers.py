"""Shared parametrizations: devices, dtypes, tolerances.

The whole suite also runs with CNNFAST_EMULATE_CUDA=1, where ops on CPU
tensors execute the CUDA kernels' code; the CPU then also takes the 16-bit
dtypes, as a GPU does.
"""


import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import cnnfast

CUDA = torch.cuda.is_available()
EMULATING = cnnfast.testing.emulating_cuda()
# Python-level machinery (commands, data, benchmarks) is checked once, on the
# CPU kernels, not again under the CUDA emulation.
ONCE = pytest.mark.skipif(EMULATING, reason="checked once, on the CPU kernels")

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="no CUDA GPU visible")]),
]
FLOAT_DTYPES = [torch.float32, torch.float64]
ALL_DTYPES = FLOAT_DTYPES + [torch.float16, torch.bfloat16]

# Tolerances against a float64 reference: (rtol, atol).
TOLERANCE = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-6),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (2e-2, 1e-2),
}


def runs_16bit(device):
    """The CUDA kernels (and their CPU emulation) take float16/bfloat16."""
    return device == "cuda" or EMULATING


def skip_unsupported(device, dtype):
    if dtype in (torch.float16, torch.bfloat16) and not runs_16bit(device):
        pytest.skip("16-bit dtypes run on CUDA (and under the CUDA emulation)")


def assert_close(actual, expected, dtype):
    rtol, atol = TOLERANCE[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=rtol, atol=atol, equal_nan=True)


def assert_close_to_scale(actual, expected, rtol):
    """Within rtol of the reference's largest magnitude. Sums of hundreds of
    float32 terms miss some elements near zero by more than an elementwise
    tolerance allows, however right the kernel."""
    error = (actual.double().cpu() - expected.double().cpu()).abs().max()
    assert error <= rtol * expected.abs().max(), f"max error {error} against scale {expected.abs().max()}"


def slow_in_emulation(full, small):
    """The emulation runs every GPU thread one after the other: big shapes
    shrink there (every case still runs)."""
    return small if EMULATING else full


class RecordOps(TorchDispatchMode):
    """The ops dispatched within the block, in order (`seen`)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(func)
        return func(*args, **(kwargs or {}))
