// cnnfast_testing.tensor_core_gemm on a GPU: the same kernel as the
// emulation runs (tensor_core.cpp), on the tensor cores.
#include <torch/library.h>

#include <string_view>

#include "../cuda/launch.cuh"
#include "tensor_core_gemm_dispatch.h"

namespace cnnfast {
namespace {

at::Tensor tensor_core_gemm_cuda(const at::Tensor& a, const at::Tensor& b, std::string_view planted) {
  TORCH_CHECK(planted.empty(), "cnnfast_testing.tensor_core_gemm: planted errors are the emulation's");
  TORCH_CHECK(CudaLauncher(a.device()).has_tensor_cores(),
              "cnnfast_testing.tensor_core_gemm: mma.sync with TF32, float16 and bfloat16 needs sm_80 or newer");
  return dispatch_tensor_core_gemm<CudaLauncher>(a, b);
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast_testing, CUDA, m) { m.impl("tensor_core_gemm", &tensor_core_gemm_cuda); }

}  // namespace cnnfast
