#include <torch/library.h>

#include "../emulate/emulate.h"
#include "../kernels/conv2d.h"
#include "../runtime.h"
#include "implicit_gemm.h"

namespace cnnfast {
namespace {

at::Tensor conv2d_cpu(const at::Tensor& x, const at::Tensor& weight,
                      const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                      at::IntArrayRef padding, int64_t groups,
                      std::optional<std::string_view> activation) {
  if (emulating_cuda())
    return emulate::conv2d_forward(x, weight, bias, stride, padding, groups, activation);
  return kernels::conv2d_forward<cpu::CpuGemmEngine>(x, weight, bias, stride, padding, groups,
                                                     activation);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& output, at::IntArrayRef stride, at::IntArrayRef padding, int64_t groups,
    std::optional<std::string_view> activation, std::array<bool, 3> output_mask) {
  if (emulating_cuda())
    return emulate::conv2d_backward(grad_output, x, weight, output, stride, padding, groups,
                                    activation, output_mask);
  return kernels::conv2d_backward<cpu::CpuGemmEngine>(grad_output, x, weight, output, stride,
                                                      padding, groups, activation, output_mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("conv2d", &conv2d_cpu);
  m.impl("_conv2d_backward", &conv2d_backward_cpu);
}

}  // namespace cnnfast
