#include <torch/library.h>

#include "../kernels/lenet5_forward.h"
#include "launch.cuh"

namespace cnnfast {

TORCH_LIBRARY_IMPL(cnnfast, CUDA, m) {
  m.impl("lenet5_forward", &kernels::lenet5_forward_op<CudaLauncher>);
}

}  // namespace cnnfast
