"""local_response_norm against F.local_response_norm (float64 reference)."""

import pytest
import torch
import torch.nn.functional as F

import cnnfast
from helpers import ALL_DTYPES, DEVICES, assert_close, skip_unsupported, slow_in_emulation

# (name, shape, size, alpha, beta, k)
CASES = [
    ("alexnet_lrn1", slow_in_emulation((2, 96, 55, 55), (1, 96, 13, 13)), 5, 5e-4, 0.75, 2.0),
    ("alexnet_lrn2", slow_in_emulation((2, 256, 27, 27), (1, 256, 5, 5)), 5, 5e-4, 0.75, 2.0),
    ("tower_48", (2, 48, 13, 13), 5, 5e-4, 0.75, 2.0),
    ("torch_defaults", (2, 16, 7, 7), 5, 1e-4, 0.75, 1.0),
    ("one_channel", (3, 1, 6, 5), 5, 0.1, 0.75, 1.0),
    ("size_above_channels", (2, 3, 4, 4), 9, 0.2, 0.75, 1.0),
    ("even_size", (2, 10, 5, 3), 4, 0.3, 0.75, 1.0),
    ("size_one", (2, 6, 3, 3), 1, 0.3, 0.75, 1.0),
    ("beta_half", (2, 8, 4, 4), 3, 0.5, 0.5, 1.0),
    ("beta_one", (2, 8, 4, 4), 3, 0.5, 1.0, 0.5),
    ("beta_other", (2, 8, 4, 4), 5, 0.5, 0.6, 1.5),
    ("three_d", (4, 9, 11), 3, 0.1, 0.75, 1.0),
    ("five_d", (2, 6, 3, 4, 5), 5, 0.1, 0.75, 2.0),
    ("prime_pixels", (1, 13, 17, 19), 5, 0.1, 0.75, 2.0),
]
IDS = [case[0] for case in CASES]


def check(x, size, alpha, beta, k):
    dtype = x.dtype
    x = x.detach().requires_grad_()
    out = cnnfast.local_response_norm(x, size, alpha, beta, k)
    x64 = x.detach().double().requires_grad_()
    ref = F.local_response_norm(x64, size, alpha, beta, k)
    assert out.shape == x.shape and out.dtype == dtype
    assert_close(out, ref, dtype)
    grad = torch.randn(x.shape, device=x.device).to(dtype)
    (g,) = torch.autograd.grad(out, x, grad)
    (g_ref,) = torch.autograd.grad(ref, x64, grad.double())
    assert_close(g, g_ref, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("name,shape,size,alpha,beta,k", CASES, ids=IDS)
def test_matches_torch(device, dtype, name, shape, size, alpha, beta, k):
    skip_unsupported(device, dtype)
    # Values of a few units, like activations after a convolution.
    x = (3 * torch.randn(shape, device=device)).to(dtype)
    check(x, size, alpha, beta, k)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["channels_last", "transposed", "sliced"])
def test_any_strides(device, layout):
    base = torch.randn(2, 12, 9, 7, dtype=torch.float64, device=device)
    x = {
        "channels_last": base.to(memory_format=torch.channels_last),
        "transposed": base.transpose(2, 3),
        "sliced": base[:, ::2, 1:, ::3],
    }[layout]
    check(x, 5, 0.1, 0.75, 2.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(0, 8, 5, 5), (2, 8, 0, 5), (2, 0, 5, 5)])
def test_empty_input(device, shape):
    x = torch.randn(shape, device=device, requires_grad=True)
    out = cnnfast.local_response_norm(x, 5)
    assert out.shape == x.shape
    (g,) = torch.autograd.grad(out.sum(), x)
    assert g.shape == x.shape


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("beta", [0.75, 0.6])
def test_zero_k_and_zero_window_gives_what_torch_gives(device, beta):
    x = torch.randn(1, 6, 3, 3, device=device, dtype=torch.float64)
    x[0, :, 0, 0] = 0.0  # an all-zero window with k = 0: 0 / 0 -> NaN
    x[0, 3:, 1, 1] = 0.0
    x[0, 2, 2, 2] = float("inf")  # inf (or NaN) in the windows that hold it, nowhere else
    out = cnnfast.local_response_norm(x, 3, 0.1, beta, 0.0)
    ref = F.local_response_norm(x, 3, 0.1, beta, 0.0)
    torch.testing.assert_close(out, ref, equal_nan=True)
    assert out[0, :, 0, 0].isnan().all()
    assert out[0, 4:, 2, 2].isfinite().all() and out[0, 2, 2, 2].isnan()


@pytest.mark.parametrize("device", DEVICES)
def test_a_window_wider_than_32_bits(device):
    """size 2**32 + 1 over 4 channels: every window holds all of them, as
    size 9's do; with alpha scaled alike, the result is size 9's (the CUDA
    kernels' 32-bit indices must not take such a window)."""
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, device=device)
    huge = 2**32 + 1
    out = cnnfast.local_response_norm(x, huge, 1e-3 * huge, 0.75, 1.0)
    expected = F.local_response_norm(x.cpu(), 9, 1e-3 * 9, 0.75, 1.0)
    assert_close(out.cpu(), expected, torch.float64)


@pytest.mark.parametrize("device", DEVICES)
def test_module_matches_torch(device):
    x = torch.randn(2, 10, 6, 6, device=device, dtype=torch.float64)
    ours, theirs = cnnfast.nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0), torch.nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)
    torch.testing.assert_close(ours(x), theirs(x))
    assert repr(ours).split("(", 1)[1] == repr(theirs).split("(", 1)[1]
    torch.testing.assert_close(cnnfast.nn.LocalResponseNorm.from_torch(theirs)(x), theirs(x))


@pytest.mark.parametrize("device", DEVICES)
def test_bad_input(device):
    x = torch.randn(2, 4, 3, 3, device=device)
    with pytest.raises(RuntimeError, match="size must be positive"):
        cnnfast.local_response_norm(x, 0)
    with pytest.raises(RuntimeError, match="size must be positive"):
        cnnfast.local_response_norm(x, -3)
    with pytest.raises(RuntimeError, match="3 or more dimensions"):
        cnnfast.local_response_norm(torch.randn(4, 4, device=device), 3)
    with pytest.raises(ValueError):  # torch refuses fewer than 3 dims too
        F.local_response_norm(torch.randn(4, 4, device=device), 3)
    with pytest.raises(RuntimeError, match="x must be"):
        cnnfast.local_response_norm(torch.ones(2, 4, 3, 3, dtype=torch.int32, device=device), 3)
    with pytest.raises(TypeError, match="size"):
        cnnfast.local_response_norm(x, 2.5)
    backward = torch.ops.cnnfast._local_response_norm_backward
    with pytest.raises(RuntimeError, match="same shape"):
        backward(x[:1], x, 3, 1e-4, 0.75, 1.0)
