#pragma once
// The CPU implicit-GEMM engine: runs one GEMM view of csrc/common/conv2d.h
// or linear.h (fprop, dgrad or wgrad of one group) as a blocked GEMM.
//
//   for each tile (group, block of rows, block of columns, slice of depth),
//   spread over threads with at::parallel_for:
//     for each depth block of kDepthBlock:
//       pack B: the tile's columns gathered from the tensor (implicit im2col
//               of one depth block only), strip by strip of kNR columns,
//               copying runs of evenly spaced elements with masked vector
//               moves — or, where B's rows are evenly spaced rows of the
//               source (linear's input gradient), read B in place;
//       pack A for the depth block (or once for the whole GEMM, when
//               several column blocks would repack it);
//       for each column strip, for each row strip of kMR: the microkernel
//               adds A·B into the tile (the B strip stays in L1);
//     epilogue: bias and activation on the finished tile, stored in place.
//
// The microkernel keeps a kMR × kNR block of C in vector registers: each
// depth step loads kNV vectors of B and broadcasts kMR values of A, kMR·kNV
// FMAs (AVX-512 float: 12 × 32, 24 of the 32 zmm registers).
//
// Tiles that would leave threads idle slice the depth instead; the slices'
// partial tiles are summed in a fixed order, so results never depend on
// timing (no atomics).
//
// Its parts: gemm_plan.h (tiles), gemm_packing.h (A and B strips),
// gemm_microkernel.h (the register block), scratch.h (per-thread buffers).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../common/conv2d.h"
#include "activation_lanes.h"
#include "elementwise.h"
#include "gemm_microkernel.h"
#include "gemm_packing.h"
#include "gemm_plan.h"
#include "scratch.h"

