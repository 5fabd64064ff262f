#pragma once
// Multithreaded elementwise loops over the flat data of dense tensors, for
// the CPU kernels of the activations.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>

#include <algorithm>

#include "../common/checks.h"
#include "vec_math.h"

namespace cnnfast {
namespace cpu {

// Elements per task: enough to hide the cost of waking a thread.
constexpr int64_t kElementwiseGrain = 32768;

// The activations' backward streams three tensors (the gradient, the
// saved output, the result) that at AlexNet's sizes come from memory; there
// 32-byte vectors took it 5-10% less time than 64-byte ones on an AMD EPYC
// (AVX-512), where its forward (two tensors, from cache) took ~10% less
// with 64-byte vectors. So backward_map moves at most 32 bytes a vector.
constexpr int kBackwardVectorBytes = std::min(kVectorBytes, 32);

// dst[i] = f(src[i]...) over [begin, end) for one or more sources, f
// taking and giving vectors of Bytes bytes, Steps vectors a step (loaded,
// mapped, then stored), and a partial vector for the tail. The forward
// takes one of the build's widest vectors a step: with one 64-byte vector
// relu at AlexNet's first layer ran 1-6% faster than with two in 9 of 10
// interleaved runs on that EPYC (tanh the same either way); the backward
// was measured with two 32-byte vectors a step.
template <int Bytes, int Steps, class T, class F, class... Sources>
void map_lanes(T* __restrict dst, int64_t begin, int64_t end, const F& f, const Sources*... src) {
  constexpr int64_t L = Bytes / sizeof(T);
  int64_t i = begin;
  for (; i + Steps * L <= end; i += Steps * L) {
    typename VectorOf<T, Bytes>::type results[Steps];
    for (int k = 0; k < Steps; ++k) results[k] = f(load_vector<Bytes>(src + i + k * L)...);
    for (int k = 0; k < Steps; ++k) store_vector<Bytes>(dst + i + k * L, results[k]);
  }
  for (; i < end; i += L) {
    const int64_t count = std::min(L, end - i);
    store_first<Bytes>(dst + i, f(load_first<Bytes>(src + i, count)...), count);
  }
}

// out = f(x), f a generic lambda over vectors of float and of double.
template <class F>
at::Tensor unary_map(const at::Tensor& x, const char* op, const F& f) {
  check_dtype(x, op, "x", /*allow_16bit=*/false);
  const at::Tensor input = x.contiguous(elementwise_format(x));
  at::Tensor out = at::empty_like(input);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "activation", [&] {
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, input.numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
      map_lanes<kVectorBytes, 1>(dst, begin, end, f, in);
    });
  });
  return out;
}

// grad_x[i] = f(grad_output[i], output[i]), f over vectors as in unary_map.
template <class F>
at::Tensor backward_map(const at::Tensor& grad_output, const at::Tensor& output, const char* op,
                        const F& f) {
  check_dtype(output, op, "output", /*allow_16bit=*/false);
  check_same_device_dtype(grad_output, output, op, "grad_output", "output");
  check_same_shape(grad_output, output, op, "grad_output", "output");
  const at::MemoryFormat format = elementwise_format(output);
  const at::Tensor out = output.contiguous(format);
  const at::Tensor grad = grad_output.contiguous(format);
  at::Tensor grad_x = at::empty_like(out);
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "activation_backward", [&] {
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const scalar_t* y = out.const_data_ptr<scalar_t>();
    scalar_t* dst = grad_x.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, out.numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
      map_lanes<kBackwardVectorBytes, 2>(dst, begin, end, f, g, y);
    });
  });
  return grad_x;
}

}  // namespace cpu
}  // namespace cnnfast
