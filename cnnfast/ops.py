"""The public functions (argument conventions as torch's) and the ops'
fake kernels (shapes for torch.compile and meta tensors). The schemas,
kernels and autograd are C++ (csrc/).

Autocast (csrc/autocast.cpp): under torch.autocast on CUDA, conv2d and
linear cast their inputs to the autocast dtype, as torch's do; pooling, LRN
and the activations run in the dtype they are given, as torch's do. On a
CPU every op keeps its dtype (the CPU kernels take float32 and float64).
"""

import functools

import torch

from . import _C


_is_compiling = torch.compiler.is_compiling


class _Ops:
    """_ops.<name>(checked, *args) calls torch.ops.cnnfast.<name>: through
    the op's C++ caller (csrc/op_caller.cpp) in eager mode, where it converts
    the arguments (about 1 µs a call, against about 5 through torch.ops),
    else -- under torch.compile, or where the caller declines, as it does
    for an argument of a type it does not convert -- through torch.ops on
    checked(*args), which raises torch's TypeError for a wrong type of
    argument (the checks cost the eager calls nothing). Both reach the same
    op on the dispatcher, whose autograd (csrc/autograd/), autocast and
    kernels do the rest."""

    def __getattr__(self, name):
        op = getattr(torch.ops.cnnfast, name).default
        caller = _C._op_caller(name)

        def call(checked, *args):
            if not _is_compiling():
                out = caller(*args)
                if out is not NotImplemented:
                    return out
            return op(*checked(*args))

        call.__name__ = name
        setattr(self, name, call)
        return call


_ops = _Ops()


def _tensor(value, name, op, optional=False):
    """A tensor argument, as torch's functions check it: a TypeError for
    anything else."""
    if isinstance(value, torch.Tensor) or (optional and value is None):
        return value
    raise TypeError(f"cnnfast.{op}: {name} must be a tensor{' or None' if optional else ''}, "
                    f"got {type(value).__name__}")


def _pair(value, name, op):
    """torch's int-or-pair convention, as a list of two ints."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value, value]
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return [int(value[0]), int(value[1])]
    raise TypeError(f"cnnfast.{op}: {name} must be an int or a pair of ints, got {value!r}")


def _pool_args(op, kernel_size, stride, padding):
    kernel = _pair(kernel_size, "kernel_size", op)
    if stride is None or (isinstance(stride, (tuple, list)) and not stride):
        stride = kernel  # torch's default
    else:
        stride = _pair(stride, "stride", op)
    return kernel, stride, _pair(padding, "padding", op)


# ---- public functions ---------------------------------------------------------


def _builtin_activation(function):
    """`function` (relu or tanh) as a builtin (csrc/op_caller.cpp) that
    makes its eager calls with no Python, which would cost these short ops
    ~10 µs a call at AlexNet's first layer on a 2-core CPU, a few per cent
    of the op; `function` itself runs where the builtin declines, and where
    torch.compile traces (substitute_in_graph)."""
    builtin = _C._activation(function.__name__, function)
    torch.compiler.substitute_in_graph(builtin)(function)
    return builtin


def relu(x):
    """torch.relu on cnnfast's kernels."""
    return _ops.relu(_CHECK_RELU, x)


def tanh(x):
    """torch.tanh on cnnfast's kernels."""
    return _ops.tanh(_CHECK_TANH, x)


