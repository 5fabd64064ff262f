"""conv2d and linear (with their fused activation) against torch's
F.conv2d / F.linear followed by the activation, at every AlexNet and LeNet-5
layer shape, forward and forward+backward (gradients of weight and bias,
and of the input except for the first layer of each network, whose input
needs none in training). Batch: 8 for AlexNet on a CPU, 128 on a GPU; 256
for LeNet-5."""

import pytest
import torch
import torch.nn.functional as F

import cnnfast

torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BATCH = 128 if DEVICE == "cuda" else 8
LENET_BATCH = 256

# (case, input shape, weight shape, stride, padding, groups, activation, input needs grad)
CONV_CASES = [
    ("conv2d alexnet conv1", (BATCH, 3, 227, 227), (96, 3, 11, 11), 4, 0, 1, "relu", False),
    ("conv2d alexnet conv2", (BATCH, 96, 27, 27), (256, 48, 5, 5), 1, 2, 2, "relu", True),
    ("conv2d alexnet conv3", (BATCH, 256, 13, 13), (384, 256, 3, 3), 1, 1, 1, "relu", True),
    ("conv2d alexnet conv4", (BATCH, 384, 13, 13), (384, 192, 3, 3), 1, 1, 2, "relu", True),
    ("conv2d alexnet conv5", (BATCH, 384, 13, 13), (256, 192, 3, 3), 1, 1, 2, "relu", True),
    ("conv2d lenet conv1", (LENET_BATCH, 1, 32, 32), (6, 1, 5, 5), 1, 0, 1, "tanh", False),
    ("conv2d lenet conv2", (LENET_BATCH, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1, "tanh", True),
]
# (case, input shape, weight shape, activation)
LINEAR_CASES = [
    ("linear alexnet fc6", (BATCH, 9216), (4096, 9216), "relu"),
    ("linear alexnet fc7", (BATCH, 4096), (4096, 4096), "relu"),
    ("linear alexnet fc8", (BATCH, 4096), (1000, 4096), None),
    ("linear lenet fc1", (LENET_BATCH, 400), (120, 400), "tanh"),
    ("linear lenet fc2", (LENET_BATCH, 120), (84, 120), "tanh"),
    ("linear lenet fc3", (LENET_BATCH, 84), (10, 84), None),
]
ACTIVATE = {None: lambda t: t, "relu": F.relu, "tanh": torch.tanh}


def conv_functions(stride, padding, groups, activation):
    ours = lambda x, w, b: cnnfast.conv2d(x, w, b, stride, padding, groups, activation)  # noqa: E731
    theirs = lambda x, w, b: ACTIVATE[activation](F.conv2d(x, w, b, stride, padding, 1, groups))  # noqa: E731
    return ours, theirs


def linear_functions(activation):
    ours = lambda x, w, b: cnnfast.linear(x, w, b, activation)  # noqa: E731
    theirs = lambda x, w, b: ACTIVATE[activation](F.linear(x, w, b))  # noqa: E731
    return ours, theirs


CASES = [(name, x, w, *conv_functions(s, p, g, a), grad_x) for name, x, w, s, p, g, a, grad_x in CONV_CASES]
CASES += [(name, x, w, *linear_functions(a), True) for name, x, w, a in LINEAR_CASES]
IDS = [case[0] for case in CASES]


def workload(fn, x_shape, w_shape, backward, input_grad):
    x = torch.randn(x_shape, device=DEVICE, requires_grad=backward and input_grad)
    fan_in = w_shape[1] * (w_shape[2] * w_shape[3] if len(w_shape) == 4 else 1)
    w = (torch.randn(w_shape, device=DEVICE) / fan_in**0.5).requires_grad_(backward)
    b = torch.zeros(w_shape[0], device=DEVICE, requires_grad=backward)
    leaves = [t for t in (x, w, b) if t.requires_grad]

    def run():
        out = fn(x, w, b)
        if backward:
            torch.autograd.grad(out, leaves, torch.ones_like(out))
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    return run


def forward_flops(fn, x_shape, w_shape):
    """2 × outputs × the weights each output reads."""
    out = fn(torch.empty(x_shape, device="meta"), torch.empty(w_shape, device="meta"), None)
    reads = w_shape[1] * (w_shape[2] * w_shape[3] if len(w_shape) == 4 else 1)
    return 2 * out.numel() * reads


def bench(benchmark, name, x_shape, w_shape, fn, backward, input_grad):
    benchmark.group = f"{name} {'fwd+bwd' if backward else 'fwd'} {DEVICE}"
    benchmark.extra_info["shape"] = list(x_shape)
    # Backward is one GEMM of the forward's size per gradient (input, weight).
    passes = 1 + (backward and input_grad) + backward
    benchmark.extra_info["flops"] = passes * forward_flops(fn, x_shape, w_shape)
    run = workload(fn, x_shape, w_shape, backward, input_grad)
    run()  # warm-up (allocator, cudnn.benchmark)
    benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=2)


@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("name,x_shape,w_shape,ours,theirs,input_grad", CASES, ids=IDS)
def test_torch(benchmark, name, x_shape, w_shape, ours, theirs, input_grad, backward):
    bench(benchmark, name, x_shape, w_shape, theirs, backward, input_grad)


@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("name,x_shape,w_shape,ours,theirs,input_grad", CASES, ids=IDS)
def test_cnnfast(benchmark, name, x_shape, w_shape, ours, theirs, input_grad, backward):
    bench(benchmark, name, x_shape, w_shape, ours, backward, input_grad)
