#include <torch/library.h>

#include "../kernels/conv2d.h"
#include "../kernels/gemm_engine.h"
#include "launch.cuh"

namespace cnnfast {

using CudaGemmEngine = kernels::TiledGemmEngine<CudaLauncher>;

TORCH_LIBRARY_IMPL(cnnfast, CUDA, m) {
  m.impl("conv2d", &kernels::conv2d_forward<CudaGemmEngine>);
  m.impl("_conv2d_backward", &kernels::conv2d_backward<CudaGemmEngine>);
}

}  // namespace cnnfast
