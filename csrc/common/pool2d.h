#pragma once
// Pooling geometry and per-window arithmetic, torch's rules exactly. Shared
// by the CPU kernels, the CUDA kernels and so by the CUDA emulation.
#include <cstdint>
#include <type_traits>

#include "launch.h"
#include "macros.h"
#include "numeric.h"

namespace cnnfast {

// One 2-D pooling problem over `planes` = N*C independent H×W planes, stored
// contiguously (plane-major, then rows). Index is the integer type its
// arithmetic runs in: int64_t as checked and built on the host, int32_t for
// a GPU launch where every index fits (see fits_int32), since a GPU divides
// 32-bit integers several times faster than 64-bit ones.
template <class Index>
struct BasicPool2dProblem {
  Index planes = 0;
  Index in_h = 0, in_w = 0;
  Index out_h = 0, out_w = 0;
  Index kernel_h = 1, kernel_w = 1;
  Index stride_h = 1, stride_w = 1;
  Index pad_h = 0, pad_w = 0;
  bool count_include_pad = true;  // average pooling only
  // The per-cell divisions: by the strides (set with them), and by the plane
  // and row sizes (set by as(), for the GPU kernels' cell loops).
  Divisor<Index> by_stride_h, by_stride_w;
  Divisor<Index> by_in_plane, by_in_w, by_out_plane, by_out_w;

  CNNFAST_HD Index in_plane() const { return in_h * in_w; }
  CNNFAST_HD Index out_plane() const { return out_h * out_w; }
  CNNFAST_HD Index window_cells() const { return kernel_h * kernel_w; }

  // Whether every index of this problem, plus a grid-stride loop's step of
  // `grid_threads`, fits in int32_t.
  bool fits_int32(int64_t grid_threads) const {
    const int64_t cells = planes * (in_plane() > out_plane() ? in_plane() : out_plane());
    return cells + grid_threads <= INT32_MAX;
  }

