#pragma once
// AlexNet's stage after conv1 and conv2, max_pool2d(local_response_norm(relu(x))),
// as per-element functions: the CUDA kernels (and their emulation) compute
// it without storing relu(x) or the LRN output. csrc/cpu/relu_lrn_max_pool2d.cpp
// is the CPU kernel.
#include "lrn.h"
#include "pool2d.h"

namespace cnnfast {

// x is (N, C, H, W) contiguous; LRN runs across C, pooling over H×W
// (padding 0, floor mode).
struct FusedStageProblem {
  LrnProblem lrn;
  Pool2dProblem pool;
};

// relu(x) down the channel column of pixel (h, w) of sample n.
template <class T>
struct ReluColumnReader {
  const T* column;
  int64_t stride;
  CNNFAST_HD lrn_sum_type<T> operator()(int64_t c) const {
    return relu_value(static_cast<lrn_sum_type<T>>(column[c * stride]));
  }
};

template <class T>
CNNFAST_INLINE ReluColumnReader<T> relu_column(const T* x, const FusedStageProblem& p, int64_t n,
                                               int64_t h, int64_t w) {
  return {x + n * p.lrn.channels * p.lrn.pixels + h * p.pool.in_w + w, p.lrn.pixels};
}

// Pooled output (n, c, oh, ow) with its window offset. The LRN values are
// rounded to T before they are compared, as the unfused chain stores them,
// so ties resolve as in the chain.
template <class T>
CNNFAST_INLINE MaxWithOffset<T> fused_stage_output(const T* x, const FusedStageProblem& p,
                                                   int64_t n, int64_t c, int64_t oh, int64_t ow) {
  using sum_t = lrn_sum_type<T>;
  return max_in_window_of<T>(
      [&](int64_t h, int64_t w) {
        const sum_t y = lrn_value_at<sum_t>(relu_column(x, p, n, h, w), p.lrn, c);
        return static_cast<acc_type<T>>(static_cast<T>(y));
      },
      p.pool, oh, ow);
}

// Gradient of input element (n, c, h, w) in the two passes of lrn.h: the
// pooled gradients reach the LRN outputs their windows chose, LRN's
// backward brings them to relu(x), relu's passes them where x > 0.
// First pass: the element's LRN gradient terms.
template <class T, class offset_t>
CNNFAST_INLINE LrnGradTerms<lrn_sum_type<T>> fused_stage_grad_terms(
    const T* x, const T* grad_out, const offset_t* offsets, const FusedStageProblem& p,
    int64_t n, int64_t c, int64_t h, int64_t w) {
  using sum_t = lrn_sum_type<T>;
  const int64_t plane = (n * p.lrn.channels + c) * p.pool.out_plane();
  const sum_t lrn_out_grad =
      static_cast<sum_t>(max_pool_input_grad(grad_out + plane, offsets + plane, p.pool, h, w));
  return lrn_grad_terms<sum_t>(relu_column(x, p, n, h, w), lrn_out_grad, p.lrn, c);
}

// Second pass: ratio(i) reads channel i's ratio term in the element's column.
template <class T, class Ratio>
CNNFAST_INLINE lrn_sum_type<T> fused_stage_grad_from_terms(const T* x, const Ratio& ratio,
                                                           lrn_sum_type<T> scaled,
                                                           const FusedStageProblem& p, int64_t n,
                                                           int64_t c, int64_t h, int64_t w) {
  const ReluColumnReader<T> input = relu_column(x, p, n, h, w);
  return relu_grad(lrn_grad_from_terms<lrn_sum_type<T>>(input, ratio, scaled, p.lrn, c), input(c));
}

}  // namespace cnnfast
