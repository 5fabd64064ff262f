#include "../kernels/avg_pool2d.h"

#include "emulate.h"

namespace cnnfast {
namespace emulate {

at::Tensor avg_pool2d_forward(const at::Tensor& x, at::IntArrayRef kernel_size,
                              at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                              bool count_include_pad) {
  return kernels::avg_pool2d_forward<HostLauncher>(x, kernel_size, stride, padding, ceil_mode,
                                                   count_include_pad);
}

at::Tensor avg_pool2d_backward(const at::Tensor& grad_output, c10::SymIntArrayRef input_size,
                               at::IntArrayRef kernel_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, bool count_include_pad) {
  return kernels::avg_pool2d_backward<HostLauncher>(grad_output, input_size, kernel_size,
                                                    stride, padding, count_include_pad);
}

}  // namespace emulate
}  // namespace cnnfast
