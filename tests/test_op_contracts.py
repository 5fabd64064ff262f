"""Every op through gradcheck, torch.library.opcheck and torch.compile."""

import pytest
import torch

import cnnfast
from helpers import DEVICES

ops = torch.ops.cnnfast


def sample(device, requires_grad=False):
    return torch.randn(2, 3, 9, 8, dtype=torch.float64, device=device, requires_grad=requires_grad)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device):
    x = sample(device, requires_grad=True)
    functions = [
        cnnfast.relu,
        cnnfast.tanh,
        lambda t: cnnfast.max_pool2d(t, 3, 2, 1, True),
        lambda t: cnnfast.max_pool2d(t, (2, 3), (1, 2)),
        lambda t: cnnfast.avg_pool2d(t, 3, 2, 1, True, False),
        lambda t: cnnfast.avg_pool2d(t, (3, 2), 1, (1, 0), False, True),
        lambda t: cnnfast.local_response_norm(t, 3, 0.5, 0.75, 2.0),
        lambda t: cnnfast.local_response_norm(t, 2, 0.3, 0.6, 1.0),
        lambda t: cnnfast.relu_lrn_max_pool2d(t, 3, 0.5, 0.75, 2.0),
        lambda t: cnnfast.relu_lrn_max_pool2d(t, 4, 0.5, 0.6, 1.0, (2, 3), 1),
    ]
    for fn in functions:
        assert torch.autograd.gradcheck(fn, (x,))


def opcheck_cases(device):
    x = sample(device)
    out, offsets = ops._max_pool2d_with_offsets(x, [3, 3], [2, 2], [1, 1], True)
    grad_pool = torch.randn_like(out)
    y = torch.tanh(x)
    fused_out, fused_offsets = ops._relu_lrn_max_pool2d_with_offsets(x, 3, 0.5, 0.75, 2.0, [3, 3], [2, 2])
    cases = [
        (ops.relu, (x,)),
        (ops.relu, (x.to(memory_format=torch.channels_last),)),
        (ops.tanh, (x.transpose(2, 3),)),
        (ops._relu_backward, (torch.randn_like(x), y)),
        (ops._tanh_backward, (torch.randn_like(x), y)),
        (ops.max_pool2d, (x, [3, 3], [2, 2], [1, 1], True)),
        (ops._max_pool2d_with_offsets, (x, [3, 3], [2, 2], [1, 1], True)),
        (ops._max_pool2d_with_offsets, (x[0], [2, 2], [], [0, 0], False)),
        (ops._max_pool2d_backward, (grad_pool, offsets, list(x.shape), [3, 3], [2, 2], [1, 1])),
        (ops.avg_pool2d, (x, [3, 3], [2, 2], [1, 1], True, False)),
        (ops._avg_pool2d_backward, (grad_pool, list(x.shape), [3, 3], [2, 2], [1, 1], False)),
        (ops.local_response_norm, (x, 3, 0.5, 0.75, 2.0)),
        (ops.local_response_norm, (x.transpose(1, 3), 4, 0.5, 0.6, 1.0)),
        (ops._local_response_norm_backward, (torch.randn_like(x), x, 3, 0.5, 0.75, 2.0)),
        (ops.relu_lrn_max_pool2d, (x, 3, 0.5, 0.75, 2.0, [3, 3], [2, 2])),
        (ops._relu_lrn_max_pool2d_with_offsets, (x, 3, 0.5, 0.75, 2.0, [3, 3], [2, 2])),
        (ops._relu_lrn_max_pool2d_backward, (torch.randn_like(fused_out), x, fused_offsets, 3, 0.5, 0.75, 2.0, [3, 3], [2, 2])),
    ]
    if device == "cpu":  # CPU kernels only: what relu's C++ node saves there
        x_channels_last = x.to(memory_format=torch.channels_last)
        _, mask = ops._relu_with_mask(x)
        _, mask_channels_last = ops._relu_with_mask(x_channels_last)
        cases += [
            (ops._relu_with_mask, (x,)),
            (ops._relu_with_mask, (x_channels_last,)),
            (ops._relu_mask_backward, (torch.randn_like(x), mask, False)),
            (ops._relu_mask_backward, (torch.randn_like(x), mask_channels_last, True)),
            (ops._relu_mask_backward, (torch.randn_like(x).transpose(2, 3), mask, False)),
        ]
    return cases


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    for op, args in opcheck_cases(device):
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph(device):
    def stage(t):
        t = cnnfast.relu_lrn_max_pool2d(t, 3, 0.1, 0.75, 2.0, 2, 1)
        t = cnnfast.relu(t)
        t = cnnfast.local_response_norm(t, 3, 0.1, 0.75, 2.0)
        t = cnnfast.max_pool2d(t, 3, 2, 1)
        t = cnnfast.avg_pool2d(t, 2, ceil_mode=True)
        return cnnfast.tanh(t)

    compiled = torch.compile(stage, fullgraph=True)
    x = sample(device, requires_grad=True)
    out = compiled(x)
    expected = stage(x)
    torch.testing.assert_close(out, expected)
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_eager,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(g, g_eager)


