"""cnnfast.lenet5_forward: LeNet-5's whole forward pass as one op (on CUDA
one kernel), against the plain-PyTorch LeNet-5 in float64: values, partial
blocks, layouts, dtypes, gradients, errors, opcheck and torch.compile."""

import pytest
import torch

import cnnfast
from cnnfast import models
from helpers import ALL_DTYPES, DEVICES, EMULATING, assert_close, skip_unsupported, slow_in_emulation

ops = torch.ops.cnnfast


def reference_and_parameters(device, dtype=torch.float64):
    reference = models.ReferenceLeNet5().to(device, torch.float64)
    # Weights larger than the default initialisation's, so that every tanh
    # leaves its linear range and a wrong index shows.
    with torch.no_grad():
        for p in reference.parameters():
            p.mul_(3)
    return reference, [p.detach().to(dtype) for p in reference.parameters()]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [1, 3, 4, 9])  # CUDA blocks take 4 images (float): full and partial blocks
def test_matches_the_reference_model_in_float64(device, batch):
    reference, params = reference_and_parameters(device)
    x = torch.randn(batch, 1, 32, 32, dtype=torch.float64, device=device)
    with torch.no_grad():
        expected = reference(x)
    assert_close(cnnfast.lenet5_forward(x, *params), expected, torch.float64)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_each_dtype_against_float64(device, dtype):
    skip_unsupported(device, dtype)
    reference, params = reference_and_parameters(device, dtype)
    x = torch.randn(slow_in_emulation(37, 6), 1, 32, 32, dtype=torch.float64, device=device)
    with torch.no_grad():
        expected = reference(x.to(dtype).double())
    out = cnnfast.lenet5_forward(x.to(dtype), *params)
    assert out.dtype == dtype and out.shape == expected.shape
    # The kernel computes in float32 from the 16-bit inputs and weights and
    # rounds only the scores to 16 bits: the tolerance is that rounding's.
    tolerance = {torch.float16: 2e-2, torch.bfloat16: 1.5e-1}.get(dtype)
    if tolerance is None:
        assert_close(out, expected, dtype)
    else:
        torch.testing.assert_close(out.double(), expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("device", DEVICES)
def test_strided_inputs_and_parameters(device):
    reference, params = reference_and_parameters(device)
    x = torch.randn(5, 1, 32, 32, dtype=torch.float64, device=device)
    with torch.no_grad():
        expected = reference(x)
    strided_x = x.transpose(2, 3).contiguous().transpose(2, 3)
    strided = [p.t().contiguous().t() if p.dim() == 2 else p for p in params]
    assert not strided_x.is_contiguous() and not strided[4].is_contiguous()
    assert_close(cnnfast.lenet5_forward(strided_x, *strided), expected, torch.float64)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    _, params = reference_and_parameters(device, torch.float32)
    out = cnnfast.lenet5_forward(torch.empty(0, 1, 32, 32, device=device), *params)
    assert out.shape == (0, 10) and out.device.type == device


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_match_the_reference_model(device):
    reference, params = reference_and_parameters(device)
    params = [p.requires_grad_() for p in params]
    x = torch.randn(3, 1, 32, 32, dtype=torch.float64, device=device, requires_grad=True)
    reference_x = x.detach().clone().requires_grad_()
    weights = torch.randn(3, 10, dtype=torch.float64, device=device)
    (cnnfast.lenet5_forward(x, *params) * weights).sum().backward()
    (reference(reference_x) * weights).sum().backward()
    assert_close(x.grad, reference_x.grad, torch.float64)
    for (name, expected), ours in zip(reference.named_parameters(), params):
        torch.testing.assert_close(ours.grad, expected.grad, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device):
    _, params = reference_and_parameters(device)
    x = torch.randn(2, 1, 32, 32, dtype=torch.float64, device=device, requires_grad=True)
    fc3_bias = params[-1].clone().requires_grad_()
    fn = lambda x_, b_: cnnfast.lenet5_forward(x_, *params[:-1], b_)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, fc3_bias), fast_mode=True)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    _, params = reference_and_parameters(device)
    x = torch.randn(5, 1, 32, 32, dtype=torch.float64, device=device)
    torch.library.opcheck(ops.lenet5_forward, (x, *params))


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph(device):
    reference, params = reference_and_parameters(device)
    x = torch.randn(4, 1, 32, 32, dtype=torch.float64, device=device)
    compiled = torch.compile(cnnfast.lenet5_forward, fullgraph=True)
    with torch.no_grad():
        assert_close(compiled(x, *params), reference(x), torch.float64)


@pytest.mark.parametrize("device", DEVICES)
def test_bad_arguments_are_clear_errors(device):
    _, params = reference_and_parameters(device, torch.float32)
    x = torch.randn(2, 1, 32, 32, device=device)
    with pytest.raises(RuntimeError, match=r"lenet5_forward: x must be \(N, 1, 32, 32\)"):
        cnnfast.lenet5_forward(torch.randn(2, 1, 28, 28, device=device), *params)
    with pytest.raises(RuntimeError, match="lenet5_forward: x must be"):
        cnnfast.lenet5_forward(x[0], *params)
    wrong = list(params)
    wrong[4] = torch.randn(120, 401, device=device)
    with pytest.raises(RuntimeError, match=r"fc1_weight must have LeNet-5's shape \[120, 400\]"):
        cnnfast.lenet5_forward(x, *wrong)
    wrong = list(params)
    wrong[1] = params[1].double()
    with pytest.raises(RuntimeError, match="x and conv1_bias must have the same dtype"):
        cnnfast.lenet5_forward(x, *wrong)
    with pytest.raises(RuntimeError, match="lenet5_forward: x must be"):
        cnnfast.lenet5_forward(x.to(torch.int32), *params)
    if device == "cuda":
        with pytest.raises(RuntimeError, match="must be on the same device"):
            cnnfast.lenet5_forward(x, *params[:-1], params[-1].cpu())


@pytest.mark.skipif(EMULATING, reason="the CPU kernels' dtype rule")
def test_16bit_on_the_cpu_is_a_clear_error():
    _, params = reference_and_parameters("cpu", torch.float16)
    with pytest.raises(RuntimeError, match="lenet5_forward: x must be float32 or float64"):
        cnnfast.lenet5_forward(torch.randn(2, 1, 32, 32, dtype=torch.float16), *params)