relu = _builtin_activation(relu)
tanh = _builtin_activation(tanh)


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """F.max_pool2d (dilation 1), keeping the argmax as a one-byte offset
    inside each window for backward."""
    kernel, stride, padding = _pool_args("max_pool2d", kernel_size, stride, padding)
    return _ops._max_pool2d_with_offsets(_CHECK_MAX_POOL, x, kernel, stride, padding, bool(ceil_mode))[0]


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """F.avg_pool2d (no divisor_override)."""
    kernel, stride, padding = _pool_args("avg_pool2d", kernel_size, stride, padding)
    return _ops.avg_pool2d(_CHECK_AVG_POOL, x, kernel, stride, padding, bool(ceil_mode), bool(count_include_pad))


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """F.local_response_norm: each value divided by (k + alpha / size * the
    sum of squares over `size` neighbouring channels) ** beta."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"cnnfast.local_response_norm: size must be an int, got {size!r}")
    return _ops.local_response_norm(_CHECK_LRN, x, size, float(alpha), float(beta), float(k))


def relu_lrn_max_pool2d(x, size=5, alpha=1e-4, beta=0.75, k=1.0, kernel_size=3, stride=2):
    """max_pool2d(local_response_norm(relu(x))), AlexNet's stage after conv1
    and conv2, as one fused kernel (x is N, C, H, W; pooling without padding)."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"cnnfast.relu_lrn_max_pool2d: size must be an int, got {size!r}")
    kernel, stride, _ = _pool_args("relu_lrn_max_pool2d", kernel_size, stride, 0)
    return _ops._relu_lrn_max_pool2d_with_offsets(_CHECK_FUSED, x, size, float(alpha), float(beta), float(k), kernel, stride)[0]


ACTIVATIONS = (None, "relu", "tanh")


def _activation(value, op):
    """None or a name; which names the op takes is checked where the kernels
    read it (a RuntimeError, as for any other value the op refuses)."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"cnnfast.{op}: activation must be None, 'relu' or 'tanh', got {value!r}")
    return value


def _checked_tensor(op):
    """checked(x, *rest) for an op whose first argument is its tensor."""
    def checked(x, *rest):
        return (_tensor(x, "x", op), *rest)
    return checked


def _checked_operands(op):
    """checked(x, weight, bias, *rest) for the convolutions and linear."""
    def checked(x, weight, bias, *rest):
        return (_tensor(x, "x", op), _tensor(weight, "weight", op), _tensor(bias, "bias", op, optional=True), *rest)
    return checked


def _checked_tensors(op):
    """checked(*tensors) for lenet5_forward."""
    def checked(*tensors):
        return tuple(_tensor(t, "argument", op) for t in tensors)
    return checked


_CHECK_RELU, _CHECK_TANH = _checked_tensor("relu"), _checked_tensor("tanh")
_CHECK_MAX_POOL, _CHECK_AVG_POOL = _checked_tensor("max_pool2d"), _checked_tensor("avg_pool2d")
_CHECK_LRN, _CHECK_FUSED = _checked_tensor("local_response_norm"), _checked_tensor("relu_lrn_max_pool2d")
_CHECK_CONV, _CHECK_CONV_POOL = _checked_operands("conv2d"), _checked_operands("conv2d_avg_pool2d")
_CHECK_LINEAR, _CHECK_LENET = _checked_operands("linear"), _checked_tensors("lenet5_forward")


def _conv_args(stride, padding, groups, activation, op):
    """A convolution's (stride, padding, groups, activation), checked."""
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"cnnfast.{op}: groups must be an int, got {groups!r}")
    return _pair(stride, "stride", op), _pair(padding, "padding", op), groups, _activation(activation, op)


def conv2d(x, weight, bias=None, stride=1, padding=0, groups=1, activation=None):
    """F.conv2d (dilation 1, zero padding) followed by `activation` (None,
    "relu" or "tanh"), as one implicit GEMM whose epilogue adds the bias and
    applies the activation."""
    return _ops.conv2d(_CHECK_CONV, x, weight, bias,
                       *_conv_args(stride, padding, groups, activation, "conv2d"))


def conv2d_avg_pool2d(x, weight, bias=None, stride=1, padding=0, groups=1, activation=None, pool=2):
    """avg_pool2d(conv2d(x, weight, bias, stride, padding, groups, activation),
    pool) — window and stride `pool`, no padding, floor — as one op. Where
    the CPU's direct convolution runs (LeNet-5's layers), the result is
    pooled before it is written, so the full-size map never reaches memory;
    elsewhere (and on CUDA) the two ops run in turn. Backward recomputes the
    convolution's output, so training does better with the two ops apart:
    lenet5_forward uses this op on a CPU, for inference."""
    op = "conv2d_avg_pool2d"
    return _ops.conv2d_avg_pool2d(
        _CHECK_CONV_POOL, x, weight, bias, *_conv_args(stride, padding, groups, activation, op), _pair(pool, "pool", op)
    )


