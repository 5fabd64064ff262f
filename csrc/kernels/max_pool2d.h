#pragma once
// Max pooling: forward writes the maximum and its offset inside the window;
// backward gathers, one thread per input cell.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <tuple>
#include <type_traits>

#include "../common/checks.h"
#include "../common/launch.h"
#include "../common/pool2d.h"

namespace cnnfast {
namespace kernels {

// kWindow: windows of at most that many cells along each axis, or 0 for any
// size (csrc/common/pool2d.h, max_in_window_of).
template <class scalar_t, class offset_t, class Index, int kWindow>
struct MaxPool2dForwardKernel {
  const scalar_t* x;
  scalar_t* out;
  offset_t* offsets;
  BasicPool2dProblem<Index> p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    for_each_plane_cell_as<Index>(t, p.planes * p.out_plane(), p.by_out_plane, p.by_out_w,
                                  [&](const BasicPlaneCell<Index>& o) {
      const auto best = max_in_window<kWindow>(x + o.plane * p.in_plane(), p, o.row, o.col);
      out[o.index] = best.value;
      offsets[o.index] = static_cast<offset_t>(best.offset);
    });
  }
};

// kCover: at most that many windows cover a cell along each axis, or 0 for
// any number (csrc/common/pool2d.h, max_pool_input_grad).
template <class scalar_t, class offset_t, class Index, int kCover>
struct MaxPool2dBackwardKernel {
  const scalar_t* grad_out;
  const offset_t* offsets;
  scalar_t* grad_x;
  BasicPool2dProblem<Index> p;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    for_each_plane_cell_as<Index>(t, p.planes * p.in_plane(), p.by_in_plane, p.by_in_w,
                                  [&](const BasicPlaneCell<Index>& in) {
      const Index first_out = in.plane * p.out_plane();
      grad_x[in.index] = static_cast<scalar_t>(
          max_pool_input_grad<kCover>(grad_out + first_out, offsets + first_out, p, in.row, in.col));
    });
  }
};

// Stride kStride, windows at most two strides wide (AlexNet's 3 × 3 and the
// common 2 × 2 at stride 2): one thread per stride block of input cells
// (csrc/common/pool2d.h, MaxPoolBlockGather). A thread per cell, as above,
// works out and reads up to four windows for each cell: in float, 135
// instructions a cell, the window loads one after the other (each
// branching on the offset it read); here 153 a block of four cells, its
// eight loads issued together.
template <class scalar_t, class offset_t, class Index, int kStride>
struct MaxPool2dBlockBackwardKernel {
  const scalar_t* grad_out;
  const offset_t* offsets;
  scalar_t* grad_x;
  BasicPool2dProblem<Index> p;
  BasicStrideBlocks<Index> blocks;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    using Unsigned = std::make_unsigned_t<Index>;
    const MaxPoolBlockGather<kStride, Index> gather(p);
    for_each_plane_cell_as<Index>(t, p.planes * blocks.plane(), blocks.by_plane, blocks.by_cols,
                                  [&](const BasicPlaneCell<Index>& block) {
      const Index by = blocks.first_row + block.row, bx = blocks.first_col + block.col;
      acc_type<scalar_t> grad[kStride][kStride];
      gather(grad_out, offsets, block.plane * p.out_plane(), p, by, bx, grad);
      // The block's first cell, which may lie in the padding.
      const Index h0 = by * kStride - p.pad_h, w0 = bx * kStride - p.pad_w;
      const Index first = block.plane * p.in_plane() + h0 * p.in_w + w0;
      CNNFAST_UNROLL
      for (int dy = 0; dy < kStride; ++dy)
        CNNFAST_UNROLL
        for (int dx = 0; dx < kStride; ++dx)
          if (static_cast<Unsigned>(h0 + dy) < static_cast<Unsigned>(p.in_h) &&
              static_cast<Unsigned>(w0 + dx) < static_cast<Unsigned>(p.in_w))
            grad_x[first + dy * p.in_w + dx] = static_cast<scalar_t>(grad[dy][dx]);
    });
  }
};

