#pragma once
// CPU LRN over blocks of pixels of one sample, vectorized across the block
// (each channel row of a block is contiguous). Used by local_response_norm
// and by the fused relu_lrn_max_pool2d, which passes kRelu = true: the input
// is relu(x), and backward masks its result where x <= 0.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../common/lrn.h"

namespace cnnfast {
namespace cpu {

// A block's squares and ratios (channels × kPixelBlock each) stay in L2.
constexpr int64_t kPixelBlock = 256;

// s^-beta. AlexNet's beta = 0.75 (and 0.5, 1) take square roots and a
// divide, which vectorize; any other beta calls pow, which does not.
template <int kQuarters>
struct InversePower {
  template <class T>
  static T apply(T s, T) {
    if (kQuarters == 2) return T(1) / std::sqrt(s);
    if (kQuarters == 4) return T(1) / s;
    const T root = std::sqrt(s);  // kQuarters == 3
    return T(1) / (root * std::sqrt(root));
  }
};
struct InversePowerGeneric {
  template <class T>
  static T apply(T s, T beta) {
    return std::pow(s, -beta);
  }
};

// Calls f(Power{}) with the power policy for beta.
template <class F>
void dispatch_power(double beta, const F& f) {
  if (beta == 0.75)
    f(InversePower<3>{});
  else if (beta == 0.5)
    f(InversePower<2>{});
  else if (beta == 1.0)
    f(InversePower<4>{});
  else
    f(InversePowerGeneric{});
}

template <bool kRelu, class T>
inline T lrn_input(T v) {
  return kRelu ? relu_value(v) : v;
}

// Scratch of one block: one row of sums, then channels rows of squares,
// then (backward) channels rows of ratios.
template <class sum_t>
struct BlockScratch {
  sum_t* sum;
  sum_t* squares;
  sum_t* ratios;
  BlockScratch(sum_t* buffer, const LrnProblem& p)
      : sum(buffer), squares(buffer + kPixelBlock), ratios(squares + p.channels * kPixelBlock) {}
  static int64_t size(const LrnProblem& p) { return kPixelBlock * (1 + 2 * p.channels); }
};

// squares[c * kPixelBlock + b] = input(x[c][b])^2; rows of x are `stride` apart.
template <bool kRelu, class scalar_t, class sum_t>
void square_block(const scalar_t* x, int64_t stride, int64_t width, const LrnProblem& p,
                  sum_t* squares) {
  for (int64_t c = 0; c < p.channels; ++c) {
    const scalar_t* row = x + c * stride;
    sum_t* dst = squares + c * kPixelBlock;
#pragma omp simd
    for (int64_t b = 0; b < width; ++b) {
      const sum_t v = static_cast<sum_t>(lrn_input<kRelu>(row[b]));
      dst[b] = v * v;
    }
  }
}

// sum[b] = rows[first][b] + ... + rows[last][b] over the channels that
// exist (rows of kPixelBlock), summed afresh for each window: see
// csrc/common/lrn.h for why the sums do not slide.
template <class sum_t>
void window_sum(const sum_t* rows, int64_t first, int64_t last, int64_t width,
                const LrnProblem& p, sum_t* sum) {
  std::fill(sum, sum + width, sum_t(0));
  for (int64_t c = std::max<int64_t>(first, 0); c <= std::min(last, p.channels - 1); ++c) {
    const sum_t* row = rows + c * kPixelBlock;
#pragma omp simd
    for (int64_t b = 0; b < width; ++b) sum[b] += row[b];
  }
}

// Calls visit(c, base) for every channel of the block, with base[b] = s of
// pixel b = k + alpha / size * (window sum of input(x)^2); x's rows are
// `stride` apart.
template <bool kRelu, class scalar_t, class Visit>
void for_each_channel_base(const scalar_t* x, int64_t stride, int64_t width, const LrnProblem& p,
                           BlockScratch<lrn_sum_type<scalar_t>> scratch, const Visit& visit) {
  using sum_t = lrn_sum_type<scalar_t>;
  const sum_t k = static_cast<sum_t>(p.k), scale = static_cast<sum_t>(p.scale());
  square_block<kRelu>(x, stride, width, p, scratch.squares);
  for (int64_t c = 0; c < p.channels; ++c) {
    window_sum(scratch.squares, c - p.before(), c + p.after(), width, p, scratch.sum);
    sum_t* base = scratch.sum;
#pragma omp simd
    for (int64_t b = 0; b < width; ++b) base[b] = k + scale * base[b];
    visit(c, static_cast<const sum_t*>(base));
  }
}

// out[c][b] = input(x[c][b]) * s^-beta; rows `stride` apart in x and out.
template <bool kRelu, class Power, class scalar_t>
void lrn_forward_block(const scalar_t* x, scalar_t* out, int64_t stride, int64_t width,
                       const LrnProblem& p, BlockScratch<lrn_sum_type<scalar_t>> scratch) {
  using sum_t = lrn_sum_type<scalar_t>;
  const scalar_t beta = static_cast<scalar_t>(p.beta);
  for_each_channel_base<kRelu>(x, stride, width, p, scratch, [&](int64_t c, const sum_t* base) {
    const scalar_t* in = x + c * stride;
    scalar_t* dst = out + c * stride;
#pragma omp simd
    for (int64_t b = 0; b < width; ++b)
      dst[b] = lrn_input<kRelu>(in[b]) * Power::apply(static_cast<scalar_t>(base[b]), beta);
  });
}

// Backward of a block, recomputing the denominators, in two sweeps over
// the channels: the first writes g * s^-beta and keeps g * x * s^(-beta-1)
// per channel, the second sums those ratios over each channel's transposed
// window [j - after, j + before]. x's rows are x_stride apart, grad's and
// grad_x's stride apart.
template <bool kRelu, class Power, class scalar_t>
void lrn_backward_block(const scalar_t* x, int64_t x_stride, const scalar_t* grad,
                        scalar_t* grad_x, int64_t stride, int64_t width, const LrnProblem& p,
                        BlockScratch<lrn_sum_type<scalar_t>> scratch) {
  using sum_t = lrn_sum_type<scalar_t>;
  const scalar_t beta = static_cast<scalar_t>(p.beta);
  for_each_channel_base<kRelu>(x, x_stride, width, p, scratch, [&](int64_t c, const sum_t* base) {
    const scalar_t* in = x + c * x_stride;
    const scalar_t* g = grad + c * stride;
    scalar_t* dst = grad_x + c * stride;
    sum_t* ratio = scratch.ratios + c * kPixelBlock;
#pragma omp simd
    for (int64_t b = 0; b < width; ++b) {
      const sum_t s = base[b];
      const scalar_t power = Power::apply(static_cast<scalar_t>(s), beta);
      dst[b] = g[b] * power;
      ratio[b] = static_cast<sum_t>(g[b]) * static_cast<sum_t>(lrn_input<kRelu>(in[b])) *
                 static_cast<sum_t>(power) / s;
    }
  });
  const sum_t coefficient = static_cast<sum_t>(2.0 * p.scale() * p.beta);
  for (int64_t j = 0; j < p.channels; ++j) {
    window_sum(scratch.ratios, j - p.after(), j + p.before(), width, p, scratch.sum);
    const scalar_t* in = x + j * x_stride;
    scalar_t* dst = grad_x + j * stride;
    const sum_t* sum = scratch.sum;
#pragma omp simd
    for (int64_t b = 0; b < width; ++b) {
      const scalar_t value = static_cast<scalar_t>(
          static_cast<sum_t>(dst[b]) -
          coefficient * static_cast<sum_t>(lrn_input<kRelu>(in[b])) * sum[b]);
      dst[b] = kRelu ? relu_grad(value, in[b]) : value;
    }
  }
}

// Calls block_fn(offset, width, scratch) for every pixel block of every
// sample, in parallel; offset is where the block's channel 0 starts, width
// its number of pixels.
template <class sum_t, class F>
void for_each_pixel_block(const LrnProblem& p, const F& block_fn) {
  const int64_t blocks = ceil_div(p.pixels, kPixelBlock);
  at::parallel_for(0, p.batch * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<sum_t> scratch(static_cast<size_t>(BlockScratch<sum_t>::size(p)));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / blocks, first = (task % blocks) * kPixelBlock;
      block_fn(n * p.channels * p.pixels + first, std::min(kPixelBlock, p.pixels - first),
               BlockScratch<sum_t>(scratch.data(), p));
    }
  });
}

}  // namespace cpu
}  // namespace cnnfast
