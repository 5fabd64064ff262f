// conv2d's and conv2d_avg_pool2d's autograd. conv2d keeps its output for
// the activation's derivative (relu: out > 0; tanh: 1 - out²), which the
// backward op applies on the fly; conv2d_avg_pool2d keeps its inputs only
// and recomputes the convolution's output in backward (it is for
// inference: training does better with the two ops apart).
#include "autograd.h"

namespace cnnfast {
namespace autograd {
namespace {

using Conv2d = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                          at::IntArrayRef, at::IntArrayRef, int64_t, Activation);
using Conv2dAvgPool2d = at::Tensor(const at::Tensor&, const at::Tensor&,
                                   const std::optional<at::Tensor>&, at::IntArrayRef,
                                   at::IntArrayRef, int64_t, Activation, at::IntArrayRef);
using AvgPool2dBackward = at::Tensor(const at::Tensor&, c10::SymIntArrayRef, at::IntArrayRef,
                                     at::IntArrayRef, at::IntArrayRef, bool);

struct Conv2dBackwardOp {
  static constexpr const char* kName = "cnnfast::_conv2d_backward";
  static constexpr const char* kPublic = "conv2d";
  using Signature = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, at::IntArrayRef,
      at::IntArrayRef, int64_t, Activation, std::array<bool, 3>);
};

void save_geometry(AutogradContext* ctx, const std::optional<at::Tensor>& bias,
                   at::IntArrayRef stride, at::IntArrayRef padding, int64_t groups,
                   Activation activation) {
  ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
  ctx->saved_data["stride"] = stride;
  ctx->saved_data["padding"] = padding;
  ctx->saved_data["groups"] = groups;
  save_activation(ctx, activation);
}

// Which of (x, weight, bias) need a gradient: the backward op's output_mask.
std::array<bool, 3> gradient_mask(AutogradContext* ctx) {
  const bool has_bias = ctx->saved_data["has_bias"].toBool();
  return {ctx->needs_input_grad(0), ctx->needs_input_grad(1),
          has_bias && ctx->needs_input_grad(2)};
}

// grad_output through the convolution that gave `output`: the gradients
// asked for, then undefined ones for the arguments after them.
variable_list conv_gradients(AutogradContext* ctx, const at::Tensor& grad_output,
                             const at::Tensor& x, const at::Tensor& weight,
                             const at::Tensor& output, size_t arguments) {
  const std::array<bool, 3> mask = gradient_mask(ctx);
  return masked_gradients(
      mask,
      NoDoubleBackward<Conv2dBackwardOp>::call(grad_output, x, weight, output,
                                               saved_ints(ctx, "stride"),
                                               saved_ints(ctx, "padding"),
                                               ctx->saved_data["groups"].toInt(),
                                               saved_activation(ctx), mask),
      arguments);
}

struct Conv2dOp {
  static constexpr const char* kName = "cnnfast::conv2d";
  using Signature = Conv2d;
};

struct Conv2dFunction : torch::autograd::Function<Conv2dFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                            at::IntArrayRef padding, int64_t groups, Activation activation) {
    const auto& op = op_handle<Conv2dOp>();
    at::Tensor out = below_autograd(op, x, weight, bias, stride, padding, groups, activation);
    ctx->save_for_backward({x, weight, out});
    save_geometry(ctx, bias, stride, padding, groups, activation);
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    return conv_gradients(ctx, grads[0], saved[0], saved[1], saved[2], 7);
  }
};

struct Conv2dAvgPool2dOp {
  static constexpr const char* kName = "cnnfast::conv2d_avg_pool2d";
  using Signature = Conv2dAvgPool2d;
};

struct Conv2dAvgPool2dFunction : torch::autograd::Function<Conv2dAvgPool2dFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                            at::IntArrayRef padding, int64_t groups, Activation activation,
                            at::IntArrayRef pool) {
    const auto& op = op_handle<Conv2dAvgPool2dOp>();
    ctx->save_for_backward({x, weight, bias.value_or(at::Tensor())});
    save_geometry(ctx, bias, stride, padding, groups, activation);
    ctx->saved_data["pool"] = pool;
    return below_autograd(op, x, weight, bias, stride, padding, groups, activation, pool);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto conv2d = typed_op<Conv2d>("cnnfast::conv2d");
    static const auto avg_pool2d_backward =
        typed_op<AvgPool2dBackward>("cnnfast::_avg_pool2d_backward");
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    const std::optional<at::Tensor> bias =
        saved[2].defined() ? std::optional<at::Tensor>(saved[2]) : std::nullopt;
    const std::vector<int64_t> pool = saved_ints(ctx, "pool");
    const at::Tensor output =
        below_autograd(conv2d, x, weight, bias, saved_ints(ctx, "stride"), saved_ints(ctx, "padding"),
                       ctx->saved_data["groups"].toInt(), saved_activation(ctx));
    const int64_t no_padding[2] = {0, 0};
    const at::Tensor grad = avg_pool2d_backward.call(grads[0], output.sym_sizes(), pool, pool,
                                                     no_padding, /*count_include_pad=*/true);
    return conv_gradients(ctx, grad, x, weight, output, 8);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, Autograd, m) {
  m.impl("conv2d", &AutogradKernel<Conv2dFunction, Conv2dOp>::call);
  m.impl("conv2d_avg_pool2d", &AutogradKernel<Conv2dAvgPool2dFunction, Conv2dAvgPool2dOp>::call);
  m.impl("_conv2d_backward", &NoDoubleBackward<Conv2dBackwardOp>::call);
}

}  // namespace autograd
}  // namespace cnnfast
