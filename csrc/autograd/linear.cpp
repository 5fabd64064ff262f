// linear's autograd: the output is kept for the activation's derivative,
// which the backward op applies on the fly.
#include "autograd.h"

namespace cnnfast {
namespace autograd {
namespace {

using Linear = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                          Activation);

struct LinearBackwardOp {
  static constexpr const char* kName = "cnnfast::_linear_backward";
  static constexpr const char* kPublic = "linear";
  using Signature = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, Activation,
      std::array<bool, 3>);
};

struct LinearOp {
  static constexpr const char* kName = "cnnfast::linear";
  using Signature = Linear;
};

struct LinearFunction : torch::autograd::Function<LinearFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, Activation activation) {
    const auto& op = op_handle<LinearOp>();
    at::Tensor out = below_autograd(op, x, weight, bias, activation);
    ctx->save_for_backward({x, weight, out});
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    save_activation(ctx, activation);
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const std::array<bool, 3> mask = {
        ctx->needs_input_grad(0), ctx->needs_input_grad(1),
        ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)};
    return masked_gradients(mask,
                            NoDoubleBackward<LinearBackwardOp>::call(
                                grads[0], saved[0], saved[1], saved[2], saved_activation(ctx), mask),
                            4);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, Autograd, m) {
  m.impl("linear", &AutogradKernel<LinearFunction, LinearOp>::call);
  m.impl("_linear_backward", &NoDoubleBackward<LinearBackwardOp>::call);
}

}  // namespace autograd
}  // namespace cnnfast
