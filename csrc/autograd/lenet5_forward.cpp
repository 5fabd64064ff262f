// lenet5_forward's autograd. The fused forward keeps no intermediate, so
// backward recomputes every layer, then runs each layer's backward op in
// reverse: it is for inference (LeNet5 calls it under no_grad), and
// training does better with the layers apart.
#include "autograd.h"

namespace cnnfast {
namespace autograd {
namespace {

using Conv2d = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                          at::IntArrayRef, at::IntArrayRef, int64_t, Activation);
using Linear = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                          Activation);
using AvgPool2d = at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef,
                             bool, bool);
using AvgPool2dBackward = at::Tensor(const at::Tensor&, c10::SymIntArrayRef, at::IntArrayRef,
                                     at::IntArrayRef, at::IntArrayRef, bool);
using Gradients = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Conv2dBackward = Gradients(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                 const at::Tensor&, at::IntArrayRef, at::IntArrayRef, int64_t,
                                 Activation, std::array<bool, 3>);
using LinearBackward = Gradients(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                 const at::Tensor&, Activation, std::array<bool, 3>);

struct LeNet5ForwardOp {
  static constexpr const char* kName = "cnnfast::lenet5_forward";
  using Signature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                               const at::Tensor&, const at::Tensor&, const at::Tensor&,
                               const at::Tensor&, const at::Tensor&, const at::Tensor&,
                               const at::Tensor&, const at::Tensor&);
};

struct LeNet5ForwardFunction : torch::autograd::Function<LeNet5ForwardFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& conv1_w,
                            const at::Tensor& conv1_b, const at::Tensor& conv2_w,
                            const at::Tensor& conv2_b, const at::Tensor& fc1_w,
                            const at::Tensor& fc1_b, const at::Tensor& fc2_w,
                            const at::Tensor& fc2_b, const at::Tensor& fc3_w,
                            const at::Tensor& fc3_b) {
    const auto& op = op_handle<LeNet5ForwardOp>();
    ctx->save_for_backward(
        {x, conv1_w, conv1_b, conv2_w, conv2_b, fc1_w, fc1_b, fc2_w, fc2_b, fc3_w, fc3_b});
    return below_autograd(op, x, conv1_w, conv1_b, conv2_w, conv2_b, fc1_w, fc1_b, fc2_w, fc2_b, fc3_w,
                   fc3_b);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto conv2d = typed_op<Conv2d>("cnnfast::conv2d");
    static const auto linear = typed_op<Linear>("cnnfast::linear");
    static const auto avg_pool2d = typed_op<AvgPool2d>("cnnfast::avg_pool2d");
    static const auto avg_pool2d_backward =
        typed_op<AvgPool2dBackward>("cnnfast::_avg_pool2d_backward");
    static const auto conv2d_backward = typed_op<Conv2dBackward>("cnnfast::_conv2d_backward");
    static const auto linear_backward = typed_op<LinearBackward>("cnnfast::_linear_backward");
    const variable_list p = ctx->get_saved_variables();
    const at::Tensor& x = p[0];
    const int64_t one[2] = {1, 1}, zero[2] = {0, 0}, two[2] = {2, 2};
    const std::array<bool, 3> every = {true, true, true};
    const at::Tensor conv1 = below_autograd(conv2d, x, p[1], p[2], one, zero, 1, "tanh");
    const at::Tensor pool1 = below_autograd(avg_pool2d, conv1, two, two, zero, false, true);
    const at::Tensor conv2 = below_autograd(conv2d, pool1, p[3], p[4], one, zero, 1, "tanh");
    const at::Tensor pool2 = below_autograd(avg_pool2d, conv2, two, two, zero, false, true);
    const at::Tensor flat = pool2.flatten(1);
    const at::Tensor fc1 = below_autograd(linear, flat, p[5], p[6], "tanh");
    const at::Tensor fc2 = below_autograd(linear, fc1, p[7], p[8], "tanh");
    const at::Tensor scores = below_autograd(linear, fc2, p[9], p[10], std::nullopt);
    auto [g_fc2, g_fc3_w, g_fc3_b] = linear_backward.call(grads[0], fc2, p[9], scores, std::nullopt, every);
    auto [g_fc1, g_fc2_w, g_fc2_b] = linear_backward.call(g_fc2, fc1, p[7], fc2, "tanh", every);
    auto [g_flat, g_fc1_w, g_fc1_b] = linear_backward.call(g_fc1, flat, p[5], fc1, "tanh", every);
    const at::Tensor g_conv2 = avg_pool2d_backward.call(g_flat.view_as(pool2), conv2.sym_sizes(),
                                                        two, two, zero, true);
    auto [g_pool1, g_conv2_w, g_conv2_b] =
        conv2d_backward.call(g_conv2, pool1, p[3], conv2, one, zero, 1, "tanh", every);
    const at::Tensor g_conv1 =
        avg_pool2d_backward.call(g_pool1, conv1.sym_sizes(), two, two, zero, true);
    auto [g_x, g_conv1_w, g_conv1_b] = conv2d_backward.call(
        g_conv1, x, p[1], conv1, one, zero, 1, "tanh", {ctx->needs_input_grad(0), true, true});
    variable_list result = {g_x,     g_conv1_w, g_conv1_b, g_conv2_w, g_conv2_b, g_fc1_w,
                            g_fc1_b, g_fc2_w,   g_fc2_b,   g_fc3_w,   g_fc3_b};
    for (size_t i = 0; i < result.size(); ++i)
      if (!ctx->needs_input_grad(i)) result[i] = at::Tensor();
    return result;
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, Autograd, m) { m.impl("lenet5_forward", &AutogradKernel<LeNet5ForwardFunction, LeNet5ForwardOp>::call); }

}  // namespace autograd
}  // namespace cnnfast
