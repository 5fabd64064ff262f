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

// a rounded up to a multiple of b, for positive b.
CNNFAST_INLINE int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// n / d for a fixed d, as a GPU kernel divides per element: plain division
// in general; for int32_t (0 <= n < 2^31, d >= 1) a multiply-high, an add
// and a shift with a magic number worked out once on the host (Granlund and
// Montgomery's method, as torch's IntDivider), where a GPU's 32-bit division
// is a sequence of some twenty instructions.
template <class Index>
struct Divisor {
  Index value = 1;
  Divisor() = default;
  CNNFAST_HD explicit Divisor(Index d) : value(d) {}
  CNNFAST_HD Index divide(Index n) const { return n / value; }
};

template <>
struct Divisor<int32_t> {
  int32_t value = 1;
  uint32_t magic = 1, shift = 0;
  Divisor() = default;
  explicit Divisor(int32_t d) : value(d) {
    while ((uint64_t{1} << shift) < static_cast<uint64_t>(d)) ++shift;
    magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  CNNFAST_HD int32_t divide(int32_t n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t high = __umulhi(static_cast<uint32_t>(n), magic);
#else
    const uint32_t high = static_cast<uint32_t>((uint64_t{static_cast<uint32_t>(n)} * magic) >> 32);
#endif
    return static_cast<int32_t>((high + static_cast<uint32_t>(n)) >> shift);
  }
};

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
// Where relu_grad passes the gradient, from relu's input or output alike.
template <class T>
CNNFAST_INLINE bool relu_passes(T x) {
  return !(x <= T(0));
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
