#pragma once
// The CPU implicit-GEMM engine: runs one GEMM view of csrc/common/conv2d.h
// (fprop, dgrad or wgrad of one group) as a blocked GEMM.
//
//   for each tile (group, block of rows, block of columns, slice of depth),
//   spread over threads with at::parallel_for:
//     for each depth block of kDepthBlock:
//       pack B: the tile's columns gathered from the tensor (implicit im2col
//               of one depth block only), laid out strip by strip of kNR;
//       for each strip of kMR rows: pack A (kMR × depth block), then
//         for each column strip: the microkernel adds A·B into the tile;
//     epilogue: bias and activation on the finished tile, stored in place.
//
// The microkernel keeps a kMR × kNR block of C in vector registers: each
// depth step loads kNV vectors of B and broadcasts kMR values of A, kMR·kNV
// FMAs (AVX-512 float: 12 × 32, 24 of the 32 zmm registers).
//
// Tiles that would leave threads idle slice the depth instead; the slices'
// partial tiles are summed in a fixed order, so results never depend on
// timing (no atomics).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../common/conv2d.h"
#include "vec_math.h"

namespace cnnfast {
namespace cpu {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
constexpr int kMR = 12;
#elif defined(__AVX2__)
constexpr int kVectorBytes = 32;
constexpr int kMR = 6;
#else
constexpr int kVectorBytes = 16;
constexpr int kMR = 6;
#endif
constexpr int kNV = 2;  // vectors per row of the register block

template <class T>
constexpr int64_t kLanes = kVectorBytes / sizeof(T);
template <class T>
constexpr int64_t kNR = kNV * kLanes<T>;

// Depth per packed block: an A strip (kMR × 256 floats, 12 KiB) and a B strip
// (256 × 32 floats, 32 KiB) stay in the 48 KiB L1 while the microkernel runs.
constexpr int64_t kDepthBlock = 256;
// Columns per tile: the packed B block (256 × 384 floats, 384 KiB) and the
// tile of C stay in L2.
constexpr int64_t kMaxTileCols = 384;

template <class T>
struct VectorOf {
  typedef T type __attribute__((vector_size(kVectorBytes), aligned(sizeof(T))));
};

// c[kMR][kNR] (+)= a[depth][kMR]ᵀ · b[depth][kNR].
template <class T>
void microkernel(int64_t depth, const T* __restrict a, const T* __restrict b, T* __restrict c,
                 bool accumulate) {
  using V = typename VectorOf<T>::type;
  constexpr int64_t L = kLanes<T>;
  V acc[kMR][kNV];
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNV; ++j) {
      if (accumulate)
        std::memcpy(&acc[i][j], c + i * kNR<T> + j * L, sizeof(V));
      else
        acc[i][j] = V{};
    }
  for (int64_t kk = 0; kk < depth; ++kk) {
    V bv[kNV];
    for (int j = 0; j < kNV; ++j) std::memcpy(&bv[j], b + kk * kNR<T> + j * L, sizeof(V));
    for (int i = 0; i < kMR; ++i) {
      const T ai = a[kk * kMR + i];
      for (int j = 0; j < kNV; ++j) acc[i][j] += ai * bv[j];
    }
  }
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNV; ++j) std::memcpy(c + i * kNR<T> + j * L, &acc[i][j], sizeof(V));
}

// The activation over a row of the finished tile (tanh vectorized for float).
template <class T>
void activate_row(T* v, int64_t n, Activation act) {
  if (act == Activation::kRelu) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) v[i] = relu_value(v[i]);
  } else if (act == Activation::kTanh) {
    if constexpr (std::is_same_v<T, float>) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) v[i] = tanh_f32(v[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) v[i] = std::tanh(v[i]);
    }
  }
}

template <class T>
void activation_grad_rows(const T* g, const T* o, T* dst, int64_t n, Activation act) {
  at::parallel_for(0, n, 1 << 14, [&](int64_t begin, int64_t end) {
    if (act == Activation::kRelu) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) dst[i] = relu_grad(g[i], o[i]);
    } else {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) dst[i] = tanh_grad(g[i], o[i]);
    }
  });
}

