#pragma once
// cnnfast_testing.tensor_core_gemm's choice of MMA by dtype, for both launchers.
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "../kernels/tensor_core_gemm.h"

namespace cnnfast {

template <class Launcher>
at::Tensor dispatch_tensor_core_gemm(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1),
              "cnnfast_testing.tensor_core_gemm: a (M × K) and b (N × K)");
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && a.device() == b.device(),
              "cnnfast_testing.tensor_core_gemm: a and b of one dtype and device");
  switch (a.scalar_type()) {
    case at::kFloat:
      return kernels::tensor_core_gemm<MmaM16N8K8Tf32, float, Launcher>(a, b);
    case at::kHalf:
      return kernels::tensor_core_gemm<MmaM16N8K16Half, c10::Half, Launcher>(a, b);
    case at::kBFloat16:
      return kernels::tensor_core_gemm<MmaM16N8K16BFloat16, c10::BFloat16, Launcher>(a, b);
    default:
      TORCH_CHECK(false, "cnnfast_testing.tensor_core_gemm: float32 (TF32), float16 or bfloat16, not ",
                  a.scalar_type());
  }
}

}  // namespace cnnfast
