// Average pooling's autograd: backward needs only the input's size and the
// pooling geometry.
#include "autograd.h"

namespace cnnfast {
namespace autograd {
namespace {

struct AvgPool2dBackwardOp {
  static constexpr const char* kName = "cnnfast::_avg_pool2d_backward";
  static constexpr const char* kPublic = "avg_pool2d";
  using Signature = at::Tensor(const at::Tensor&, c10::SymIntArrayRef, at::IntArrayRef,
                               at::IntArrayRef, at::IntArrayRef, bool);
};

struct AvgPool2dOp {
  static constexpr const char* kName = "cnnfast::avg_pool2d";
  using Signature = at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef,
              bool, bool);
};

struct AvgPool2dFunction : torch::autograd::Function<AvgPool2dFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::IntArrayRef kernel_size,
                            at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                            bool count_include_pad) {
    const auto& op = op_handle<AvgPool2dOp>();
    ctx->saved_data["input_size"] = x.sym_sizes();
    ctx->saved_data["kernel_size"] = kernel_size;
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["count_include_pad"] = count_include_pad;
    return below_autograd(op, x, kernel_size, stride, padding, ceil_mode, count_include_pad);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list result(6);
    result[0] = NoDoubleBackward<AvgPool2dBackwardOp>::call(
        grads[0], saved_sym_sizes(ctx, "input_size"), saved_ints(ctx, "kernel_size"),
        saved_ints(ctx, "stride"), saved_ints(ctx, "padding"),
        ctx->saved_data["count_include_pad"].toBool());
    return result;
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, Autograd, m) {
  m.impl("avg_pool2d", &AutogradKernel<AvgPool2dFunction, AvgPool2dOp>::call);
  m.impl("_avg_pool2d_backward", &NoDoubleBackward<AvgPool2dBackwardOp>::call);
}

}  // namespace autograd
}  // namespace cnnfast
