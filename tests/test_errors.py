"""One exception convention for every public function, as torch's own
functions raise (docs/errors.md):

- TypeError: an argument of the wrong type;
- RuntimeError: a value or shape an op refuses (as torch's ops do);
- ValueError: a bad value for a module's or model's constructor (as
  torch.nn's constructors do), and a data file that cannot be read
  (cnnfast.data.DataError);
- NotImplementedError: what torch takes and cnnfast does not.

Each message names the function and the argument."""

import pytest
import torch

import cnnfast
from cnnfast import nn
from helpers import ONCE

x = torch.randn(2, 4, 9, 9)
w = torch.randn(6, 4, 3, 3)

WRONG_TYPE = [
    (lambda: cnnfast.relu("x"), "relu"),
    (lambda: cnnfast.tanh(3), "tanh"),
    (lambda: cnnfast.max_pool2d(x, 2.5), "kernel_size"),
    (lambda: cnnfast.max_pool2d(x, 3, stride="2"), "stride"),
    (lambda: cnnfast.avg_pool2d(x, (2, 2, 2)), "kernel_size"),
    (lambda: cnnfast.avg_pool2d(x, 2, padding=True), "padding"),
    (lambda: cnnfast.local_response_norm(x, 2.0), "size"),
    (lambda: cnnfast.relu_lrn_max_pool2d(x, size="5"), "size"),
    (lambda: cnnfast.conv2d(x, w, groups=1.0), "groups"),
    (lambda: cnnfast.conv2d(x, w, stride=[1.0, 1.0]), "stride"),
    (lambda: cnnfast.conv2d(x, w, activation=torch.relu), "activation"),
    (lambda: cnnfast.conv2d_avg_pool2d(x, w, pool="2"), "pool"),
    (lambda: cnnfast.linear(x, torch.randn(3, 9), activation=1), "activation"),
    (lambda: cnnfast.linear(x, [[1.0] * 9]), "weight"),
    (lambda: cnnfast.conv2d(x, w, bias=[0.0] * 6), "bias"),
    (lambda: nn.Conv2d(4, 6, 3, activation=2), "activation"),
    (lambda: cnnfast.models.LeNet5()("image"), "expected a tensor"),
]

BAD_VALUE = [
    (lambda: cnnfast.relu(torch.ones(3, dtype=torch.int32)), "x must be"),
    (lambda: cnnfast.max_pool2d(x, 3, padding=2), "padding"),
    (lambda: cnnfast.max_pool2d(x, 0), "kernel_size"),
    (lambda: cnnfast.max_pool2d(x, 3, stride=0), "stride"),
    (lambda: cnnfast.avg_pool2d(x, 20), "kernel"),
    (lambda: cnnfast.local_response_norm(x, 0), "size"),
    (lambda: cnnfast.local_response_norm(x[0, 0], 3), "x"),
    (lambda: cnnfast.relu_lrn_max_pool2d(x[0], 5), "x"),
    (lambda: cnnfast.conv2d(x, w, groups=3), "groups"),
    (lambda: cnnfast.conv2d(x, w, stride=0), "stride"),
    (lambda: cnnfast.conv2d(x, w, padding=-1), "padding"),
    (lambda: cnnfast.conv2d(x, w, activation="gelu"), "activation"),
    (lambda: cnnfast.conv2d(x, w.double()), "same dtype"),
    (lambda: cnnfast.conv2d_avg_pool2d(x, w, activation="gelu"), "activation"),
    (lambda: cnnfast.linear(x, torch.randn(3, 5)), "features"),
    (lambda: cnnfast.linear(x, torch.randn(3, 9), activation="sigmoid"), "activation"),
    (lambda: cnnfast.lenet5_forward(x, *[torch.zeros(1)] * 10), "lenet5_forward"),
    (lambda: cnnfast.models.LeNet5()(torch.randn(1, 1, 28, 28)), "(N, 1, 32, 32)"),
    (lambda: cnnfast.models.ReferenceLeNet5()(torch.randn(1, 1, 28, 28)), "(N, 1, 32, 32)"),
]

