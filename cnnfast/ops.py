"""The public functions, and the Python side of every op: fake kernels
(shapes for torch.compile and meta tensors) and autograd. The kernels and
schemas are C++ (csrc/).

Autocast (csrc/autocast.cpp): under torch.autocast on CUDA, conv2d and
linear cast their inputs to the autocast dtype, as torch's do; pooling, LRN
and the activations run in the dtype they are given, as torch's do. On a
CPU every op keeps its dtype (the CPU kernels take float32 and float64).
"""

from typing import Callable, NamedTuple, Optional

import torch

from . import _C

_below_autograd = torch._C._AutoDispatchBelowAutograd


def _run(name, *args):
    """torch.ops.cnnfast.<name>(*args), the way the public functions call
    their ops. Under torch.compile the op is called as it is, for Dynamo to
    trace. In eager mode, when no argument needs a gradient, the op's C++
    caller (csrc/op_caller.cpp) runs it below autograd: what torch.library's
    autograd kernel would do, without its trip from the dispatcher into
    Python and back and its checks (about 2.5 µs a call), and without the
    Python of this path either (tens of µs at LeNet-5's and AlexNet's sizes,
    where the large tensors have evicted the interpreter from the caches
    between calls). When an argument needs a gradient the op's autograd
    formulas (registered below with torch.library.register_autograd) apply
    through _EagerAutograd (relu's and tanh's through their C++ autograd
    node, as torch's activations have: the Python of _EagerAutograd cost
    them ~45 µs a forward and backward at AlexNet's first layer on a 2-core
    CPU); and where the caller declines (a tensor subclass, a torch
    function mode) the op runs below autograd from here."""
    formulas = _FORMULAS[name]
    op = formulas.op
    if torch.compiler.is_compiling():
        return op(*args)
    out = formulas.call_without_grad(*args)
    if out is not NotImplemented:
        return out
    if torch.is_grad_enabled() and torch._C._any_requires_grad(*args):
        # CUDA autocast casts conv2d's and linear's inputs above autograd
        # (csrc/autocast.cpp): only torch.library's kernel sees, and saves,
        # the inputs the op actually ran on.
        if torch.is_autocast_enabled("cuda"):
            return op(*args)
        if formulas.call_with_grad is not None:
            out = formulas.call_with_grad(*args)
            if out is not NotImplemented:
                return out
        return _EagerAutograd.apply(*args, formulas)
    with _below_autograd():
        return op(*args)


class _Formulas(NamedTuple):
    """An op and its autograd formulas, as given to register_autograd."""

    op: torch._ops.OpOverload
    setup_context: Callable
    backward: Callable
    call_without_grad: Callable  # the op below autograd, or NotImplemented
    # relu and tanh: the same formulas as a C++ autograd node
    # (csrc/op_caller.cpp), or NotImplemented; None for the other ops.
    call_with_grad: Optional[Callable]


_FORMULAS = {}


def _register_autograd(name, backward, setup_context, in_cpp=False):
    """register_autograd for torch.ops.cnnfast.<name>, and the same formulas
    for _EagerAutograd; in_cpp: also written in C++ (op_caller.cpp), which
    eager calls take."""
    torch.library.register_autograd(f"cnnfast::{name}", backward, setup_context=setup_context)
    op = getattr(torch.ops.cnnfast, name).default
    _FORMULAS[name] = _Formulas(op, setup_context, backward, _C._op_caller(name),
                                _C._autograd_caller(name) if in_cpp else None)


class _OpCallers:
    """torch.ops.cnnfast.<name>(*args) as _ops.<name>(*args) for the autograd
    formulas, through the op's C++ caller where it accepts the arguments
    (it declines under torch.compile's fake and functional tensors)."""

    def __getattr__(self, name):
        op = getattr(torch.ops.cnnfast, name).default
        call_without_grad = _C._op_caller(name)

        def call(*args):
            if not torch.compiler.is_compiling():
                out = call_without_grad(*args)
                if out is not NotImplemented:
                    return out
            return op(*args)

        setattr(self, name, call)
        return call


_ops = _OpCallers()


