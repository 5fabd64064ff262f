#include <torch/library.h>

#include "../kernels/local_response_norm.h"
#include "launch.cuh"

namespace cnnfast {

TORCH_LIBRARY_IMPL(cnnfast, CUDA, m) {
  m.impl("local_response_norm", &kernels::local_response_norm_forward<CudaLauncher>);
  m.impl("_local_response_norm_backward", &kernels::local_response_norm_backward<CudaLauncher>);
}

}  // namespace cnnfast
