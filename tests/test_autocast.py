"""torch.autocast: conv2d and linear run in the autocast dtype on CUDA, as
torch's do, and LeNet-5 and AlexNet train under AMP (CUDA only)."""

import pytest
import torch
import torch.nn.functional as F

import cnnfast
from cnnfast.models import AlexNet, LeNet5, ReferenceAlexNet, ReferenceLeNet5
from helpers import CUDA

NEEDS_GPU = pytest.mark.skipif(not CUDA, reason="no CUDA GPU visible")
HALF_TYPES = [torch.float16, torch.bfloat16]


def test_conv2d_and_linear_have_cuda_autocast_kernels():
    for op in ("conv2d", "linear"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"cnnfast::{op}", "AutocastCUDA"), op


def test_cpu_autocast_leaves_the_dtype():
    """cnnfast's CPU kernels take float32 and float64: CPU autocast keeps them."""
    x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cnnfast.conv2d(x, w).dtype == torch.float32


def test_autocast_runs_above_the_ops_autograd():
    """The dispatcher runs AutocastCUDA before Autograd, so the C++
    autograd kernel saves the inputs the op ran on, cast."""
    for op in ("conv2d", "linear", "lenet5_forward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"cnnfast::{op}", "AutocastCUDA"), op
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"cnnfast::{op}", "Autograd"), op


@pytest.mark.cuda
@NEEDS_GPU
@pytest.mark.parametrize("dtype", HALF_TYPES)
def test_ops_follow_autocast(dtype):
    x, w, b = (torch.randn(shape, device="cuda") for shape in ((2, 3, 9, 9), (4, 3, 3, 3), (4,)))
    v, m = torch.randn(5, 16, device="cuda"), torch.randn(7, 16, device="cuda")
    with torch.autocast("cuda", dtype=dtype):
        pairs = [(cnnfast.conv2d(x, w, b, activation="relu"), F.relu(F.conv2d(x, w, b))),
                 (cnnfast.linear(v, m, None, "tanh"), torch.tanh(F.linear(v, m)))]
    for ours, theirs in pairs:
        assert ours.dtype == theirs.dtype == dtype
        torch.testing.assert_close(ours.float(), theirs.float(), rtol=2e-2, atol=2e-2)


def _amp_gradients(model, x, labels, dtype):
    """The loss's gradients under autocast, unscaled by a GradScaler as a
    training step would; GradScaler's default scale (2^16) overflows
    float16 in AlexNet's fc8 gradient with torch's own layers too, so 2^8."""
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0**8, enabled=dtype == torch.float16)
    with torch.autocast("cuda", dtype=dtype):
        out = model(x)
        loss = F.cross_entropy(out, labels)
    assert out.dtype == dtype
    model.zero_grad()
    scaler.scale(loss).backward()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler.unscale_(optimizer)
    return out, [p.grad.clone() for p in model.parameters()], scaler, optimizer


def _relative_errors(grads, full_grads):
    return [((g - f).norm() / f.norm()).item() for g, f in zip(grads, full_grads)]


@pytest.mark.cuda
@NEEDS_GPU
@pytest.mark.parametrize("make, make_reference, shape",
                         [(LeNet5, ReferenceLeNet5, (32, 1, 32, 32)),
                          (lambda: AlexNet(num_classes=10), lambda: ReferenceAlexNet(num_classes=10), (4, 3, 227, 227))],
                         ids=["lenet5", "alexnet"])
@pytest.mark.parametrize("dtype", HALF_TYPES)
def test_models_train_under_amp(make, make_reference, shape, dtype):
    """Under AMP the gradients drift from float32's as far as torch's own
    layers' do, no further (at AlexNet's initialization conv1's drift is
    about 100% with torch's layers too), and a scaled step updates."""
    torch.manual_seed(0)
    model = make().cuda().eval()
    reference = make_reference().cuda().eval()
    reference.load_state_dict(model.state_dict())
    x = torch.randn(shape, device="cuda")
    labels = torch.randint(0, 10, (shape[0],), device="cuda")
    full = model(x)
    full_grads = torch.autograd.grad(F.cross_entropy(full, labels), list(model.parameters()))
    out, grads, scaler, optimizer = _amp_gradients(model, x, labels, dtype)
    torch.testing.assert_close(out.float(), full.detach(), rtol=5e-2, atol=5e-2 * full.abs().max().item())
    _, reference_grads, _, _ = _amp_gradients(reference, x, labels, dtype)
    names = [name for name, _ in model.named_parameters()]
    for name, grad, error, reference_error in zip(names, grads, _relative_errors(grads, full_grads),
                                                   _relative_errors(reference_grads, full_grads)):
        assert grad.dtype == torch.float32 and torch.isfinite(grad).all(), name
        assert error <= 2 * reference_error + 0.02, (name, error, reference_error)
    before = [p.detach().clone() for p in model.parameters()]
    scaler.step(optimizer)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