def linear(x, weight, bias=None, activation=None):
    """F.linear followed by `activation` (None, "relu" or "tanh"): the
    convolution engine with 1×1 images and a 1×1 kernel."""
    return _ops.linear(_CHECK_LINEAR, x, weight, bias, _activation(activation, "linear"))


def lenet5_forward(x, conv1_weight, conv1_bias, conv2_weight, conv2_bias,
                   fc1_weight, fc1_bias, fc2_weight, fc2_bias, fc3_weight, fc3_bias):
    """LeNet-5's forward pass (cnnfast.models.LeNet5: two 5×5 convolutions,
    each with tanh and 2×2 average pooling, then linear 400 → 120 → 84 → 10
    with tanh between) on x of shape (N, 1, 32, 32), as one op. On CUDA it is
    one kernel: each block takes a few images through every layer in shared
    memory. On a CPU the layers run in turn (conv2d_avg_pool2d, linear).
    Backward recomputes every layer, so training does better with the layers
    apart: LeNet5 uses this op for inference only."""
    return _ops.lenet5_forward(
        _CHECK_LENET, x, conv1_weight, conv1_bias, conv2_weight, conv2_bias,
        fc1_weight, fc1_bias, fc2_weight, fc2_bias, fc3_weight, fc3_bias,
    )


# ---- shapes (the fake kernels) -------------------------------------------------


