#include <torch/library.h>

#include "../kernels/activation.h"
#include "launch.cuh"

namespace cnnfast {
namespace {

at::Tensor relu_cuda(const at::Tensor& x) {
  return kernels::activation_forward<CudaLauncher, kernels::Relu>(x, "relu");
}

at::Tensor relu_backward_cuda(const at::Tensor& grad_output, const at::Tensor& output) {
  return kernels::activation_backward<CudaLauncher, kernels::Relu>(grad_output, output,
                                                                   "_relu_backward");
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CUDA, m) {
  m.impl("relu", &relu_cuda);
  m.impl("_relu_backward", &relu_backward_cuda);
}

}  // namespace cnnfast
