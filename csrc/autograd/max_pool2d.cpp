// Max pooling's autograd: the forward keeps each window's argmax as its
// offset inside the window (one byte for windows of up to 256 cells), and
// backward gathers, per input cell, the gradients of the windows that
// chose it.
#include "autograd.h"

namespace cnnfast {
namespace autograd {
namespace {

struct MaxPool2dBackwardOp {
  static constexpr const char* kName = "cnnfast::_max_pool2d_backward";
  static constexpr const char* kPublic = "max_pool2d";
  using Signature = at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymIntArrayRef,
                               at::IntArrayRef, at::IntArrayRef, at::IntArrayRef);
};

struct MaxPool2dOp {
  static constexpr const char* kName = "cnnfast::_max_pool2d_with_offsets";
  using Signature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, at::IntArrayRef,
                                      at::IntArrayRef, at::IntArrayRef, bool);
};

struct MaxPool2dFunction : torch::autograd::Function<MaxPool2dFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x,
                               at::IntArrayRef kernel_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, bool ceil_mode) {
    const auto& op = op_handle<MaxPool2dOp>();
    auto [out, offsets] = below_autograd(op, x, kernel_size, stride, padding, ceil_mode);
    ctx->mark_non_differentiable({offsets});
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({offsets});
    ctx->saved_data["input_size"] = x.sym_sizes();
    ctx->saved_data["kernel_size"] = kernel_size;
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    return {out, offsets};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list result(5);
    if (!grads[0].defined()) return result;
    result[0] = NoDoubleBackward<MaxPool2dBackwardOp>::call(
        grads[0], ctx->get_saved_variables()[0], saved_sym_sizes(ctx, "input_size"),
        saved_ints(ctx, "kernel_size"), saved_ints(ctx, "stride"), saved_ints(ctx, "padding"));
    return result;
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, Autograd, m) {
  m.impl("_max_pool2d_with_offsets", &AutogradKernel<MaxPool2dFunction, MaxPool2dOp>::call);
  m.impl("_max_pool2d_backward", &NoDoubleBackward<MaxPool2dBackwardOp>::call);
}

}  // namespace autograd
}  // namespace cnnfast