// How a view's GEMM is cut into tiles.
struct TilePlan {
  int64_t groups, rows, cols, depth;
  int64_t row_block, col_block, depth_slice;
  int64_t row_blocks, col_blocks, slices;
  int64_t tiles() const { return groups * row_blocks * col_blocks * slices; }
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// At least kTilesPerThread tiles per thread where the problem allows, for
// balance: first by cutting columns finer, then rows, then the depth.
template <class T>
TilePlan plan_tiles(int64_t groups, int64_t rows, int64_t cols, int64_t depth) {
  constexpr int64_t kTilesPerThread = 2;
  const int64_t want = kTilesPerThread * at::get_num_threads();
  TilePlan t{groups, rows, cols, depth, rows, 0, depth, 1, 0, 1};
  int64_t col_blocks = ceil_div(cols, kMaxTileCols);
  if (groups * col_blocks < want) col_blocks = std::min(ceil_div(cols, kNR<T>), ceil_div(want, groups));
  t.col_block = round_up(ceil_div(cols, std::max<int64_t>(col_blocks, 1)), kNR<T>);
  t.col_blocks = ceil_div(cols, t.col_block);
  int64_t row_blocks = 1;
  if (groups * t.col_blocks < want)
    row_blocks = std::min(ceil_div(rows, kMR), ceil_div(want, groups * t.col_blocks));
  t.row_block = round_up(ceil_div(rows, row_blocks), kMR);
  t.row_blocks = ceil_div(rows, t.row_block);
  const int64_t spread = groups * t.row_blocks * t.col_blocks;
  if (spread < want && depth >= 4 * kDepthBlock) {
    const int64_t slices = std::min(ceil_div(want, spread), depth / (2 * kDepthBlock));
    t.depth_slice = round_up(ceil_div(depth, slices), kDepthBlock);
    t.slices = ceil_div(depth, t.depth_slice);
  }
  return t;
}

// Gathered B columns of one tile: for each column, its offset, position and
// whether it is the column of ones. Padding columns beyond the GEMM read 0.
struct PackedColumns {
  std::vector<int64_t> offset, y, x;
  std::vector<uint8_t> ones;
  bool any_ones = false;