def _output_size(size, kernel, pad, stride, ceil_mode):
    """torch's pooling_output_shape with dilation 1 (csrc/common/pool2d.h)."""
    out = (size + 2 * pad - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out = out - 1
    return out


def _pooled_shape(x, kernel_size, stride, padding, ceil_mode):
    kernel, stride, padding = _pool_args("pool2d", kernel_size, stride, padding)
    out_h = _output_size(x.shape[-2], kernel[0], padding[0], stride[0], ceil_mode)
    out_w = _output_size(x.shape[-1], kernel[1], padding[1], stride[1], ceil_mode)
    return [*x.shape[:-2], out_h, out_w], kernel


def _offset_dtype(kernel):
    return torch.uint8 if kernel[0] * kernel[1] <= 256 else torch.int32


def _elementwise_channels_last(x):
    """Whether the elementwise kernels take x in channels_last order
    (csrc/common/checks.cpp, elementwise_format)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _memory_format(channels_last):
    return torch.channels_last if channels_last else torch.contiguous_format


def _elementwise_like(x):
    return torch.empty_like(x, memory_format=_memory_format(_elementwise_channels_last(x)))


@torch.library.register_fake("cnnfast::relu")
def _relu_fake(x):
    return _elementwise_like(x)


@torch.library.register_fake("cnnfast::tanh")
def _tanh_fake(x):
    return _elementwise_like(x)


@torch.library.register_fake("cnnfast::_relu_backward")
def _relu_backward_fake(grad_output, output):
    return _elementwise_like(output)


@torch.library.register_fake("cnnfast::_tanh_backward")
def _tanh_backward_fake(grad_output, output):
    return _elementwise_like(output)


@torch.library.register_fake("cnnfast::_relu_with_mask")
def _relu_with_mask_fake(x):
    return _elementwise_like(x), x.new_empty((x.numel() + 7) // 8, dtype=torch.uint8)


@torch.library.register_fake("cnnfast::_relu_mask_backward")
def _relu_mask_backward_fake(grad_output, mask, channels_last):
    return torch.empty_like(grad_output, memory_format=_memory_format(channels_last))


@torch.library.register_fake("cnnfast::_max_pool2d_with_offsets")
def _max_pool2d_fake(x, kernel_size, stride=(), padding=(0,), ceil_mode=False):
    shape, kernel = _pooled_shape(x, kernel_size, stride, padding, ceil_mode)
    return x.new_empty(shape), x.new_empty(shape, dtype=_offset_dtype(kernel))


@torch.library.register_fake("cnnfast::_max_pool2d_backward")
def _max_pool2d_backward_fake(grad_output, offsets, input_size, kernel_size, stride, padding):
    return grad_output.new_empty(input_size)


@torch.library.register_fake("cnnfast::avg_pool2d")
def _avg_pool2d_fake(x, kernel_size, stride=(), padding=(0,), ceil_mode=False, count_include_pad=True):
    shape, _ = _pooled_shape(x, kernel_size, stride, padding, ceil_mode)
    return x.new_empty(shape)


@torch.library.register_fake("cnnfast::_avg_pool2d_backward")
def _avg_pool2d_backward_fake(grad_output, input_size, kernel_size, stride, padding, count_include_pad):
    return grad_output.new_empty(input_size)


@torch.library.register_fake("cnnfast::local_response_norm")
def _local_response_norm_fake(x, size, alpha=1e-4, beta=0.75, k=1.0):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("cnnfast::_local_response_norm_backward")
def _local_response_norm_backward_fake(grad_output, x, size, alpha, beta, k):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("cnnfast::_relu_lrn_max_pool2d_with_offsets")
def _relu_lrn_max_pool2d_fake(x, size=5, alpha=1e-4, beta=0.75, k=1.0, kernel_size=(3,), stride=(2,)):
    shape, kernel = _pooled_shape(x, kernel_size, stride, 0, False)
    return x.new_empty(shape), x.new_empty(shape, dtype=_offset_dtype(kernel))


@torch.library.register_fake("cnnfast::_relu_lrn_max_pool2d_backward")
def _relu_lrn_max_pool2d_backward_fake(grad_output, x, offsets, size, alpha, beta, k, kernel_size, stride):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _conv_output_size(size, kernel, pad, stride):
    return (size + 2 * pad - kernel) // stride + 1


@torch.library.register_fake("cnnfast::conv2d")
def _conv2d_fake(x, weight, bias=None, stride=(1,), padding=(0,), groups=1, activation=None):
    stride = _pair(list(stride), "stride", "conv2d")
    padding = _pair(list(padding), "padding", "conv2d")
    out_h = _conv_output_size(x.shape[-2], weight.shape[2], padding[0], stride[0])
    out_w = _conv_output_size(x.shape[-1], weight.shape[3], padding[1], stride[1])
    return x.new_empty([*x.shape[:-3], weight.shape[0], out_h, out_w])


@torch.library.register_fake("cnnfast::conv2d_avg_pool2d")
def _conv2d_avg_pool2d_fake(x, weight, bias=None, stride=(1,), padding=(0,), groups=1, activation=None, pool=(2,)):
    conv = _conv2d_fake(x, weight, bias, stride, padding, groups, activation)
    pool = _pair(list(pool), "pool", "conv2d_avg_pool2d")
    return x.new_empty(_pooled_shape(conv, pool, pool, 0, False)[0])


@torch.library.register_fake("cnnfast::linear")
def _linear_fake(x, weight, bias=None, activation=None):
    return x.new_empty([*x.shape[:-1], weight.shape[0]])


@torch.library.register_fake("cnnfast::lenet5_forward")
def _lenet5_forward_fake(x, *parameters):
    return x.new_empty([x.shape[0], 10])


def _gradients_fake(x, weight, output_mask):
    grad_x = x.new_empty(x.shape if output_mask[0] else [0])
    grad_w = x.new_empty(weight.shape if output_mask[1] else [0])
    grad_b = x.new_empty([weight.shape[0]] if output_mask[2] else [0])
    return grad_x, grad_w, grad_b


@torch.library.register_fake("cnnfast::_conv2d_backward")
def _conv2d_backward_fake(grad_output, x, weight, output, stride, padding, groups, activation, output_mask):
    return _gradients_fake(x, weight, output_mask)


@torch.library.register_fake("cnnfast::_linear_backward")
def _linear_backward_fake(grad_output, x, weight, output, activation, output_mask):
    return _gradients_fake(x, weight, output_mask)
