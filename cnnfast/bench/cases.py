"""The benchmark cases: every op at the LeNet-5 and AlexNet layer shapes,
forward and forward+backward, and the two networks' forward and training
step, each beside its reference — the same computation in plain PyTorch
(cuDNN on a GPU, oneDNN on a CPU).

A case builds its tensors only when asked (`case.build(device, dtype)`),
so a run holds one case's memory at a time."""

import math
import re
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .. import ops
from ..models import AlexNet, LeNet5, ReferenceAlexNet, ReferenceLeNet5

LENET_BATCH = 256
LRN = (5, 5e-4, 0.75, 2.0)  # AlexNet's, in torch's convention
ACTIVATE = {None: lambda t: t, "relu": F.relu, "tanh": torch.tanh}


@dataclass(frozen=True)
class Case:
    """One comparison. `build(device, dtype)` returns (reference, cnnfast):
    two argument-less callables doing the same work. Per call, `flops`
    (convolution, linear) or `elements` (the fewest tensor elements read
    and written: pooling, LRN, activations) give the share of the device's
    limit reached. `quick` marks the `--quick` subset; `reference` names
    the reference side when it is not plain PyTorch."""

    name: str
    shape: tuple
    build: Callable
    flops: Optional[int] = None
    elements: Optional[int] = None
    quick: bool = False
    reference: str = "torch"


def _passes(backward):
    return "fwd+bwd" if backward else "fwd"


def _gradient_of(fn, inputs, grad):
    return lambda: torch.autograd.grad(fn(), inputs, grad)


# Pooling, LRN and activations --------------------------------------------

def _torch_stage(x):
    return F.max_pool2d(F.local_response_norm(F.relu(x), *LRN), 3, 2)


def _unfused_stage(x):
    return ops.max_pool2d(ops.local_response_norm(ops.relu(x), *LRN), 3, 2)


def _elementwise_case(name, shape, ours, theirs, backward, quick=False, reference="torch"):
    """Forward, or forward and the input's gradient."""

    def build(device, dtype):
        x = torch.randn(shape, device=device, dtype=dtype, requires_grad=backward)
        if not backward:
            return (lambda: theirs(x)), (lambda: ours(x))
        with torch.no_grad():
            grad = torch.randn_like(theirs(x))
        return _gradient_of(lambda: theirs(x), x, grad), _gradient_of(lambda: ours(x), x, grad)

    inputs, outputs = math.prod(shape), theirs(torch.empty(shape, device="meta")).numel()
    # Forward reads the input and writes the output; backward reads the
    # output's gradient and the saved input and writes the input's gradient.
    elements = inputs + outputs + (2 * inputs + outputs if backward else 0)
    return Case(f"{name} {_passes(backward)}", shape, build, elements=elements, quick=quick, reference=reference)


def _elementwise_cases(alexnet_batch):
    b = alexnet_batch
    max_pool, avg_pool = (lambda x: ops.max_pool2d(x, 3, 2)), (lambda x: ops.avg_pool2d(x, 2))
    lrn, stage = (lambda x: ops.local_response_norm(x, *LRN)), (lambda x: ops.relu_lrn_max_pool2d(x, *LRN))
    table = [
        # (name, shape, cnnfast, reference, in --quick (forward only), reference's name)
        ("max_pool2d 3x3/2 alexnet1", (b, 96, 55, 55), max_pool, lambda x: F.max_pool2d(x, 3, 2), True, "torch"),
        ("max_pool2d 3x3/2 alexnet2", (b, 256, 27, 27), max_pool, lambda x: F.max_pool2d(x, 3, 2), False, "torch"),
        ("max_pool2d 3x3/2 alexnet5", (b, 256, 13, 13), max_pool, lambda x: F.max_pool2d(x, 3, 2), False, "torch"),
        ("avg_pool2d 2x2 lenet1", (LENET_BATCH, 6, 28, 28), avg_pool, lambda x: F.avg_pool2d(x, 2), False, "torch"),
        ("avg_pool2d 2x2 lenet2", (LENET_BATCH, 16, 10, 10), avg_pool, lambda x: F.avg_pool2d(x, 2), False, "torch"),
        ("local_response_norm alexnet1", (b, 96, 55, 55), lrn, lambda x: F.local_response_norm(x, *LRN), True, "torch"),
        ("local_response_norm alexnet2", (b, 256, 27, 27), lrn, lambda x: F.local_response_norm(x, *LRN), False,
         "torch"),
        ("relu_lrn_max_pool2d alexnet1", (b, 96, 55, 55), stage, _torch_stage, True, "torch"),
        ("relu_lrn_max_pool2d alexnet2", (b, 256, 27, 27), stage, _torch_stage, False, "torch"),
        # What fusing saves over cnnfast's own three ops.
        ("relu_lrn_max_pool2d alexnet1 vs unfused", (b, 96, 55, 55), stage, _unfused_stage, False, "cnnfast unfused"),
        ("relu alexnet1", (b, 96, 55, 55), ops.relu, torch.relu, False, "torch"),
        ("tanh lenet1", (LENET_BATCH, 6, 28, 28), ops.tanh, torch.tanh, True, "torch"),
        ("tanh alexnet1", (b, 96, 55, 55), ops.tanh, torch.tanh, False, "torch"),
    ]
    return [
        _elementwise_case(name, shape, ours, theirs, backward, quick and not backward, reference)
        for name, shape, ours, theirs, quick, reference in table
        for backward in (False, True)
    ]


