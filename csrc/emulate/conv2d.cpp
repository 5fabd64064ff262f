#include "../kernels/conv2d.h"

#include "../kernels/gemm_engine.h"
#include "emulate.h"

namespace cnnfast {
namespace emulate {

using Engine = kernels::TiledGemmEngine<HostLauncher>;

at::Tensor conv2d_forward(const at::Tensor& x, const at::Tensor& weight,
                          const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                          at::IntArrayRef padding, int64_t groups,
                          std::optional<std::string_view> activation) {
  return kernels::conv2d_forward<Engine>(x, weight, bias, stride, padding, groups, activation);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward(
    const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& output, at::IntArrayRef stride, at::IntArrayRef padding, int64_t groups,
    std::optional<std::string_view> activation, std::array<bool, 3> output_mask) {
  return kernels::conv2d_backward<Engine>(grad_output, x, weight, output, stride, padding, groups,
                                          activation, output_mask);
}

}  // namespace emulate
}  // namespace cnnfast
