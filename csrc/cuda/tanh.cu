#include <torch/library.h>

#include "../kernels/activation.h"
#include "launch.cuh"

namespace cnnfast {

TORCH_LIBRARY_IMPL(cnnfast, CUDA, m) {
  m.impl("tanh", &kernels::tanh_forward<CudaLauncher>);
  m.impl("_tanh_backward", &kernels::tanh_backward<CudaLauncher>);
}

}  // namespace cnnfast