# Convolution and linear ---------------------------------------------------

def _conv_functions(stride, padding, groups, activation):
    ours = lambda x, w, b: ops.conv2d(x, w, b, stride, padding, groups, activation)  # noqa: E731
    theirs = lambda x, w, b: ACTIVATE[activation](F.conv2d(x, w, b, stride, padding, 1, groups))  # noqa: E731
    return ours, theirs


def _linear_functions(activation):
    ours = lambda x, w, b: ops.linear(x, w, b, activation)  # noqa: E731
    theirs = lambda x, w, b: ACTIVATE[activation](F.linear(x, w, b))  # noqa: E731
    return ours, theirs


def _layer_case(name, x_shape, w_shape, ours, theirs, backward, input_grad, quick):
    """Forward, or forward and the gradients of weight and bias (and of the
    input, except for a network's first layer, whose input needs none)."""

    def build(device, dtype):
        x = torch.randn(x_shape, device=device, dtype=dtype, requires_grad=backward and input_grad)
        fan_in = math.prod(w_shape[1:])
        w = (torch.randn(w_shape, device=device, dtype=dtype) / fan_in**0.5).requires_grad_(backward)
        b = torch.zeros(w_shape[0], device=device, dtype=dtype, requires_grad=backward)
        if not backward:
            return (lambda: theirs(x, w, b)), (lambda: ours(x, w, b))
        leaves = [t for t in (x, w, b) if t.requires_grad]
        with torch.no_grad():
            grad = torch.randn_like(theirs(x, w, b))
        return _gradient_of(lambda: theirs(x, w, b), leaves, grad), _gradient_of(lambda: ours(x, w, b), leaves, grad)

    outputs = theirs(torch.empty(x_shape, device="meta"), torch.empty(w_shape, device="meta"), None).numel()
    forward_flops = 2 * outputs * math.prod(w_shape[1:])
    # Backward is one GEMM of the forward's size per gradient (input, weight).
    passes = 1 + (backward and input_grad) + backward
    return Case(f"{name} {_passes(backward)}", x_shape, build, flops=passes * forward_flops, quick=quick)


def _input_grad_case(name, x_shape, w_shape, stride, padding):
    """The input gradient alone of a convolution (no bias, no activation):
    a strided one is a stride-1 problem per output phase."""

    def build(device, dtype):
        x = torch.randn(x_shape, device=device, dtype=dtype, requires_grad=True)
        w = torch.randn(w_shape, device=device, dtype=dtype) / math.prod(w_shape[1:]) ** 0.5
        with torch.no_grad():
            grad = torch.randn_like(F.conv2d(x, w, None, stride, padding))
        return (_gradient_of(lambda: F.conv2d(x, w, None, stride, padding), [x], grad),
                _gradient_of(lambda: ops.conv2d(x, w, None, stride, padding), [x], grad))

    outputs = F.conv2d(torch.empty(x_shape, device="meta"), torch.empty(w_shape, device="meta"), None,
                       stride, padding).numel()
    # The forward's GEMM and the input gradient's: torch's autograd runs both.
    return Case(f"{name} fwd+dgrad", x_shape, build, flops=2 * 2 * outputs * math.prod(w_shape[1:]))


def _strided_input_grad_cases(b):
    return [
        _input_grad_case("conv2d alexnet conv1 11x11/4", (b, 3, 227, 227), (96, 3, 11, 11), 4, 0),
        _input_grad_case("conv2d stem 7x7/2", (b, 3, 224, 224), (64, 3, 7, 7), 2, 3),
        _input_grad_case("conv2d 3x3/2", (b, 128, 56, 56), (256, 128, 3, 3), 2, 1),
        _input_grad_case("conv2d 1x1/2", (b, 256, 56, 56), (512, 256, 1, 1), 2, 0),
    ]


