#pragma once
// Max pooling: forward writes the maximum and its offset inside the window;
// backward gathers, one thread per input cell.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <cstdlib>
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

// The same, a band of output rows of one plane per thread block: the
// input rows their windows read are first copied into shared memory, each
// warp load 32 consecutive cells (a thread per output loads at a stride of
// `stride` cells, and the rows two bands of windows share twice).
template <class scalar_t, class offset_t, class Index, int kWindow>
struct MaxPool2dBandForwardKernel {
  using acc_t = acc_type<scalar_t>;
  static constexpr int kThreads = 256, kMinBlocksPerSM = 4, kBandCells = 4096, kInFlight = 4;
  struct Shared {
    acc_t x[kBandCells];
  };
  struct Registers {};

  const scalar_t* x;
  scalar_t* out;
  offset_t* offsets;
  BasicPool2dProblem<Index> p;
  Index band_rows;  // output rows a band, the last band fewer
  Divisor<Index> by_bands;

  template <class Block>
  CNNFAST_HD void operator()(Block& block, Shared& sh) const {
    const Index b = static_cast<Index>(block.index().block_idx.x);
    const Index plane = by_bands.divide(b), band = b - plane * by_bands.value;
    const Index oh_begin = band * band_rows, oh_end = min_of(oh_begin + band_rows, p.out_h);
    const Index h_begin = max_of(oh_begin * p.stride_h - p.pad_h, Index(0));
    const Index h_end = min_of((oh_end - 1) * p.stride_h - p.pad_h + p.kernel_h, p.in_h);
    const Index cells = (h_end - h_begin) * p.in_w;
    const scalar_t* rows = x + plane * p.in_plane() + h_begin * p.in_w;
    block.each_thread([&](const ThreadIndex& t, Registers&) {
      for (Index i = static_cast<Index>(t.thread_idx.x); i < cells; i += kInFlight * kThreads) {
        acc_t values[kInFlight];
        CNNFAST_UNROLL
        for (int k = 0; k < kInFlight; ++k)
          values[k] = i + k * kThreads < cells ? static_cast<acc_t>(rows[i + k * kThreads]) : acc_t(0);
        CNNFAST_UNROLL
        for (int k = 0; k < kInFlight; ++k)
          if (i + k * kThreads < cells) sh.x[i + k * kThreads] = values[k];
      }
    });
    block.barrier();
    const Index windows = (oh_end - oh_begin) * p.out_w;
    const Index first_out = plane * p.out_plane() + oh_begin * p.out_w;
    block.each_thread([&](const ThreadIndex& t, Registers&) {
      for (Index j = static_cast<Index>(t.thread_idx.x); j < windows; j += kThreads) {
        const Index row = p.by_out_w.divide(j);
        const auto best = max_in_window_of<scalar_t, kWindow>(
            [&](Index h, Index w) { return sh.x[(h - h_begin) * p.in_w + w]; }, p, oh_begin + row,
            j - row * p.out_w);
        out[first_out + j] = best.value;
        offsets[first_out + j] = static_cast<offset_t>(best.offset);
      }
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

// The same stride blocks, a band of whole block rows of one plane per
// thread block, scattered into shared memory and written out in order:
// every warp store then covers 32 consecutive cells (a thread per stride
// block stores at a stride of kStride cells, and spends ~38 instructions
// a cell on the gather; here ~20). Each window adds its gradient to the
// cell it chose; the four windows that can choose a cell of block (by, bx)
// -- (by - 1 + r, bx - 1 + c), r, c in {0, 1} -- add in four passes, (r, c)
// = (0, 0), (0, 1), (1, 0), (1, 1), apart by barriers: so no two windows of
// a pass add to one cell, and each cell sums in output order, as
// MaxPoolBlockGather does. A window chose a cell r = 0 (c = 0) of its own
// when the cell lies a stride or more below (right of) the window's start.
template <class scalar_t, class offset_t, class Index, int kStride>
struct MaxPool2dBandBackwardKernel {
  using acc_t = acc_type<scalar_t>;
  static constexpr int kThreads = 256, kMinBlocksPerSM = 4;
  static constexpr int kWindowsPerThread = 4, kBandCells = 4096;
  static constexpr int kNoPass = 4;  // a window whose cell is not in the band
  struct Shared {
    acc_t grad[kBandCells];
  };
  struct Registers {
    acc_t grad[kWindowsPerThread];
    Index cell[kWindowsPerThread];  // in the band
    int pass[kWindowsPerThread];
  };

  const scalar_t* grad_out;
  const offset_t* offsets;
  scalar_t* grad_x;
  BasicPool2dProblem<Index> p;
  BasicStrideBlocks<Index> blocks;
  Index band_rows;  // block rows a band, the last band fewer
  Divisor<Index> by_bands, by_kernel_w;

  template <class Block>
  CNNFAST_HD void operator()(Block& block, Shared& sh) const {
    const Index b = static_cast<Index>(block.index().block_idx.x);
    const Index plane = by_bands.divide(b), band = b - plane * by_bands.value;
    // Block rows [first, end); their input rows [h_begin, h_end); the
    // windows that cover them, output rows [oh_begin, oh_end).
    const Index first = blocks.first_row + band * band_rows;
    const Index end = min_of(first + band_rows, blocks.first_row + blocks.rows);
    const Index h_begin = max_of(first * kStride - p.pad_h, Index(0));
    const Index h_end = min_of(end * kStride - p.pad_h, p.in_h);
    const Index cells = (h_end - h_begin) * p.in_w;
    const Index oh_begin = max_of(first - 1, Index(0)), oh_end = min_of(end, p.out_h);
    const Index windows = (oh_end - oh_begin) * p.out_w;
    const Index first_window = plane * p.out_plane() + oh_begin * p.out_w;
    block.each_thread([&](const ThreadIndex& t, Registers& r) {
      // All loads first, with no branch between them: a thread past the
      // last window loads the plane's first output and ignores it.
      Index saved[kWindowsPerThread];
      CNNFAST_UNROLL
      for (int k = 0; k < kWindowsPerThread; ++k) {
        const Index j = static_cast<Index>(t.thread_idx.x) + k * kThreads;
        const Index at = j < windows ? first_window + j : plane * p.out_plane();
        r.grad[k] = static_cast<acc_t>(grad_out[at]);
        saved[k] = static_cast<Index>(offsets[at]);
      }
      CNNFAST_UNROLL
      for (int k = 0; k < kWindowsPerThread; ++k) {
        const Index j = static_cast<Index>(t.thread_idx.x) + k * kThreads;
        const Index row = p.by_out_w.divide(j), oh = oh_begin + row, ow = j - row * p.out_w;
        const Index dy = by_kernel_w.divide(saved[k]), dx = saved[k] - dy * p.kernel_w;
        const Index h = oh * kStride - p.pad_h + dy, w = ow * kStride - p.pad_w + dx;
        // Offsets the forward cannot have written choose no cell.
        const bool chosen = j < windows && saved[k] >= 0 && saved[k] < p.window_cells() &&
                            h >= h_begin && h < h_end && w >= 0 && w < p.in_w;
        r.cell[k] = (h - h_begin) * p.in_w + w;
        r.pass[k] = chosen ? 2 * (dy < kStride) + (dx < kStride) : kNoPass;
      }
      for (Index i = static_cast<Index>(t.thread_idx.x); i < cells; i += kThreads) sh.grad[i] = 0;
    });
    for (int pass = 0; pass < 4; ++pass) {
      block.barrier();
      block.each_thread([&](const ThreadIndex&, Registers& r) {
        CNNFAST_UNROLL
        for (int k = 0; k < kWindowsPerThread; ++k)
          if (r.pass[k] == pass) sh.grad[r.cell[k]] += r.grad[k];
      });
    }
    block.barrier();
    block.each_thread([&](const ThreadIndex& t, Registers&) {
      scalar_t* out = grad_x + plane * p.in_plane() + h_begin * p.in_w;
      for (Index i = static_cast<Index>(t.thread_idx.x); i < cells; i += kThreads)
        out[i] = static_cast<scalar_t>(sh.grad[i]);
    });
  }
};

// EXPERIMENT (to be removed): CNNFAST_EXPERIMENT_BLOCK_GRAD=1 and
// CNNFAST_EXPERIMENT_CELL_FORWARD=1 time the kernels before the bands
// against them on a GPU.
inline bool experiment_forces_block_grad() {
  const char* value = std::getenv("CNNFAST_EXPERIMENT_BLOCK_GRAD");
  return value != nullptr && value[0] == '1';
}
inline bool experiment_forces_cell_forward() {
  const char* value = std::getenv("CNNFAST_EXPERIMENT_CELL_FORWARD");
  return value != nullptr && value[0] == '1';
}

// Launches make_kernel(problem, output rows a band, bands a plane), a
// thread block per band of MaxPool2dBandForwardKernel: as many output rows
// as the input rows of its shared tile hold, evened out over the plane's
// bands; false where one output row's windows need more.
template <class Launcher, class MakeKernel>
bool launch_forward_bands(const Launcher& launcher, const Pool2dProblem& p,
                          const MakeKernel& make_kernel) {
  using Sizes = MaxPool2dBandForwardKernel<float, uint8_t, int64_t, 0>;
  const int64_t in_rows = Sizes::kBandCells / p.in_w;
  if (in_rows < p.kernel_h) return false;
  const int64_t most = (in_rows - p.kernel_h) / p.stride_h + 1;
  const int64_t bands = ceil_div(p.out_h, most), rows = ceil_div(p.out_h, bands);
  LaunchShape shape;
  shape.block.x = Sizes::kThreads;
  shape.grid.x = p.planes * bands;
  if (p.fits_int32(0) && shape.grid.x <= INT32_MAX)
    launcher.launch_blocks(shape, make_kernel(p.as<int32_t>(), static_cast<int32_t>(rows),
                                              static_cast<int32_t>(bands)));
  else
    launcher.launch_blocks(shape, make_kernel(p.as<int64_t>(), rows, bands));
  return true;
}

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
      const auto launch_bands = [&](auto window) {
        return !experiment_forces_cell_forward() &&
               launch_forward_bands(launcher, p, [&](const auto& problem, auto rows, auto bands) {
                 using Index = index_of<decltype(problem)>;
                 return MaxPool2dBandForwardKernel<scalar_t, offset_t, Index, decltype(window)::value>{
                     input.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                     offsets.mutable_data_ptr<offset_t>(), problem, rows, Divisor<Index>(bands)};
               });
      };
      // Windows of up to 3 × 3 (AlexNet's, LeNet-style 2 × 2): the unrolled scan.
      if (p.kernel_h <= 3 && p.kernel_w <= 3) {
        if (!launch_bands(std::integral_constant<int, 3>{})) launch(std::integral_constant<int, 3>{});
      } else if (!launch_bands(std::integral_constant<int, 0>{})) {
        launch(std::integral_constant<int, 0>{});
      }
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

// Block rows a band of MaxPool2dBandBackwardKernel: as many as its shared
// tile and its threads' windows hold, evened out over the plane's bands;
// 0 where a plane's rows are too wide for one.
template <template <class, class, class, int> class Kernel, int kStride>
int64_t band_rows(const Pool2dProblem& p, int64_t block_rows) {
  using Sizes = Kernel<float, uint8_t, int64_t, kStride>;
  const int64_t by_cells = Sizes::kBandCells / (kStride * p.in_w);
  const int64_t by_windows = Sizes::kThreads * Sizes::kWindowsPerThread / p.out_w - 1;
  const int64_t most = min_of(by_cells, by_windows);
  if (most < 1) return 0;
  return ceil_div(block_rows, ceil_div(block_rows, most));
}

// Launches make_kernel(problem, blocks, rows a band, bands a plane), a
// thread block per band, in 32-bit arithmetic where every index fits;
// false where the rows are too wide for a band.
template <int kStride, class Launcher, class MakeKernel>
bool launch_per_band(const Launcher& launcher, const Pool2dProblem& p,
                     const MakeKernel& make_kernel) {
  const BasicStrideBlocks<int64_t> blocks = stride_blocks<int64_t, kStride>(p.as<int64_t>());
  const int64_t rows = band_rows<MaxPool2dBandBackwardKernel, kStride>(p, blocks.rows);
  if (rows == 0) return false;
  const int64_t bands = ceil_div(blocks.rows, rows);
  LaunchShape shape;
  shape.block.x = MaxPool2dBandBackwardKernel<float, uint8_t, int64_t, kStride>::kThreads;
  shape.grid.x = p.planes * bands;
  if (p.fits_int32(0) && shape.grid.x <= INT32_MAX) {
    const BasicPool2dProblem<int32_t> narrow = p.as<int32_t>();
    launcher.launch_blocks(shape, make_kernel(narrow, stride_blocks<int32_t, kStride>(narrow),
                                              static_cast<int32_t>(rows), static_cast<int32_t>(bands)));
  } else {
    launcher.launch_blocks(shape, make_kernel(p.as<int64_t>(), blocks, rows, bands));
  }
  return true;
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
      const bool band =
          takes_block_grad<kStride>(p) && !experiment_forces_block_grad() &&
          launch_per_band<kStride>(launcher, p, [&](const auto& problem, const auto& blocks,
                                                    auto rows, auto bands) {
            using Index = index_of<decltype(problem)>;
            return MaxPool2dBandBackwardKernel<scalar_t, offset_t, Index, kStride>{
                grad.const_data_ptr<scalar_t>(), offs.const_data_ptr<offset_t>(),
                grad_x.mutable_data_ptr<scalar_t>(), problem, blocks, rows,
                Divisor<Index>(bands), Divisor<Index>(problem.kernel_w)};
          });
      if (band) return;
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
