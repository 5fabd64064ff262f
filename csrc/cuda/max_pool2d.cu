#include <torch/library.h>

#include "../kernels/max_pool2d.h"
#include "launch.cuh"

namespace cnnfast {

TORCH_LIBRARY_IMPL(cnnfast, CUDA, m) {
  m.impl("_max_pool2d_with_offsets", &kernels::max_pool2d_forward<CudaLauncher>);
  m.impl("_max_pool2d_backward", &kernels::max_pool2d_backward<CudaLauncher>);
}

}  // namespace cnnfast