template <class Launcher>
std::tuple<at::Tensor, at::Tensor> max_pool2d_forward(const at::Tensor& x,
                                                      at::IntArrayRef kernel_size,
                                                      at::IntArrayRef stride,
                                                      at::IntArrayRef padding, bool ceil_mode) {
  check_dtype(x, "max_pool2d", "x", /*allow_16bit=*/true);
  const Pool2dProblem p =
      pool2d_problem(x, kernel_size, stride, padding, ceil_mode, true, "max_pool2d");
  Launcher launcher(x.device());
  const at::Tensor input = x.contiguous();
  const auto sizes = pooled_sizes(x.sizes(), p);
  at::Tensor out = at::empty(sizes, input.options());
  at::Tensor offsets = at::empty(sizes, input.options().dtype(pool_offset_dtype(p)));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "max_pool2d", [&] {
    dispatch_offset_type(offsets.scalar_type(), [&](auto tag) {
      using offset_t = decltype(tag);
      const auto launch = [&](auto window) {
        launch_per_cell(launcher, out.numel(), p, [&](const auto& problem) {
          return MaxPool2dForwardKernel<scalar_t, offset_t, index_of<decltype(problem)>,
                                        decltype(window)::value>{
              input.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
              offsets.mutable_data_ptr<offset_t>(), problem};
        });
      };
      // Windows of up to 3 × 3 (AlexNet's, LeNet-style 2 × 2): the unrolled scan.
      if (p.kernel_h <= 3 && p.kernel_w <= 3)
        launch(std::integral_constant<int, 3>{});
      else
        launch(std::integral_constant<int, 0>{});
    });
  });
  return {out, offsets};
}

// Launches make_kernel(problem, blocks), one thread per stride block
// (csrc/common/pool2d.h, stride_blocks), in 32-bit arithmetic where every
// index fits.
template <int kStride, class Launcher, class MakeKernel>
void launch_per_block(const Launcher& launcher, const Pool2dProblem& p,
                      const MakeKernel& make_kernel) {
  const Pool2dProblem wide = p.as<int64_t>();
  const BasicStrideBlocks<int64_t> blocks = stride_blocks<int64_t, kStride>(wide);
  const int64_t count = p.planes * blocks.plane();
  const LaunchShape shape = elementwise_launch_shape(count);
  const int64_t threads = shape.grid.count() * shape.block.count();
  if (p.fits_int32(threads) && count + threads <= INT32_MAX) {
    const BasicPool2dProblem<int32_t> narrow = p.as<int32_t>();
    launcher.launch(shape, make_kernel(narrow, stride_blocks<int32_t, kStride>(narrow)));
  } else {
    launcher.launch(shape, make_kernel(wide, blocks));
  }
}

template <class Launcher>
at::Tensor max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& offsets,
                               c10::SymIntArrayRef input_size, at::IntArrayRef kernel_size,
                               at::IntArrayRef stride, at::IntArrayRef padding) {
  const char* op = "_max_pool2d_backward";
  check_dtype(grad_output, op, "grad_output", /*allow_16bit=*/true);
  const Pool2dProblem p =
      pool2d_backward_problem(grad_output, input_size, kernel_size, stride, padding, true, op);
  check_offsets(offsets, grad_output, p, op);
  Launcher launcher(grad_output.device());
  const at::Tensor grad = grad_output.contiguous();
  const at::Tensor offs = offsets.contiguous();
  at::Tensor grad_x = at::empty(C10_AS_INTARRAYREF_SLOW(input_size), grad.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "pool2d_backward", [&] {
    dispatch_offset_type(offs.scalar_type(), [&](auto tag) {
      using offset_t = decltype(tag);
      const auto launch = [&](auto cover) {
        launch_per_cell(launcher, grad_x.numel(), p, [&](const auto& problem) {
          return MaxPool2dBackwardKernel<scalar_t, offset_t, index_of<decltype(problem)>,
                                         decltype(cover)::value>{
              grad.const_data_ptr<scalar_t>(), offs.const_data_ptr<offset_t>(),
              grad_x.mutable_data_ptr<scalar_t>(), problem};
        });
      };
      constexpr int kStride = 2;
      if (takes_block_grad<kStride>(p)) {
        launch_per_block<kStride>(launcher, p, [&](const auto& problem, const auto& blocks) {
          return MaxPool2dBlockBackwardKernel<scalar_t, offset_t, index_of<decltype(problem)>,
                                              kStride>{
              grad.const_data_ptr<scalar_t>(), offs.const_data_ptr<offset_t>(),
              grad_x.mutable_data_ptr<scalar_t>(), problem, blocks};
        });
        return;
      }
      // Up to 2×2 covering windows (any window no wider than twice its
      // stride): the unrolled gather.
      if (ceil_div(p.kernel_h, p.stride_h) <= 2 && ceil_div(p.kernel_w, p.stride_w) <= 2)
        launch(std::integral_constant<int, 2>{});
      else
        launch(std::integral_constant<int, 0>{});
    });
  });
  return grad_x;
}

}  // namespace kernels
}  // namespace cnnfast
