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

// Sums in double for float and double inputs (a sliding sum subtracts what
// it added: in float its error would grow along the channels), in float for
// the 16-bit types.
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

// Sum of squares over the window [c - before, c + after] of one pixel's
// channel column, kept up to date as c moves one channel at a time.
template <class T>
struct SquareWindow {
  using sum_t = lrn_sum_type<T>;
  const T* column;
  int64_t stride, channels, before, after;
  sum_t sum = 0;

  CNNFAST_HD sum_t square(int64_t c) const {
    if (c < 0 || c >= channels) return 0;
    const sum_t v = static_cast<sum_t>(column[c * stride]);
    return v * v;
  }
  // Start at channel c (summing its whole window).
  CNNFAST_HD void start(int64_t c) {
    sum = 0;
    for (int64_t i = c - before; i <= c + after; ++i) sum += square(i);
  }
  // Move from channel c - 1 to channel c.
  CNNFAST_HD void advance(int64_t c) { sum += square(c + after) - square(c - before - 1); }
};

template <class sum_t>
CNNFAST_INLINE sum_t lrn_denominator_base(const LrnProblem& p, sum_t square_sum) {
  return static_cast<sum_t>(p.k) + static_cast<sum_t>(p.scale()) * square_sum;
}

// One pixel's channel column, forward: out[c] = x[c] * s[c]^-beta.
template <class T>
CNNFAST_INLINE void lrn_column_forward(const T* x, T* out, int64_t stride, const LrnProblem& p) {
  using sum_t = lrn_sum_type<T>;
  SquareWindow<T> window{x, stride, p.channels, p.before(), p.after()};
  window.start(0);
  for (int64_t c = 0; c < p.channels; ++c) {
    if (c > 0) window.advance(c);
    const sum_t s = lrn_denominator_base(p, window.sum);
    out[c * stride] = static_cast<T>(static_cast<sum_t>(x[c * stride]) *
                                     std::pow(s, -static_cast<sum_t>(p.beta)));
  }
}

// One pixel's channel column, backward, recomputing the denominators:
//   grad_x[j] = g[j] s[j]^-beta
//             - 2 alpha beta / size * x[j] * sum over c in [j - after, j + before] of g[c] out[c] / s[c]
// (channel c's window holds j exactly when j - after <= c <= j + before).
// Three sliding square sums give s at j, at the window's leading channel
// j + before and at the channel j - after - 1 that leaves it.
template <class T>
CNNFAST_INLINE void lrn_column_backward(const T* x, const T* grad_out, const T* out, T* grad_x,
                                        int64_t stride, const LrnProblem& p) {
  using sum_t = lrn_sum_type<T>;
  const int64_t C = p.channels, before = p.before(), after = p.after();
  const sum_t neg_beta = -static_cast<sum_t>(p.beta);
  const sum_t coefficient = static_cast<sum_t>(2.0 * p.scale() * p.beta);
  SquareWindow<T> center{x, stride, C, before, after};
  SquareWindow<T> lead = center, trail = center;
  // g[c] out[c] / s[c], zero outside the channels.
  const auto ratio = [&](int64_t c, sum_t square_sum) -> sum_t {
    if (c < 0 || c >= C) return 0;
    return static_cast<sum_t>(grad_out[c * stride]) * static_cast<sum_t>(out[c * stride]) /
           lrn_denominator_base(p, square_sum);
  };
  center.start(0);
  lead.start(before);
  trail.start(-after - 1);
  sum_t ratio_sum = 0;
  for (int64_t c = 0; c <= before && c < C; ++c) {
    SquareWindow<T> w = center;
    w.start(c);
    ratio_sum += ratio(c, w.sum);
  }
  for (int64_t j = 0; j < C; ++j) {
    if (j > 0) {
      center.advance(j);
      lead.advance(j + before);
      trail.advance(j - after - 1);
      ratio_sum += ratio(j + before, lead.sum) - ratio(j - after - 1, trail.sum);
    }
    const sum_t s = lrn_denominator_base(p, center.sum);
    const sum_t g = static_cast<sum_t>(grad_out[j * stride]);
    const sum_t xj = static_cast<sum_t>(x[j * stride]);
    grad_x[j * stride] = static_cast<T>(g * std::pow(s, neg_beta) - coefficient * xj * ratio_sum);
  }
}

}  // namespace cnnfast
