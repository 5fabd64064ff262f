#pragma once
// linear and its backward on the convolution engine (conv2d.h): a problem
// of N = prod(leading dims) images of in_features channels and 1×1 pixels,
// with a 1×1 kernel. Forward and the input gradient use linear's own views
// (batch on the rows, csrc/common/linear.h) — forward with few output
// features the convolution's; the weight gradient is wgrad's, read as
// linear's operands lie (LinearWgradGemm). Where torch's precision switches
// allow tensor cores (the engine's tensor_cores_for_matmul), forward runs on
// them instead.
#include "../common/linear.h"
#include "conv2d.h"

namespace cnnfast {
namespace kernels {

inline std::vector<int64_t> linear_output_size(const at::Tensor& x, const ConvProblem& p) {
  std::vector<int64_t> size(x.sizes().begin(), x.sizes().end());
  size.back() = p.k;
  return size;
}

// Below this many output features, with at least kManyRows rows, forward
// takes the convolution's own view instead (features on the GEMM's rows,
// the rows of x along its columns): linear's view would pad the few
// features to a whole register block of columns (LeNet-5's fc3: 10 of 32).
constexpr int64_t kFewFeatures = 16;
constexpr int64_t kManyRows = 64;

template <class Engine>
at::Tensor linear_forward(const at::Tensor& x, const at::Tensor& weight,
                          const std::optional<at::Tensor>& bias,
                          std::optional<std::string_view> activation) {
  const ConvProblem p = linear_problem(x, weight, bias, activation, "linear", Engine::kHalfTypes);
  const Engine engine(x);
  if constexpr (Engine::kTensorCores) {
    if (engine.tensor_cores_for_matmul(x.scalar_type())) {
      at::Tensor out = at::empty(linear_output_size(x, p), x.options());
      engine.tensor_core_gemm(x.reshape({-1, p.c}), weight, bias, p.act, out);
      return out;
    }
  }
  return gemm_forward<Engine>(
      x, weight, bias, linear_output_size(x, p),
      [&](auto tag, auto input, auto filter, auto shift, auto out) {
        using T = decltype(tag);
        if (p.k < kFewFeatures && p.n >= kManyRows)
          engine.run(per_group<FpropGemm<T>>(
              p, [&](int64_t group) { return FpropGemm<T>{input, filter, shift, out, p, group}; }));
        else
          engine.run(std::vector<LinearFpropGemm<T>>{LinearFpropGemm<T>{input, filter, shift, out, p}});
      });
}

template <class Engine>
std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_backward(
    const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& output, std::optional<std::string_view> activation,
    std::array<bool, 3> output_mask) {
  const char* op = "_linear_backward";
  const ConvProblem p = linear_problem(x, weight, std::nullopt, activation, op, Engine::kHalfTypes);
  check_conv_backward(grad_output, output, x, linear_output_size(x, p), op);
  const Engine engine(x);
  return gemm_backward<LinearWgradGemm>(engine, p, grad_output, x, weight, output, output_mask,
                       [&](auto tag, auto grad, auto filter, auto grad_x) {
                         using View = LinearDgradGemm<decltype(tag)>;
                         engine.run(std::vector<View>{View{grad, filter, grad_x, p}});
                       });
}

}  // namespace kernels
}  // namespace cnnfast
