#pragma once
// Multithreaded elementwise loops over the flat data of dense tensors, for
// the CPU kernels of the activations.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>

#include "../common/checks.h"

namespace cnnfast {
namespace cpu {

// Elements per task: enough to hide the cost of waking a thread.
constexpr int64_t kElementwiseGrain = 32768;

// dst[i] = f(a[i]) over [begin, end), vectorized.
template <class T, class F>
void map1(const T* __restrict a, T* __restrict dst, int64_t begin, int64_t end, const F& f) {
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) dst[i] = f(a[i]);
}

// dst[i] = f(a[i], b[i]) over [begin, end), vectorized.
template <class T, class F>
void map2(const T* __restrict a, const T* __restrict b, T* __restrict dst, int64_t begin,
          int64_t end, const F& f) {
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) dst[i] = f(a[i], b[i]);
}

// out[i] = f(x[i]); f is a generic lambda instantiated for float and double.
template <class F>
at::Tensor unary_map(const at::Tensor& x, const char* op, const F& f) {
  check_dtype(x, op, "x", /*allow_16bit=*/false);
  const at::Tensor input = x.contiguous(elementwise_format(x));
  at::Tensor out = at::empty_like(input);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "activation", [&] {
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, input.numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
      map1(in, dst, begin, end, f);
    });
  });
  return out;
}

// grad_x[i] = f(grad_output[i], output[i]).
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
      map2(g, y, dst, begin, end, f);
    });
  });
  return grad_x;
}

}  // namespace cpu
}  // namespace cnnfast
