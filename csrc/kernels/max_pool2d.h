#pragma once
// Max pooling: forward writes the maximum and its offset inside the window;
// backward sums, per input cell, the gradients of the windows that chose
// it, in output order (deterministic, no atomics).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <tuple>
#include <type_traits>

#include "../common/checks.h"
#include "../common/kernel_table.h"
#include "../common/launch.h"
#include "../common/pool2d.h"

namespace cnnfast {
namespace kernels {

// kWindow: windows of at most that many cells along each axis, or 0 for any
// size (csrc/common/pool2d.h, max_in_window_of).
template <class scalar_t, class offset_t, class Index, int kWindow>
struct MaxPool2dForwardKernel {
  CNNFAST_KERNEL_NAME(MaxPool2dForwardKernel);
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
CNNFAST_REGISTER_KERNEL(MaxPool2dForwardKernel);

// kCover: at most that many windows cover a cell along each axis, or 0 for
// any number (csrc/common/pool2d.h, max_pool_input_grad).
template <class scalar_t, class offset_t, class Index, int kCover>
struct MaxPool2dBackwardKernel {
  CNNFAST_KERNEL_NAME(MaxPool2dBackwardKernel);
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
CNNFAST_REGISTER_KERNEL(MaxPool2dBackwardKernel);

// Stride kStride, windows at most two strides wide (AlexNet's 3 × 3 and the
// common 2 × 2 at stride 2): one thread per stride block of input cells
// (csrc/common/pool2d.h, MaxPoolBlockGather). A thread per cell, as above,
// works out and reads up to four windows for each cell: in float, 135
// instructions a cell, the window loads one after the other (each
// branching on the offset it read); here 153 a block of four cells, its
// eight loads issued together. The bands below take these problems
// wherever a plane's rows fit one; this kernel, where they are wider.
template <class scalar_t, class offset_t, class Index, int kStride>
struct MaxPool2dBlockBackwardKernel {
  CNNFAST_KERNEL_NAME(MaxPool2dBlockBackwardKernel);
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
CNNFAST_REGISTER_KERNEL(MaxPool2dBlockBackwardKernel);

// The same stride blocks, a band of whole block rows of one plane per
// thread block (or of several whole planes, where they are small),
// scattered into shared memory and written out in order: every warp store
// then covers 32 consecutive cells, where a thread per stride block stores
// at a stride of kStride cells (on an H100 at AlexNet's pool1: 2,563 GB/s
// against 1,937). Each window adds its gradient to the cell it chose;
// the four windows that can choose a cell of block (by, bx) -- (by - 1 + r,
// bx - 1 + c), r, c in {0, 1} -- add in four passes, (r, c) = (0, 0),
// (0, 1), (1, 0), (1, 1), apart by barriers: so no two windows of a pass
// add to one cell, and each cell sums in output order, as
// MaxPoolBlockGather does. A window chose a cell r = 0 (c = 0) of its own
// when the cell lies a stride or more below (right of) the window's start.
template <class scalar_t, class offset_t, class Index, int kStride>
struct MaxPool2dBandBackwardKernel {
  CNNFAST_KERNEL_NAME(MaxPool2dBandBackwardKernel);
  using acc_t = acc_type<scalar_t>;
  // Six blocks an SM in 32-bit arithmetic (≤ 40 registers; nvcc took 56,
  // for four); 64-bit indices would spill there.
  static constexpr int kThreads = 256, kMinBlocksPerSM = sizeof(Index) == 4 ? 6 : 4;
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
  Index planes_a_block;  // more than 1 only where one band holds a plane
  Divisor<Index> by_bands, by_kernel_w;
  Divisor<Index> by_plane_windows;  // a whole plane's band's windows

