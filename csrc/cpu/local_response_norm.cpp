#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../common/checks.h"
#include "../common/lrn.h"
#include "../emulate/emulate.h"
#include "../runtime.h"

namespace cnnfast {
namespace {

// The CPU kernels work on blocks of pixels of one sample and vectorize
// across the block: each channel row of a block is contiguous. A block's
// squares and ratios (channels × kPixelBlock each) stay in L2.
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

// Writes squares[c * kPixelBlock + b] = x[c][b]^2 for the block.
template <class scalar_t, class sum_t>
void square_block(const scalar_t* x, int64_t width, const LrnProblem& p, sum_t* squares) {
  for (int64_t c = 0; c < p.channels; ++c) {
    const scalar_t* row = x + c * p.pixels;
    sum_t* dst = squares + c * kPixelBlock;
#pragma omp simd
    for (int64_t b = 0; b < width; ++b) {
      const sum_t v = static_cast<sum_t>(row[b]);
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

template <class scalar_t, class Power>
void lrn_forward_block(const scalar_t* x, scalar_t* out, int64_t width, const LrnProblem& p,
                       BlockScratch<lrn_sum_type<scalar_t>> scratch) {
  using sum_t = lrn_sum_type<scalar_t>;
  const sum_t k = static_cast<sum_t>(p.k), scale = static_cast<sum_t>(p.scale());
  const scalar_t beta = static_cast<scalar_t>(p.beta);
  square_block(x, width, p, scratch.squares);
  for (int64_t c = 0; c < p.channels; ++c) {
    window_sum(scratch.squares, c - p.before(), c + p.after(), width, p, scratch.sum);
    const scalar_t* in = x + c * p.pixels;
    scalar_t* dst = out + c * p.pixels;
    const sum_t* sum = scratch.sum;
#pragma omp simd
    for (int64_t b = 0; b < width; ++b)
      dst[b] = in[b] * Power::apply(static_cast<scalar_t>(k + scale * sum[b]), beta);
  }
}

// Backward in two sweeps over the channels of a block: the first writes
// g * s^-beta and keeps g * out / s per channel, the second sums those
// ratios over each channel's transposed window [j - after, j + before].
template <class scalar_t, class Power>
void lrn_backward_block(const scalar_t* x, const scalar_t* grad, const scalar_t* out,
                        scalar_t* grad_x, int64_t width, const LrnProblem& p,
                        BlockScratch<lrn_sum_type<scalar_t>> scratch) {
  using sum_t = lrn_sum_type<scalar_t>;
  const sum_t k = static_cast<sum_t>(p.k), scale = static_cast<sum_t>(p.scale());
  const scalar_t beta = static_cast<scalar_t>(p.beta);
  square_block(x, width, p, scratch.squares);
  for (int64_t c = 0; c < p.channels; ++c) {
    window_sum(scratch.squares, c - p.before(), c + p.after(), width, p, scratch.sum);
    const int64_t row = c * p.pixels;
    const sum_t* sum = scratch.sum;
    sum_t* ratio = scratch.ratios + c * kPixelBlock;
#pragma omp simd
    for (int64_t b = 0; b < width; ++b) {
      const sum_t s = k + scale * sum[b];
      grad_x[row + b] = grad[row + b] * Power::apply(static_cast<scalar_t>(s), beta);
      ratio[b] = static_cast<sum_t>(grad[row + b]) * static_cast<sum_t>(out[row + b]) / s;
    }
  }
  const sum_t coefficient = static_cast<sum_t>(2.0 * p.scale() * p.beta);
  for (int64_t j = 0; j < p.channels; ++j) {
    window_sum(scratch.ratios, j - p.after(), j + p.before(), width, p, scratch.sum);
    const int64_t row = j * p.pixels;
    const sum_t* sum = scratch.sum;
#pragma omp simd
    for (int64_t b = 0; b < width; ++b)
      grad_x[row + b] = static_cast<scalar_t>(static_cast<sum_t>(grad_x[row + b]) -
                                              coefficient * static_cast<sum_t>(x[row + b]) * sum[b]);
  }
}

// Runs block_fn(offset, width, scratch) over every pixel block of every
// sample, in parallel; offset is where the block's channel 0 starts.
template <class sum_t, class F>
void for_each_pixel_block(const LrnProblem& p, const F& block_fn) {
  const int64_t blocks = (p.pixels + kPixelBlock - 1) / kPixelBlock;
  at::parallel_for(0, p.batch * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<sum_t> scratch(static_cast<size_t>(BlockScratch<sum_t>::size(p)));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / blocks, first = (task % blocks) * kPixelBlock;
      block_fn(n * p.channels * p.pixels + first, std::min(kPixelBlock, p.pixels - first),
               scratch.data());
    }
  });
}

at::Tensor local_response_norm_cpu(const at::Tensor& x, int64_t size, double alpha, double beta,
                                   double k) {
  if (emulating_cuda()) return emulate::local_response_norm_forward(x, size, alpha, beta, k);
  const char* op = "local_response_norm";
  check_dtype(x, op, "x", /*allow_16bit=*/false);
  const LrnProblem p = lrn_problem(x, size, alpha, beta, k, op);
  const at::Tensor input = x.contiguous();
  at::Tensor out = at::empty_like(input);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "local_response_norm", [&] {
    using sum_t = lrn_sum_type<scalar_t>;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    dispatch_power(beta, [&](auto power) {
      for_each_pixel_block<sum_t>(p, [&](int64_t offset, int64_t width, sum_t* buffer) {
        lrn_forward_block<scalar_t, decltype(power)>(in + offset, dst + offset, width, p,
                                                     BlockScratch<sum_t>(buffer, p));
      });
    });
  });
  return out;
}

at::Tensor local_response_norm_backward_cpu(const at::Tensor& grad_output, const at::Tensor& x,
                                            const at::Tensor& output, int64_t size, double alpha,
                                            double beta, double k) {
  if (emulating_cuda())
    return emulate::local_response_norm_backward(grad_output, x, output, size, alpha, beta, k);
  const char* op = "_local_response_norm_backward";
  check_dtype(x, op, "x", /*allow_16bit=*/false);
  check_same_device_dtype(grad_output, x, op, "grad_output", "x");
  check_same_device_dtype(output, x, op, "output", "x");
  check_same_shape(grad_output, x, op, "grad_output", "x");
  check_same_shape(output, x, op, "output", "x");
  const LrnProblem p = lrn_problem(x, size, alpha, beta, k, op);
  const at::Tensor input = x.contiguous(), grad = grad_output.contiguous(), out = output.contiguous();
  at::Tensor grad_x = at::empty_like(input);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "local_response_norm_backward", [&] {
    using sum_t = lrn_sum_type<scalar_t>;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const scalar_t* y = out.const_data_ptr<scalar_t>();
    scalar_t* dst = grad_x.mutable_data_ptr<scalar_t>();
    dispatch_power(beta, [&](auto power) {
      for_each_pixel_block<sum_t>(p, [&](int64_t offset, int64_t width, sum_t* buffer) {
        lrn_backward_block<scalar_t, decltype(power)>(in + offset, g + offset, y + offset,
                                                      dst + offset, width, p,
                                                      BlockScratch<sum_t>(buffer, p));
      });
    });
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("local_response_norm", &local_response_norm_cpu);
  m.impl("_local_response_norm_backward", &local_response_norm_backward_cpu);
}

}  // namespace cnnfast
