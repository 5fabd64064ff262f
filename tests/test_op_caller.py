"""The ops' C++ callers (csrc/op_caller.cpp): the same results, gradients
and errors as torch.ops, and NotImplemented wherever torch.ops must run
instead; and the one route every call takes, the op's C++ autograd
(csrc/autograd/)."""

import inspect
import pickle
import types

import pytest
import torch
from torch.overrides import TorchFunctionMode

import cnnfast
from cnnfast import _C
from helpers import DEVICES, RecordOps
from test_op_contracts import opcheck_cases, sample

ops = torch.ops.cnnfast


def caller_of(op):
    return _C._op_caller(op._qualified_op_name.split("::")[1])


def conv_cases(device):
    x = sample(device)
    weight = torch.randn(4, 3, 3, 3, dtype=x.dtype, device=device)
    bias = torch.randn(4, dtype=x.dtype, device=device)
    out = ops.conv2d(x, weight, bias, [1, 2], [1, 0], 1, "tanh")
    fc_weight = torch.randn(5, 8, dtype=x.dtype, device=device)
    fc_out = ops.linear(x, fc_weight, None, None)
    return [
        (ops.conv2d, (x, weight, bias, [1, 2], [1, 0], 1, "tanh")),
        (ops.conv2d, (x, weight, None, (1, 1), (0, 0), 1, None)),
        (ops._conv2d_backward, (torch.randn_like(out), x, weight, out, [1, 2], [1, 0], 1, "tanh", [True, False, True])),
        (ops.linear, (x, fc_weight, None, None)),
        (ops._linear_backward, (torch.randn_like(fc_out), x, fc_weight, fc_out, None, (True, True, False))),
    ]