class _EagerAutograd(torch.autograd.Function):
    """apply(*args, formulas): the op on args, with the formulas registered
    for it as its autograd."""

    @staticmethod
    def forward(ctx, *args_and_formulas):
        *args, formulas = args_and_formulas
        output = formulas.call_without_grad(*args)
        if output is NotImplemented:
            with _below_autograd():
                output = formulas.op(*args)
        formulas.setup_context(ctx, args, output)
        ctx.formulas = formulas
        return output

    @staticmethod
    def backward(ctx, *grads):
        # The formulas see the op's inputs only; backward may run again on
        # the same graph (retain_graph), so the flags are put back.
        needs_input_grad = ctx.needs_input_grad
        ctx.needs_input_grad = needs_input_grad[:-1]
        try:
            grads_in = ctx.formulas.backward(ctx, *grads)
        finally:
            ctx.needs_input_grad = needs_input_grad
        return (*grads_in, None) if isinstance(grads_in, tuple) else (grads_in, None)


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
    return _run("relu", x)


def tanh(x):
    """torch.tanh on cnnfast's kernels."""
    return _run("tanh", x)


relu = _builtin_activation(relu)
tanh = _builtin_activation(tanh)


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """F.max_pool2d (dilation 1), keeping the argmax as a one-byte offset
    inside each window for backward."""
    kernel, stride, padding = _pool_args("max_pool2d", kernel_size, stride, padding)
    return _run("_max_pool2d_with_offsets", x, kernel, stride, padding, bool(ceil_mode))[0]


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """F.avg_pool2d (no divisor_override)."""
    kernel, stride, padding = _pool_args("avg_pool2d", kernel_size, stride, padding)
    return _run("avg_pool2d", x, kernel, stride, padding, bool(ceil_mode), bool(count_include_pad))


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """F.local_response_norm: each value divided by (k + alpha / size * the
    sum of squares over `size` neighbouring channels) ** beta."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"cnnfast.local_response_norm: size must be an int, got {size!r}")
    return _run("local_response_norm", x, size, float(alpha), float(beta), float(k))


def relu_lrn_max_pool2d(x, size=5, alpha=1e-4, beta=0.75, k=1.0, kernel_size=3, stride=2):
    """max_pool2d(local_response_norm(relu(x))), AlexNet's stage after conv1
    and conv2, as one fused kernel (x is N, C, H, W; pooling without padding)."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"cnnfast.relu_lrn_max_pool2d: size must be an int, got {size!r}")
    kernel, stride, _ = _pool_args("relu_lrn_max_pool2d", kernel_size, stride, 0)
    return _run("_relu_lrn_max_pool2d_with_offsets", x, size, float(alpha), float(beta), float(k), kernel, stride)[0]


ACTIVATIONS = (None, "relu", "tanh")


def _activation(value, op):
    if value not in ACTIVATIONS:
        raise ValueError(f"cnnfast.{op}: activation must be None, 'relu' or 'tanh', got {value!r}")
    return value


def _conv_args(stride, padding, groups, activation, op):
    """A convolution's (stride, padding, groups, activation), checked."""
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"cnnfast.{op}: groups must be an int, got {groups!r}")
    return _pair(stride, "stride", op), _pair(padding, "padding", op), groups, _activation(activation, op)


def conv2d(x, weight, bias=None, stride=1, padding=0, groups=1, activation=None):
    """F.conv2d (dilation 1, zero padding) followed by `activation` (None,
    "relu" or "tanh"), as one implicit GEMM whose epilogue adds the bias and
    applies the activation."""
    return _run("conv2d", x, weight, bias, *_conv_args(stride, padding, groups, activation, "conv2d"))


def conv2d_avg_pool2d(x, weight, bias=None, stride=1, padding=0, groups=1, activation=None, pool=2):
    """avg_pool2d(conv2d(x, weight, bias, stride, padding, groups, activation),
    pool) — window and stride `pool`, no padding, floor — as one op. Where
    the CPU's direct convolution runs (LeNet-5's layers), the result is
    pooled before it is written, so the full-size map never reaches memory;
    elsewhere (and on CUDA) the two ops run in turn. Backward recomputes the
    convolution's output, so training does better with the two ops apart:
    lenet5_forward uses this op on a CPU, for inference."""
    op = "conv2d_avg_pool2d"
    return _run(
        "conv2d_avg_pool2d",
        x, weight, bias, *_conv_args(stride, padding, groups, activation, op), _pair(pool, "pool", op)
    )


