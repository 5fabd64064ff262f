"""relu and tanh against torch (float64 reference), forward and backward."""

import pytest
import torch

import cnnfast
from helpers import ALL_DTYPES, DEVICES, assert_close, skip_unsupported

OPS = [("relu", cnnfast.relu, torch.relu), ("tanh", cnnfast.tanh, torch.tanh)]
# (5, 9): whole steps, then the tail (a partial vector, or a whole one and
# a partial one) at the CPU kernels' vector widths and steps (backward's
# narrower than forward's).
SHAPES = [(8, 96, 27, 27), (256, 120), (7,), (5, 9), (0, 3, 5, 5), (3, 1, 1, 1)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("name,ours,theirs", OPS, ids=[o[0] for o in OPS])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_torch(device, dtype, name, ours, theirs, shape):
    skip_unsupported(device, dtype)
    x = (3 * torch.randn(shape, device=device)).to(dtype).requires_grad_()
    out = ours(x)
    x64 = x.detach().double().requires_grad_()
    ref = theirs(x64)
    assert out.dtype == dtype and out.shape == x.shape
    assert_close(out, ref, dtype)
    grad = torch.randn(shape, device=device).to(dtype)
    (g,) = torch.autograd.grad(out, x, grad)
    # Backward reads the saved output (rounded to dtype): the exact
    # derivative at that output is the reference.
    y = out.detach().double()
    local = (y > 0).double() if name == "relu" else 1 - y * y
    assert_close(g, grad.double() * local, dtype)
    if dtype == torch.float64:
        (g_ref,) = torch.autograd.grad(ref, x64, grad)
        assert_close(g, g_ref, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,ours,theirs", OPS, ids=[o[0] for o in OPS])
def test_special_values(device, name, ours, theirs):
    x = torch.tensor([float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e-30, -1e-30, 20.0, -20.0, 0.549, 0.551],
                     device=device)
    for dtype in (torch.float32, torch.float64):
        xd = x.to(dtype).requires_grad_()
        out = ours(xd)
        torch.testing.assert_close(out, theirs(xd), equal_nan=True, rtol=2e-7, atol=0)
        # The gradient at NaN, inf and zeros, as torch's backward gives it.
        grad = torch.linspace(1, 2, x.numel(), device=device, dtype=dtype)
        (g,) = torch.autograd.grad(out, xd, grad)
        (g_ref,) = torch.autograd.grad(theirs(xd), xd, grad)
        torch.testing.assert_close(g, g_ref, equal_nan=True, rtol=3e-7, atol=1e-30)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tanh_keeps_the_sign_of_zero(device, dtype):
    x = torch.tensor([0.0, -0.0, 1e-30, -1e-30], device=device, dtype=dtype)
    assert torch.equal(torch.signbit(cnnfast.tanh(x)), torch.signbit(torch.tanh(x)))


@pytest.mark.parametrize("device", DEVICES)
def test_tanh_float32_accuracy_over_its_range(device):
    x = torch.linspace(-12, 12, 200001, device=device)
    error = (cnnfast.tanh(x).double() - torch.tanh(x.double())).abs()
    assert float((error / torch.tanh(x.double()).abs().clamp_min(1e-30)).max()) < 3e-7


@pytest.mark.parametrize("device", DEVICES)
def test_tanh_float32_accuracy_over_random_floats(device):
    """Every magnitude, subnormals included: random bit patterns."""
    generator = torch.Generator().manual_seed(0)
    bits = torch.randint(-(2**31), 2**31 - 1, (1 << 20,), dtype=torch.int64, generator=generator)
    x = bits.to(torch.int32).view(torch.float32)
    x = x[torch.isfinite(x)].to(device)
    out, expected = cnnfast.tanh(x).double(), torch.tanh(x.double())
    assert float(((out - expected).abs() / expected.abs().clamp_min(1e-300)).max()) < 3e-7
    assert torch.equal(torch.signbit(out), torch.signbit(expected))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,ours,theirs", OPS, ids=[o[0] for o in OPS])
def test_layouts(device, name, ours, theirs):
    base = torch.randn(2, 6, 5, 7, dtype=torch.float64, device=device)
    channels_last = base.to(memory_format=torch.channels_last)
    out = ours(channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, theirs(base))
    strided = base.transpose(1, 3)[:, ::2]
    torch.testing.assert_close(ours(strided), theirs(strided))
    x = strided.clone().requires_grad_()
    (g,) = torch.autograd.grad(ours(x), x, torch.ones_like(x))
    x2 = strided.clone().requires_grad_()
    (g2,) = torch.autograd.grad(theirs(x2), x2, torch.ones_like(x2))
    torch.testing.assert_close(g, g2)


@pytest.mark.parametrize("name,ours,theirs", OPS, ids=[o[0] for o in OPS])
def test_bad_input(name, ours, theirs):
    with pytest.raises(RuntimeError, match=f"cnnfast.{name}: x must be"):
        ours(torch.ones(3, dtype=torch.int32))
    backward = getattr(torch.ops.cnnfast, f"_{name}_backward")
    with pytest.raises(RuntimeError, match="same shape"):
        backward(torch.ones(3), torch.ones(4))
    with pytest.raises(RuntimeError, match="same dtype"):
        backward(torch.ones(3), torch.ones(3, dtype=torch.float64))


def test_relus_mask_ops_check_their_arguments():
    """relu's CPU node saves a mask (_relu_with_mask) and takes the gradient
    through it (_relu_mask_backward): bad arguments are clear errors."""
    ops = torch.ops.cnnfast
    with pytest.raises(RuntimeError, match="cnnfast._relu_with_mask: x must be"):
        ops._relu_with_mask(torch.ones(3, dtype=torch.int32))
    _, mask = ops._relu_with_mask(torch.ones(9))
    with pytest.raises(RuntimeError, match="cnnfast._relu_mask_backward: grad_output must be"):
        ops._relu_mask_backward(torch.ones(9, dtype=torch.int64), mask, False)
    with pytest.raises(RuntimeError, match="mask must be uint8, got Bool"):
        ops._relu_mask_backward(torch.ones(9), torch.ones(2, dtype=torch.bool), False)
    with pytest.raises(RuntimeError, match="a bit for each of grad_output's 17 elements \\(3 bytes\\), got shape \\[2\\]"):
        ops._relu_mask_backward(torch.ones(17), mask, False)
    with pytest.raises(RuntimeError, match="a bit for each"):
        ops._relu_mask_backward(torch.ones(9), mask.view(2, 1), False)
    with pytest.raises(RuntimeError, match="channels_last needs a 4-D grad_output, got 1-D"):
        ops._relu_mask_backward(torch.ones(9), mask, True)


# relu's CPU node saves a bit per element (_relu_with_mask): bit i % 8 of
# byte i / 8 for element i in the output's memory order. (65549,): two
# threads, the second starting at a byte that is not a whole vector step.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,channels_last", [((5, 9), False), ((65549,), False), ((3, 6, 55, 7), False),
                                                 ((3, 6, 55, 7), True)], ids=str)
