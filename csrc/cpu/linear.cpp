#include <torch/library.h>

#include "../emulate/emulate.h"
#include "../kernels/linear.h"
#include "../runtime.h"
#include "implicit_gemm.h"

namespace cnnfast {
namespace {

at::Tensor linear_cpu(const at::Tensor& x, const at::Tensor& weight,
                      const std::optional<at::Tensor>& bias,
                      std::optional<std::string_view> activation) {
  if (emulating_cuda()) return emulate::linear_forward(x, weight, bias, activation);
  return kernels::linear_forward<cpu::CpuGemmEngine>(x, weight, bias, activation);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& output, std::optional<std::string_view> activation,
    std::array<bool, 3> output_mask) {
  if (emulating_cuda())
    return emulate::linear_backward(grad_output, x, weight, output, activation, output_mask);
  return kernels::linear_backward<cpu::CpuGemmEngine>(grad_output, x, weight, output, activation,
                                                      output_mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("linear", &linear_cpu);
  m.impl("_linear_backward", &linear_backward_cpu);
}

}  // namespace cnnfast
