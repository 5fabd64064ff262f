#pragma once
// cnnfast_testing.tensor_core_gemm for both launchers: a (M × K) · bᵀ
// (b: N × K) in float, the MMA chosen by dtype.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include "../kernels/tensor_core_gemm.h"

namespace cnnfast {

template <class Launcher>
at::Tensor dispatch_tensor_core_gemm(const at::Tensor& a, const at::Tensor& b) {
  const char* op = "cnnfast_testing.tensor_core_gemm";
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1), op, ": a (M × K) and b (N × K)");
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && a.device() == b.device(), op,
              ": a and b of one dtype and device");
  at::Tensor c = at::empty({a.size(0), b.size(0)}, a.options().dtype(at::kFloat));
  kernels::dispatch_mma(a.scalar_type(), op, [&](auto mma, auto element) {
    kernels::tensor_core_gemm<decltype(mma), decltype(element), float>(Launcher(a.device()), a, b, std::nullopt,
                                                                       Activation::kNone, c);
  });
  return c;
}

}  // namespace cnnfast
