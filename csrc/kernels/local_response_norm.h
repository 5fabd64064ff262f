#pragma once
// LRN: one thread per element, reading its pixel's channel column
// (csrc/common/lrn.h has the per-channel functions); backward in two passes.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <type_traits>

#include "../common/checks.h"
#include "../common/kernel_table.h"
#include "../common/launch.h"
#include "../common/lrn.h"

namespace cnnfast {
namespace kernels {

// One thread per element: the planes are the (sample, channel) pairs, each
// a single row of pixels; an element reads its pixel's channel column
// (channel stride = pixels), which starts at channel 0 of its sample. The
// indices are Index: 32-bit wherever they fit (launch_per_element), as a
// GPU divides and multiplies 32-bit integers several times faster; with
// 64-bit ones the forward took 324 SASS instructions an element.
template <class Index>
struct LrnElements {
  Index count = 0, pixels = 1, channels = 1;
  Divisor<Index> by_pixels, by_channels;  // built on the host
};

template <class Index>
LrnElements<Index> lrn_elements(const LrnProblem& p) {
  LrnElements<Index> e;
  e.count = static_cast<Index>(p.batch * p.channels * p.pixels);
  e.pixels = static_cast<Index>(p.pixels);
  e.channels = static_cast<Index>(p.channels);
  e.by_pixels = Divisor<Index>(e.pixels);
  e.by_channels = Divisor<Index>(e.channels);
  return e;
}

// An element: its index, its channel, and where its pixel's column starts.
template <class Index>
struct LrnElement {
  Index index, channel, column;
};

template <class Index, class F>
CNNFAST_INLINE void for_each_lrn_element(const ThreadIndex& t, const LrnElements<Index>& e,
                                         const F& f) {
  for_each_plane_cell_as<Index>(t, e.count, e.by_pixels, e.by_pixels,
                                [&](const BasicPlaneCell<Index>& cell) {
    const Index channel = cell.plane - e.by_channels.divide(cell.plane) * e.channels;
    f(LrnElement<Index>{cell.index, channel, (cell.plane - channel) * e.pixels + cell.col});
  });
}

// The index type of a (reference to an) LrnElements.
template <class Elements>
using index_of_elements = decltype(std::decay_t<Elements>::count);

// Launches make_kernel(elements), one thread per element, in 32-bit
// arithmetic where every index plus the grid's step fits, and every channel
// a window reaches (at most channels + size). No elements, no launch (and
// no divisor by 0).
template <class Launcher, class MakeKernel>
void launch_per_element(const Launcher& launcher, const LrnProblem& p,
                        const MakeKernel& make_kernel) {
  const int64_t count = p.batch * p.channels * p.pixels;
  if (count == 0) return;
  const LaunchShape shape = elementwise_launch_shape(count);
  if (count + shape.grid.count() * shape.block.count() <= INT32_MAX &&
      p.channels + p.size <= INT32_MAX)
    launcher.launch(shape, make_kernel(lrn_elements<int32_t>(p)));
  else
    launcher.launch(shape, make_kernel(lrn_elements<int64_t>(p)));
}

template <class scalar_t, class Index>
struct LrnForwardKernel {
  CNNFAST_KERNEL_NAME(LrnForwardKernel);
  const scalar_t* x;
  scalar_t* out;
  LrnProblem p;
  LrnElements<Index> e;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    using sum_t = lrn_sum_type<scalar_t>;
    for_each_lrn_element(t, e, [&](const LrnElement<Index>& el) {
      const ColumnReader<scalar_t, Index> input{x + el.column, e.pixels};
      out[el.index] = static_cast<scalar_t>(lrn_value_at<sum_t>(input, p, el.channel));
    });
  }
};
CNNFAST_REGISTER_KERNEL(LrnForwardKernel);

// Backward's first pass: each element's two gradient terms (lrn.h), kept
// in the sum type.
template <class scalar_t, class Index>
struct LrnGradTermsKernel {
  CNNFAST_KERNEL_NAME(LrnGradTermsKernel);
  using sum_t = lrn_sum_type<scalar_t>;
  const scalar_t* x;
  const scalar_t* grad_out;
  sum_t* scaled;
  sum_t* ratio;
  LrnProblem p;
  LrnElements<Index> e;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    for_each_lrn_element(t, e, [&](const LrnElement<Index>& el) {
      const ColumnReader<scalar_t, Index> input{x + el.column, e.pixels};
      const LrnGradTerms<sum_t> terms =
          lrn_grad_terms<sum_t>(input, static_cast<sum_t>(grad_out[el.index]), p, el.channel);
      scaled[el.index] = terms.scaled;
      ratio[el.index] = terms.ratio;
    });
  }
};
CNNFAST_REGISTER_KERNEL(LrnGradTermsKernel);

// Second pass: each element's gradient from the terms of its channel window.
template <class scalar_t, class Index>
struct LrnGradKernel {
  CNNFAST_KERNEL_NAME(LrnGradKernel);
  using sum_t = lrn_sum_type<scalar_t>;
  const scalar_t* x;
  const sum_t* scaled;
  const sum_t* ratio;
  scalar_t* grad_x;
  LrnProblem p;
  LrnElements<Index> e;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    for_each_lrn_element(t, e, [&](const LrnElement<Index>& el) {
      const ColumnReader<scalar_t, Index> input{x + el.column, e.pixels};
      const ColumnReader<sum_t, Index> ratios{ratio + el.column, e.pixels};
      grad_x[el.index] = static_cast<scalar_t>(
          lrn_grad_from_terms<sum_t>(input, ratios, scaled[el.index], p, el.channel));
    });
  }
};
CNNFAST_REGISTER_KERNEL(LrnGradKernel);

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
    launch_per_element(launcher, p, [&](const auto& elements) {
      return LrnForwardKernel<scalar_t, index_of_elements<decltype(elements)>>{
          input.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), p, elements};
    });
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
    launch_per_element(launcher, p, [&](const auto& elements) {
      return LrnGradTermsKernel<scalar_t, index_of_elements<decltype(elements)>>{
          input.const_data_ptr<scalar_t>(), grad.const_data_ptr<scalar_t>(), terms.scaled,
          terms.ratio, p, elements};
    });
    launch_per_element(launcher, p, [&](const auto& elements) {
      return LrnGradKernel<scalar_t, index_of_elements<decltype(elements)>>{
          input.const_data_ptr<scalar_t>(), terms.scaled, terms.ratio,
          grad_x.mutable_data_ptr<scalar_t>(), p, elements};
    });
  });
  return grad_x;
}

}  // namespace kernels
}  // namespace cnnfast
