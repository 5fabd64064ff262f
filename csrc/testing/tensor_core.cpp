// The cnnfast_testing ops behind tests/test_tensor_core.py: the tensor-core
// GEMM and the pieces of its emulation (number formats, fragment maps,
// cp.async), on CPU tensors through the host launcher. The schemas are in
// csrc/ops.cpp; the GEMM's CUDA registration is tensor_core_gpu.cu.
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <string_view>

#include "../common/checks.h"
#include "../common/launch.h"
#include "../kernels/tensor_core_gemm.h"
#include "tensor_core_gemm_dispatch.h"

namespace cnnfast {
namespace {

// The m16n8k8 TF32 map with a1 and a2 exchanged: still a bijection onto
// the tile, so only a test that multiplies through it can tell.
struct PlantedTf32AMap : MmaM16N8K8Tf32 {
  static TileCoord a(int lane, int i) { return MmaM16N8K8Tf32::a(lane, i == 1 ? 2 : i == 2 ? 1 : i); }
};

at::Tensor tensor_core_gemm_cpu(const at::Tensor& a, const at::Tensor& b, std::string_view planted) {
  if (planted == "tf32_a_map") {
    TORCH_CHECK(a.scalar_type() == at::kFloat, "cnnfast_testing.tensor_core_gemm: the planted map is TF32's");
    at::Tensor c = at::empty({a.size(0), b.size(0)}, a.options());
    kernels::tensor_core_gemm<PlantedTf32AMap, float, float>(HostLauncher(a.device()), a, b, std::nullopt,
                                                             Activation::kNone, c);
    return c;
  }
  TORCH_CHECK(planted.empty(), "cnnfast_testing.tensor_core_gemm: unknown planted error '", planted, "'");
  return dispatch_tensor_core_gemm<HostLauncher>(a, b);
}

template <class Mma>
at::Tensor map_of(std::string_view operand) {
  const int elements = operand == "a"   ? Mma::kARegisters * Mma::kElementsPerRegister
                       : operand == "b" ? Mma::kBRegisters * Mma::kElementsPerRegister
                                        : Mma::kCRegisters;
  at::Tensor out = at::empty({kWarpSize, elements, 2}, at::kLong);
  auto o = out.accessor<int64_t, 3>();
  for (int lane = 0; lane < kWarpSize; ++lane)
    for (int i = 0; i < elements; ++i) {
      const TileCoord at = operand == "a" ? Mma::a(lane, i) : operand == "b" ? Mma::b(lane, i) : Mma::c(lane, i);
      o[lane][i][0] = at.row;
      o[lane][i][1] = at.col;
    }
  return out;
}

// [32, elements, 2]: the (row, column) of each lane's elements.
at::Tensor fragment_map(std::string_view shape, std::string_view operand) {
  TORCH_CHECK(operand == "a" || operand == "b" || operand == "c", "cnnfast_testing.fragment_map: operand a, b or c");
  if (shape == "m16n8k8") return map_of<MmaM16N8K8Tf32>(operand);
  TORCH_CHECK(shape == "m16n8k16", "cnnfast_testing.fragment_map: shape m16n8k8 or m16n8k16");
  return map_of<MmaM16N8K16Half>(operand);
}

// x (float) rounded as the tensor cores' operands: "tf32" (cvt.rna), "half"
// or "bfloat16" (cvt.rn, back to float).
at::Tensor round_operands(const at::Tensor& x, std::string_view format) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.is_cpu(), "cnnfast_testing.round_operands: a float CPU tensor");
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty_like(xc);
  const float* in = xc.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t n = xc.numel();
  if (format == "tf32") {
    for (int64_t i = 0; i < n; ++i) o[i] = tf32_round(in[i]);
  } else if (format == "half") {
    for (int64_t i = 0; i < n; ++i) o[i] = half_bits_to_float(float_to_half_bits(in[i]));
  } else {
    TORCH_CHECK(format == "bfloat16", "cnnfast_testing.round_operands: format tf32, half or bfloat16");
    for (int64_t i = 0; i < n; ++i) o[i] = bfloat16_bits_to_float(float_to_bfloat16_bits(in[i]));
  }
  return out;
}

// One block of 128 threads copies 128 × 4 floats into shared memory by
// cp.async, commits, waits for the group only if `wait`, meets at a barrier
// and copies shared memory out: without the wait the emulation hands out
// its poison. A probe of the emulation, run on one host block (not a CUDA
// kernel of the table).
struct CpAsyncProbeKernel {
  static constexpr int kThreads = 128;
  struct Shared {
    alignas(16) float data[kThreads * 4];
  };
  struct Registers {
    AsyncCopies copies;
  };
  const float* src;
  float* dst;
  bool wait;

  template <class Block>
  void operator()(Block& block, Shared& sh) const {
    block.each_thread([&](const ThreadIndex& t, Registers& r) {
      const int64_t i = 4 * t.thread_idx.x;
      cp_async<16>(r.copies, &sh.data[i], src + i, 16);
      cp_async_commit(r.copies);
      if (wait) cp_async_wait<0>(r.copies);
    });
    block.barrier();
    block.each_thread([&](const ThreadIndex& t, Registers&) {
      for (int64_t i = 4 * t.thread_idx.x; i < 4 * t.thread_idx.x + 4; ++i) dst[i] = sh.data[i];
    });
  }
};

at::Tensor cp_async_probe(const at::Tensor& src, bool wait) {
  TORCH_CHECK(src.scalar_type() == at::kFloat && src.is_cpu() && src.numel() == 4 * CpAsyncProbeKernel::kThreads,
              "cnnfast_testing.cp_async_probe: 512 floats on the CPU");
  const at::Tensor s = src.contiguous();
  at::Tensor out = at::empty_like(s);
  LaunchShape shape;
  shape.block.x = CpAsyncProbeKernel::kThreads;
  HostBlock<CpAsyncProbeKernel::Registers> block(shape, Dim3{});
  CpAsyncProbeKernel::Shared shared{};
  CpAsyncProbeKernel{s.data_ptr<float>(), out.data_ptr<float>(), wait}(block, shared);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast_testing, CPU, m) {
  m.impl("tensor_core_gemm", &tensor_core_gemm_cpu);
  m.impl("round_operands", &round_operands);
  m.impl("cp_async_probe", &cp_async_probe);
}

TORCH_LIBRARY_IMPL(cnnfast_testing, CompositeImplicitAutograd, m) {
  m.impl("fragment_map", &fragment_map);
}

}  // namespace cnnfast