def linear(x, weight, bias=None, activation=None):
    """F.linear followed by `activation` (None, "relu" or "tanh"): the
    convolution engine with 1×1 images and a 1×1 kernel."""
    return _run("linear", x, weight, bias, _activation(activation, "linear"))


def lenet5_forward(x, conv1_weight, conv1_bias, conv2_weight, conv2_bias,
                   fc1_weight, fc1_bias, fc2_weight, fc2_bias, fc3_weight, fc3_bias):
    """LeNet-5's forward pass (cnnfast.models.LeNet5: two 5×5 convolutions,
    each with tanh and 2×2 average pooling, then linear 400 → 120 → 84 → 10
    with tanh between) on x of shape (N, 1, 32, 32), as one op. On CUDA it is
    one kernel: each block takes a few images through every layer in shared
    memory. On a CPU the layers run in turn (conv2d_avg_pool2d, linear).
    Backward recomputes every layer, so training does better with the layers
    apart: LeNet5 uses this op for inference only."""
    return _run(
        "lenet5_forward",
        x, conv1_weight, conv1_bias, conv2_weight, conv2_bias,
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


# ---- autograd ------------------------------------------------------------------


def _save_output(ctx, inputs, output):
    ctx.save_for_backward(output)


def _relu_backward(ctx, grad_output):
    (output,) = ctx.saved_tensors
    return _ops._relu_backward(grad_output, output)


def _tanh_backward(ctx, grad_output):
    (output,) = ctx.saved_tensors
    return _ops._tanh_backward(grad_output, output)


# relu on the CPU through its C++ node saves where the gradient passes
# rather than the output (csrc/ops.cpp, _relu_with_mask).
def _save_mask(ctx, inputs, output):
    ctx.save_for_backward(output[1])
    ctx.channels_last = _elementwise_channels_last(output[0])


def _relu_mask_backward(ctx, grad_output, _grad_mask):
    (mask,) = ctx.saved_tensors
    return _ops._relu_mask_backward(grad_output, mask, ctx.channels_last)


# The backward ops' own gradients, for double backward (a gradient penalty,
# gradgradcheck): relu's grad_x = grad_y · (y > 0) passes grad_y's gradient
# through the same mask, and none to y (zero almost everywhere, as torch's);
# tanh's grad_x = grad_y · (1 - y²) gives grad_y the same factor and y
# -2 · grad_y · y.


def _relu_backward_backward(ctx, grad_grad_x):
    _, output = ctx.saved_tensors
    return _ops._relu_backward(grad_grad_x, output), None


def _save_mask_backward_inputs(ctx, inputs, output):
    _, mask, ctx.channels_last = inputs
    ctx.save_for_backward(mask)


def _relu_mask_backward_backward(ctx, grad_grad_x):
    (mask,) = ctx.saved_tensors
    return _ops._relu_mask_backward(grad_grad_x, mask, ctx.channels_last), None, None


def _tanh_backward_backward(ctx, grad_grad_x):
    grad_output, output = ctx.saved_tensors
    return _ops._tanh_backward(grad_grad_x, output), -2 * grad_grad_x * grad_output * output


def _max_pool2d_setup(ctx, inputs, output):
    x, kernel_size, stride, padding, _ = inputs
    ctx.save_for_backward(output[1])
    ctx.input_size = x.shape
    ctx.geometry = (kernel_size, stride, padding)


def _max_pool2d_backward(ctx, grad_output, _grad_offsets):
    (offsets,) = ctx.saved_tensors
    grad_x = _ops._max_pool2d_backward(grad_output, offsets, ctx.input_size, *ctx.geometry)
    return grad_x, None, None, None, None


def _avg_pool2d_setup(ctx, inputs, output):
    x, kernel_size, stride, padding, _, count_include_pad = inputs
    ctx.input_size = x.shape
    ctx.geometry = (kernel_size, stride, padding, count_include_pad)


def _avg_pool2d_backward(ctx, grad_output):
    kernel_size, stride, padding, count_include_pad = ctx.geometry
    grad_x = _ops._avg_pool2d_backward(
        grad_output, ctx.input_size, kernel_size, stride, padding, count_include_pad
    )
    return grad_x, None, None, None, None, None


def _local_response_norm_setup(ctx, inputs, output):
    # Backward recomputes the denominators from x: nothing of full size is
    # saved beyond the input (benchmarks/RESULTS.md has the trade).
    x, size, alpha, beta, k = inputs
    ctx.save_for_backward(x)
    ctx.arguments = (size, alpha, beta, k)


def _local_response_norm_backward(ctx, grad_output):
    (x,) = ctx.saved_tensors
    grad_x = _ops._local_response_norm_backward(grad_output, x, *ctx.arguments)
    return grad_x, None, None, None, None


def _relu_lrn_max_pool2d_setup(ctx, inputs, output):
    # Backward recomputes relu and LRN from x: only x and the one-byte
    # offsets are kept.
    x, *arguments = inputs
    ctx.save_for_backward(x, output[1])
    ctx.arguments = arguments


def _relu_lrn_max_pool2d_backward(ctx, grad_output, _grad_offsets):
    x, offsets = ctx.saved_tensors
    grad_x = _ops._relu_lrn_max_pool2d_backward(grad_output, x, offsets, *ctx.arguments)
    return grad_x, None, None, None, None, None, None


def _gradient_mask(ctx):
    """Which of (x, weight, bias) need a gradient: the op's output_mask."""
    needs = ctx.needs_input_grad
    return [bool(needs[0]), bool(needs[1]), ctx.has_bias and bool(needs[2])]


def _gradients(mask, grad_x, grad_w, grad_b):
    return tuple(g if wanted else None for wanted, g in zip(mask, (grad_x, grad_w, grad_b)))


def _conv2d_setup(ctx, inputs, output):
    # The output is kept for the activation's derivative (out > 0, 1 - out²).
    x, weight, bias, *arguments = inputs
    ctx.save_for_backward(x, weight, output)
    ctx.has_bias = bias is not None
    ctx.arguments = arguments  # stride, padding, groups, activation


def _conv2d_backward(ctx, grad_output):
    x, weight, output = ctx.saved_tensors
    mask = _gradient_mask(ctx)
    grads = _ops._conv2d_backward(grad_output, x, weight, output, *ctx.arguments, mask)
    return (*_gradients(mask, *grads), None, None, None, None)


def _conv2d_avg_pool2d_setup(ctx, inputs, output):
    # Only the inputs are kept: backward recomputes the convolution's output.
    x, weight, bias, *arguments = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.has_bias = bias is not None
    ctx.arguments = arguments  # stride, padding, groups, activation, pool


def _conv2d_avg_pool2d_backward(ctx, grad_output):
    x, weight, bias = ctx.saved_tensors
    stride, padding, groups, activation, pool = ctx.arguments
    output = _ops.conv2d(x, weight, bias, stride, padding, groups, activation)
    grad = _ops._avg_pool2d_backward(grad_output, output.shape, pool, pool, [0, 0], True)
    mask = _gradient_mask(ctx)
    grads = _ops._conv2d_backward(grad, x, weight, output, stride, padding, groups, activation, mask)
    return (*_gradients(mask, *grads), None, None, None, None, None)


def _linear_setup(ctx, inputs, output):
    x, weight, bias, activation = inputs
    ctx.save_for_backward(x, weight, output)
    ctx.has_bias = bias is not None
    ctx.activation = activation


def _linear_backward(ctx, grad_output):
    x, weight, output = ctx.saved_tensors
    mask = _gradient_mask(ctx)
    grads = _ops._linear_backward(grad_output, x, weight, output, ctx.activation, mask)
    return (*_gradients(mask, *grads), None)


def _save_inputs(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _lenet5_forward_backward(ctx, grad_scores):
    # The layers are recomputed (the fused forward keeps no intermediate),
    # then each layer's backward op runs in reverse.
    x, conv1_w, conv1_b, conv2_w, conv2_b, fc1_w, fc1_b, fc2_w, fc2_b, fc3_w, fc3_b = ctx.saved_tensors
    one, zero, two, every = [1, 1], [0, 0], [2, 2], [True, True, True]
    conv1 = _ops.conv2d(x, conv1_w, conv1_b, one, zero, 1, "tanh")
    pool1 = _ops.avg_pool2d(conv1, two, two, zero, False, True)
    conv2 = _ops.conv2d(pool1, conv2_w, conv2_b, one, zero, 1, "tanh")
    pool2 = _ops.avg_pool2d(conv2, two, two, zero, False, True)
    flat = pool2.flatten(1)
    fc1 = _ops.linear(flat, fc1_w, fc1_b, "tanh")
    fc2 = _ops.linear(fc1, fc2_w, fc2_b, "tanh")
    scores = _ops.linear(fc2, fc3_w, fc3_b, None)
    g_fc2, g_fc3_w, g_fc3_b = _ops._linear_backward(grad_scores, fc2, fc3_w, scores, None, every)
    g_fc1, g_fc2_w, g_fc2_b = _ops._linear_backward(g_fc2, fc1, fc2_w, fc2, "tanh", every)
    g_flat, g_fc1_w, g_fc1_b = _ops._linear_backward(g_fc1, flat, fc1_w, fc1, "tanh", every)
    g_conv2 = _ops._avg_pool2d_backward(g_flat.view_as(pool2), conv2.shape, two, two, zero, True)
    g_pool1, g_conv2_w, g_conv2_b = _ops._conv2d_backward(
        g_conv2, pool1, conv2_w, conv2, one, zero, 1, "tanh", every
    )
    g_conv1 = _ops._avg_pool2d_backward(g_pool1, conv1.shape, two, two, zero, True)
    g_x, g_conv1_w, g_conv1_b = _ops._conv2d_backward(
        g_conv1, x, conv1_w, conv1, one, zero, 1, "tanh", [ctx.needs_input_grad[0], True, True]
    )
    grads = (g_x, g_conv1_w, g_conv1_b, g_conv2_w, g_conv2_b, g_fc1_w, g_fc1_b, g_fc2_w, g_fc2_b, g_fc3_w, g_fc3_b)
    return tuple(g if needed else None for g, needed in zip(grads, ctx.needs_input_grad))


_register_autograd("conv2d", _conv2d_backward, _conv2d_setup)
_register_autograd("conv2d_avg_pool2d", _conv2d_avg_pool2d_backward, _conv2d_avg_pool2d_setup)
_register_autograd("linear", _linear_backward, _linear_setup)
_register_autograd("relu", _relu_backward, _save_output, in_cpp=True)
_register_autograd("tanh", _tanh_backward, _save_output, in_cpp=True)
_register_autograd("_relu_backward", _relu_backward_backward, _save_inputs)
_register_autograd("_relu_with_mask", _relu_mask_backward, _save_mask)
_register_autograd("_relu_mask_backward", _relu_mask_backward_backward, _save_mask_backward_inputs)
_register_autograd("_tanh_backward", _tanh_backward_backward, _save_inputs)
_register_autograd("_max_pool2d_with_offsets", _max_pool2d_backward, _max_pool2d_setup)
_register_autograd("avg_pool2d", _avg_pool2d_backward, _avg_pool2d_setup)
_register_autograd("local_response_norm", _local_response_norm_backward, _local_response_norm_setup)
_register_autograd("_relu_lrn_max_pool2d_with_offsets", _relu_lrn_max_pool2d_backward, _relu_lrn_max_pool2d_setup)
_register_autograd("lenet5_forward", _lenet5_forward_backward, _save_inputs)


def _no_double_backward(name):
    """The other backward ops have no gradient of their own: a second
    backward through them is an error, where torch's fallback would warn
    and give zeros."""

    def backward(ctx, *grads):
        raise NotImplementedError(
            f"cnnfast.{name}: double backward (a gradient of a gradient) is not implemented; "
            "only relu and tanh support it"
        )

    return backward


def _save_nothing(ctx, inputs, output):
    pass


for _name in ("_max_pool2d_backward", "_avg_pool2d_backward", "_local_response_norm_backward",
              "_relu_lrn_max_pool2d_backward", "_conv2d_backward", "_linear_backward"):
    torch.library.register_autograd(f"cnnfast::{_name}", _no_double_backward(_name[1:-len("_backward")]),
                                    setup_context=_save_nothing)
