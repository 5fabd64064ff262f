#include <torch/library.h>

#include "../kernels/activation.h"
#include "launch.cuh"

namespace cnnfast {

TORCH_LIBRARY_IMPL(cnnfast, CUDA, m) {
  m.impl("relu", &kernels::relu_forward<CudaLauncher>);
  m.impl("_relu_backward", &kernels::relu_backward<CudaLauncher>);
}

}  // namespace cnnfast
