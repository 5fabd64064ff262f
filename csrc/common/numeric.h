#pragma once
// Element types and per-element functions shared by host and device code.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <cstdint>

#include "macros.h"

namespace cnnfast {

// Accumulation type: float for the 16-bit types, the type itself otherwise.
template <class T>
struct AccType {
  using type = T;
};
template <>
struct AccType<c10::Half> {
  using type = float;
};
template <>
struct AccType<c10::BFloat16> {
  using type = float;
};
template <class T>
using acc_type = typename AccType<T>::type;

template <class T>
CNNFAST_INLINE bool is_nan(T v) {
  return v != v;
}

// a / b rounded up, for positive b (blocks, tiles, strips).
CNNFAST_INLINE int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

CNNFAST_INLINE int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
CNNFAST_INLINE int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }
template <class Index>
CNNFAST_INLINE Index min_of(Index a, Index b) {
  return a < b ? a : b;
}
template <class Index>
CNNFAST_INLINE Index max_of(Index a, Index b) {
  return a > b ? a : b;
}

// relu keeps NaN (like torch.relu). Its gradient is read off the saved
// output as torch's threshold_backward does: zero where out <= 0, passed
// through elsewhere (a NaN output passes it too).
template <class T>
CNNFAST_INLINE T relu_value(T x) {
  return x < T(0) ? T(0) : x;
}
template <class T>
CNNFAST_INLINE T relu_grad(T grad, T out) {
  return out <= T(0) ? T(0) : grad;
}

// tanh for each accumulation type (tanhf for float on host and device).
CNNFAST_INLINE float tanh_value(float x) { return ::tanhf(x); }
CNNFAST_INLINE double tanh_value(double x) { return ::tanh(x); }

// d tanh / dx = 1 - tanh², from the saved output.
template <class T>
CNNFAST_INLINE T tanh_grad(T grad, T out) {
  return grad * (T(1) - out * out);
}

}  // namespace cnnfast
