#pragma once
// linear and its backward: the convolution engine (conv2d.h) on a problem of
// N = prod(leading dims) images with in_features channels of 1×1 pixels and
// a 1×1 kernel.
#include "conv2d.h"

namespace cnnfast {
namespace kernels {

inline std::vector<int64_t> linear_output_size(const at::Tensor& x, const ConvProblem& p) {
  std::vector<int64_t> size(x.sizes().begin(), x.sizes().end());
  size.back() = p.k;
  return size;
}

template <class Engine>
at::Tensor linear_forward(const at::Tensor& x, const at::Tensor& weight,
                          const std::optional<at::Tensor>& bias,
                          std::optional<std::string_view> activation) {
  const ConvProblem p = linear_problem(x, weight, bias, activation, "linear", Engine::kHalfTypes);
  return conv_forward(Engine(x), p, x, weight, bias, linear_output_size(x, p), "linear");
}

template <class Engine>
std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_backward(
    const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& output, std::optional<std::string_view> activation,
    std::array<bool, 3> output_mask) {
  const char* op = "_linear_backward";
  const ConvProblem p = linear_problem(x, weight, std::nullopt, activation, op, Engine::kHalfTypes);
  check_conv_backward(grad_output, output, x, linear_output_size(x, p), op);
  return conv_backward(Engine(x), p, grad_output, x, weight, output, output_mask, op);
}

}  // namespace kernels
}  // namespace cnnfast
