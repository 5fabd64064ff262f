// relu's autograd. On the CPU kernels relu saves where its gradient passes,
// a bit per element (_relu_with_mask), instead of its output: the backward
// then reads 1/8 byte an element where it would read the whole output
// (float32: 4 1/8 bytes an element instead of 8). The CUDA kernels, and
// the emulation, save the output.
#include "../common/checks.h"
#include "../emulation.h"
#include "autograd.h"

namespace cnnfast {
namespace autograd {
namespace {

struct ReluOp {
  static constexpr const char* kName = "cnnfast::relu";
  using Signature = at::Tensor(const at::Tensor&);
};
struct ReluBackwardOp {
  static constexpr const char* kName = "cnnfast::_relu_backward";
  using Signature = at::Tensor(const at::Tensor&, const at::Tensor&);
};
struct ReluWithMaskOp {
  static constexpr const char* kName = "cnnfast::_relu_with_mask";
  using Signature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&);
};
struct ReluMaskBackwardOp {
  static constexpr const char* kName = "cnnfast::_relu_mask_backward";
  using Signature = at::Tensor(const at::Tensor&, const at::Tensor&, bool);
};

// grad_x = grad_y · (y > 0); its own gradient passes grad_grad_x through the
// same rule, and none to y (zero almost everywhere, as torch's).
struct ReluBackwardFunction : torch::autograd::Function<ReluBackwardFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& output) {
    ctx->save_for_backward({output});
    return below_autograd(op_handle<ReluBackwardOp>(), grad_output, output);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {op_handle<ReluBackwardOp>().call(grads[0], ctx->get_saved_variables()[0]), at::Tensor()};
  }
};

struct ReluFunction : torch::autograd::Function<ReluFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    at::Tensor y = below_autograd(op_handle<ReluOp>(), x);
    ctx->save_for_backward({y});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {op_handle<ReluBackwardOp>().call(grads[0], ctx->get_saved_variables()[0])};
  }
};

struct ReluMaskBackwardFunction : torch::autograd::Function<ReluMaskBackwardFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& mask, bool channels_last) {
    ctx->save_for_backward({mask});
    ctx->saved_data["channels_last"] = channels_last;
    return below_autograd(op_handle<ReluMaskBackwardOp>(), grad_output, mask, channels_last);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {op_handle<ReluMaskBackwardOp>().call(grads[0], ctx->get_saved_variables()[0],
                                                 ctx->saved_data["channels_last"].toBool()),
            at::Tensor(), at::Tensor()};
  }
};

struct ReluWithMaskFunction : torch::autograd::Function<ReluWithMaskFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x) {
    auto [y, mask] = below_autograd(op_handle<ReluWithMaskOp>(), x);
    ctx->mark_non_differentiable({mask});
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({mask});
    ctx->saved_data["channels_last"] = elementwise_format(y) == at::MemoryFormat::ChannelsLast;
    return {y, mask};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor()};
    return {op_handle<ReluMaskBackwardOp>().call(grads[0], ctx->get_saved_variables()[0],
                                                 ctx->saved_data["channels_last"].toBool())};
  }
};

// The CPU kernels of _relu_with_mask take what relu's do.
bool saves_mask(const at::Tensor& x) {
  return x.is_cpu() && runs_cpu_kernels() &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
}

at::Tensor relu_autograd(const at::Tensor& x) {
  if (!needs_gradient(x)) return below_autograd(op_handle<ReluOp>(), x);
  if (saves_mask(x)) return ReluWithMaskFunction::apply(x)[0];
  return ReluFunction::apply(x);
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, Autograd, m) {
  m.impl("relu", &relu_autograd);
  m.impl("_relu_with_mask", &AutogradKernel<ReluWithMaskFunction, ReluWithMaskOp>::call);
  m.impl("_relu_backward", &AutogradKernel<ReluBackwardFunction, ReluBackwardOp>::call);
  m.impl("_relu_mask_backward", &AutogradKernel<ReluMaskBackwardFunction, ReluMaskBackwardOp>::call);
}

}  // namespace autograd
}  // namespace cnnfast
