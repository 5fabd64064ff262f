#include <torch/library.h>

#include "../kernels/avg_pool2d.h"
#include "launch.cuh"

namespace cnnfast {

TORCH_LIBRARY_IMPL(cnnfast, CUDA, m) {
  m.impl("avg_pool2d", &kernels::avg_pool2d_forward<CudaLauncher>);
  m.impl("_avg_pool2d_backward", &kernels::avg_pool2d_backward<CudaLauncher>);
}

}  // namespace cnnfast
