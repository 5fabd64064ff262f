"""Side-by-side timing (docs/benchmarks.md): reference and cnnfast interleaved in
one process, each first in every other pair, after warm-up, median of many
runs; CUDA events on a GPU, the wall clock (both sides on the same threads)
on a CPU."""

import statistics
import time

import torch


def time_once(fn, device):
    """Milliseconds of one call."""
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


def compare(reference, ours, device, budget_s=2.0, min_runs=5, max_runs=50, warmup=2):
    """Median milliseconds of (reference, ours), measured alternately, each
    side first in every other pair: a call can leave the caches, the heap or
    the threads better or worse for the call after it (on a 2-core CPU the
    second of two relu forward+backward passes took a few per cent longer
    whichever side it was). The number of runs fits the budget (seconds for
    the timed runs of both sides), within [min_runs, max_runs]."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    for _ in range(warmup):
        pair_ms = time_once(reference, device) + time_once(ours, device)
    runs = max(min_runs, min(max_runs, int(budget_s * 1e3 / max(pair_ms, 1e-3))))
    sides, times = (reference, ours), ([], [])
    for run in range(runs):
        for side in (0, 1) if run % 2 == 0 else (1, 0):
            times[side].append(time_once(sides[side], device))
    return statistics.median(times[0]), statistics.median(times[1])
