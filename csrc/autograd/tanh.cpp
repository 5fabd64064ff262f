// tanh's autograd: y = tanh(x) is saved, grad_x = grad_y · (1 - y²).
#include <ATen/ops/mul.h>

#include "autograd.h"

namespace cnnfast {
namespace autograd {
namespace {

struct TanhOp {
  static constexpr const char* kName = "cnnfast::tanh";
  using Signature = at::Tensor(const at::Tensor&);
};
struct TanhBackwardOp {
  static constexpr const char* kName = "cnnfast::_tanh_backward";
  using Signature = at::Tensor(const at::Tensor&, const at::Tensor&);
};

// grad_x = grad_y · (1 - y²): its own gradient gives grad_y the same factor
// and y -2 · grad_grad_x · grad_y · y.
struct TanhBackwardFunction : torch::autograd::Function<TanhBackwardFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& output) {
    ctx->save_for_backward({grad_output, output});
    return below_autograd(op_handle<TanhBackwardOp>(), grad_output, output);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& grad_output = saved[0];
    const at::Tensor& output = saved[1];
    return {op_handle<TanhBackwardOp>().call(grads[0], output),
            grads[0].mul(grad_output).mul(output).mul(-2)};
  }
};

struct TanhFunction : torch::autograd::Function<TanhFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    at::Tensor y = below_autograd(op_handle<TanhOp>(), x);
    ctx->save_for_backward({y});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {op_handle<TanhBackwardOp>().call(grads[0], ctx->get_saved_variables()[0])};
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, Autograd, m) {
  m.impl("tanh", &AutogradKernel<TanhFunction, TanhOp>::call);
  m.impl("_tanh_backward", &AutogradKernel<TanhBackwardFunction, TanhBackwardOp>::call);
}

}  // namespace autograd
}  // namespace cnnfast
