#pragma once
// LRN: one thread per element, reading its pixel's channel column
// (csrc/common/lrn.h has the per-channel functions); backward in two passes.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include "../common/checks.h"
#include "../common/launch.h"
#include "../common/lrn.h"

namespace cnnfast {
namespace kernels {

// One thread per element: the planes are the (sample, channel) pairs, each
// a single row of pixels; an element reads its pixel's channel column
// (channel stride = pixels), which starts at channel 0 of its sample.
CNNFAST_INLINE int64_t lrn_column_start(const PlaneCell& e, const LrnProblem& p) {
  return (e.plane - e.plane % p.channels) * p.pixels + e.col;
}

template <class scalar_t>
struct LrnForwardKernel {
  const scalar_t* x;
  scalar_t* out;
  LrnProblem p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    using sum_t = lrn_sum_type<scalar_t>;
    for_each_plane_cell(t, p.batch * p.channels, 1, p.pixels, [&](const PlaneCell& e) {
      const ColumnReader<scalar_t> input{x + lrn_column_start(e, p), p.pixels};
      out[e.index] = static_cast<scalar_t>(lrn_value_at<sum_t>(input, p, e.plane % p.channels));
    });
  }
};

// Backward's first pass: each element's two gradient terms (lrn.h), kept
// in the sum type.
template <class scalar_t>
struct LrnGradTermsKernel {
  using sum_t = lrn_sum_type<scalar_t>;
  const scalar_t* x;
  const scalar_t* grad_out;
  sum_t* scaled;
  sum_t* ratio;
  LrnProblem p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    for_each_plane_cell(t, p.batch * p.channels, 1, p.pixels, [&](const PlaneCell& e) {
      const ColumnReader<scalar_t> input{x + lrn_column_start(e, p), p.pixels};
      const LrnGradTerms<sum_t> terms = lrn_grad_terms<sum_t>(
          input, static_cast<sum_t>(grad_out[e.index]), p, e.plane % p.channels);
      scaled[e.index] = terms.scaled;
      ratio[e.index] = terms.ratio;
    });
  }
};

// Second pass: each element's gradient from the terms of its channel window.
template <class scalar_t>
struct LrnGradKernel {
  using sum_t = lrn_sum_type<scalar_t>;
  const scalar_t* x;
  const sum_t* scaled;
  const sum_t* ratio;
  scalar_t* grad_x;
  LrnProblem p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    for_each_plane_cell(t, p.batch * p.channels, 1, p.pixels, [&](const PlaneCell& e) {
      const int64_t start = lrn_column_start(e, p);
      const ColumnReader<scalar_t> input{x + start, p.pixels};
      const ColumnReader<sum_t> ratios{ratio + start, p.pixels};
      grad_x[e.index] = static_cast<scalar_t>(
          lrn_grad_from_terms<sum_t>(input, ratios, scaled[e.index], p, e.plane % p.channels));
    });
  }
};

// Backward's two per-element term arrays (lrn.h) in the sum type, for a
// tensor like `like`; `storage` keeps them alive.
template <class sum_t>
struct LrnGradTermArrays {
  at::Tensor storage;
  sum_t* scaled;
  sum_t* ratio;
};

template <class sum_t>
LrnGradTermArrays<sum_t> lrn_grad_term_arrays(const at::Tensor& like) {
  const int64_t n = like.numel();
  const auto sum_type = c10::CppTypeToScalarType<sum_t>::value;
  at::Tensor storage = at::empty({2, n}, like.options().dtype(sum_type));
  sum_t* scaled = storage.mutable_data_ptr<sum_t>();
  return {storage, scaled, scaled + n};
}

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
    const auto terms = lrn_grad_term_arrays<lrn_sum_type<scalar_t>>(input);
    const LaunchShape shape = elementwise_launch_shape(input.numel());
    launcher.launch(shape, LrnGradTermsKernel<scalar_t>{input.const_data_ptr<scalar_t>(),
                                                        grad.const_data_ptr<scalar_t>(),
                                                        terms.scaled, terms.ratio, p});
    launcher.launch(shape, LrnGradKernel<scalar_t>{input.const_data_ptr<scalar_t>(), terms.scaled,
                                                   terms.ratio, grad_x.mutable_data_ptr<scalar_t>(),
                                                   p});
  });
  return grad_x;
}

}  // namespace kernels
}  // namespace cnnfast