  template <class Narrow>
  BasicPool2dProblem<Narrow> as() const {
    BasicPool2dProblem<Narrow> p;
    p.planes = static_cast<Narrow>(planes);
    p.in_h = static_cast<Narrow>(in_h);
    p.in_w = static_cast<Narrow>(in_w);
    p.out_h = static_cast<Narrow>(out_h);
    p.out_w = static_cast<Narrow>(out_w);
    p.kernel_h = static_cast<Narrow>(kernel_h);
    p.kernel_w = static_cast<Narrow>(kernel_w);
    p.stride_h = static_cast<Narrow>(stride_h);
    p.stride_w = static_cast<Narrow>(stride_w);
    p.pad_h = static_cast<Narrow>(pad_h);
    p.pad_w = static_cast<Narrow>(pad_w);
    p.count_include_pad = count_include_pad;
    p.by_stride_h = Divisor<Narrow>(p.stride_h);
    p.by_stride_w = Divisor<Narrow>(p.stride_w);
    p.by_in_plane = Divisor<Narrow>(p.in_plane());
    p.by_in_w = Divisor<Narrow>(p.in_w);
    p.by_out_plane = Divisor<Narrow>(p.out_plane());
    p.by_out_w = Divisor<Narrow>(p.out_w);
    return p;
  }
};

using Pool2dProblem = BasicPool2dProblem<int64_t>;

// The index type of a (reference to a) BasicPool2dProblem.
template <class Problem>
using index_of = decltype(std::decay_t<Problem>::planes);

// Launches make_kernel(problem), one thread per cell of `cells`, with
// `problem` as int32_t when every index fits (see above), as int64_t
// otherwise, its divisors set.
template <class Launcher, class MakeKernel>
void launch_per_cell(const Launcher& launcher, int64_t cells, const Pool2dProblem& p,
                     const MakeKernel& make_kernel) {
  const LaunchShape shape = elementwise_launch_shape(cells);
  if (p.fits_int32(shape.grid.count() * shape.block.count()))
    launcher.launch(shape, make_kernel(p.as<int32_t>()));
  else
    launcher.launch(shape, make_kernel(p.as<int64_t>()));
}

// torch's pooling_output_shape (dilation 1): floor or ceil division, and in
// ceil mode the last window may not start inside the right padding.
CNNFAST_INLINE int64_t pool_output_size(int64_t in, int64_t kernel, int64_t pad,
                                        int64_t stride, bool ceil_mode) {
  const int64_t span = in + 2 * pad - kernel + (ceil_mode ? stride - 1 : 0);
  // Floor division, correct for a negative span too.
  int64_t out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// The window of output index `o` along one axis: `first` may lie in the
// padding; [begin, end) is its part inside the input.
template <class Index>
struct BasicWindowSpan {
  Index first, begin, end;
};
using WindowSpan = BasicWindowSpan<int64_t>;

template <class Index>
CNNFAST_INLINE BasicWindowSpan<Index> window_span(Index o, Index stride, Index pad,
                                                  Index kernel, Index in) {
  const Index first = o * stride - pad;
  return {first, first < 0 ? Index(0) : first, first + kernel < in ? first + kernel : in};
}

// The outputs whose windows cover input index `i` along one axis: [begin, end).
template <class Index>
struct BasicOutputRange {
  Index begin, end;
};
using OutputRange = BasicOutputRange<int64_t>;

template <class Index>
CNNFAST_INLINE BasicOutputRange<Index> covering_outputs(Index i, const Divisor<Index>& stride,
                                                        Index pad, Index kernel, Index out) {
  const Index shifted = i + pad;
  const Index begin = shifted < kernel ? Index(0) : stride.divide(shifted - kernel) + 1;
  const Index last = stride.divide(shifted) + 1;
  return {begin, last < out ? last : out};
}

// The outputs whose whole window lies inside the input along one axis.
CNNFAST_INLINE OutputRange interior_outputs(int64_t stride, int64_t pad, int64_t kernel,
                                                     int64_t in, int64_t out) {
  const int64_t begin = (pad + stride - 1) / stride;
  const int64_t end = in + pad >= kernel ? (in + pad - kernel) / stride + 1 : 0;
  return {min_of(begin, out), max_of(min_of(end, out), min_of(begin, out))};
}

// ---- max pooling ----------------------------------------------------------

// Max of one window, scanned row by row like torch: a larger value or any
// NaN replaces the running maximum, so the first maximum wins ties and the
// last NaN wins among NaNs. The argmax is kept as the offset inside the
// window (row * kernel_w + col), counted from the window's first cell even
// when that cell lies in the padding.
template <class scalar_t>
struct MaxWithOffset {
  scalar_t value;
  int32_t offset;
};

// The same over value(h, w) (in acc_t) instead of a stored plane.
// kWindow > 0 promises a window of at most kWindow × kWindow cells
// (AlexNet's 3 × 3): the loops then unroll into predicated steps, in the
// same order.
template <class scalar_t, int kWindow = 0, class Index, class Value>
CNNFAST_INLINE MaxWithOffset<scalar_t> max_in_window_of(const Value& value,
                                                        const BasicPool2dProblem<Index>& p,
                                                        Index oh, Index ow) {
  const BasicWindowSpan<Index> rows = window_span(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h);
  const BasicWindowSpan<Index> cols = window_span(ow, p.stride_w, p.pad_w, p.kernel_w, p.in_w);
  auto best = value(rows.begin, cols.begin);
  Index best_h = rows.begin, best_w = cols.begin;
  const auto visit = [&](Index h, Index w) {
    const auto v = value(h, w);
    if (v > best || is_nan(v)) {
      best = v;
      best_h = h;
      best_w = w;
    }
  };
  if constexpr (kWindow > 0) {
    CNNFAST_UNROLL
    for (int r = 0; r < kWindow; ++r)
      CNNFAST_UNROLL
      for (int c = 0; c < kWindow; ++c)
        if (rows.begin + r < rows.end && cols.begin + c < cols.end) visit(rows.begin + r, cols.begin + c);
  } else {
    for (Index h = rows.begin; h < rows.end; ++h)
      for (Index w = cols.begin; w < cols.end; ++w) visit(h, w);
  }
  return {static_cast<scalar_t>(best),
          static_cast<int32_t>((best_h - rows.first) * p.kernel_w + (best_w - cols.first))};
}

template <int kWindow = 0, class scalar_t, class Index>
CNNFAST_INLINE MaxWithOffset<scalar_t> max_in_window(const scalar_t* plane,
                                                     const BasicPool2dProblem<Index>& p, Index oh,
                                                     Index ow) {
  return max_in_window_of<scalar_t, kWindow>(
      [&](Index h, Index w) { return static_cast<acc_type<scalar_t>>(plane[h * p.in_w + w]); },
      p, oh, ow);
}

// Gradient of input cell (h, w): the sum of the output gradients whose
// window chose it, in output order (deterministic, no atomics). A window
// chose the cell when its saved offset is the cell's offset inside it: a
// multiplication per window where decoding the offset would divide.
// kCover > 0 promises at most kCover covering windows per axis
// (ceil(kernel / stride)): the loops then unroll into predicated steps, so
// a warp's neighbouring cells, covered by one window or two, take one path.
template <int kCover = 0, class scalar_t, class offset_t, class Index>
CNNFAST_INLINE acc_type<scalar_t> max_pool_input_grad(const scalar_t* grad_plane,
                                                      const offset_t* offset_plane,
                                                      const BasicPool2dProblem<Index>& p, Index h,
                                                      Index w) {
  const BasicOutputRange<Index> rows = covering_outputs(h, p.by_stride_h, p.pad_h, p.kernel_h, p.out_h);
  const BasicOutputRange<Index> cols = covering_outputs(w, p.by_stride_w, p.pad_w, p.kernel_w, p.out_w);
  acc_type<scalar_t> sum = 0;
  const auto add_if_chosen = [&](Index oh, Index ow) {
    const Index offset_in_window =
        (h - (oh * p.stride_h - p.pad_h)) * p.kernel_w + (w - (ow * p.stride_w - p.pad_w));
    if (static_cast<Index>(offset_plane[oh * p.out_w + ow]) == offset_in_window)
      sum += static_cast<acc_type<scalar_t>>(grad_plane[oh * p.out_w + ow]);
  };
  if constexpr (kCover > 0) {
    CNNFAST_UNROLL
    for (int r = 0; r < kCover; ++r)
      CNNFAST_UNROLL
      for (int c = 0; c < kCover; ++c)
        if (rows.begin + r < rows.end && cols.begin + c < cols.end)
          add_if_chosen(rows.begin + r, cols.begin + c);
  } else {
    for (Index oh = rows.begin; oh < rows.end; ++oh)
      for (Index ow = cols.begin; ow < cols.end; ++ow) add_if_chosen(oh, ow);
  }
  return sum;
}

// The input cells of a stride-kStride problem in blocks of kStride × kStride:
// block (by, bx) holds the cells whose padded coordinates (h + pad_h,
// w + pad_w) lie in [by·s, by·s + s) × [bx·s, bx·s + s). Blocks start at row
// first_row (column first_col), the first that holds an input cell; the
// divisors split a block index into plane, row and column (built on the
// host).
template <class Index>
struct BasicStrideBlocks {
  Index first_row = 0, first_col = 0, rows = 0, cols = 0;
  Divisor<Index> by_plane, by_cols;
  CNNFAST_HD Index plane() const { return rows * cols; }
};

template <class Index, int kStride>
BasicStrideBlocks<Index> stride_blocks(const BasicPool2dProblem<Index>& p) {
  BasicStrideBlocks<Index> b;
  b.first_row = p.pad_h / kStride;
  b.first_col = p.pad_w / kStride;
  b.rows = static_cast<Index>(ceil_div(p.in_h + p.pad_h, kStride)) - b.first_row;
  b.cols = static_cast<Index>(ceil_div(p.in_w + p.pad_w, kStride)) - b.first_col;
  b.by_plane = Divisor<Index>(b.plane());
  b.by_cols = Divisor<Index>(b.cols);
  return b;
}

// Whether windows of p take the block gather below: stride kStride on both
// axes, windows at most two strides wide.
template <int kStride, class Index>
bool takes_block_grad(const BasicPool2dProblem<Index>& p) {
  return p.stride_h == kStride && p.stride_w == kStride && p.kernel_h <= 2 * kStride &&
         p.kernel_w <= 2 * kStride;
}

// Block rows [first, first + rows) of a stride-kStride problem whose
// windows are at most two strides wide, clipped to the plane: their input
// rows [h_begin, h_end) and the outputs whose windows cover them, rows
// [oh_begin, oh_end) (each window covers its own block row and the next).
template <class Index>
struct BasicPoolBand {
  Index h_begin, h_end, oh_begin, oh_end;
};

template <int kStride, class Index>
CNNFAST_INLINE BasicPoolBand<Index> pool_band(const BasicPool2dProblem<Index>& p,
                                              const BasicStrideBlocks<Index>& blocks, Index first,
                                              Index rows) {
  const Index end = min_of(first + rows, blocks.first_row + blocks.rows);
  return {max_of(first * kStride - p.pad_h, Index(0)), min_of(end * kStride - p.pad_h, p.in_h),
          max_of(first - 1, Index(0)), min_of(end, p.out_h)};
}

// Gradients of the kStride × kStride cells of a stride block, where windows
// are at most two strides wide (takes_block_grad): then only the outputs
// (by - 1, by) × (bx - 1, bx) cover block (by, bx), so one thread reads those
// four windows' offsets and gradients once, with no branch between the
// loads, for all the block's cells — where max_pool_input_grad, per cell,
// works out its covering windows and reads each of them. The sums run in
// output order, as there.
template <int kStride, class Index>
struct MaxPoolBlockGather {
  // The offset of block cell (dy, dx) in window (r, c) — which starts r (c)
  // strides before the block when r (c) is 0 — or -2 where the window does
  // not hold the cell: no saved offset and no missing window's (-1) is
  // negative. The same for every block, so worked out once.
  Index cell_offset[kStride][kStride][2][2];

  CNNFAST_HD explicit MaxPoolBlockGather(const BasicPool2dProblem<Index>& p) {
    for (int dy = 0; dy < kStride; ++dy)
      for (int dx = 0; dx < kStride; ++dx)
        for (int r = 0; r < 2; ++r)
          for (int c = 0; c < 2; ++c) {
            const Index y = dy + (1 - r) * kStride, x = dx + (1 - c) * kStride;
            cell_offset[dy][dx][r][c] = y < p.kernel_h && x < p.kernel_w ? y * p.kernel_w + x : -2;
          }
  }

  // grad[dy][dx] is the gradient of cell (by·s + dy - pad_h, bx·s + dx - pad_w)
  // of the plane whose outputs start at first_out. Indices are formed whole
  // in Index arithmetic (a GPU then needs one multiply-add per address,
  // not a 64-bit sum of a plane's and a cell's offsets).
  template <class scalar_t, class offset_t>
  CNNFAST_HD void operator()(const scalar_t* grad_out, const offset_t* offsets, Index first_out,
                             const BasicPool2dProblem<Index>& p, Index by, Index bx,
                             acc_type<scalar_t> (&grad)[kStride][kStride]) const {
    using acc_t = acc_type<scalar_t>;
    using Unsigned = std::make_unsigned_t<Index>;
    // Window (r, c) is output (by - 1 + r, bx - 1 + c); where that does not
    // exist, it reads output 0 and takes -1 for its offset.
    acc_t window_grad[2][2];
    Index chosen[2][2];
    CNNFAST_UNROLL
    for (int r = 0; r < 2; ++r)
      CNNFAST_UNROLL
      for (int c = 0; c < 2; ++c) {
        const Index oh = by - 1 + r, ow = bx - 1 + c;
        const bool exists = static_cast<Unsigned>(oh) < static_cast<Unsigned>(p.out_h) &&
                            static_cast<Unsigned>(ow) < static_cast<Unsigned>(p.out_w);
        const Index at = first_out + (exists ? oh * p.out_w + ow : Index(0));
        window_grad[r][c] = static_cast<acc_t>(grad_out[at]);
        const Index saved = static_cast<Index>(offsets[at]);
        chosen[r][c] = exists ? saved : Index(-1);
      }
    CNNFAST_UNROLL
    for (int dy = 0; dy < kStride; ++dy)
      CNNFAST_UNROLL
      for (int dx = 0; dx < kStride; ++dx) {
        acc_t sum = 0;
        CNNFAST_UNROLL
        for (int r = 0; r < 2; ++r)
          CNNFAST_UNROLL
          for (int c = 0; c < 2; ++c)
            if (chosen[r][c] == cell_offset[dy][dx][r][c]) sum += window_grad[r][c];
        grad[dy][dx] = sum;
      }
  }
};

// ---- average pooling --------------------------------------------------------

// The extent one axis contributes to torch's divisor: the window clipped to
// the padded input when padding counts, clipped to the input otherwise.
template <class Index>
CNNFAST_INLINE Index avg_extent(Index o, Index stride, Index pad, Index kernel, Index in,
                                bool count_include_pad) {
  const Index first = o * stride - pad;
  const Index last = min_of(first + kernel, in + pad);
  return count_include_pad ? last - first : min_of(last, in) - max_of(first, Index(0));
}

// torch's divisor for output (oh, ow): the product of both axes' extents;
// zero for a window with no input cell (the output is then 0).
template <class Index>
CNNFAST_INLINE Index avg_divisor(const BasicPool2dProblem<Index>& p, Index oh, Index ow) {
  const BasicWindowSpan<Index> rows = window_span(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h);
  const BasicWindowSpan<Index> cols = window_span(ow, p.stride_w, p.pad_w, p.kernel_w, p.in_w);
  if (rows.begin >= rows.end || cols.begin >= cols.end) return 0;
  return avg_extent(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h, p.count_include_pad) *
         avg_extent(ow, p.stride_w, p.pad_w, p.kernel_w, p.in_w, p.count_include_pad);
}

template <class scalar_t, class Index>
CNNFAST_INLINE scalar_t avg_in_window(const scalar_t* plane, const BasicPool2dProblem<Index>& p,
                                      Index oh, Index ow) {
  using acc_t = acc_type<scalar_t>;
  const Index divisor = avg_divisor(p, oh, ow);
  if (divisor == 0) return scalar_t(0);
  const BasicWindowSpan<Index> rows = window_span(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h);
  const BasicWindowSpan<Index> cols = window_span(ow, p.stride_w, p.pad_w, p.kernel_w, p.in_w);
  acc_t sum = 0;
  for (Index h = rows.begin; h < rows.end; ++h)
    for (Index w = cols.begin; w < cols.end; ++w)
      sum += static_cast<acc_t>(plane[h * p.in_w + w]);
  return static_cast<scalar_t>(sum / static_cast<acc_t>(divisor));
}

// Gradient of input cell (h, w): each covering output passes on its
// gradient divided by its divisor.
template <class scalar_t, class Index>
CNNFAST_INLINE acc_type<scalar_t> avg_pool_input_grad(const scalar_t* grad_plane,
                                                      const BasicPool2dProblem<Index>& p, Index h,
                                                      Index w) {
  using acc_t = acc_type<scalar_t>;
  const BasicOutputRange<Index> rows = covering_outputs(h, p.by_stride_h, p.pad_h, p.kernel_h, p.out_h);
  const BasicOutputRange<Index> cols = covering_outputs(w, p.by_stride_w, p.pad_w, p.kernel_w, p.out_w);
  acc_t sum = 0;
  for (Index oh = rows.begin; oh < rows.end; ++oh) {
    for (Index ow = cols.begin; ow < cols.end; ++ow) {
      const Index divisor = avg_divisor(p, oh, ow);
      if (divisor != 0)
        sum += static_cast<acc_t>(grad_plane[oh * p.out_w + ow]) / static_cast<acc_t>(divisor);
    }
  }
  return sum;
}

}  // namespace cnnfast