# Each public function against its op called through torch.ops: the same
# values, gradients and errors (the public functions reach the op through
# its C++ caller).
def _parameters(*weight_shape):
    """A weight of that shape and its bias, like x and needing gradients."""

    def make(t):
        return tuple(torch.randn(shape, dtype=t.dtype, device=t.device, requires_grad=True)
                     for shape in (weight_shape, weight_shape[:1]))

    return make


_weights, _linear_weights = _parameters(4, 3, 2, 2), _parameters(5, 8)


PUBLIC_AND_OP = [
    (cnnfast.relu, ops.relu, None),
    (cnnfast.tanh, ops.tanh, None),
    (lambda t: cnnfast.max_pool2d(t, 3, 2, 1, True), lambda t: ops.max_pool2d(t, [3, 3], [2, 2], [1, 1], True), None),
    (lambda t: cnnfast.avg_pool2d(t, 3, 2, 1, True, False),
     lambda t: ops.avg_pool2d(t, [3, 3], [2, 2], [1, 1], True, False), None),
    (lambda t: cnnfast.local_response_norm(t, 3, 0.5, 0.75, 2.0),
     lambda t: ops.local_response_norm(t, 3, 0.5, 0.75, 2.0), None),
    (lambda t: cnnfast.relu_lrn_max_pool2d(t, 3, 0.5, 0.75, 2.0),
     lambda t: ops.relu_lrn_max_pool2d(t, 3, 0.5, 0.75, 2.0, [3, 3], [2, 2]), None),
    (lambda t, w, b: cnnfast.conv2d(t, w, b, 1, 1, 1, "tanh"),
     lambda t, w, b: ops.conv2d(t, w, b, [1, 1], [1, 1], 1, "tanh"), _weights),
    (lambda t, w, b: cnnfast.conv2d_avg_pool2d(t, w, b, activation="relu"),
     lambda t, w, b: ops.conv2d_avg_pool2d(t, w, b, [1, 1], [0, 0], 1, "relu", [2, 2]), _weights),
    (lambda t, w, b: cnnfast.linear(t, w, b, "relu"), lambda t, w, b: ops.linear(t, w, b, "relu"), _linear_weights),
]


def _public_case(device, index):
    """(public function, its op, the inputs, all needing gradients)."""
    public, op, weights = PUBLIC_AND_OP[index]
    x = sample(device, requires_grad=True)
    return public, op, (x, *weights(x)) if weights else (x,)


# Without an input that needs a gradient, the public functions call the ops
# below autograd (cnnfast/ops.py, _run); with one, through autograd.
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("index", range(len(PUBLIC_AND_OP)))
def test_grad_mode_picks_the_path(device, index):
    public, _, inputs = _public_case(device, index)
    detached = [t.detach() for t in inputs]
    tracked = public(*inputs)
    assert tracked.requires_grad and tracked.grad_fn is not None
    with torch.no_grad():
        untracked = public(*inputs)
    with torch.inference_mode():
        inferred = public(*detached)
    plain = public(*detached)
    for out in (untracked, inferred, plain):
        assert not out.requires_grad and out.grad_fn is None
        torch.testing.assert_close(out, tracked.detach(), rtol=0, atol=0)
    assert inferred.is_inference()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("index", range(len(PUBLIC_AND_OP)))
def test_public_function_and_op_have_the_same_gradients(device, index):
    public, op, inputs = _public_case(device, index)
    out, expected = public(*inputs), op(*inputs)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, inputs, grad, retain_graph=True)
    again = torch.autograd.grad(out, inputs, grad)  # the same graph a second time
    for g, g_again, e in zip(got, again, torch.autograd.grad(expected, inputs, grad)):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
        torch.testing.assert_close(g_again, e, rtol=0, atol=0)


# A gradient of a gradient: relu and tanh give it (test_activations.py);
# every other op says it cannot, where torch's fallback gave zeros.
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("index", range(2, len(PUBLIC_AND_OP)))
def test_double_backward_is_a_clear_error(device, index):
    public, op, inputs = _public_case(device, index)
    for f in (public, op):
        grads = torch.autograd.grad(f(*inputs).pow(2).sum(), inputs, create_graph=True)
        penalty = sum(g.pow(2).sum() for g in grads)
        with pytest.raises(NotImplementedError, match="double backward .* is not implemented"):
            torch.autograd.grad(penalty, inputs)


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph_without_grad(device):
    compiled = torch.compile(lambda t: cnnfast.max_pool2d(cnnfast.tanh(t), 2), fullgraph=True)
    x = sample(device)
    torch.testing.assert_close(compiled(x), cnnfast.max_pool2d(cnnfast.tanh(x), 2))


def test_meta_tensors_give_shapes():
    x = torch.empty(8, 96, 55, 55, device="meta")
    assert cnnfast.max_pool2d(x, 3, 2).shape == (8, 96, 27, 27)
    assert cnnfast.avg_pool2d(x, 2, ceil_mode=True).shape == (8, 96, 28, 28)
    assert cnnfast.relu(x).shape == x.shape
    assert cnnfast.local_response_norm(x, 5).shape == x.shape
    assert cnnfast.relu_lrn_max_pool2d(x).shape == (8, 96, 27, 27)
