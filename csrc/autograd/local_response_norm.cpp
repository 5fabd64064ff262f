// LRN's autograd: backward recomputes the denominators from x, so nothing
// of full size is kept beyond the input.
#include "autograd.h"

namespace cnnfast {
namespace autograd {
namespace {

struct LocalResponseNormBackwardOp {
  static constexpr const char* kName = "cnnfast::_local_response_norm_backward";
  static constexpr const char* kPublic = "local_response_norm";
  using Signature = at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, double, double,
                               double);
};

struct LocalResponseNormOp {
  static constexpr const char* kName = "cnnfast::local_response_norm";
  using Signature = at::Tensor(const at::Tensor&, int64_t, double, double, double);
};

struct LocalResponseNormFunction : torch::autograd::Function<LocalResponseNormFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t size, double alpha,
                            double beta, double k) {
    const auto& op = op_handle<LocalResponseNormOp>();
    ctx->save_for_backward({x});
    ctx->saved_data["size"] = size;
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["beta"] = beta;
    ctx->saved_data["k"] = k;
    return below_autograd(op, x, size, alpha, beta, k);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list result(5);
    result[0] = NoDoubleBackward<LocalResponseNormBackwardOp>::call(
        grads[0], ctx->get_saved_variables()[0], ctx->saved_data["size"].toInt(),
        ctx->saved_data["alpha"].toDouble(), ctx->saved_data["beta"].toDouble(),
        ctx->saved_data["k"].toDouble());
    return result;
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, Autograd, m) {
  m.impl("local_response_norm", &AutogradKernel<LocalResponseNormFunction, LocalResponseNormOp>::call);
  m.impl("_local_response_norm_backward", &NoDoubleBackward<LocalResponseNormBackwardOp>::call);
}

}  // namespace autograd
}  // namespace cnnfast
