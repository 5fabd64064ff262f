#include "../kernels/max_pool2d.h"

#include "emulate.h"

namespace cnnfast {
namespace emulate {

std::tuple<at::Tensor, at::Tensor> max_pool2d_forward(const at::Tensor& x,
                                                      at::IntArrayRef kernel_size,
                                                      at::IntArrayRef stride,
                                                      at::IntArrayRef padding, bool ceil_mode) {
  return kernels::max_pool2d_forward<HostLauncher>(x, kernel_size, stride, padding, ceil_mode);
}

at::Tensor max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& offsets,
                               c10::SymIntArrayRef input_size, at::IntArrayRef kernel_size,
                               at::IntArrayRef stride, at::IntArrayRef padding) {
  return kernels::max_pool2d_backward<HostLauncher>(grad_output, offsets, input_size,
                                                    kernel_size, stride, padding);
}

}  // namespace emulate
}  // namespace cnnfast