  template <class Block>
  CNNFAST_HD void operator()(Block& block, Shared& sh) const {
    const Index b = static_cast<Index>(block.index().block_idx.x);
    const Index group = by_bands.divide(b), band = b - group * by_bands.value;
    const Index first_plane = group * planes_a_block;
    const Index planes = min_of(planes_a_block, p.planes - first_plane);
    const BasicPoolBand<Index> span =
        pool_band<kStride>(p, blocks, blocks.first_row + band * band_rows, band_rows);
    const Index plane_cells = (span.h_end - span.h_begin) * p.in_w;
    const Index plane_windows = (span.oh_end - span.oh_begin) * p.out_w;
    const Index cells = planes * plane_cells, windows = planes * plane_windows;
    block.each_thread([&](const ThreadIndex& t, Registers& r) {
      // All loads first, with no branch between them: a thread past the
      // last window loads the block's first plane's first output and
      // ignores it.
      Index saved[kWindowsPerThread];
      CNNFAST_UNROLL
      for (int k = 0; k < kWindowsPerThread; ++k) {
        const Index j = static_cast<Index>(t.thread_idx.x) + k * kThreads;
        const bool exists = j < windows;
        const Index q = planes_a_block > 1 && exists ? by_plane_windows.divide(j) : Index(0);
        const Index at = (first_plane + q) * p.out_plane() +
                         (exists ? span.oh_begin * p.out_w + j - q * plane_windows : Index(0));
        r.grad[k] = static_cast<acc_t>(grad_out[at]);
        saved[k] = static_cast<Index>(offsets[at]);
      }
      CNNFAST_UNROLL
      for (int k = 0; k < kWindowsPerThread; ++k) {
        const Index j = static_cast<Index>(t.thread_idx.x) + k * kThreads;
        const Index q = planes_a_block > 1 ? by_plane_windows.divide(j) : Index(0);
        const Index in_plane = j - q * plane_windows;
        const Index row = p.by_out_w.divide(in_plane);
        const Index oh = span.oh_begin + row, ow = in_plane - row * p.out_w;
        const Index dy = by_kernel_w.divide(saved[k]), dx = saved[k] - dy * p.kernel_w;
        const Index h = oh * kStride - p.pad_h + dy, w = ow * kStride - p.pad_w + dx;
        // Offsets the forward cannot have written choose no cell.
        const bool chosen = j < windows && saved[k] >= 0 && saved[k] < p.window_cells() &&
                            h >= span.h_begin && h < span.h_end && w >= 0 && w < p.in_w;
        r.cell[k] = q * plane_cells + (h - span.h_begin) * p.in_w + w;
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
    // Several planes' cells follow one another: their bands are whole planes.
    block.each_thread([&](const ThreadIndex& t, Registers&) {
      scalar_t* out = grad_x + first_plane * p.in_plane() + span.h_begin * p.in_w;
      for (Index i = static_cast<Index>(t.thread_idx.x); i < cells; i += kThreads)
        out[i] = static_cast<scalar_t>(sh.grad[i]);
    });
  }
};
CNNFAST_REGISTER_KERNEL(MaxPool2dBandBackwardKernel);

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

// How MaxPool2dBandBackwardKernel splits a problem: block rows a band, as
// many as its shared tile and its threads' windows hold, evened out over a
// plane's bands; where one band holds a plane, planes a thread block, as
// many as fit while the grid keeps kMinGrid thread blocks (a GPU's SMs
// several times over). rows 0: a plane's rows are too wide for a band.
struct PoolBands {
  int64_t rows = 0, bands = 0, planes_a_block = 1, groups = 0, plane_windows = 0;
};

template <int kStride>
PoolBands pool_bands(const Pool2dProblem& p, const BasicStrideBlocks<int64_t>& blocks) {
  using Sizes = MaxPool2dBandBackwardKernel<float, uint8_t, int64_t, kStride>;
  constexpr int64_t kWindows = Sizes::kThreads * Sizes::kWindowsPerThread, kMinGrid = 512;
  PoolBands b;
  const int64_t most = min_of(Sizes::kBandCells / (kStride * p.in_w), kWindows / p.out_w - 1);
  if (most < 1) return b;
  b.bands = ceil_div(blocks.rows, most);
  b.rows = ceil_div(blocks.rows, b.bands);
  if (b.bands == 1 && p.planes > 0) {
    const BasicPoolBand<int64_t> span = pool_band<kStride>(p, blocks, blocks.first_row, b.rows);
    b.plane_windows = (span.oh_end - span.oh_begin) * p.out_w;
    const int64_t fit = min_of(Sizes::kBandCells / p.in_plane(), kWindows / b.plane_windows);
    const int64_t most_planes = max_of(int64_t(1), min_of(fit, p.planes / kMinGrid));
    b.planes_a_block = ceil_div(p.planes, ceil_div(p.planes, most_planes));
  }
  b.groups = ceil_div(p.planes, b.planes_a_block);
  return b;
}

// Launches make_kernel(problem, blocks, split), a thread block per band
// (per group of planes), in 32-bit arithmetic where every index fits. For
// problems whose plane rows fit a band (pool_bands' rows > 0).
template <int kStride, class Launcher, class MakeKernel>
void launch_per_band(const Launcher& launcher, const Pool2dProblem& p,
                     const MakeKernel& make_kernel) {
  const Pool2dProblem wide = p.as<int64_t>();
  const BasicStrideBlocks<int64_t> blocks = stride_blocks<int64_t, kStride>(wide);
  const PoolBands split = pool_bands<kStride>(wide, blocks);
  LaunchShape shape;
  shape.block.x = MaxPool2dBandBackwardKernel<float, uint8_t, int64_t, kStride>::kThreads;
  shape.grid.x = split.groups * split.bands;
  if (p.fits_int32(0) && shape.grid.x <= INT32_MAX) {
    const BasicPool2dProblem<int32_t> narrow = p.as<int32_t>();
    launcher.launch_blocks(shape,
                           make_kernel(narrow, stride_blocks<int32_t, kStride>(narrow), split));
  } else {
    launcher.launch_blocks(shape, make_kernel(wide, blocks, split));
  }
}

// The stride of the block and band kernels.
constexpr int kBlockGradStride = 2;

// Max pooling's backward kernels, in order of preference: the first that
// takes a problem computes its input gradient.
enum class MaxPoolBackward {
  // Stride 2, windows at most two strides wide, a plane's rows fitting a
  // band: MaxPool2dBandBackwardKernel, whose stores are coalesced (faster
  // than the block kernel on an H100 where it was measured, never slower:
  // benchmarks/RESULTS.md).
  kBand,
  // The same windows, rows too wide for a band: MaxPool2dBlockBackwardKernel.
  kBlock,
  // A thread per input cell, each covered by at most 2 × 2 windows (no
  // window wider than twice its stride): the unrolled gather.
  kCellCovered2x2,
  // A thread per input cell, any windows.
  kCell,
};

inline MaxPoolBackward max_pool_backward_kernel(const Pool2dProblem& p) {
  constexpr int kStride = kBlockGradStride;
  if (takes_block_grad<kStride>(p)) {
    const Pool2dProblem wide = p.as<int64_t>();
    const PoolBands split = pool_bands<kStride>(wide, stride_blocks<int64_t, kStride>(wide));
    return split.rows > 0 ? MaxPoolBackward::kBand : MaxPoolBackward::kBlock;
  }
  if (ceil_div(p.kernel_h, p.stride_h) <= 2 && ceil_div(p.kernel_w, p.stride_w) <= 2)
    return MaxPoolBackward::kCellCovered2x2;
  return MaxPoolBackward::kCell;
}

// What every backward kernel reads and writes.
template <class scalar_t, class offset_t>
struct MaxPoolGradients {
  const scalar_t* grad;
  const offset_t* offsets;
  scalar_t* grad_x;
  int64_t cells;  // of grad_x
};

template <class scalar_t, class offset_t, class Launcher>
void launch_band_backward(const Launcher& launcher, const Pool2dProblem& p,
                          const MaxPoolGradients<scalar_t, offset_t>& g) {
  constexpr int kStride = kBlockGradStride;
  launch_per_band<kStride>(
      launcher, p, [&](const auto& problem, const auto& blocks, const PoolBands& split) {
        using Index = index_of<decltype(problem)>;
        return MaxPool2dBandBackwardKernel<scalar_t, offset_t, Index, kStride>{
            g.grad, g.offsets, g.grad_x, problem, blocks,
            static_cast<Index>(split.rows), static_cast<Index>(split.planes_a_block),
            Divisor<Index>(static_cast<Index>(split.bands)), Divisor<Index>(problem.kernel_w),
            Divisor<Index>(static_cast<Index>(max_of(split.plane_windows, int64_t(1))))};
      });
}

template <class scalar_t, class offset_t, class Launcher>
void launch_block_backward(const Launcher& launcher, const Pool2dProblem& p,
                           const MaxPoolGradients<scalar_t, offset_t>& g) {
  constexpr int kStride = kBlockGradStride;
  launch_per_block<kStride>(launcher, p, [&](const auto& problem, const auto& blocks) {
    return MaxPool2dBlockBackwardKernel<scalar_t, offset_t, index_of<decltype(problem)>, kStride>{
        g.grad, g.offsets, g.grad_x, problem, blocks};
  });
}

// kCover: windows covering a cell along each axis, at most, or 0 for any.
template <int kCover, class scalar_t, class offset_t, class Launcher>
void launch_cell_backward(const Launcher& launcher, const Pool2dProblem& p,
                          const MaxPoolGradients<scalar_t, offset_t>& g) {
  launch_per_cell(launcher, g.cells, p, [&](const auto& problem) {
    return MaxPool2dBackwardKernel<scalar_t, offset_t, index_of<decltype(problem)>, kCover>{
        g.grad, g.offsets, g.grad_x, problem};
  });
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
  const MaxPoolBackward kernel = max_pool_backward_kernel(p);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "pool2d_backward", [&] {
    dispatch_offset_type(offs.scalar_type(), [&](auto tag) {
      using offset_t = decltype(tag);
      const MaxPoolGradients<scalar_t, offset_t> g{grad.const_data_ptr<scalar_t>(),
                                                   offs.const_data_ptr<offset_t>(),
                                                   grad_x.mutable_data_ptr<scalar_t>(), grad_x.numel()};
      switch (kernel) {
        case MaxPoolBackward::kBand: return launch_band_backward(launcher, p, g);
        case MaxPoolBackward::kBlock: return launch_block_backward(launcher, p, g);
        case MaxPoolBackward::kCellCovered2x2: return launch_cell_backward<2>(launcher, p, g);
        case MaxPoolBackward::kCell: return launch_cell_backward<0>(launcher, p, g);
      }
    });
  });
  return grad_x;
}

}  // namespace kernels
}  // namespace cnnfast