def _layer_cases(b):
    conv = [
        # (name, input, weight, stride, padding, groups, activation, input needs grad, in --quick)
        ("conv2d alexnet conv1", (b, 3, 227, 227), (96, 3, 11, 11), 4, 0, 1, "relu", False, False),
        ("conv2d alexnet conv2", (b, 96, 27, 27), (256, 48, 5, 5), 1, 2, 2, "relu", True, False),
        ("conv2d alexnet conv3", (b, 256, 13, 13), (384, 256, 3, 3), 1, 1, 1, "relu", True, False),
        ("conv2d alexnet conv4", (b, 384, 13, 13), (384, 192, 3, 3), 1, 1, 2, "relu", True, False),
        ("conv2d alexnet conv5", (b, 384, 13, 13), (256, 192, 3, 3), 1, 1, 2, "relu", True, False),
        ("conv2d lenet conv1", (LENET_BATCH, 1, 32, 32), (6, 1, 5, 5), 1, 0, 1, "tanh", False, False),
        ("conv2d lenet conv2", (LENET_BATCH, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1, "tanh", True, True),
    ]
    linear = [
        # (name, input, weight, activation, in --quick)
        ("linear alexnet fc6", (b, 9216), (4096, 9216), "relu", False),
        ("linear alexnet fc7", (b, 4096), (4096, 4096), "relu", False),
        ("linear alexnet fc8", (b, 4096), (1000, 4096), None, False),
        ("linear lenet fc1", (LENET_BATCH, 400), (120, 400), "tanh", True),
        ("linear lenet fc2", (LENET_BATCH, 120), (84, 120), "tanh", False),
        ("linear lenet fc3", (LENET_BATCH, 84), (10, 84), None, False),
    ]
    functions = [(name, x, w, *_conv_functions(s, p, g, a), grad_x, q) for name, x, w, s, p, g, a, grad_x, q in conv]
    functions += [(name, x, w, *_linear_functions(a), True, q) for name, x, w, a, q in linear]
    return [
        _layer_case(name, x, w, ours, theirs, backward, grad_x, quick and backward)
        for name, x, w, ours, theirs, grad_x, quick in functions
        for backward in (False, True)
    ]


# The networks --------------------------------------------------------------

def _models(reference_class, ours_factory, device, dtype):
    """The reference network and cnnfast's, with the same weights."""
    torch.manual_seed(0)
    reference = reference_class().to(device=device, dtype=dtype)
    ours = ours_factory().to(device=device, dtype=dtype)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def _forward(model, x):
    model.eval()

    def run():
        with torch.no_grad():
            return model(x)

    return run


def _training_step(model, x, labels):
    """One SGD step (momentum 0.9) on the cross-entropy loss; a small
    learning rate, so repeated steps stay in a normal range."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def run():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels).backward()
        optimizer.step()

    return run


def _model_case(name, shape, classes, make_models, training, quick=False, reference="torch"):
    def build(device, dtype):
        first, second = make_models(device, dtype)
        x = torch.randn(shape, device=device, dtype=dtype)
        if not training:
            return _forward(first, x), _forward(second, x)
        labels = torch.randint(0, classes, (shape[0],), device=device)
        return _training_step(first, x, labels), _training_step(second, x, labels)

    return Case(name, shape, build, quick=quick, reference=reference)


def _lenet_cases():
    def models(device, dtype):
        return _models(ReferenceLeNet5, LeNet5, device, dtype)

    cases = [_model_case(f"lenet5 forward b{batch}", (batch, 1, 32, 32), 10, models, False, batch == LENET_BATCH)
             for batch in (1, 64, 256, 1024)]
    cases.append(_model_case(f"lenet5 train step b{LENET_BATCH}", (LENET_BATCH, 1, 32, 32), 10, models, True, True))
    return cases


def _alexnet_cases(batches, cuda):
    def models(split):
        return lambda device, dtype: _models(ReferenceAlexNet, lambda: AlexNet(split=split), device, dtype)

    def split_models(device, dtype):
        """split "none" (the reference side) against split "streams"."""
        return _models(lambda: AlexNet(split="none"), lambda: AlexNet(split="streams"), device, dtype)

    cases = []
    for batch in batches:
        shape = (batch, 3, 227, 227)
        for training, what in ((False, "forward"), (True, "train step")):
            for split in ("none", "streams"):
                quick = training and split == "none" and batch == batches[0]
                cases.append(_model_case(f"alexnet {what} b{batch} split={split}", shape, 1000, models(split),
                                         training, quick))
            if cuda:  # what running the towers concurrently gains
                cases.append(_model_case(f"alexnet {what} b{batch} streams vs none", shape, 1000, split_models,
                                         training, reference="cnnfast split=none"))
    return cases


def all_cases(device):
    """Every case for this device type: AlexNet's layers and the network at
    batch 8 on a CPU, at 128 (layers) and 32 and 128 (network) on a GPU."""
    cuda = torch.device(device).type == "cuda"
    alexnet_batch = 128 if cuda else 8
    return (_lenet_cases() + _alexnet_cases((32, 128) if cuda else (8,), cuda)
            + _layer_cases(alexnet_batch) + _strided_input_grad_cases(alexnet_batch)
            + _elementwise_cases(alexnet_batch))


def select(device, quick=False, match=None):
    """The cases to run: all, or the quick subset; only those whose name
    the regular expression `match` is found in, when given."""
    from . import BenchError

    try:
        pattern = re.compile(match or "")
    except re.error as error:
        raise BenchError(f"--match {match!r}: not a regular expression ({error})") from None
    return [case for case in all_cases(device) if (case.quick or not quick) and pattern.search(case.name)]
