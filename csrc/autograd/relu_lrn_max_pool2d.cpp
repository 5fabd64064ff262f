// The fused ReLU → LRN → max-pool stage's autograd: backward recomputes
// relu and LRN from x, so only x and the pooling's one-byte offsets are
// kept.
#include "autograd.h"

namespace cnnfast {
namespace autograd {
namespace {

struct FusedStageBackwardOp {
  static constexpr const char* kName = "cnnfast::_relu_lrn_max_pool2d_backward";
  static constexpr const char* kPublic = "relu_lrn_max_pool2d";
  using Signature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                               double, double, double, at::IntArrayRef, at::IntArrayRef);
};

struct FusedStageOp {
  static constexpr const char* kName = "cnnfast::_relu_lrn_max_pool2d_with_offsets";
  using Signature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, int64_t, double, double,
                                      double, at::IntArrayRef, at::IntArrayRef);
};

struct FusedStageFunction : torch::autograd::Function<FusedStageFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, int64_t size,
                               double alpha, double beta, double k, at::IntArrayRef kernel_size,
                               at::IntArrayRef stride) {
    const auto& op = op_handle<FusedStageOp>();
    auto [out, offsets] = below_autograd(op, x, size, alpha, beta, k, kernel_size, stride);
    ctx->mark_non_differentiable({offsets});
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({x, offsets});
    ctx->saved_data["size"] = size;
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["beta"] = beta;
    ctx->saved_data["k"] = k;
    ctx->saved_data["kernel_size"] = kernel_size;
    ctx->saved_data["stride"] = stride;
    return {out, offsets};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list result(7);
    if (!grads[0].defined()) return result;
    const variable_list saved = ctx->get_saved_variables();
    result[0] = NoDoubleBackward<FusedStageBackwardOp>::call(
        grads[0], saved[0], saved[1], ctx->saved_data["size"].toInt(),
        ctx->saved_data["alpha"].toDouble(), ctx->saved_data["beta"].toDouble(),
        ctx->saved_data["k"].toDouble(), saved_ints(ctx, "kernel_size"),
        saved_ints(ctx, "stride"));
    return result;
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, Autograd, m) {
  m.impl("_relu_lrn_max_pool2d_with_offsets", &AutogradKernel<FusedStageFunction, FusedStageOp>::call);
  m.impl("_relu_lrn_max_pool2d_backward", &NoDoubleBackward<FusedStageBackwardOp>::call);
}

}  // namespace autograd
}  // namespace cnnfast
