#pragma once
// LRN: one thread per (sample, pixel) walks that pixel's channel column,
// forward and backward (csrc/common/lrn.h has the column functions).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>

#include "../common/checks.h"
#include "../common/launch.h"
#include "../common/lrn.h"

namespace cnnfast {
namespace kernels {

// Offset of the column of (sample, pixel) number i.
CNNFAST_INLINE int64_t lrn_column_start(int64_t i, const LrnProblem& p) {
  return (i / p.pixels) * p.channels * p.pixels + i % p.pixels;
}

template <class scalar_t>
struct LrnForwardKernel {
  const scalar_t* x;
  scalar_t* out;
  LrnProblem p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    const int64_t n = p.batch * p.pixels;
    for (int64_t i = grid_first(t); i < n; i += grid_step(t)) {
      const int64_t start = lrn_column_start(i, p);
      lrn_column_forward(x + start, out + start, p.pixels, p);
    }
  }
};

template <class scalar_t>
struct LrnBackwardKernel {
  const scalar_t* x;
  const scalar_t* grad_out;
  const scalar_t* out;
  scalar_t* grad_x;
  LrnProblem p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    const int64_t n = p.batch * p.pixels;
    for (int64_t i = grid_first(t); i < n; i += grid_step(t)) {
      const int64_t start = lrn_column_start(i, p);
      lrn_column_backward(x + start, grad_out + start, out + start, grad_x + start, p.pixels, p);
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
    launcher.launch(elementwise_launch_shape(p.batch * p.pixels),
                    LrnForwardKernel<scalar_t>{input.const_data_ptr<scalar_t>(),
                                               out.mutable_data_ptr<scalar_t>(), p});
  });
  return out;
}

template <class Launcher>
at::Tensor local_response_norm_backward(const at::Tensor& grad_output, const at::Tensor& x,
                                        const at::Tensor& output, int64_t size, double alpha,
                                        double beta, double k) {
  const char* op = "_local_response_norm_backward";
  check_dtype(x, op, "x", /*allow_16bit=*/true);
  check_same_device_dtype(grad_output, x, op, "grad_output", "x");
  check_same_device_dtype(output, x, op, "output", "x");
  check_same_shape(grad_output, x, op, "grad_output", "x");
  check_same_shape(output, x, op, "output", "x");
  const LrnProblem p = lrn_problem(x, size, alpha, beta, k, op);
  Launcher launcher(x.device());
  const at::Tensor input = x.contiguous(), grad = grad_output.contiguous(), out = output.contiguous();
  at::Tensor grad_x = at::empty_like(input);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "lrn_backward", [&] {
    launcher.launch(elementwise_launch_shape(p.batch * p.pixels),
                    LrnBackwardKernel<scalar_t>{input.const_data_ptr<scalar_t>(),
                                                grad.const_data_ptr<scalar_t>(),
                                                out.const_data_ptr<scalar_t>(),
                                                grad_x.mutable_data_ptr<scalar_t>(), p});
  });
  return grad_x;
}

}  // namespace kernels
}  // namespace cnnfast
