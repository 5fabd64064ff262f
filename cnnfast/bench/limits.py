"""The device's physical limits, for the share of them a case reaches:
memory bandwidth (pooling, LRN, activations) and FP32 peak (convolution,
linear)."""

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

import torch

# (memory GB/s, FP32 non-tensor-core TFLOP/s) from NVIDIA's data sheets.
GPU_LIMITS = {
    "H100 80GB HBM3": (3350.0, 66.9),
    "H100 PCIe": (2000.0, 51.2),
    "H200": (4800.0, 66.9),
    "A100-SXM4-80GB": (2039.0, 19.5),
}


@dataclass
class Limits:
    gbps: Optional[float]  # memory bandwidth, GB/s
    tflops: Optional[float]  # FP32 peak, TFLOP/s
    source: str  # where the figures come from
    # The bandwidth limit of a case that moves that many bytes, where it is
    # measured per size (on a CPU, whose caches make small working sets
    # faster than memory); None: `gbps` for every size.
    gbps_at: Optional[Callable[[int], float]] = None

    def bandwidth_for(self, nbytes):
        return self.gbps_at(nbytes) if self.gbps_at is not None else self.gbps


def measured_gbps(device, nbytes=2**29, repeats=5):
    """The bandwidth of moving `nbytes` here: the best of `repeats` runs of
    the better of a copy of nbytes / 2 (as many bytes read and written)
    and a sum of nbytes (read). At 512 MB it is the memory's; at a case's
    size, what a working set of that size can reach through the caches."""
    from .timing import time_once

    device = torch.device(device)
    elements = max(nbytes // 4, 2)
    source = torch.ones(elements, device=device)  # float32
    half, target = source[: elements // 2], torch.empty(elements // 2, device=device)
    copy_ms = min(time_once(lambda: target.copy_(half), device) for _ in range(repeats))
    read_ms = min(time_once(lambda: source.sum(), device) for _ in range(repeats))
    return max(2 * half.numel() * 4 / copy_ms, elements * 4 / read_ms) * 1e3 / 1e9


def measured_cpu_tflops(size=2048):
    """FP32 rate of torch's own float32 matrix product here (the best of
    three 2048³ products on the bench's threads): a floor under the peak,
    taken because an estimate from the CPU's flags and clock was wrong by
    up to 2× — a VM reports its nominal clock, and AVX-512 does not say how
    many FMA units run 512-bit vectors (one on this AMD EPYC, two on some
    Xeons)."""
    from .timing import time_once

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)
    best_ms = min(time_once(lambda: torch.mm(a, b), torch.device("cpu")) for _ in range(3))
    return 2 * size**3 / best_ms / 1e9


def device_limits(device):
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (gbps, tflops) in GPU_LIMITS.items():
            if key in name:
                return Limits(gbps, tflops, f"{name} data sheet")
        return Limits(measured_gbps(device), None, f"{name}: bandwidth measured here, FP32 peak unknown")
    at_size = lru_cache(maxsize=None)(lambda nbytes: measured_gbps(device, nbytes, repeats=11))
    return Limits(measured_gbps(device), measured_cpu_tflops(),
                  "bandwidth: the best of 11 copies or sums of each case's bytes, measured here (memory: "
                  "512 MB); FP32 peak: torch's best float32 matrix product here (2048³, a floor under the peak)",
                  gbps_at=at_size)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            found = re.search(r"^model name\s*:\s*(.+)$", info.read(), re.M)
    except OSError:
        found = None
    return found.group(1).strip() if found else os.uname().machine
