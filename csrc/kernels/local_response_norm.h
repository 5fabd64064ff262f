#pragma once
// LRN: one thread per element, reading its pixel's channel column
// (csrc/common/lrn.h has the per-channel functions).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>

#include "../common/checks.h"
#include "../common/launch.h"
#include "../common/lrn.h"

namespace cnnfast {
namespace kernels {

// One thread per element: element (n, c, pixel) reads its pixel's channel
// column (channel stride = pixels).
struct LrnCell {
  const int64_t column, channel;
};
CNNFAST_INLINE LrnCell lrn_cell(int64_t i, const LrnProblem& p) {
  const int64_t plane = i / p.pixels;
  return {(plane / p.channels) * p.channels * p.pixels + i % p.pixels, plane % p.channels};
}

template <class scalar_t>
struct LrnForwardKernel {
  const scalar_t* x;
  scalar_t* out;
  LrnProblem p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    using sum_t = lrn_sum_type<scalar_t>;
    const int64_t n = p.batch * p.channels * p.pixels;
    for (int64_t i = grid_first(t); i < n; i += grid_step(t)) {
      const LrnCell cell = lrn_cell(i, p);
      const ColumnReader<scalar_t> input{x + cell.column, p.pixels};
      out[i] = static_cast<scalar_t>(lrn_value_at<sum_t>(input, p, cell.channel));
    }
  }
};

template <class scalar_t>
struct LrnBackwardKernel {
  const scalar_t* x;
  const scalar_t* grad_out;
  scalar_t* grad_x;
  LrnProblem p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    using sum_t = lrn_sum_type<scalar_t>;
    const int64_t n = p.batch * p.channels * p.pixels;
    for (int64_t i = grid_first(t); i < n; i += grid_step(t)) {
      const LrnCell cell = lrn_cell(i, p);
      const ColumnReader<scalar_t> input{x + cell.column, p.pixels};
      const ColumnReader<scalar_t> grad{grad_out + cell.column, p.pixels};
      grad_x[i] = static_cast<scalar_t>(lrn_grad_at<sum_t>(input, grad, p, cell.channel));
    }
  }
};

template <class Launcher>
at::Tensor local_response_norm_forward(const at::Tensor& x, int64_t size, double alpha,
                                       double beta, double k) {
  const char* op = "local_response_norm";
  check_dtype(x, op, "x", /*allow_16bit=*/true);
  const LrnProblem p = lrn_problem(x, size, alpha, beta, k, op);
  Launcher launcher(x.device());
  const at::Tensor input = x.contiguous();
  at::Tensor out = at::empty_like(input);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "lrn", [&] {
    launcher.launch(elementwise_launch_shape(input.numel()),
                    LrnForwardKernel<scalar_t>{input.const_data_ptr<scalar_t>(),
                                               out.mutable_data_ptr<scalar_t>(), p});
  });
  return out;
}

template <class Launcher>
at::Tensor local_response_norm_backward(const at::Tensor& grad_output, const at::Tensor& x,
                                        int64_t size, double alpha, double beta, double k) {
  const char* op = "_local_response_norm_backward";
  const LrnProblem p =
      lrn_backward_problem(grad_output, x, size, alpha, beta, k, op, /*allow_16bit=*/true);
  Launcher launcher(x.device());
  const at::Tensor input = x.contiguous(), grad = grad_output.contiguous();
  at::Tensor grad_x = at::empty_like(input);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "lrn_backward", [&] {
    launcher.launch(elementwise_launch_shape(input.numel()),
                    LrnBackwardKernel<scalar_t>{input.const_data_ptr<scalar_t>(),
                                                grad.const_data_ptr<scalar_t>(),
                                                grad_x.mutable_data_ptr<scalar_t>(), p});
  });
  return grad_x;
}

}  // namespace kernels
}  // namespace cnnfast
