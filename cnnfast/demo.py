"""A short demo: the layers of AlexNet and LeNet-5 that cnnfast has so far,
on its kernels against torch, on the best device here."""

import torch
import torch.nn.functional as F

import cnnfast

from ._timing import compare


def _case(name, x, ours, theirs):
    x = x.requires_grad_()
    difference = (ours(x) - theirs(x)).abs().max().item()
    grad = torch.randn_like(theirs(x))

    def backward(fn):
        return lambda: torch.autograd.grad(fn(x), x, grad)

    forward = compare(lambda: theirs(x), lambda: ours(x), x.device)
    both = compare(backward(theirs), backward(ours), x.device)
    print(f"{name:<32} {tuple(x.shape)!s:<18} max |difference| {difference:.1e}   "
          f"forward {forward[0]:7.2f} -> {forward[1]:6.2f} ms ({forward[0] / forward[1]:4.1f}x)   "
          f"fwd+bwd {both[0]:7.2f} -> {both[1]:6.2f} ms ({both[0] / both[1]:4.1f}x)")


def run():
    info = cnnfast.info()
    device = "cuda" if info["cuda_available"] else "cpu"
    print(f"cnnfast {info['version']} on torch {info['torch']}; device {device}; "
          f"CPU ISA {info['cpu_isa']}; CUDA kernels compiled: {info['cuda_compiled']}; "
          f"threads {torch.get_num_threads()}")
    print("torch time -> cnnfast time (speedup), median of interleaved runs")
    x = torch.randn(8, 96, 55, 55, device=device)
    _case("AlexNet max pool 3x3/2", x, lambda t: cnnfast.max_pool2d(t, 3, 2), lambda t: F.max_pool2d(t, 3, 2))
    x = torch.randn(256, 6, 28, 28, device=device)
    _case("LeNet-5 avg pool 2x2", x, lambda t: cnnfast.avg_pool2d(t, 2), lambda t: F.avg_pool2d(t, 2))
    x = torch.randn(8, 96, 55, 55, device=device)
    _case("AlexNet LRN (5, 5e-4, 0.75, 2)", x, lambda t: cnnfast.local_response_norm(t, 5, 5e-4, 0.75, 2.0),
          lambda t: F.local_response_norm(t, 5, 5e-4, 0.75, 2.0))
    _case("relu -> LRN -> max pool, fused", x, lambda t: cnnfast.relu_lrn_max_pool2d(t, 5, 5e-4, 0.75, 2.0),
          lambda t: F.max_pool2d(F.local_response_norm(F.relu(t), 5, 5e-4, 0.75, 2.0), 3, 2))
    _case("relu", x, cnnfast.relu, torch.relu)
    _case("tanh", x, cnnfast.tanh, torch.tanh)