CONSTRUCTOR_VALUE = [
    (lambda: nn.Conv2d(4, 6, 3, activation="gelu"), "activation"),
    (lambda: nn.Linear(4, 6, activation="sigmoid"), "activation"),
    (lambda: cnnfast.models.AlexNet(split="threads"), "split"),
    (lambda: cnnfast.models.AlexNet(split="devices"), "devices"),
    (lambda: nn.MaxPool2d(3, padding=2)(x), "padding"),  # torch.nn's own check, at forward
]

NOT_SUPPORTED = [
    (lambda: nn.Conv2d(4, 6, 3, dilation=2), "dilation"),
    (lambda: nn.Conv2d(4, 6, 3, padding="same"), "padding"),
    (lambda: nn.Conv2d(4, 6, 3, padding_mode="reflect"), "padding_mode"),
    (lambda: nn.MaxPool2d(3, return_indices=True), "return_indices"),
    (lambda: nn.MaxPool2d(3, dilation=2), "dilation"),
    (lambda: nn.AvgPool2d(2, divisor_override=3), "divisor_override"),
]


def _check(call, expected, fragment):
    with pytest.raises(expected) as raised:
        call()
    assert type(raised.value) is expected or (expected is ValueError and isinstance(raised.value, ValueError))
    assert fragment in str(raised.value)
    assert "cnnfast" in str(raised.value)


@pytest.mark.parametrize("call, fragment", WRONG_TYPE)
def test_a_wrong_type_is_a_type_error(call, fragment):
    _check(call, TypeError, fragment)


@pytest.mark.parametrize("call, fragment", BAD_VALUE)
def test_a_value_or_shape_an_op_refuses_is_a_runtime_error(call, fragment):
    _check(call, RuntimeError, fragment)


@pytest.mark.parametrize("call, fragment", CONSTRUCTOR_VALUE)
def test_a_bad_constructor_value_is_a_value_error(call, fragment):
    if "padding" in fragment:  # torch.nn's MaxPool2d takes the padding; the op refuses it, as torch's does
        with pytest.raises(RuntimeError, match="padding"):
            call()
        return
    _check(call, ValueError, fragment)


@pytest.mark.parametrize("call, fragment", NOT_SUPPORTED)
def test_what_cnnfast_does_not_support_is_not_implemented(call, fragment):
    _check(call, NotImplementedError, fragment)


def test_double_backward_is_not_implemented_past_the_activations():
    t = x.double().requires_grad_()
    (grad,) = torch.autograd.grad(cnnfast.max_pool2d(t, 3).pow(2).sum(), t, create_graph=True)
    with pytest.raises(NotImplementedError, match="cnnfast.max_pool2d: double backward"):
        grad.sum().backward()


@ONCE
def test_a_data_error_is_a_value_error(tmp_path):
    from cnnfast.data import DataError, read_idx

    assert issubclass(DataError, ValueError)
    broken = tmp_path / "broken-idx3-ubyte"
    broken.write_bytes(b"\x00\x00\x08\x03")
    with pytest.raises(DataError, match=str(broken)):
        read_idx(str(broken), 0x803)


def test_every_public_function_is_covered():
    """A new public function must join the lists above."""
    covered = " ".join(
        call.__code__.co_consts.__repr__() + repr(call.__code__.co_names)
        for table in (WRONG_TYPE, BAD_VALUE, CONSTRUCTOR_VALUE, NOT_SUPPORTED) for call, _ in table
    )
    functions = [name for name in cnnfast.__all__ if callable(getattr(cnnfast, name))
                 and name not in ("convert", "info")]
    for name in functions:
        assert name in covered, f"cnnfast.{name} has no error case in tests/test_errors.py"