def test_relus_mask_holds_a_bit_per_element(dtype, shape, channels_last):
    x = torch.randn(shape, dtype=dtype)
    x.view(-1)[::7], x.view(-1)[::11], x.view(-1)[::13] = float("nan"), 0.0, -0.0
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    out, mask = torch.ops.cnnfast._relu_with_mask(x)
    torch.testing.assert_close(out, torch.relu(x), equal_nan=True, rtol=0, atol=0)
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert mask.dtype == torch.uint8 and mask.shape == ((x.numel() + 7) // 8,)
    in_memory_order = out.permute(0, 2, 3, 1) if channels_last else out
    bits = (mask.unsqueeze(1) >> torch.arange(8, dtype=torch.uint8)) & 1
    passes = ~(in_memory_order <= 0)  # NaN passes, as in torch's threshold_backward
    assert torch.equal(bits.flatten()[: x.numel()].bool(), passes.flatten())
    # The gradient through the mask, whatever the gradient's own layout.
    grad = torch.randn(shape, dtype=dtype).transpose(0, -1).contiguous().transpose(0, -1)
    got = torch.ops.cnnfast._relu_mask_backward(grad, mask, channels_last)
    assert torch.equal(got, torch.ops.aten.threshold_backward(grad, out, 0))
    xg = x.detach().requires_grad_()
    (through_node,) = torch.autograd.grad(cnnfast.relu(xg), xg, grad)
    assert torch.equal(through_node, got)


@pytest.mark.large
def test_relus_mask_past_2_31_elements():
    # 2**31 + 2**20 floats (8.6 GB in, 8.6 GB out, 268 MB of mask): the
    # mask's bytes and the elements' offsets in 64 bits.
    x = torch.zeros(2**31 + 2**20)
    x[-1] = 1.0
    out, mask = torch.ops.cnnfast._relu_with_mask(x)
    del x
    assert out[-1] == 1.0 and out.sum() == 1.0
    assert mask.shape == (2**28 + 2**17,) and mask[-1] == 128 and mask.sum(dtype=torch.int64) == 128


def test_modules():
    x = torch.randn(4, 5)
    torch.testing.assert_close(cnnfast.nn.ReLU()(x), torch.nn.ReLU()(x))
    torch.testing.assert_close(cnnfast.nn.Tanh()(x), torch.nn.Tanh()(x))
    assert isinstance(cnnfast.nn.ReLU.from_torch(torch.nn.ReLU()), torch.nn.ReLU)


@pytest.mark.parametrize("device", DEVICES)
def test_grid_stride_loop_reaches_every_element(device):
    # More elements than one launch grid holds (8192 blocks × 256 threads):
    # each CUDA thread, and so each emulated one, loops more than once.
    x = torch.randn(8192 * 256 * 2 + 12345, device=device)
    torch.testing.assert_close(cnnfast.relu(x), torch.relu(x))
    torch.testing.assert_close(cnnfast.tanh(x), torch.tanh(x), rtol=3e-7, atol=1e-7)


# Double backward (a gradient penalty): the backward ops' own gradients
# (cnnfast/ops.py), through the C++ node and through torch.ops alike.
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,ours,theirs", OPS, ids=[o[0] for o in OPS])
def test_double_backward(device, name, ours, theirs):
    x = torch.randn(3, 5, 4, dtype=torch.float64, device=device)
    x = x + 0.1 * x.sign()  # away from relu's kink, where finite differences fail
    x.requires_grad_()
    op = getattr(torch.ops.cnnfast, name)
    for f in (ours, op):
        assert torch.autograd.gradgradcheck(f, (x,))
    (grad,) = torch.autograd.grad(ours(x).pow(2).sum(), x, create_graph=True)
    (penalty,) = torch.autograd.grad(grad.pow(2).sum(), x)
    x_ref = x.detach().cpu().requires_grad_()
    (grad_ref,) = torch.autograd.grad(theirs(x_ref).pow(2).sum(), x_ref, create_graph=True)
    (penalty_ref,) = torch.autograd.grad(grad_ref.pow(2).sum(), x_ref)
    torch.testing.assert_close(penalty.cpu(), penalty_ref)