def assert_same_outputs(got, expected):
    if isinstance(expected, torch.Tensor):
        got, expected = (got,), (expected,)
    assert isinstance(got, tuple) and len(got) == len(expected)
    for g, e in zip(got, expected):
        if e is None or (isinstance(e, torch.Tensor) and e.numel() == 0 and g.numel() == 0):
            continue
        assert g.dtype == e.dtype and g.shape == e.shape and g.stride() == e.stride()
        torch.testing.assert_close(g, e, rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_every_op_gives_what_the_op_gives(device):
    for op, args in opcheck_cases(device) + conv_cases(device):
        assert_same_outputs(caller_of(op)(*args), op(*args))


def test_arguments_left_out_take_the_schema_defaults():
    x = sample("cpu")
    call = caller_of(ops.local_response_norm)
    torch.testing.assert_close(call(x, 3), ops.local_response_norm(x, 3, 1e-4, 0.75, 1.0), rtol=0, atol=0)
    assert caller_of(ops.relu)() is NotImplemented  # x has no default
    assert call(x, 3, 1e-4, 0.75, 1.0, 7) is NotImplemented  # one argument too many


def test_a_tensor_needing_a_gradient_goes_through_the_ops_autograd():
    x = sample("cpu", requires_grad=True)
    out = caller_of(ops.tanh)(x)
    expected = ops.tanh(x)
    assert type(out.grad_fn) is type(expected.grad_fn) and "TanhFunction" in out.grad_fn.name()
    torch.testing.assert_close(torch.autograd.grad(out.sum(), x)[0], torch.autograd.grad(expected.sum(), x)[0],
                               rtol=0, atol=0)
    with torch.no_grad():
        assert not caller_of(ops.tanh)(x).requires_grad
    weight = torch.nn.Parameter(torch.randn(5, 8, dtype=torch.float64))
    assert caller_of(ops.linear)(sample("cpu"), weight, None, None).grad_fn is not None


@pytest.mark.parametrize(
    "args",
    [
        (3, 0.5, 0.75, 2.0),  # the tensor as an int
        ("x", 3.0, 0.5, 0.75, 2.0),  # a float where the schema has an int
        ("x", True, 0.5, 0.75, 2.0),  # a bool where the schema has an int
        ("x", 3, 1, 0.75, 2.0),  # an int where the schema has a float
    ],
)
def test_values_it_does_not_convert_take_the_general_path(args):
    x = sample("cpu")
    args = tuple(x if a == "x" else a for a in args)
    assert caller_of(ops.local_response_norm)(*args) is NotImplemented
    assert caller_of(ops.max_pool2d)(x, [3, 3], [2, 2], [1, 1], 1) is NotImplemented
    assert caller_of(ops.max_pool2d)(x, [3, 3.0], [2, 2], [1, 1], False) is NotImplemented
    assert caller_of(ops.conv2d)(x, x, None, [1, 1], [0, 0], 1, 7) is NotImplemented


class Tagged(torch.Tensor):
    """A subclass that records the functions called on it."""

    seen = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.seen.append(func)
        return super().__torch_function__(func, types, args, kwargs or {})


def test_a_tensor_subclass_sees_the_call():
    x = sample("cpu").as_subclass(Tagged)
    assert caller_of(ops.relu)(x) is NotImplemented
    Tagged.seen.clear()
    out = cnnfast.relu(x)
    assert type(out) is Tagged
    assert ops.relu.default in Tagged.seen
    torch.testing.assert_close(out.as_subclass(torch.Tensor), torch.relu(x.as_subclass(torch.Tensor)))


class RecordFunctions(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen.append(func)
        return func(*args, **(kwargs or {}))


def test_a_torch_function_mode_sees_the_call():
    x = sample("cpu")
    with RecordFunctions() as mode:
        assert caller_of(ops.tanh)(x) is NotImplemented
        out = cnnfast.tanh(x)
    assert ops.tanh.default in mode.seen
    torch.testing.assert_close(out, torch.tanh(x))


def test_a_torch_dispatch_mode_sees_the_op():
    x = sample("cpu")
    with RecordOps() as mode:
        out = caller_of(ops.max_pool2d)(x, [3, 3], [2, 2], [1, 1], True)
    with RecordOps() as through_torch_ops:
        ops.max_pool2d(x, [3, 3], [2, 2], [1, 1], True)
    # max_pool2d is a composite of the op that keeps the offsets, as torch.ops shows it
    assert mode.seen == through_torch_ops.seen == [ops._max_pool2d_with_offsets.default]
    torch.testing.assert_close(out, torch.nn.functional.max_pool2d(x, 3, 2, 1, ceil_mode=True), rtol=0, atol=0)


@pytest.mark.parametrize(
    "op, args",
    [
        (ops.relu, (torch.ones(3, dtype=torch.int32),)),
        (ops.max_pool2d, (torch.ones(1, 1, 5, 5), [3, 3], [2, 2], [2, 2], False)),
        (ops.max_pool2d, (torch.ones(1, 1, 5, 5), [3, 3], [0, 2], [1, 1], False)),
        (ops.conv2d, (torch.ones(1, 3, 5, 5), torch.ones(4, 2, 3, 3), None, [1, 1], [0, 0], 1, "relu")),
        (ops.conv2d, (torch.ones(1, 3, 5, 5), torch.ones(4, 3, 3, 3), None, [1, 1], [0, 0], 1, "gelu")),
    ],
)
def test_errors_are_the_ops_errors(op, args):
    with pytest.raises(Exception) as expected:
        op(*args)
    with pytest.raises(Exception) as got:
        caller_of(op)(*args)
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)


class CountedOps:
    """cnnfast.ops._ops, counting the calls that reach the Python functions."""

    def __init__(self, ops):
        self.ops, self.calls = ops, []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.ops, name)


@pytest.fixture
def python_calls(monkeypatch):
    counted = CountedOps(cnnfast.ops._ops)
    monkeypatch.setattr(cnnfast.ops, "_ops", counted)
    return counted.calls


@pytest.fixture
def torch_ops_calls(monkeypatch):
    """The cnnfast ops called through torch.ops (OpOverload.__call__)."""
    calls = []
    call = torch._ops.OpOverload.__call__

    def counted(self, *args, **kwargs):
        if self.namespace == "cnnfast":
            calls.append(self)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(torch._ops.OpOverload, "__call__", counted)
    return calls


