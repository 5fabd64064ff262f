#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "../common/numeric.h"
#include "../emulation.h"
#include "../kernels/activation.h"
#include "elementwise.h"
#include "vec_math.h"

namespace cnnfast {
namespace {

at::Tensor relu_cpu(const at::Tensor& x) {
  return cpu::unary_map(x, "relu", [](auto v) { return cpu::relu_lanes(v); });
}

at::Tensor relu_backward_cpu(const at::Tensor& grad_output, const at::Tensor& output) {
  return cpu::backward_map(grad_output, output, "_relu_backward",
                           [](auto g, auto y) { return cpu::relu_grad_lanes(g, y); });
}

// The mask holds a bit per element: bit i % 8 of byte i / 8 is set where
// the gradient passes at element i (in x's elementwise memory order).
// Work is split by whole bytes of it, so that no two threads write one.
int64_t mask_bytes(int64_t elements) { return (elements + 7) / 8; }

template <class F>
void for_mask_bytes(int64_t elements, const F& elements_from_to) {
  at::parallel_for(0, mask_bytes(elements), cpu::kElementwiseGrain / 8,
                   [&](int64_t begin, int64_t end) {
                     elements_from_to(begin * 8, std::min(end * 8, elements));
                   });
}

// y = relu(x) and its mask over [begin, end), begin a multiple of 8, with
// the build's widest vectors, as relu_cpu's; a step covers whole bytes of
// the mask (two vectors a step for double under AVX2).
template <class T>
void relu_with_mask_range(const T* x, T* y, uint8_t* mask, int64_t begin, int64_t end) {
  constexpr int64_t L = cpu::kLanes<T>, kStep = std::max<int64_t>(L, 8);
  int64_t i = begin;
  for (; i + kStep <= end; i += kStep) {
    uint32_t bits = 0;
    for (int64_t k = 0; k < kStep; k += L) {
      const auto v = cpu::load_vector(x + i + k);
      cpu::store_vector(y + i + k, cpu::relu_lanes(v));
      bits |= cpu::lane_bits(cpu::relu_passes_lanes(v)) << k;
    }
    for (int64_t b = 0; b < kStep / 8; ++b) mask[i / 8 + b] = static_cast<uint8_t>(bits >> (8 * b));
  }
  for (; i < end; i += 8) {
    uint8_t byte = 0;
    for (int64_t k = 0; k < std::min<int64_t>(8, end - i); ++k) {
      y[i + k] = relu_value(x[i + k]);
      byte |= static_cast<uint8_t>(relu_passes(x[i + k]) << k);
    }
    mask[i / 8] = byte;
  }
}

// grad_x = grad_output where the mask's bit is set, else 0, over [begin,
// end), begin a multiple of 8, in backward_map's vectors (see
// kBackwardVectorBytes): each takes its lanes' bits from one mask byte.
template <class T>
void relu_mask_backward_range(const T* grad, const uint8_t* mask, T* grad_x, int64_t begin,
                              int64_t end) {
  constexpr int Bytes = cpu::kBackwardVectorBytes;
  constexpr int64_t L = Bytes / sizeof(T);
  static_assert(8 % L == 0, "a vector's bits lie in one mask byte");
  using V = typename cpu::VectorOf<T, Bytes>::type;
  using Lanes = decltype(V{} < V{});  // integers as wide as T, as a comparison gives
  int64_t i = begin;
  for (; i + L <= end; i += L) {
    const Lanes keep = cpu::bit_lanes<Lanes>(mask[i / 8] >> (i % 8));
    cpu::store_vector<Bytes>(grad_x + i, (V)((Lanes)cpu::load_vector<Bytes>(grad + i) & keep));
  }
  for (; i < end; ++i) grad_x[i] = (mask[i / 8] >> (i % 8) & 1) ? grad[i] : T(0);
}

std::tuple<at::Tensor, at::Tensor> relu_with_mask_cpu(const at::Tensor& x) {
  check_dtype(x, "_relu_with_mask", "x", /*allow_16bit=*/false);
  const at::Tensor input = x.contiguous(elementwise_format(x));
  at::Tensor out = at::empty_like(input);
  at::Tensor mask = at::empty({mask_bytes(input.numel())}, input.options().dtype(at::kByte));
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "_relu_with_mask", [&] {
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    uint8_t* passes = mask.mutable_data_ptr<uint8_t>();
    for_mask_bytes(input.numel(), [&](int64_t begin, int64_t end) {
      relu_with_mask_range(in, dst, passes, begin, end);
    });
  });
  return {out, mask};
}

at::Tensor relu_mask_backward_cpu(const at::Tensor& grad_output, const at::Tensor& mask,
                                  bool channels_last) {
  const char* op = "_relu_mask_backward";
  check_dtype(grad_output, op, "grad_output", /*allow_16bit=*/false);
  TORCH_CHECK(mask.scalar_type() == at::kByte, "cnnfast.", op, ": mask must be uint8, got ",
              mask.scalar_type());
  TORCH_CHECK(mask.device() == grad_output.device(), "cnnfast.", op,
              ": grad_output and mask must be on one device, got ", grad_output.device(), " and ",
              mask.device());
  TORCH_CHECK(mask.dim() == 1 && mask.numel() == mask_bytes(grad_output.numel()), "cnnfast.", op,
              ": mask must hold a bit for each of grad_output's ", grad_output.numel(),
              " elements (", mask_bytes(grad_output.numel()), " bytes), got shape ", mask.sizes());
  TORCH_CHECK(!channels_last || grad_output.dim() == 4, "cnnfast.", op,
              ": channels_last needs a 4-D grad_output, got ", grad_output.dim(), "-D");
  const at::MemoryFormat format =
      channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const at::Tensor passes = mask.contiguous();
  const at::Tensor grad = grad_output.contiguous(format);
  at::Tensor grad_x = at::empty(grad.sizes(), grad.options().memory_format(format));
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "_relu_mask_backward", [&] {
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const uint8_t* keep = passes.const_data_ptr<uint8_t>();
    scalar_t* dst = grad_x.mutable_data_ptr<scalar_t>();
    for_mask_bytes(grad.numel(), [&](int64_t begin, int64_t end) {
      relu_mask_backward_range(g, keep, dst, begin, end);
    });
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("relu", cpu_or_emulated<&relu_cpu, &kernels::relu_forward<HostLauncher>>());
  m.impl("_relu_backward", cpu_or_emulated<&relu_backward_cpu, &kernels::relu_backward<HostLauncher>>());
  m.impl("_relu_with_mask", &relu_with_mask_cpu);
  m.impl("_relu_mask_backward", &relu_mask_backward_cpu);
}

}  // namespace cnnfast
