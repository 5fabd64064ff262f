"""Drop-in modules: the constructor arguments, state_dict and repr of their
torch.nn twins, forward on cnnfast's kernels."""

import torch

from . import ops


def _unsupported(module, name, value, default):
    if value != default:
        raise NotImplementedError(f"cnnfast.nn.{module}: {name}={value!r} is not supported (only {default!r})")


class _FromTorch:
    @classmethod
    def from_torch(cls, module):
        """The cnnfast twin of a torch.nn module, with the same arguments."""
        copy = cls.__new__(cls)
        copy.__dict__.update(module.__dict__)
        copy._check_arguments()
        return copy

    def _check_arguments(self):
        pass


class MaxPool2d(_FromTorch, torch.nn.MaxPool2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._check_arguments()

    def _check_arguments(self):
        _unsupported("MaxPool2d", "dilation", self.dilation, 1)
        _unsupported("MaxPool2d", "return_indices", self.return_indices, False)

    def forward(self, x):
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)


class AvgPool2d(_FromTorch, torch.nn.AvgPool2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._check_arguments()

    def _check_arguments(self):
        _unsupported("AvgPool2d", "divisor_override", self.divisor_override, None)

    def forward(self, x):
        return ops.avg_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad
        )


class ReLU(_FromTorch, torch.nn.ReLU):
    """inplace=True is accepted and computed out of place (the result is the same)."""

    def forward(self, x):
        return ops.relu(x)


class Tanh(_FromTorch, torch.nn.Tanh):
    def forward(self, x):
        return ops.tanh(x)


class LocalResponseNorm(_FromTorch, torch.nn.LocalResponseNorm):
    def forward(self, x):
        return ops.local_response_norm(x, self.size, self.alpha, self.beta, self.k)


def _checked_activation(value, module):
    """A module's activation, checked when it is built: a ValueError for a
    name it does not know, as torch.nn's constructors raise for values."""
    ops._activation(value, f"nn.{module}")
    if value not in ops.ACTIVATIONS:
        raise ValueError(f"cnnfast.nn.{module}: activation must be None, 'relu' or 'tanh', got {value!r}")
    return value


def _activation_repr(activation):
    return "" if activation is None else f", activation={activation!r}"


class Conv2d(_FromTorch, torch.nn.Conv2d):
    """torch.nn.Conv2d (dilation 1, zero padding) with the activation
    ("relu", "tanh" or None) fused into the convolution."""

    def __init__(self, *args, activation=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.activation = _checked_activation(activation, "Conv2d")
        self._check_arguments()

    @classmethod
    def from_torch(cls, module, activation=None):
        copy = super().from_torch(module)
        copy.activation = _checked_activation(activation, "Conv2d")
        return copy

    def _check_arguments(self):
        _unsupported("Conv2d", "dilation", tuple(self.dilation), (1, 1))
        _unsupported("Conv2d", "padding_mode", self.padding_mode, "zeros")
        if isinstance(self.padding, str):
            raise NotImplementedError(f"cnnfast.nn.Conv2d: padding={self.padding!r} is not supported (give numbers)")

    def forward(self, x):
        return ops.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.groups, self.activation)

    def extra_repr(self):
        return super().extra_repr() + _activation_repr(self.activation)


class Linear(_FromTorch, torch.nn.Linear):
    """torch.nn.Linear with the activation ("relu", "tanh" or None) fused."""

    def __init__(self, *args, activation=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.activation = _checked_activation(activation, "Linear")

    @classmethod
    def from_torch(cls, module, activation=None):
        copy = super().from_torch(module)
        copy.activation = _checked_activation(activation, "Linear")
        return copy

    def forward(self, x):
        return ops.linear(x, self.weight, self.bias, self.activation)

    def extra_repr(self):
        return super().extra_repr() + _activation_repr(self.activation)
