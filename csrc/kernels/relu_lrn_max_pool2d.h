#pragma once
// The fused relu -> LRN -> max pool stage: one thread per pooled output
// forward, one per input element in each of backward's two passes
// (csrc/common/fused_stage.h).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <tuple>

#include "../common/checks.h"
#include "../common/fused_stage.h"
#include "../common/kernel_table.h"
#include "../common/launch.h"
#include "local_response_norm.h"

namespace cnnfast {
namespace kernels {

template <class scalar_t, class offset_t>
struct FusedStageForwardKernel {
  CNNFAST_KERNEL_NAME(FusedStageForwardKernel);
  const scalar_t* x;
  scalar_t* out;
  offset_t* offsets;
  FusedStageProblem p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    const Pool2dProblem& pool = p.pool;
    for_each_plane_cell(t, pool.planes, pool.out_h, pool.out_w, [&](const PlaneCell& o) {
      const int64_t n = o.plane / p.lrn.channels, c = o.plane % p.lrn.channels;
      const auto best = fused_stage_output(x, p, n, c, o.row, o.col);
      out[o.index] = best.value;
      offsets[o.index] = static_cast<offset_t>(best.offset);
    });
  }
};
CNNFAST_REGISTER_KERNEL(FusedStageForwardKernel);

// Backward's first pass: each input element's LRN gradient terms.
template <class scalar_t, class offset_t>
struct FusedStageGradTermsKernel {
  CNNFAST_KERNEL_NAME(FusedStageGradTermsKernel);
  using sum_t = lrn_sum_type<scalar_t>;
  const scalar_t* x;
  const scalar_t* grad_out;
  const offset_t* offsets;
  sum_t* scaled;
  sum_t* ratio;
  FusedStageProblem p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    const Pool2dProblem& pool = p.pool;
    for_each_plane_cell(t, pool.planes, pool.in_h, pool.in_w, [&](const PlaneCell& in) {
      const int64_t n = in.plane / p.lrn.channels, c = in.plane % p.lrn.channels;
      const LrnGradTerms<sum_t> terms =
          fused_stage_grad_terms(x, grad_out, offsets, p, n, c, in.row, in.col);
      scaled[in.index] = terms.scaled;
      ratio[in.index] = terms.ratio;
    });
  }
};
CNNFAST_REGISTER_KERNEL(FusedStageGradTermsKernel);

// Second pass: each input element's gradient from the terms of its channel
// window (the terms lie in x's layout).
template <class scalar_t>
struct FusedStageGradKernel {
  CNNFAST_KERNEL_NAME(FusedStageGradKernel);
  using sum_t = lrn_sum_type<scalar_t>;
  const scalar_t* x;
  const sum_t* scaled;
  const sum_t* ratio;
  scalar_t* grad_x;
  FusedStageProblem p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    const Pool2dProblem& pool = p.pool;
    for_each_plane_cell(t, pool.planes, pool.in_h, pool.in_w, [&](const PlaneCell& in) {
      const int64_t n = in.plane / p.lrn.channels, c = in.plane % p.lrn.channels;
      const int64_t column = n * p.lrn.channels * p.lrn.pixels + in.row * pool.in_w + in.col;
      const ColumnReader<sum_t> ratios{ratio + column, p.lrn.pixels};
      grad_x[in.index] = static_cast<scalar_t>(
          fused_stage_grad_from_terms(x, ratios, scaled[in.index], p, n, c, in.row, in.col));
    });
  }
};
CNNFAST_REGISTER_KERNEL(FusedStageGradKernel);

template <class Launcher>
std::tuple<at::Tensor, at::Tensor> relu_lrn_max_pool2d_forward(
    const at::Tensor& x, int64_t size, double alpha, double beta, double k,
    at::IntArrayRef kernel_size, at::IntArrayRef stride) {
  const char* op = "relu_lrn_max_pool2d";
  check_dtype(x, op, "x", /*allow_16bit=*/true);
  const FusedStageProblem p = fused_stage_problem(x, size, alpha, beta, k, kernel_size, stride, op);
  Launcher launcher(x.device());
  const at::Tensor input = x.contiguous();
  const auto sizes = pooled_sizes(x.sizes(), p.pool);
  at::Tensor out = at::empty(sizes, input.options());
  at::Tensor offsets = at::empty(sizes, input.options().dtype(pool_offset_dtype(p.pool)));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "relu_lrn_max_pool2d", [&] {
    dispatch_offset_type(offsets.scalar_type(), [&](auto tag) {
      using offset_t = decltype(tag);
      launcher.launch(elementwise_launch_shape(out.numel()),
                      FusedStageForwardKernel<scalar_t, offset_t>{
                          input.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                          offsets.mutable_data_ptr<offset_t>(), p});
    });
  });
  return {out, offsets};
}

template <class Launcher>
at::Tensor relu_lrn_max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& x,
                                        const at::Tensor& offsets, int64_t size, double alpha,
                                        double beta, double k, at::IntArrayRef kernel_size,
                                        at::IntArrayRef stride) {
  const char* op = "_relu_lrn_max_pool2d_backward";
  const FusedStageProblem p = fused_stage_backward_problem(
      grad_output, x, offsets, size, alpha, beta, k, kernel_size, stride, op, /*allow_16bit=*/true);
  Launcher launcher(x.device());
  const at::Tensor input = x.contiguous(), grad = grad_output.contiguous(), offs = offsets.contiguous();
  at::Tensor grad_x = at::empty_like(input);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "relu_lrn_max_pool2d_backward", [&] {
    const auto terms = lrn_grad_term_arrays<lrn_sum_type<scalar_t>>(input);
    const LaunchShape shape = elementwise_launch_shape(input.numel());
    dispatch_offset_type(offs.scalar_type(), [&](auto tag) {
      using offset_t = decltype(tag);
      launcher.launch(shape, FusedStageGradTermsKernel<scalar_t, offset_t>{
                                 input.const_data_ptr<scalar_t>(), grad.const_data_ptr<scalar_t>(),
                                 offs.const_data_ptr<offset_t>(), terms.scaled, terms.ratio, p});
    });
    launcher.launch(shape, FusedStageGradKernel<scalar_t>{input.const_data_ptr<scalar_t>(),
                                                          terms.scaled, terms.ratio,
                                                          grad_x.mutable_data_ptr<scalar_t>(), p});
  });
  return grad_x;
}

}  // namespace kernels
}  // namespace cnnfast
