#pragma once
// Average pooling: one thread per output forward, one per input cell
// backward (a gather: deterministic, no atomics).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include "../common/checks.h"
#include "../common/kernel_table.h"
#include "../common/launch.h"
#include "../common/pool2d.h"


namespace cnnfast {
namespace kernels {

template <class scalar_t, class Index>
struct AvgPool2dForwardKernel {
  CNNFAST_KERNEL_NAME(AvgPool2dForwardKernel);
  const scalar_t* x;
  scalar_t* out;
  BasicPool2dProblem<Index> p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    for_each_plane_cell_as<Index>(t, p.planes * p.out_plane(), p.by_out_plane, p.by_out_w,
                                  [&](const BasicPlaneCell<Index>& o) {
      out[o.index] = avg_in_window(x + o.plane * p.in_plane(), p, o.row, o.col);
    });
  }
};
CNNFAST_REGISTER_KERNEL(AvgPool2dForwardKernel);

template <class scalar_t, class Index>
struct AvgPool2dBackwardKernel {
  CNNFAST_KERNEL_NAME(AvgPool2dBackwardKernel);
  const scalar_t* grad_out;
  scalar_t* grad_x;
  BasicPool2dProblem<Index> p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    for_each_plane_cell_as<Index>(t, p.planes * p.in_plane(), p.by_in_plane, p.by_in_w,
                                  [&](const BasicPlaneCell<Index>& in) {
      grad_x[in.index] = static_cast<scalar_t>(
          avg_pool_input_grad(grad_out + in.plane * p.out_plane(), p, in.row, in.col));
    });
  }
};
CNNFAST_REGISTER_KERNEL(AvgPool2dBackwardKernel);

template <class Launcher>
at::Tensor avg_pool2d_forward(const at::Tensor& x, at::IntArrayRef kernel_size,
                              at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                              bool count_include_pad) {
  check_dtype(x, "avg_pool2d", "x", /*allow_16bit=*/true);
  const Pool2dProblem p = pool2d_problem(x, kernel_size, stride, padding, ceil_mode,
                                         count_include_pad, "avg_pool2d");
  Launcher launcher(x.device());
  const at::Tensor input = x.contiguous();
  at::Tensor out = at::empty(pooled_sizes(x.sizes(), p), input.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "avg_pool2d", [&] {
    launch_per_cell(launcher, out.numel(), p, [&](const auto& problem) {
      using Index = index_of<decltype(problem)>;
      return AvgPool2dForwardKernel<scalar_t, Index>{input.const_data_ptr<scalar_t>(),
                                                     out.mutable_data_ptr<scalar_t>(), problem};
    });
  });
  return out;
}

template <class Launcher>
at::Tensor avg_pool2d_backward(const at::Tensor& grad_output, c10::SymIntArrayRef input_size,
                               at::IntArrayRef kernel_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, bool count_include_pad) {
  const char* op = "_avg_pool2d_backward";
  check_dtype(grad_output, op, "grad_output", /*allow_16bit=*/true);
  const Pool2dProblem p = pool2d_backward_problem(grad_output, input_size, kernel_size, stride,
                                                  padding, count_include_pad, op);
  Launcher launcher(grad_output.device());
  const at::Tensor grad = grad_output.contiguous();
  at::Tensor grad_x = at::empty(C10_AS_INTARRAYREF_SLOW(input_size), grad.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "pool2d_backward", [&] {
    launch_per_cell(launcher, grad_x.numel(), p, [&](const auto& problem) {
      using Index = index_of<decltype(problem)>;
      return AvgPool2dBackwardKernel<scalar_t, Index>{grad.const_data_ptr<scalar_t>(),
                                                      grad_x.mutable_data_ptr<scalar_t>(), problem};
    });
  });
  return grad_x;
}

}  // namespace kernels
}  // namespace cnnfast
