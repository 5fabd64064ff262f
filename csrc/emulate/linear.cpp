#include "../kernels/linear.h"

#include "../kernels/gemm_engine.h"
#include "emulate.h"

namespace cnnfast {
namespace emulate {

using Engine = kernels::TiledGemmEngine<HostLauncher>;

at::Tensor linear_forward(const at::Tensor& x, const at::Tensor& weight,
                          const std::optional<at::Tensor>& bias,
                          std::optional<std::string_view> activation) {
  return kernels::linear_forward<Engine>(x, weight, bias, activation);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_backward(
    const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& output, std::optional<std::string_view> activation,
    std::array<bool, 3> output_mask) {
  return kernels::linear_backward<Engine>(grad_output, x, weight, output, activation,
                                          output_mask);
}

}  // namespace emulate
}  // namespace cnnfast
