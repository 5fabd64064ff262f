#pragma once
// Local response normalization across channels, torch's convention:
//   s[c] = k + alpha / size * sum of x[c']^2 over c' in [c - size/2, c + (size-1)/2]
//   out[c] = x[c] * s[c]^-beta
// with the window cut at the first and last channel (torch pads with zeros).
// Shared by the CPU kernels, the CUDA kernels and so the CUDA emulation.
#include <cmath>
#include <cstdint>

#include "macros.h"
#include "numeric.h"

namespace cnnfast {

// An (N, C, P) view of the input: channels are dim 1, P = product of the
// dims after it; channel c of sample n starts at (n * C + c) * P.
struct LrnProblem {
  int64_t batch = 0, channels = 0, pixels = 0;
  int64_t size = 1;
  double alpha = 1e-4, beta = 0.75, k = 1.0;

  CNNFAST_HD int64_t before() const { return size / 2; }
  CNNFAST_HD int64_t after() const { return (size - 1) / 2; }
  CNNFAST_HD double scale() const { return alpha / static_cast<double>(size); }
};

// Sums in double for float and double inputs, in float for the 16-bit types.
template <class T>
struct LrnSumType {
  using type = double;
};
template <>
struct LrnSumType<c10::Half> {
  using type = float;
};
template <>
struct LrnSumType<c10::BFloat16> {
  using type = float;
};
template <class T>
using lrn_sum_type = typename LrnSumType<T>::type;

// The window sums are summed afresh for every channel (size terms), not
// slid by adding the entering term and subtracting the leaving one: a
// subtraction leaves a rounding residue where torch's sum of an all-zero
// window is exactly 0 (with k = 0 that is 0 / 0 = NaN, not 0), and an inf
// that enters a sliding sum turns every later channel into NaN.

// Sum of v(c') over the channels c' in [first, last] that exist.
template <class sum_t, class Value>
CNNFAST_INLINE sum_t channel_window_sum(int64_t first, int64_t last, int64_t channels,
                                        const Value& v) {
  sum_t sum = 0;
  for (int64_t c = max_i64(first, 0); c <= min_i64(last, channels - 1); ++c) sum += v(c);
  return sum;
}

template <class sum_t>
CNNFAST_INLINE sum_t lrn_denominator_base(const LrnProblem& p, sum_t square_sum) {
  return static_cast<sum_t>(p.k) + static_cast<sum_t>(p.scale()) * square_sum;
}

// s[c] of one pixel's channel column.
template <class T>
CNNFAST_INLINE lrn_sum_type<T> lrn_column_base(const T* x, int64_t stride, const LrnProblem& p,
                                               int64_t c) {
  using sum_t = lrn_sum_type<T>;
  return lrn_denominator_base(
      p, channel_window_sum<sum_t>(c - p.before(), c + p.after(), p.channels, [&](int64_t i) {
        const sum_t v = static_cast<sum_t>(x[i * stride]);
        return v * v;
      }));
}

// One pixel's channel column, forward: out[c] = x[c] * s[c]^-beta.
template <class T>
CNNFAST_INLINE void lrn_column_forward(const T* x, T* out, int64_t stride, const LrnProblem& p) {
  using sum_t = lrn_sum_type<T>;
  for (int64_t c = 0; c < p.channels; ++c) {
    const sum_t s = lrn_column_base(x, stride, p, c);
    out[c * stride] = static_cast<T>(static_cast<sum_t>(x[c * stride]) *
                                     std::pow(s, -static_cast<sum_t>(p.beta)));
  }
}

// One pixel's channel column, backward, recomputing the denominators:
//   grad_x[j] = g[j] s[j]^-beta
//             - 2 alpha beta / size * x[j] * sum over c in [j - after, j + before] of g[c] out[c] / s[c]
// (channel c's window holds j exactly when j - after <= c <= j + before).
template <class T>
CNNFAST_INLINE void lrn_column_backward(const T* x, const T* grad_out, const T* out, T* grad_x,
                                        int64_t stride, const LrnProblem& p) {
  using sum_t = lrn_sum_type<T>;
  const sum_t coefficient = static_cast<sum_t>(2.0 * p.scale() * p.beta);
  const auto ratio = [&](int64_t c) {
    return static_cast<sum_t>(grad_out[c * stride]) * static_cast<sum_t>(out[c * stride]) /
           lrn_column_base(x, stride, p, c);
  };
  for (int64_t j = 0; j < p.channels; ++j) {
    const sum_t ratio_sum =
        channel_window_sum<sum_t>(j - p.after(), j + p.before(), p.channels, ratio);
    const sum_t s = lrn_column_base(x, stride, p, j);
    grad_x[j * stride] = static_cast<T>(
        static_cast<sum_t>(grad_out[j * stride]) * std::pow(s, -static_cast<sum_t>(p.beta)) -
        coefficient * static_cast<sum_t>(x[j * stride]) * ratio_sum);
  }
}

}  // namespace cnnfast
