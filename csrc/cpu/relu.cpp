#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>

#include "../common/numeric.h"
#include "../emulate/emulate.h"
#include "../runtime.h"
#include "elementwise.h"
#include "vec_math.h"

namespace cnnfast {
namespace {

at::Tensor relu_cpu(const at::Tensor& x) {
  if (emulating_cuda()) return emulate::relu(x);
  return cpu::unary_map(x, "relu", [](auto v) { return cpu::relu_lanes(v); });
}

at::Tensor relu_backward_cpu(const at::Tensor& grad_output, const at::Tensor& output) {
  if (emulating_cuda()) return emulate::relu_backward(grad_output, output);
  return cpu::backward_map(grad_output, output, "_relu_backward",
                           [](auto g, auto y) { return cpu::relu_grad_lanes(g, y); });
}

// y = relu(x) and mask = (the gradient passes at y) over [begin, end), a
// vector at a time with the build's widest vectors, as relu_cpu's.
template <class T>
void relu_with_mask_range(const T* x, T* y, uint8_t* mask, int64_t begin, int64_t end) {
  constexpr int64_t L = cpu::kLanes<T>;
  using Mask = typename cpu::VectorOf<uint8_t, L>::type;
  int64_t i = begin;
  for (; i + L <= end; i += L) {
    const auto v = cpu::load_vector(x + i);
    cpu::store_vector(y + i, cpu::relu_lanes(v));
    cpu::store_vector<L>(mask + i, __builtin_convertvector(cpu::relu_passes_lanes(v) & 1, Mask));
  }
  for (; i < end; ++i) {
    y[i] = relu_value(x[i]);
    mask[i] = relu_passes(x[i]);
  }
}

// grad_x = mask ? grad_output : 0 over [begin, end), in backward_map's
// vectors (see kBackwardVectorBytes).
template <class T>
void relu_mask_backward_range(const T* grad, const uint8_t* mask, T* grad_x, int64_t begin,
                              int64_t end) {
  constexpr int Bytes = cpu::kBackwardVectorBytes;
  constexpr int64_t L = Bytes / sizeof(T);
  using V = typename cpu::VectorOf<T, Bytes>::type;
  using Lanes = decltype(V{} < V{});  // integers as wide as T, as a comparison gives
  int64_t i = begin;
  for (; i + L <= end; i += L) {
    const Lanes keep = -__builtin_convertvector(cpu::load_vector<L>(mask + i), Lanes);
    cpu::store_vector<Bytes>(grad_x + i, (V)((Lanes)cpu::load_vector<Bytes>(grad + i) & keep));
  }
  for (; i < end; ++i) grad_x[i] = mask[i] ? grad[i] : T(0);
}

std::tuple<at::Tensor, at::Tensor> relu_with_mask_cpu(const at::Tensor& x) {
  check_dtype(x, "_relu_with_mask", "x", /*allow_16bit=*/false);
  const at::Tensor input = x.contiguous(elementwise_format(x));
  at::Tensor out = at::empty_like(input);
  at::Tensor mask = at::empty_like(input, input.options().dtype(at::kBool));
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "_relu_with_mask", [&] {
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    auto* passes = reinterpret_cast<uint8_t*>(mask.mutable_data_ptr<bool>());
    at::parallel_for(0, input.numel(), cpu::kElementwiseGrain, [&](int64_t begin, int64_t end) {
      relu_with_mask_range(in, dst, passes, begin, end);
    });
  });
  return {out, mask};
}

at::Tensor relu_mask_backward_cpu(const at::Tensor& grad_output, const at::Tensor& mask) {
  const char* op = "_relu_mask_backward";
  check_dtype(grad_output, op, "grad_output", /*allow_16bit=*/false);
  TORCH_CHECK(mask.scalar_type() == at::kBool, "cnnfast.", op, ": mask must be bool, got ",
              mask.scalar_type());
  TORCH_CHECK(mask.device() == grad_output.device(), "cnnfast.", op,
              ": grad_output and mask must be on one device, got ", grad_output.device(), " and ",
              mask.device());
  check_same_shape(grad_output, mask, op, "grad_output", "mask");
  const at::MemoryFormat format = elementwise_format(mask);
  const at::Tensor passes = mask.contiguous(format);
  const at::Tensor grad = grad_output.contiguous(format);
  at::Tensor grad_x = at::empty_like(grad);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "_relu_mask_backward", [&] {
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const auto* keep = reinterpret_cast<const uint8_t*>(passes.const_data_ptr<bool>());
    scalar_t* dst = grad_x.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, grad.numel(), cpu::kElementwiseGrain, [&](int64_t begin, int64_t end) {
      relu_mask_backward_range(g, keep, dst, begin, end);
    });
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("relu", &relu_cpu);
  m.impl("_relu_backward", &relu_backward_cpu);
  m.impl("_relu_with_mask", &relu_with_mask_cpu);
  m.impl("_relu_mask_backward", &relu_mask_backward_cpu);
}

}  // namespace cnnfast
