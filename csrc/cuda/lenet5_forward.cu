#include <torch/library.h>

#include "../kernels/lenet5_forward.h"
#include "launch.cuh"

namespace cnnfast {
namespace {

at::Tensor lenet5_forward_cuda(const at::Tensor& x, const at::Tensor& conv1_weight,
                               const at::Tensor& conv1_bias, const at::Tensor& conv2_weight,
                               const at::Tensor& conv2_bias, const at::Tensor& fc1_weight,
                               const at::Tensor& fc1_bias, const at::Tensor& fc2_weight,
                               const at::Tensor& fc2_bias, const at::Tensor& fc3_weight,
                               const at::Tensor& fc3_bias) {
  return kernels::lenet5_forward<CudaLauncher>(
      x, {conv1_weight, conv1_bias, conv2_weight, conv2_bias, fc1_weight, fc1_bias, fc2_weight,
          fc2_bias, fc3_weight, fc3_bias});
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CUDA, m) { m.impl("lenet5_forward", &lenet5_forward_cuda); }

}  // namespace cnnfast
