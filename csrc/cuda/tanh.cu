#include <torch/library.h>

#include "../kernels/activation.h"
#include "launch.cuh"

namespace cnnfast {
namespace {

at::Tensor tanh_cuda(const at::Tensor& x) {
  return kernels::activation_forward<CudaLauncher, kernels::Tanh>(x, "tanh");
}

at::Tensor tanh_backward_cuda(const at::Tensor& grad_output, const at::Tensor& output) {
  return kernels::activation_backward<CudaLauncher, kernels::Tanh>(grad_output, output,
                                                                   "_tanh_backward");
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CUDA, m) {
  m.impl("tanh", &tanh_cuda);
  m.impl("_tanh_backward", &tanh_backward_cuda);
}

}  // namespace cnnfast
