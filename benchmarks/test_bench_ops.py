"""Each op against its torch equivalent at LeNet-5 and AlexNet shapes,
forward and forward+backward. Run: make bench (or
pytest benchmarks --benchmark-only). Targets live in RESULTS.md, never in
assertions."""

import pytest
import torch
import torch.nn.functional as F

import cnnfast

torch.backends.cudnn.benchmark = True
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BATCH = 128 if DEVICE == "cuda" else 8

def torch_stage(x):
    return F.max_pool2d(F.local_response_norm(F.relu(x), 5, 5e-4, 0.75, 2.0), 3, 2)


def cnnfast_stage(x):
    return cnnfast.max_pool2d(cnnfast.local_response_norm(cnnfast.relu(x), 5, 5e-4, 0.75, 2.0), 3, 2)


# (case, shape, cnnfast function, reference function)
CASES = [
    ("max_pool2d 3x3/2 alexnet1", (BATCH, 96, 55, 55), lambda x: cnnfast.max_pool2d(x, 3, 2), lambda x: F.max_pool2d(x, 3, 2)),
    ("max_pool2d 3x3/2 alexnet2", (BATCH, 256, 27, 27), lambda x: cnnfast.max_pool2d(x, 3, 2), lambda x: F.max_pool2d(x, 3, 2)),
    ("max_pool2d 3x3/2 alexnet5", (BATCH, 256, 13, 13), lambda x: cnnfast.max_pool2d(x, 3, 2), lambda x: F.max_pool2d(x, 3, 2)),
    ("avg_pool2d 2x2 lenet1", (256, 6, 28, 28), lambda x: cnnfast.avg_pool2d(x, 2), lambda x: F.avg_pool2d(x, 2)),
    ("avg_pool2d 2x2 lenet2", (256, 16, 10, 10), lambda x: cnnfast.avg_pool2d(x, 2), lambda x: F.avg_pool2d(x, 2)),
    ("local_response_norm alexnet1", (BATCH, 96, 55, 55),
     lambda x: cnnfast.local_response_norm(x, 5, 5e-4, 0.75, 2.0), lambda x: F.local_response_norm(x, 5, 5e-4, 0.75, 2.0)),
    ("local_response_norm alexnet2", (BATCH, 256, 27, 27),
     lambda x: cnnfast.local_response_norm(x, 5, 5e-4, 0.75, 2.0), lambda x: F.local_response_norm(x, 5, 5e-4, 0.75, 2.0)),
    ("relu_lrn_max_pool2d alexnet1", (BATCH, 96, 55, 55),
     lambda x: cnnfast.relu_lrn_max_pool2d(x, 5, 5e-4, 0.75, 2.0), lambda x: torch_stage(x)),
    ("relu_lrn_max_pool2d alexnet2", (BATCH, 256, 27, 27),
     lambda x: cnnfast.relu_lrn_max_pool2d(x, 5, 5e-4, 0.75, 2.0), lambda x: torch_stage(x)),
    # Reference: cnnfast's own unfused chain (what fusing saves).
    ("relu_lrn_max_pool2d alexnet1 vs cnnfast unfused", (BATCH, 96, 55, 55),
     lambda x: cnnfast.relu_lrn_max_pool2d(x, 5, 5e-4, 0.75, 2.0), lambda x: cnnfast_stage(x)),
    ("relu alexnet1", (BATCH, 96, 55, 55), cnnfast.relu, torch.relu),
    ("tanh lenet1", (256, 6, 28, 28), cnnfast.tanh, torch.tanh),
    ("tanh alexnet1", (BATCH, 96, 55, 55), cnnfast.tanh, torch.tanh),
]
IDS = [case[0] for case in CASES]


def synchronized(fn):
    if DEVICE != "cuda":
        return fn

    def run():
        fn()
        torch.cuda.synchronize()

    return run


def workload(fn, shape, backward):
    x = torch.randn(shape, device=DEVICE, requires_grad=backward)
    if not backward:
        return synchronized(lambda: fn(x))
    grad = torch.randn_like(fn(x))
    return synchronized(lambda: torch.autograd.grad(fn(x), x, grad))


def bench(benchmark, name, shape, fn, backward):
    benchmark.group = f"{name} {'fwd+bwd' if backward else 'fwd'} {DEVICE}"
    benchmark.extra_info["shape"] = list(shape)
    run = workload(fn, shape, backward)
    run()  # warm-up (allocator, cudnn.benchmark)
    benchmark.pedantic(run, rounds=30, iterations=1, warmup_rounds=2)


@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("name,shape,ours,theirs", CASES, ids=IDS)
def test_torch(benchmark, name, shape, ours, theirs, backward):
    bench(benchmark, name, shape, theirs, backward)


@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("name,shape,ours,theirs", CASES, ids=IDS)
def test_cnnfast(benchmark, name, shape, ours, theirs, backward):
    bench(benchmark, name, shape, ours, backward)
