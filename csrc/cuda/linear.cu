#include <torch/library.h>

#include "../kernels/gemm_engine.h"
#include "../kernels/linear.h"
#include "launch.cuh"

namespace cnnfast {

using CudaGemmEngine = kernels::TiledGemmEngine<CudaLauncher>;

TORCH_LIBRARY_IMPL(cnnfast, CUDA, m) {
  m.impl("linear", &kernels::linear_forward<CudaGemmEngine>);
  m.impl("_linear_backward", &kernels::linear_backward<CudaGemmEngine>);
}

}  // namespace cnnfast
