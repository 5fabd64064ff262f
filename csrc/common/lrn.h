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

// LRN sums (at most `size` terms, summed afresh for each channel) in the
// accumulation type: float for float and the 16-bit types, double for double.
template <class T>
using lrn_sum_type = acc_type<T>;

// The window sums are summed afresh for every channel (size terms), not
// slid by adding the entering term and subtracting the leaving one: a
// subtraction leaves a rounding residue where torch's sum of an all-zero
// window is exactly 0 (with k = 0 that is 0 / 0 = NaN, not 0), and an inf
// that enters a sliding sum turns every later channel into NaN.

// Sum of v(c') over the channels c' in [first, last] that exist. Index is
// the channels' integer type (the CUDA kernels' 32-bit where it fits).
template <class sum_t, class Index, class Value>
CNNFAST_INLINE sum_t channel_window_sum(Index first, Index last, Index channels, const Value& v) {
  sum_t sum = 0;
  for (Index c = max_of(first, Index{0}); c <= min_of(last, channels - 1); ++c) sum += v(c);
  return sum;
}

template <class sum_t>
CNNFAST_INLINE sum_t lrn_denominator_base(const LrnProblem& p, sum_t square_sum) {
  return static_cast<sum_t>(p.k) + static_cast<sum_t>(p.scale()) * square_sum;
}

// s[c] of one pixel's channel column; input(i) reads channel i.
template <class sum_t, class Input, class Index>
CNNFAST_INLINE sum_t lrn_base_at(const Input& input, const LrnProblem& p, Index c) {
  const auto before = static_cast<Index>(p.before()), after = static_cast<Index>(p.after());
  const auto square = [&](Index i) {
    const sum_t v = input(i);
    return v * v;
  };
  return lrn_denominator_base(
      p, channel_window_sum<sum_t>(c - before, c + after, static_cast<Index>(p.channels), square));
}

// LRN's value at channel c: input(c) * s[c]^-beta.
template <class sum_t, class Input, class Index>
CNNFAST_INLINE sum_t lrn_value_at(const Input& input, const LrnProblem& p, Index c) {
  return input(c) * std::pow(lrn_base_at<sum_t>(input, p, c), -static_cast<sum_t>(p.beta));
}

// The gradient at channel j of one pixel's column, with input(i) and
// grad(i) reading channel i of the input and of the gradient of LRN's output:
//   g[j] s[j]^-beta - 2 alpha beta / size * x[j] * sum over c in [j - after, j + before]
//                                                   of g[c] x[c] s[c]^(-beta - 1)
// (channel c's window holds j exactly when j - after <= c <= j + before).
// The kernels compute it in two passes over the elements, so that each
// channel's denominator and power are worked out once rather than once for
// every neighbour whose sum holds it: lrn_grad_terms gives one channel's two
// terms, lrn_grad_from_terms combines the terms of a channel window.
template <class sum_t>
struct LrnGradTerms {
  sum_t scaled;  // g[c] s[c]^-beta
  sum_t ratio;   // g[c] x[c] s[c]^-beta / s[c]
};

template <class sum_t, class Input, class Index>
CNNFAST_INLINE LrnGradTerms<sum_t> lrn_grad_terms(const Input& input, sum_t grad,
                                                  const LrnProblem& p, Index c) {
  const sum_t s = lrn_base_at<sum_t>(input, p, c);
  const sum_t power = std::pow(s, -static_cast<sum_t>(p.beta));
  return {grad * power, grad * input(c) * power / s};
}

// ratio(i) reads channel i's ratio term; scaled is channel j's own term.
template <class sum_t, class Input, class Ratio, class Index>
CNNFAST_INLINE sum_t lrn_grad_from_terms(const Input& input, const Ratio& ratio, sum_t scaled,
                                         const LrnProblem& p, Index j) {
  const auto before = static_cast<Index>(p.before()), after = static_cast<Index>(p.after());
  const sum_t ratio_sum =
      channel_window_sum<sum_t>(j - after, j + before, static_cast<Index>(p.channels), ratio);
  const sum_t coefficient = static_cast<sum_t>(2.0 * p.scale() * p.beta);
  return scaled - coefficient * input(j) * ratio_sum;
}

// Reads channel i of a column of T with the given channel stride, in sum_t.
template <class T, class Index = int64_t>
struct ColumnReader {
  const T* column;
  Index stride;
  CNNFAST_HD lrn_sum_type<T> operator()(Index i) const {
    return static_cast<lrn_sum_type<T>>(column[i * stride]);
  }
};

}  // namespace cnnfast
