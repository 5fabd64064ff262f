#pragma once
// The fused activations of the CPU GEMM and direct convolution epilogues,
// and the derivative their backward multiplies by, a vector at a time.
#include <algorithm>
#include <cstdint>

#include "../common/conv2d.h"
#include "vec_math.h"

namespace cnnfast {
namespace cpu {

// The activation of each lane.
template <class T>
inline __attribute__((always_inline)) typename VectorOf<T>::type activate_lanes(typename VectorOf<T>::type v,
                                                                                Activation act) {
  if (act == Activation::kRelu) return relu_lanes(v);
  if (act == Activation::kTanh) return tanh_lanes(v);
  return v;
}

// The activation over a row of n values, a vector at a time.
template <class T>
void activate_row(T* v, int64_t n, Activation act) {
  if (act == Activation::kNone) return;
  for (int64_t i = 0; i < n; i += kLanes<T>) {
    const int64_t count = std::min(kLanes<T>, n - i);
    store_first(v + i, activate_lanes<T>(load_first(v + i, count), act), count);
  }
}

// grad · act'(out) a vector at a time (vec_math.h).
template <class T>
inline typename VectorOf<T>::type times_derivative(typename VectorOf<T>::type grad,
                                                   typename VectorOf<T>::type out, Activation act) {
  if (act == Activation::kRelu) return relu_grad_lanes(grad, out);
  if (act == Activation::kTanh) return tanh_grad_lanes(grad, out);
  return grad;
}

}  // namespace cpu
}  // namespace cnnfast
