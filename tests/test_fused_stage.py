"""relu_lrn_max_pool2d against the unfused torch chain
max_pool2d(local_response_norm(relu(x))) in float64."""

import pytest
import torch
import torch.nn.functional as F

import cnnfast
from helpers import ALL_DTYPES, DEVICES, assert_close, skip_unsupported, slow_in_emulation

# (name, shape, size, alpha, beta, k, kernel_size, stride)
CASES = [
    ("alexnet_stage1", slow_in_emulation((2, 96, 55, 55), (1, 16, 55, 55)), 5, 5e-4, 0.75, 2.0, 3, 2),
    ("alexnet_stage2", slow_in_emulation((2, 256, 27, 27), (1, 32, 27, 27)), 5, 5e-4, 0.75, 2.0, 3, 2),
    ("tower_48", (2, 48, 13, 13), 5, 5e-4, 0.75, 2.0, 3, 2),
    ("one_channel", (2, 1, 9, 9), 5, 0.1, 0.75, 1.0, 3, 2),
    ("size_above_channels", (1, 3, 8, 8), 7, 0.2, 0.75, 1.0, 3, 2),
    ("even_size_other_beta", (2, 6, 10, 7), 4, 0.3, 0.6, 1.5, 2, 2),
    ("rect_window", (1, 5, 11, 9), 3, 0.1, 0.75, 2.0, (3, 2), (2, 1)),
    ("kernel_is_input", (2, 4, 3, 3), 5, 0.1, 0.75, 2.0, 3, 1),
]
IDS = [case[0] for case in CASES]


def chain(x, size, alpha, beta, k, kernel_size, stride):
    return F.max_pool2d(F.local_response_norm(F.relu(x), size, alpha, beta, k), kernel_size, stride)


def check(x, *args):
    dtype = x.dtype
    x = x.detach().requires_grad_()
    out = cnnfast.relu_lrn_max_pool2d(x, *args)
    x64 = x.detach().double().requires_grad_()
    ref = chain(x64, *args)
    assert out.shape == ref.shape and out.dtype == dtype
    assert_close(out, ref, dtype)
    grad = torch.randn(ref.shape, device=x.device).to(dtype)
    (g,) = torch.autograd.grad(out, x, grad)
    (g_ref,) = torch.autograd.grad(ref, x64, grad.double())
    assert_close(g, g_ref, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("name,shape,size,alpha,beta,k,kernel_size,stride", CASES, ids=IDS)
def test_matches_the_chain(device, dtype, name, shape, size, alpha, beta, k, kernel_size, stride):
    skip_unsupported(device, dtype)
    x = (3 * torch.randn(shape, device=device)).to(dtype)
    if dtype in (torch.float32, torch.float64):
        check(x, size, alpha, beta, k, kernel_size, stride)
        return
    # In 16 bits, LRN outputs that differ in float64 can round to a tie (or
    # the other way round) and move an argmax: the values still match the
    # float64 chain; the gradient is compared with cnnfast's own unfused
    # chain in the same dtype, which rounds the same way.
    args = (size, alpha, beta, k, kernel_size, stride)
    x = x.requires_grad_()
    out = cnnfast.relu_lrn_max_pool2d(x, *args)
    assert_close(out, chain(x.detach().double(), *args), dtype)
    unfused = cnnfast.max_pool2d(cnnfast.local_response_norm(cnnfast.relu(x), *args[:4]), kernel_size, stride)
    assert torch.equal(out, unfused)
    grad = torch.randn(out.shape, device=device).to(dtype)
    (g,) = torch.autograd.grad(out, x, grad)
    (g_unfused,) = torch.autograd.grad(unfused, x, grad)
    assert_close(g, g_unfused, dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_gradient_equals_the_unfused_cnnfast_chain(device):
    x = torch.randn(2, 12, 13, 13, device=device, requires_grad=True)
    fused = cnnfast.relu_lrn_max_pool2d(x, 5, 5e-4, 0.75, 2.0)
    unfused = cnnfast.max_pool2d(cnnfast.local_response_norm(cnnfast.relu(x), 5, 5e-4, 0.75, 2.0), 3, 2)
    torch.testing.assert_close(fused, unfused, rtol=2e-7, atol=1e-7)
    grad = torch.randn_like(fused)
    (g1,) = torch.autograd.grad(fused, x, grad)
    (g2,) = torch.autograd.grad(unfused, x, grad)
    torch.testing.assert_close(g1, g2, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
def test_ties_inside_windows(device):
    # Each channel constant over H×W: every pooling window is one big tie,
    # which the first cell wins in the chain and in the kernel.
    x = torch.randn(2, 6, 1, 1, dtype=torch.float64, device=device).expand(2, 6, 9, 9).contiguous()
    check(x, 3, 0.5, 0.75, 1.0, 3, 2)
    out, offsets = torch.ops.cnnfast._relu_lrn_max_pool2d_with_offsets(x, 3, 0.5, 0.75, 1.0, [3, 3], [2, 2])
    assert int(offsets.max()) == 0


@pytest.mark.parametrize("device", DEVICES)
def test_nan_input(device):
    x = torch.randn(1, 4, 7, 7, dtype=torch.float64, device=device)
    x[0, 1, 2, 2] = float("nan")
    x = x.requires_grad_()
    out = cnnfast.relu_lrn_max_pool2d(x, 3, 0.1, 0.75, 1.0)
    ref = chain(x, 3, 0.1, 0.75, 1.0, 3, 2)
    torch.testing.assert_close(out, ref, equal_nan=True)
    assert out.isnan().any()
    grad = torch.ones_like(out)
    (g,) = torch.autograd.grad(out, x, grad)
    (g_ref,) = torch.autograd.grad(ref, x, grad)
    torch.testing.assert_close(g, g_ref, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
def test_batch_zero(device):
    x = torch.randn(0, 8, 13, 13, device=device, requires_grad=True)
    out = cnnfast.relu_lrn_max_pool2d(x)
    assert out.shape == (0, 8, 6, 6)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert g.shape == x.shape


@pytest.mark.parametrize("device", DEVICES)
def test_bad_input(device):
    x = torch.randn(1, 4, 8, 8, device=device)
    with pytest.raises(RuntimeError, match="4-D"):
        cnnfast.relu_lrn_max_pool2d(x[0])
    with pytest.raises(RuntimeError, match="size must be positive"):
        cnnfast.relu_lrn_max_pool2d(x, 0)
    with pytest.raises(RuntimeError, match="x must be"):
        cnnfast.relu_lrn_max_pool2d(x.int())
    with pytest.raises(RuntimeError, match="too small"):
        cnnfast.relu_lrn_max_pool2d(x, kernel_size=9)
    with pytest.raises(RuntimeError, match="stride"):
        cnnfast.relu_lrn_max_pool2d(x, stride=0)
    out, offsets = torch.ops.cnnfast._relu_lrn_max_pool2d_with_offsets(x, 5, 1e-4, 0.75, 1.0, [3, 3], [2, 2])
    with pytest.raises(RuntimeError, match="does not pool"):
        torch.ops.cnnfast._relu_lrn_max_pool2d_backward(out[:, :2], x, offsets[:, :2], 5, 1e-4, 0.75, 1.0, [3, 3], [2, 2])
