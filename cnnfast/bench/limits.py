"""The device's physical limits, for the share of them a case reaches:
memory bandwidth (pooling, LRN, activations) and FP32 peak (convolution,
linear)."""

import os
import re
from dataclasses import dataclass
from typing import Optional

import torch

# (memory GB/s, FP32 non-tensor-core TFLOP/s) from NVIDIA's data sheets.
GPU_LIMITS = {
    "H100 80GB HBM3": (3350.0, 66.9),
    "H100 PCIe": (2000.0, 51.2),
    "H200": (4800.0, 66.9),
    "A100-SXM4-80GB": (2039.0, 19.5),
}
# FP32 FLOPs per cycle per core: 2 FMA units × lanes × 2.
CPU_FLOPS_PER_CYCLE = {"avx512": 64, "avx2": 32}


@dataclass
class Limits:
    gbps: Optional[float]  # memory bandwidth, GB/s
    tflops: Optional[float]  # FP32 peak, TFLOP/s
    source: str  # where the figures come from


def _cpu_mhz():
    try:
        with open("/proc/cpuinfo") as info:
            speeds = [float(v) for v in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", info.read(), re.M)]
    except OSError:
        return None
    return max(speeds) if speeds else None


def measured_gbps(device, megabytes=256):
    """Memory bandwidth measured here on tensors far larger than any cache:
    the better of a copy (bytes read + written) and a sum (bytes read)."""
    from .timing import time_once

    device = torch.device(device)
    source = torch.ones(megabytes * 2**18, device=device)  # float32
    target = torch.empty_like(source)
    copy_ms = min(time_once(lambda: target.copy_(source), device) for _ in range(5))
    read_ms = min(time_once(lambda: source.sum(), device) for _ in range(5))
    size = source.numel() * 4
    return max(2 * size / copy_ms, size / read_ms) * 1e3 / 1e9


def device_limits(device, cpu_isa):
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (gbps, tflops) in GPU_LIMITS.items():
            if key in name:
                return Limits(gbps, tflops, f"{name} data sheet")
        return Limits(measured_gbps(device), None, f"{name}: bandwidth measured here, FP32 peak unknown")
    gbps = measured_gbps(device)
    mhz, per_cycle = _cpu_mhz(), CPU_FLOPS_PER_CYCLE.get(cpu_isa)
    if mhz is None or per_cycle is None:
        return Limits(gbps, None, "bandwidth measured here; FP32 peak unknown")
    threads = torch.get_num_threads()
    tflops = threads * mhz * 1e6 * per_cycle / 1e12
    return Limits(gbps, tflops, f"bandwidth measured here (256 MB copy or sum; data that stays in cache "
                  f"can exceed it); FP32 peak estimated as {threads} threads × "
                  f"{mhz / 1e3:.2f} GHz × {per_cycle} FLOP/cycle ({cpu_isa}, 2 FMA units)")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            found = re.search(r"^model name\s*:\s*(.+)$", info.read(), re.M)
    except OSError:
        found = None
    return found.group(1).strip() if found else os.uname().machine