  template <class View>
  void fill(const View& view, int64_t col0, int64_t count, int64_t padded) {
    offset.assign(padded, 0);
    y.assign(padded, INT64_MIN / 4);  // never inside the bounds
    x.assign(padded, 0);
    ones.assign(padded, 0);
    any_ones = false;
    const GatherBounds bounds = view.b_bounds();
    const bool unit = bounds.stride_y == 1 && bounds.stride_x == 1;
    for (int64_t j = 0; j < count; ++j) {
      const GatherCoord c = view.b_col(col0 + j);
      // With unit strides the position folds into the offset.
      offset[j] = unit ? c.offset + c.y * bounds.pitch + c.x : c.offset;
      y[j] = c.y;
      x[j] = c.x;
      ones[j] = c.ones;
      any_ones = any_ones || c.ones;
    }
  }
};

// B[kd0 + kk][col0 + j] into dst[j / kNR][kk][j % kNR] for kk < depth, j < padded.
template <class T, class View>
void pack_b(const View& view, const PackedColumns& cols, int64_t kd0, int64_t depth,
            int64_t padded, T* dst) {
  const T* src = view.b_source();
  const GatherBounds bounds = view.b_bounds();
  const bool unit = bounds.stride_y == 1 && bounds.stride_x == 1;
  const int64_t* off = cols.offset.data();
  const int64_t* cy = cols.y.data();
  const int64_t* cx = cols.x.data();
  const uint64_t limit_y = bounds.limit_y, limit_x = bounds.limit_x;
  constexpr int64_t NR = kNR<T>;
  for (int64_t kk = 0; kk < depth; ++kk) {
    const GatherCoord d = view.b_depth(kd0 + kk);
    const int64_t base = unit ? d.offset + d.y * bounds.pitch + d.x : 0;
    for (int64_t strip = 0; strip < padded / NR; ++strip) {
      T* out = dst + (strip * depth + kk) * NR;
      const int64_t j0 = strip * NR;
      if (unit) {
#pragma omp simd
        for (int64_t l = 0; l < NR; ++l) {
          const int64_t j = j0 + l;
          const bool inside = static_cast<uint64_t>(d.y + cy[j]) < limit_y &&
                              static_cast<uint64_t>(d.x + cx[j]) < limit_x;
          out[l] = inside ? src[base + off[j]] : T(0);
        }
      } else {
        for (int64_t l = 0; l < NR; ++l) {
          GatherCoord c;
          c.offset = off[j0 + l];
          c.y = cy[j0 + l];
          c.x = cx[j0 + l];
          const int64_t at = bounds.index(d, c);
          out[l] = at < 0 ? T(0) : src[at];
        }
      }
      if (cols.any_ones)
        for (int64_t l = 0; l < NR; ++l)
          if (cols.ones[j0 + l]) out[l] = T(1);
    }
  }
}

// A[m0 + i][kd0 + kk] into dst[kk][i] for i < kMR (rows past `rows` read 0).
template <class T, class View>
void pack_a(const View& view, int64_t m0, int64_t rows, int64_t kd0, int64_t depth, T* dst) {
  const T* a = view.a_rows() + m0 * view.a_row_stride();
  const int64_t stride = view.a_row_stride();
  const int64_t valid = std::min<int64_t>(kMR, rows - m0);
  for (int64_t kk = 0; kk < depth; ++kk) {
    const T* column = a + view.a_offset(kd0 + kk);
    T* out = dst + kk * kMR;
    for (int64_t i = 0; i < valid; ++i) out[i] = column[i * stride];
    for (int64_t i = valid; i < kMR; ++i) out[i] = T(0);
  }
}

// The tile's C block: [row strip][column strip][kMR][kNR].
template <class T>
struct TileBuffers {
  std::vector<T> a, b, c;
  PackedColumns cols;
  TileBuffers(const TilePlan& plan)
      : a(kDepthBlock * kMR),
        b(kDepthBlock * plan.col_block),
        c(plan.row_block * plan.col_block) {}
};

template <class T>
T* c_block(T* c, int64_t strip_row, int64_t strip_col, int64_t col_block) {
  return c + (strip_row * (col_block / kNR<T>) + strip_col) * kMR * kNR<T>;
}

// C of one tile over depth [kd_begin, kd_end) into buffers.c.
template <class T, class View>
void multiply_tile(const View& view, const TilePlan& plan, int64_t row0, int64_t rows,
                   int64_t col0, int64_t cols, int64_t kd_begin, int64_t kd_end,
                   TileBuffers<T>& buf) {
  const int64_t padded = round_up(cols, kNR<T>);
  buf.cols.fill(view, col0, cols, padded);
  for (int64_t kd0 = kd_begin; kd0 < kd_end; kd0 += kDepthBlock) {
    const int64_t depth = std::min(kDepthBlock, kd_end - kd0);
    pack_b(view, buf.cols, kd0, depth, padded, buf.b.data());
    for (int64_t i = 0; i < ceil_div(rows, kMR); ++i) {
      pack_a(view, row0 + i * kMR, row0 + rows, kd0, depth, buf.a.data());
      for (int64_t j = 0; j < padded / kNR<T>; ++j)
        microkernel(depth, buf.a.data(), buf.b.data() + j * depth * kNR<T>,
                    c_block(buf.c.data(), i, j, plan.col_block), kd0 > kd_begin);
    }
  }
  if (kd_begin == kd_end) std::fill(buf.c.begin(), buf.c.end(), T(0));
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
  T row[NR];
  for (int64_t m = 0; m < rows; ++m) {
    const T bias = view.bias_value(row0 + m);
    T* out_row = out + (row0 + m) * row_stride;
    for (int64_t j0 = 0; j0 < cols; j0 += NR) {
      const int64_t n = std::min(NR, cols - j0);
      const T* src = c_block(c, m / kMR, j0 / NR, plan.col_block) + (m % kMR) * NR;
      for (int64_t l = 0; l < n; ++l) row[l] = src[l] + bias;
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
  std::vector<T> partial(plan.slices > 1 ? plan.tiles() * tile_size : 0);

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

  at::parallel_for(0, plan.tiles(), 1, [&](int64_t begin, int64_t end) {
    TileBuffers<T> buf(plan);
    for (int64_t t = begin; t < end; ++t) {
      const TileIndex i = tile_at(t);
      const View& view = views[i.group];
      const int64_t kd_begin = std::min(depth, i.slice * plan.depth_slice);
      const int64_t kd_end = std::min(depth, kd_begin + plan.depth_slice);
      multiply_tile(view, plan, i.row0, i.rows, i.col0, i.cols, kd_begin, kd_end, buf);
      if (plan.slices == 1)
        store_tile(view, plan, i.row0, i.rows, i.col0, i.cols, buf.c.data());
      else
        std::copy(buf.c.begin(), buf.c.end(), partial.begin() + t * tile_size);
    }
  });
  if (plan.slices == 1) return;
  at::parallel_for(0, plan.tiles() / plan.slices, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> sum(tile_size);
    for (int64_t u = begin; u < end; ++u) {
      const T* first_slice = partial.data() + u * plan.slices * tile_size;
      std::copy(first_slice, first_slice + tile_size, sum.begin());
      for (int64_t s = 1; s < plan.slices; ++s) {
        const T* slice = first_slice + s * tile_size;
#pragma omp simd
        for (int64_t e = 0; e < tile_size; ++e) sum[e] += slice[e];
      }
      const TileIndex i = tile_at(u * plan.slices);
      store_tile(views[i.group], plan, i.row0, i.rows, i.col0, i.cols, sum.data());
    }
  });
}

// The engine the op drivers (csrc/kernels/conv2d.h, linear.h) use on CPU
// tensors. Its packers read the operands raw, so the drivers first form
// grad_output times the activation's derivative (one pass, read R·S times).
struct CpuGemmEngine {
  static constexpr bool kHalfTypes = false;
  static constexpr bool kFormsGradProductFirst = true;
  explicit CpuGemmEngine(const at::Tensor&) {}

  template <class View>
  void run(const std::vector<View>& views) const {
    run_implicit_gemm<typename View::element_type>(views);
  }

  // grad · act'(out), elementwise.
  at::Tensor grad_product(const at::Tensor& grad, const at::Tensor& out, Activation act) const {
    at::Tensor product = at::empty(grad.sizes(), grad.options());
    AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "activation_grad", [&] {
      activation_grad_rows(grad.const_data_ptr<scalar_t>(), out.const_data_ptr<scalar_t>(),
                           product.mutable_data_ptr<scalar_t>(), grad.numel(), act);
    });
    return product;
  }
};

}  // namespace cpu
}  // namespace cnnfast
