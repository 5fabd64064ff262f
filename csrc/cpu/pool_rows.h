#pragma once
// CPU pooling helpers, shared by max_pool2d, avg_pool2d and the fused
// relu_lrn_max_pool2d. Forward works one output row at a time and
// vectorizes across the row: for each window cell (i, j), one pass over the
// outputs whose window lies inside the input (the interior columns). The
// few edge columns take the scalar per-window functions of
// csrc/common/pool2d.h.
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "../common/pool2d.h"

namespace cnnfast {
namespace cpu {

// Calls f(std::integral_constant<int, S>) with S = the column stride when it
// is 1 or 2 (strided loads the compiler can vectorize well), 0 otherwise
// (read the stride at run time).
template <class F>
void dispatch_column_stride(int64_t stride, const F& f) {
  if (stride == 1)
    f(std::integral_constant<int, 1>{});
  else if (stride == 2)
    f(std::integral_constant<int, 2>{});
  else
    f(std::integral_constant<int, 0>{});
}

// Runs plane_fn(plane, scratch) for every plane, in parallel; each thread
// makes its own scratch once with make_scratch().
template <class MakeScratch, class F>
void for_each_plane(const Pool2dProblem& p, const MakeScratch& make_scratch, const F& plane_fn) {
  at::parallel_for(0, p.planes, 1, [&](int64_t begin, int64_t end) {
    auto scratch = make_scratch();
    for (int64_t plane = begin; plane < end; ++plane) plane_fn(plane, scratch);
  });
}

// For planes that need no scratch.
inline int no_scratch() { return 0; }

inline OutputRange interior_columns(const Pool2dProblem& p) {
  return interior_outputs(p.stride_w, p.pad_w, p.kernel_w, p.in_w, p.out_w);
}

// One plane. Each interior lane keeps its running maximum and the window
// cell it came from, visiting cells in torch's row-major order with torch's
// update rule (larger, or NaN), so ties and NaNs resolve exactly as torch.
template <class scalar_t, class offset_t, int kStride>
void max_pool_plane(const scalar_t* src, scalar_t* dst, offset_t* offsets, const Pool2dProblem& p,
                    scalar_t* best, int32_t* cell) {
  const int64_t stride = kStride > 0 ? kStride : p.stride_w;
  const OutputRange interior = interior_columns(p);
  for (int64_t oh = 0; oh < p.out_h; ++oh) {
    const WindowSpan rows = window_span(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h);
    const int32_t first_cell = static_cast<int32_t>((rows.begin - rows.first) * p.kernel_w);
    for (int64_t ow = interior.begin; ow < interior.end; ++ow) {
      best[ow] = -std::numeric_limits<scalar_t>::infinity();
      cell[ow] = first_cell;
    }
    for (int64_t h = rows.begin; h < rows.end; ++h) {
      for (int64_t j = 0; j < p.kernel_w; ++j) {
        const int32_t c = static_cast<int32_t>((h - rows.first) * p.kernel_w + j);
        const scalar_t* row = src + h * p.in_w;
        const int64_t shift = j - p.pad_w;
#pragma omp simd
        for (int64_t ow = interior.begin; ow < interior.end; ++ow) {
          const scalar_t v = row[ow * stride + shift];
          const bool take = v > best[ow] || v != v;
          best[ow] = take ? v : best[ow];
          cell[ow] = take ? c : cell[ow];
        }
      }
    }
    scalar_t* out_row = dst + oh * p.out_w;
    offset_t* offset_row = offsets + oh * p.out_w;
    for (int64_t ow = 0; ow < p.out_w; ++ow) {
      if (ow >= interior.begin && ow < interior.end) {
        out_row[ow] = best[ow];
        offset_row[ow] = static_cast<offset_t>(cell[ow]);
      } else {
        const auto edge = max_in_window(src, p, oh, ow);
        out_row[ow] = edge.value;
        offset_row[ow] = static_cast<offset_t>(edge.offset);
      }
    }
  }
}

// Planes pooled side by side by max_pool_plane_group: one vector lane each.
constexpr int64_t kPlaneGroup = 16;

// kPlaneGroup planes at once, for planes whose rows are too short to fill
// a vector: the planes are interleaved into `tile` (cell-major, plane
// minor), then every window is scanned with one lane per plane, in torch's
// row-major order with torch's update rule. Planes are in_plane apart in
// src, out_plane apart in dst and offsets.
// tile[cell * kPlaneGroup + g] = plane g's cell, for kPlaneGroup planes
// in_plane apart in src.
template <class scalar_t>
void interleave_planes(const scalar_t* src, const Pool2dProblem& p, scalar_t* tile) {
  for (int64_t g = 0; g < kPlaneGroup; ++g) {
    const scalar_t* plane = src + g * p.in_plane();
    for (int64_t i = 0; i < p.in_plane(); ++i) tile[i * kPlaneGroup + g] = plane[i];
  }
}

template <class scalar_t, class offset_t>
void max_pool_plane_group(const scalar_t* src, scalar_t* dst, offset_t* offsets,
                          const Pool2dProblem& p, scalar_t* tile) {
  constexpr int64_t G = kPlaneGroup;
  interleave_planes(src, p, tile);
  for (int64_t oh = 0; oh < p.out_h; ++oh) {
    const WindowSpan rows = window_span(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h);
    for (int64_t ow = 0; ow < p.out_w; ++ow) {
      const WindowSpan cols = window_span(ow, p.stride_w, p.pad_w, p.kernel_w, p.in_w);
      scalar_t best[G];
      int32_t cell[G];
      const int32_t first_cell = static_cast<int32_t>((rows.begin - rows.first) * p.kernel_w +
                                                      (cols.begin - cols.first));
      for (int64_t g = 0; g < G; ++g) {
        best[g] = -std::numeric_limits<scalar_t>::infinity();
        cell[g] = first_cell;
      }
      for (int64_t h = rows.begin; h < rows.end; ++h) {
        for (int64_t w = cols.begin; w < cols.end; ++w) {
          const int32_t c = static_cast<int32_t>((h - rows.first) * p.kernel_w + (w - cols.first));
          const scalar_t* v = tile + (h * p.in_w + w) * G;
#pragma omp simd
          for (int64_t g = 0; g < G; ++g) {
            const bool take = v[g] > best[g] || v[g] != v[g];
            best[g] = take ? v[g] : best[g];
            cell[g] = take ? c : cell[g];
          }
        }
      }
      const int64_t o = oh * p.out_w + ow;
      for (int64_t g = 0; g < G; ++g) {
        dst[g * p.out_plane() + o] = best[g];
        offsets[g * p.out_plane() + o] = static_cast<offset_t>(cell[g]);
      }
    }
  }
}

// Output rows shorter than this pool kPlaneGroup planes side by side:
// measured on AlexNet's pools (13-wide rows 5x faster than row by row,
// 27-wide rows 10% slower; benchmarks/RESULTS.md).
constexpr int64_t kShortRow = 16;

// What max_pool_planes needs per thread.
template <class scalar_t>
struct MaxPoolScratch {
  std::vector<scalar_t> tile, best;
  std::vector<int32_t> cell;
  explicit MaxPoolScratch(const Pool2dProblem& p)
      : tile(p.out_w < kShortRow ? p.in_plane() * kPlaneGroup : 0), best(p.out_w), cell(p.out_w) {}
};

// Max-pools `count` consecutive planes: groups of planes side by side when
// rows are short, the rest one at a time.
template <class scalar_t, class offset_t, int kStride>
void max_pool_planes(const scalar_t* src, scalar_t* dst, offset_t* offsets, int64_t count,
                     const Pool2dProblem& p, MaxPoolScratch<scalar_t>& scratch) {
  int64_t plane = 0;
  if (p.out_w < kShortRow)
    for (; plane + kPlaneGroup <= count; plane += kPlaneGroup)
      max_pool_plane_group(src + plane * p.in_plane(), dst + plane * p.out_plane(),
                           offsets + plane * p.out_plane(), p, scratch.tile.data());
  for (; plane < count; ++plane)
    max_pool_plane<scalar_t, offset_t, kStride>(src + plane * p.in_plane(),
                                                dst + plane * p.out_plane(),
                                                offsets + plane * p.out_plane(), p,
                                                scratch.best.data(), scratch.cell.data());
}

// Row and column of each window cell, so that decoding an offset costs a
// table look-up instead of an integer division.
struct WindowCells {
  std::vector<int32_t> row, col;
  explicit WindowCells(const Pool2dProblem& p) : row(p.window_cells()), col(p.window_cells()) {
    for (int64_t c = 0; c < p.window_cells(); ++c) {
      row[c] = static_cast<int32_t>(c / p.kernel_w);
      col[c] = static_cast<int32_t>(c % p.kernel_w);
    }
  }
};

// One plane of max pooling's gradient, as a scatter: each output adds its
// gradient to the cell its offset names, in output order (the order a
// gather would sum in), so the result is deterministic.
template <class scalar_t, class offset_t>
void max_pool_scatter_plane(const scalar_t* grad, const offset_t* offsets, scalar_t* cells,
                            const Pool2dProblem& p, const WindowCells& window, const char* op) {
  std::fill(cells, cells + p.in_plane(), scalar_t(0));
  for (int64_t oh = 0; oh < p.out_h; ++oh) {
    const int64_t top = oh * p.stride_h - p.pad_h;
    for (int64_t ow = 0; ow < p.out_w; ++ow) {
      const int64_t o = oh * p.out_w + ow;
      const int64_t offset = static_cast<int64_t>(offsets[o]);
      // Offsets come from forward; a foreign tensor must not write out of bounds.
      TORCH_CHECK(offset >= 0 && offset < p.window_cells(), "cnnfast.", op, ": offset ", offset,
                  " at output (", oh, ", ", ow, ") lies outside its window");
      const int64_t h = top + window.row[offset];
      const int64_t w = ow * p.stride_w - p.pad_w + window.col[offset];
      TORCH_CHECK(h >= 0 && h < p.in_h && w >= 0 && w < p.in_w, "cnnfast.", op, ": offset ",
                  offset, " at output (", oh, ", ", ow, ") names a padding cell");
      cells[h * p.in_w + w] += grad[o];
    }
  }
}

}  // namespace cpu
}  // namespace cnnfast
