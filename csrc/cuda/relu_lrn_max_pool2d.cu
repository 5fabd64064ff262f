#include <torch/library.h>

#include "../kernels/relu_lrn_max_pool2d.h"
#include "launch.cuh"

namespace cnnfast {

TORCH_LIBRARY_IMPL(cnnfast, CUDA, m) {
  m.impl("_relu_lrn_max_pool2d_with_offsets", &kernels::relu_lrn_max_pool2d_forward<CudaLauncher>);
  m.impl("_relu_lrn_max_pool2d_backward", &kernels::relu_lrn_max_pool2d_backward<CudaLauncher>);
}

}  // namespace cnnfast
