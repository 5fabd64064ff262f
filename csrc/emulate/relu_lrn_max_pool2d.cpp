#include "../kernels/relu_lrn_max_pool2d.h"

#include "emulate.h"

namespace cnnfast {
namespace emulate {

std::tuple<at::Tensor, at::Tensor> relu_lrn_max_pool2d_forward(
    const at::Tensor& x, int64_t size, double alpha, double beta, double k,
    at::IntArrayRef kernel_size, at::IntArrayRef stride) {
  return kernels::relu_lrn_max_pool2d_forward<HostLauncher>(x, size, alpha, beta, k, kernel_size,
                                                            stride);
}

at::Tensor relu_lrn_max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& x,
                                        const at::Tensor& offsets, int64_t size, double alpha,
                                        double beta, double k, at::IntArrayRef kernel_size,
                                        at::IntArrayRef stride) {
  return kernels::relu_lrn_max_pool2d_backward<HostLauncher>(grad_output, x, offsets, size, alpha,
                                                             beta, k, kernel_size, stride);
}

}  // namespace emulate
}  // namespace cnnfast