def test_the_public_functions_take_the_caller_with_and_without_gradients(torch_ops_calls):
    x = sample("cpu")
    cnnfast.max_pool2d(x, 3, 2)
    out = cnnfast.conv2d(x.requires_grad_(), torch.randn(4, 3, 3, 3, dtype=x.dtype), None, 1, 0, 1, "relu")
    out.sum().backward()
    assert torch_ops_calls == []
    cnnfast.relu(x.as_subclass(Tagged))
    assert torch_ops_calls and set(torch_ops_calls) == {ops.relu.default}


# One route: the public functions, torch.ops and a compiled graph all reach
# the op's C++ autograd kernel (csrc/autograd/), which saves what backward
# needs and calls the backward op.
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_activations_with_a_gradient_take_the_ops_autograd(device, name):
    x = sample(device, requires_grad=True)
    grad = torch.randn_like(x)
    via_op = getattr(ops, name)(x)
    out = getattr(cnnfast, name)(x)
    assert type(out.grad_fn) is type(via_op.grad_fn)
    saves_mask = "ReluWithMaskFunction" in out.grad_fn.name()
    assert saves_mask == (name == "relu" and device == "cpu" and not _C._emulate_cuda())
    assert saves_mask or f"{name.capitalize()}Function" in out.grad_fn.name()
    torch.testing.assert_close(out, via_op, rtol=0, atol=0)
    (expected,) = torch.autograd.grad(via_op, x, grad)
    (got,) = torch.autograd.grad(out, x, grad)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    out = getattr(cnnfast, name)(x)
    out.add_(1)
    if saves_mask:
        # relu on the CPU saved where its gradient passes, not the output:
        # changing the output leaves the gradient right.
        (got,) = torch.autograd.grad(out, x, grad)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    else:
        # The saved output is checked, as save_for_backward checks it.
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()


# cnnfast.relu and cnnfast.tanh are builtins (op_caller.cpp, ActivationBuiltin)
# that take the caller above and fall back on the Python function.
@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_the_activations_are_builtins_that_behave_as_functions(name):
    function = getattr(cnnfast, name)
    assert isinstance(function, types.BuiltinFunctionType)
    assert function is getattr(cnnfast.ops, name)
    assert repr(function) == f"<built-in function {name}>"
    assert function.__module__ == "cnnfast.ops" and function.__name__ == name
    assert str(inspect.signature(function)) == "(x)"
    assert f"torch.{name} on cnnfast's kernels" in function.__doc__
    assert pickle.loads(pickle.dumps(function)) is function


@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_the_activations_call_python_only_where_the_caller_declines(name, python_calls):
    function, reference = getattr(cnnfast, name), getattr(torch, name)
    x = sample("cpu")
    torch.testing.assert_close(function(x), reference(x), rtol=2e-7, atol=0)
    out = function(x.clone().requires_grad_())
    assert out.grad_fn is not None
    assert python_calls == []
    torch.testing.assert_close(function(x=x), reference(x), rtol=2e-7, atol=0)
    assert python_calls == [name]
    assert type(function(x.as_subclass(Tagged))) is Tagged
    with RecordFunctions() as mode:
        function(x)
    assert getattr(ops, name).default in mode.seen
    assert python_calls == [name] * 3


def test_the_activations_raise_what_the_python_path_raises():
    with pytest.raises(TypeError, match="relu\\(\\) missing 1 required positional argument: 'x'"):
        cnnfast.relu()
    with pytest.raises(TypeError, match="tanh\\(\\) got an unexpected keyword argument 'input'"):
        cnnfast.tanh(input=sample("cpu"))
    with pytest.raises(TypeError, match="cnnfast.relu: x must be a tensor, got int"):
        cnnfast.relu(3)
    with pytest.raises(ValueError, match="no builtin for cnnfast::max_pool2d"):
        _C._activation("max_pool2d", lambda x: x)
