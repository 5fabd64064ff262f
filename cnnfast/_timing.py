"""Side-by-side timing: reference and cnnfast interleaved in one process,
after warm-up, median of many runs (CUDA events on a GPU)."""

import statistics
import time

import torch


def _time_once(fn, device):
    if device.type == "cuda":
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop)
    begin = time.perf_counter()
    fn()
    return (time.perf_counter() - begin) * 1e3


def compare(reference, ours, device, runs=30, warmup=3):
    """Median milliseconds of (reference, ours), measured alternately."""
    device = torch.device(device)
    for _ in range(warmup):
        reference()
        ours()
    ref_ms, our_ms = [], []
    for _ in range(runs):
        ref_ms.append(_time_once(reference, device))
        our_ms.append(_time_once(ours, device))
    return statistics.median(ref_ms), statistics.median(our_ms)