namespace cnnfast {
namespace cpu {

// The engine's scratch buffers (scratch.h).
namespace gemm_scratch {
struct WholeA;      // the whole of A, packed (calling thread)
struct SliceTiles;  // partial tiles of depth slices (calling thread)
struct SliceSum;    // one tile's sum of slices (each thread)
struct TileA;       // a tile's packed A (each thread)
struct TileB;       // a tile's packed B
struct TileC;       // a tile's C
}  // namespace gemm_scratch

// A tile's working memory; C is [row strip][column strip][kMR][kNR].
template <class T>
struct TileBuffers {
  T *a, *b, *c;
  int64_t c_size;
  TileColumns cols;
  explicit TileBuffers(const TilePlan& plan)
      : a(scratch<gemm_scratch::TileA, T>(kDepthBlock * plan.row_block)),
        b(scratch<gemm_scratch::TileB, T>(kDepthBlock * plan.col_block)),
        c(scratch<gemm_scratch::TileC, T>(plan.row_block * plan.col_block)),
        c_size(plan.row_block * plan.col_block) {}
};

template <class T>
T* c_block(T* c, int64_t strip_row, int64_t strip_col, int64_t col_block) {
  return c + (strip_row * (col_block / kNR<T>) + strip_col) * kMR * kNR<T>;
}

// C of one tile over depth [kd_begin, kd_end) into buffers.c. `packed_a` is
// the whole of A packed by pack_a_whole, or null.
template <class T, class View>
void multiply_tile(const View& view, const TilePlan& plan, int64_t row0, int64_t rows,
                   int64_t col0, int64_t cols, int64_t kd_begin, int64_t kd_end,
                   const T* packed_a, TileBuffers<T>& buf) {
  constexpr int64_t NR = kNR<T>;
  const int64_t strips = round_up(cols, NR) / NR;
  buf.cols.fill(view, col0, cols, T{});
  const DirectB direct = direct_b<T>(view, buf.cols);
  // Strips read in place come first; the rest are packed (all, or the tail).
  const int64_t unpacked = direct.on ? direct.full_strips : 0;
  if (direct.on && unpacked < strips)
    buf.cols.fill(view, col0 + unpacked * NR, cols - unpacked * NR, T{});
  for (int64_t kd0 = kd_begin; kd0 < kd_end; kd0 += kDepthBlock) {
    const int64_t depth = std::min(kDepthBlock, kd_end - kd0);
    if (unpacked < strips) pack_b(view, buf.cols, kd0, depth, buf.b);
    const int64_t row_strips = ceil_div(rows, kMR);
    if (packed_a == nullptr)  // A of this depth block, strip after strip
      for (int64_t i = 0; i < row_strips; ++i)
        pack_a(view, row0 + i * kMR, row0 + rows, kd0, depth, buf.a + i * depth * kMR);
    const T* in_place = view.b_source() + view.b_depth(kd0).offset;
    // Column strips outside: one B strip stays in L1 while the A strips pass.
    for (int64_t j = 0; j < strips; ++j) {
      const T* b = j < unpacked ? in_place + view.b_col(col0 + j * NR).offset
                                : buf.b + (j - unpacked) * depth * NR;
      const int64_t b_stride = j < unpacked ? direct.row_stride : NR;
      for (int64_t i = 0; i < row_strips; ++i) {
        const T* a = packed_a == nullptr
                         ? buf.a + i * depth * kMR
                         : packed_a + ((row0 / kMR + i) * view.depth() + kd0) * kMR;
        microkernel(depth, a, b, b_stride, c_block(buf.c, i, j, plan.col_block),
                    kd0 > kd_begin);
      }
    }
  }
  if (kd_begin == kd_end) std::fill(buf.c, buf.c + buf.c_size, T(0));
}

// Bias, activation and store of a finished tile.
template <class T, class View>
void store_tile(const View& view, const TilePlan& plan, int64_t row0, int64_t rows, int64_t col0,
                int64_t cols, const T* c) {
  constexpr int64_t NR = kNR<T>;
  T* out = view.out_base();
  const int64_t row_stride = view.out_row_stride();
  std::vector<int64_t> at(cols);
  for (int64_t j = 0; j < cols; ++j) at[j] = view.out_col(col0 + j);
  const T* bias_rows = view.bias_rows();
  const T* bias_cols = view.bias_cols();
  T row[NR];
  for (int64_t m = 0; m < rows; ++m) {
    const T bias = bias_rows == nullptr ? T(0) : bias_rows[row0 + m];
    T* out_row = out + (row0 + m) * row_stride;
    for (int64_t j0 = 0; j0 < cols; j0 += NR) {
      const int64_t n = std::min(NR, cols - j0);
      const T* src = c_block(c, m / kMR, j0 / NR, plan.col_block) + (m % kMR) * NR;
      for (int64_t l = 0; l < n; ++l) row[l] = src[l] + bias;
      if (bias_cols != nullptr)
        for (int64_t l = 0; l < n; ++l) row[l] += bias_cols[col0 + j0 + l];
      activate_row(row, n, view.activation());
      const int64_t first = at[j0];
      const bool contiguous = first >= 0 && at[j0 + n - 1] == first + n - 1;
      if (contiguous) {
        std::memcpy(out_row + first, row, n * sizeof(T));
      } else {
        for (int64_t l = 0; l < n; ++l) {
          if (at[j0 + l] >= 0)
            out_row[at[j0 + l]] = row[l];
          else
            view.store(row0 + m, col0 + j0 + l, src[l]);
        }
      }
    }
  }
}

// Runs the GEMM of every view (one per group) to completion.
template <class T, class View>
void run_implicit_gemm(const std::vector<View>& views) {
  if (views.empty()) return;
  const View& first = views.front();
  const int64_t rows = first.rows(), cols = first.cols(), depth = first.depth();
  if (rows == 0 || cols == 0) return;
  const TilePlan plan = plan_tiles<T>(static_cast<int64_t>(views.size()), rows, cols, depth);
  const int64_t tile_size = plan.row_block * plan.col_block;
  // Partial tiles of depth slices, summed in slice order afterwards.
  T* partial = plan.slices > 1 ? scratch<gemm_scratch::SliceTiles, T>(plan.tiles() * tile_size) : nullptr;

  struct TileIndex {
    int64_t group, row0, rows, col0, cols, slice;
  };
  const auto tile_at = [&](int64_t t) {
    TileIndex i;
    i.slice = t % plan.slices;
    t /= plan.slices;
    const int64_t cb = t % plan.col_blocks;
    t /= plan.col_blocks;
    const int64_t rb = t % plan.row_blocks;
    i.group = t / plan.row_blocks;
    i.row0 = rb * plan.row_block;
    i.rows = std::min(plan.row_block, rows - i.row0);
    i.col0 = cb * plan.col_block;
    i.cols = std::min(plan.col_block, cols - i.col0);
    return i;
  };

  T* packed_a = nullptr;  // every group's A, one after the other
  const int64_t a_size = packed_a_size(first);
  if (plan.col_blocks > 1) {
    packed_a = scratch<gemm_scratch::WholeA, T>(a_size * static_cast<int64_t>(views.size()));
    for (size_t g = 0; g < views.size(); ++g) pack_a_whole(views[g], packed_a + g * a_size);
  }

  at::parallel_for(0, plan.tiles(), 1, [&](int64_t begin, int64_t end) {
    TileBuffers<T> buf(plan);
    for (int64_t t = begin; t < end; ++t) {
      const TileIndex i = tile_at(t);
      const View& view = views[i.group];
      const int64_t kd_begin = std::min(depth, i.slice * plan.depth_slice);
      const int64_t kd_end = std::min(depth, kd_begin + plan.depth_slice);
      multiply_tile(view, plan, i.row0, i.rows, i.col0, i.cols, kd_begin, kd_end,
                    packed_a == nullptr ? nullptr : packed_a + i.group * a_size, buf);
      if (plan.slices == 1)
        store_tile(view, plan, i.row0, i.rows, i.col0, i.cols, buf.c);
      else
        std::copy(buf.c, buf.c + tile_size, partial + t * tile_size);
    }
  });
  if (plan.slices == 1) return;
  at::parallel_for(0, plan.tiles() / plan.slices, 1, [&](int64_t begin, int64_t end) {
    T* sum = scratch<gemm_scratch::SliceSum, T>(tile_size);
    for (int64_t u = begin; u < end; ++u) {
      const T* first_slice = partial + u * plan.slices * tile_size;
      std::copy(first_slice, first_slice + tile_size, sum);
      for (int64_t s = 1; s < plan.slices; ++s) {
        const T* slice = first_slice + s * tile_size;
#pragma omp simd
        for (int64_t e = 0; e < tile_size; ++e) sum[e] += slice[e];
      }
      const TileIndex i = tile_at(u * plan.slices);
      store_tile(views[i.group], plan, i.row0, i.rows, i.col0, i.cols, sum);
    }
  });
}

// The engine the op drivers (csrc/kernels/conv2d.h, linear.h) use on CPU
// tensors. grad_product forms grad_output times the activation's derivative
// for the backward GEMMs (one pass; dgrad reads it R·S times).
struct CpuGemmEngine {
  static constexpr bool kHalfTypes = false;
  // The direct GEMM's packed AVX-512 tiles already run AlexNet's 3×3
  // layers at 70-80% of this CPU's peak; Winograd is the CUDA engine's.
  static constexpr bool kWinograd = false;
  // The bias gradient is wgrad's column of ones.
  static constexpr bool kBiasGradApart = false;
  static constexpr bool kTensorCores = false;
  explicit CpuGemmEngine(const at::Tensor&) {}

  template <class View>
  void run(const std::vector<View>& views) const {
    run_implicit_gemm<typename View::element_type>(views);
  }

  // grad · act'(out), elementwise (the activations' own backward loop).
  at::Tensor grad_product(const at::Tensor& grad, const at::Tensor& out, Activation act) const {
    if (act == Activation::kRelu)
      return backward_map(grad, out, "activation_grad",
                          [](auto g, auto y) { return relu_grad_lanes(g, y); });
    return backward_map(grad, out, "activation_grad",
                        [](auto g, auto y) { return tanh_grad_lanes(g, y); });
  }
};

}  // namespace cpu
}  // namespace cnnfast
