"""The cases of `python -m cnnfast bench` (cnnfast/bench/cases.py) for
pytest-benchmark: each case's reference and cnnfast side run back to back
in one group. Run: make bench, or pytest benchmarks --benchmark-only
(-k to choose cases). Targets live in RESULTS.md, never in assertions."""

import os

import pytest
import torch

from cnnfast.bench import all_cases
from cnnfast.bench.timing import time_once

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CASES = all_cases(DEVICE)
BUDGET_S = 1.0  # per side, for the timed rounds


def synchronized(fn):
    """pytest-benchmark reads the wall clock: wait for the GPU's work."""
    if DEVICE.type != "cuda":
        return fn

    def run():
        fn()
        torch.cuda.synchronize()

    return run


@pytest.fixture(scope="module", autouse=True)
def _reference_settings():
    """cudnn.benchmark on; torch's precision switches as they are, as
    `python -m cnnfast bench` leaves them by default (CNNFAST_BENCH_PRECISION=strict:
    TF32 off, as its --precision strict)."""
    saved = torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.benchmark = True
    if os.environ.get("CNNFAST_BENCH_PRECISION", "default") == "strict":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("side", ["torch", "cnnfast"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bench(benchmark, case, side):
    reference, ours = case.build(DEVICE, torch.float32)
    run = synchronized(ours if side == "cnnfast" else reference)
    benchmark.group = f"{case.name} {DEVICE.type}"
    benchmark.name = f"{side}: {case.name}"
    benchmark.extra_info.update(side=side, shape=list(case.shape), reference=case.reference)
    if case.flops is not None:
        benchmark.extra_info["flops"] = case.flops
    if case.elements is not None:
        benchmark.extra_info["bytes"] = case.elements * 4
    first_ms = time_once(run, DEVICE)  # also the warm-up: allocator, cudnn.benchmark
    rounds = max(5, min(50, int(BUDGET_S * 1e3 / max(first_ms, 1e-3))))
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
