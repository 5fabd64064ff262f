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
#include "elementwise.h"
#include "vec_math.h"

namespace cnnfast {
namespace cpu {

constexpr int kMR = kVectorBytes == 64 ? 12 : 6;  // rows of the register block
constexpr int kNV = 2;  // vectors per row of the register block

template <class T>
constexpr int64_t kNR = kNV * kLanes<T>;

// Depth per packed block: an A strip (kMR × 256 floats, 12 KiB) and a B strip
// (256 × 32 floats, 32 KiB) stay in the 48 KiB L1 while the microkernel runs.
constexpr int64_t kDepthBlock = 256;
// Columns and rows per tile: the packed B block (256 × 384 floats, 384 KiB)
// and the tile of C (at most 384 × 384 floats) stay in L2.
constexpr int64_t kMaxTileCols = 384;
constexpr int64_t kMaxTileRows = 384;

// The shuffle indices of transpose_block: in round r, the lanes of a pair
// of rows (i, i + b), b = kLanes / 2^(r+1), that make the new rows.
template <class T>
struct TransposeMasks {
  using Index = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef Index IndexVector __attribute__((vector_size(kVectorBytes)));
  static constexpr int kRounds = kLanes<T> == 16 ? 4 : kLanes<T> == 8 ? 3 : kLanes<T> == 4 ? 2 : 1;
  IndexVector low[kRounds], high[kRounds];
  TransposeMasks() {
    constexpr int64_t L = kLanes<T>;
    for (int r = 0; r < kRounds; ++r) {
      const int64_t b = L >> (r + 1);
      for (int64_t l = 0; l < L; ++l) {
        low[r][l] = static_cast<Index>((l & b) ? L + l - b : l);
        high[r][l] = static_cast<Index>((l & b) ? L + l : l + b);
      }
    }
  }
};

// Transposes a kLanes × kLanes block held as kLanes vectors: log2(kLanes)
// rounds, each swapping the off-diagonal sub-blocks of a pair of rows with
// two-vector shuffles (vpermt2ps under AVX-512). Interleaving images into
// lanes and back is done 16 × 16 (float) at a time this way.
template <class T>
inline __attribute__((always_inline)) void transpose_block(typename VectorOf<T>::type* rows) {
  using V = typename VectorOf<T>::type;
  constexpr int64_t L = kLanes<T>;
  static const TransposeMasks<T> masks;
  for (int r = 0; r < TransposeMasks<T>::kRounds; ++r) {
    const int64_t b = L >> (r + 1);
    for (int64_t i = 0; i < L; ++i) {
      if (i & b) continue;
      const V a = rows[i], c = rows[i + b];
      rows[i] = __builtin_shuffle(a, c, masks.low[r]);
      rows[i + b] = __builtin_shuffle(a, c, masks.high[r]);
    }
  }
}

// grad · act'(out) a vector at a time (vec_math.h).
template <class T>
inline typename VectorOf<T>::type times_derivative(typename VectorOf<T>::type grad,
                                                   typename VectorOf<T>::type out, Activation act) {
  if (act == Activation::kRelu) return relu_grad_lanes(grad, out);
  if (act == Activation::kTanh) return tanh_grad_lanes(grad, out);
  return grad;
}

// c[kMR][kNR] (+)= a[depth][kMR]ᵀ · b[depth][kNR], b's rows b_stride apart.
template <class T>
void microkernel(int64_t depth, const T* __restrict a, const T* __restrict b, int64_t b_stride,
                 T* __restrict c, bool accumulate) {
  using V = typename VectorOf<T>::type;
  constexpr int64_t L = kLanes<T>;
  V acc[kMR][kNV];
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNV; ++j) {
      if (accumulate)
        acc[i][j] = load_vector(c + i * kNR<T> + j * L);
      else
        acc[i][j] = V{};
    }
  // Rows of B read in place are far apart: fetch them kPrefetchRows ahead.
  constexpr int64_t kPrefetchRows = 16;
  const bool far_rows = b_stride != kNR<T>;
  for (int64_t kk = 0; kk < depth; ++kk) {
    if (far_rows && kk + kPrefetchRows < depth)
      for (int64_t line = 0; line < kNR<T> * int64_t(sizeof(T)); line += 64)
        __builtin_prefetch(reinterpret_cast<const char*>(b + (kk + kPrefetchRows) * b_stride) + line);
    V bv[kNV];
    for (int j = 0; j < kNV; ++j) bv[j] = load_vector(b + kk * b_stride + j * L);
    for (int i = 0; i < kMR; ++i) {
      const T ai = a[kk * kMR + i];
      for (int j = 0; j < kNV; ++j) acc[i][j] += ai * bv[j];
    }
  }
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNV; ++j) store_vector(c + i * kNR<T> + j * L, acc[i][j]);
}

// The activation of each lane.
template <class T>
inline __attribute__((always_inline)) typename VectorOf<T>::type activate_lanes(typename VectorOf<T>::type v,
                                                                                Activation act) {
  if (act == Activation::kRelu) return relu_lanes(v);
  if (act == Activation::kTanh) return tanh_lanes(v);
  return v;
}

// The activation over a row of n values, a vector at a time.
template <class T>
void activate_row(T* v, int64_t n, Activation act) {
  if (act == Activation::kNone) return;
  for (int64_t i = 0; i < n; i += kLanes<T>) {
    const int64_t count = std::min(kLanes<T>, n - i);
    store_first(v + i, activate_lanes<T>(load_first(v + i, count), act), count);
  }
}

// Scratch memory each thread keeps between calls, one buffer per use: fresh
// allocations of these sizes would cost page faults on every call. (The
// largest size a thread used stays allocated for its lifetime.)
enum class Scratch : int {
  kPackedA,      // the whole of A, packed (calling thread)
  kSlices,       // partial tiles of depth slices (calling thread)
  kSliceSum,     // one tile's sum of slices (each thread)
  kTileA,        // a tile's packed A (each thread)
  kTileB,        // a tile's packed B
  kTileC,        // a tile's C
  kImageInput,   // direct_conv.h: one image group's input (each thread)
  kImageResult,  // direct_conv.h: one image group's output (each thread)
  kImagePooled,  // direct_conv.h: that output average-pooled (each thread)
  kImagesX,      // direct_conv.h: every image group's input (calling thread)
  kImagesGrad,   // direct_conv.h: every image group's gradient (calling thread)
  kPaddedWeight, // linear.cpp: a narrow layer's weight, rows padded to whole vectors
  kCount
};

// The buffers start on a 64-byte boundary, so that vector loads of packed
// strips and interleaved pixels never straddle two cache lines (malloc
// gives 16).
template <class T>
T* scratch(Scratch slot, int64_t count) {
  constexpr int64_t kSlack = 64 / sizeof(T);
  thread_local std::vector<T> buffers[static_cast<int>(Scratch::kCount)];
  std::vector<T>& buffer = buffers[static_cast<int>(slot)];
  if (static_cast<int64_t>(buffer.size()) < count + kSlack) buffer.resize(count + kSlack);
  const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
  return reinterpret_cast<T*>((address + 63) & ~std::uintptr_t{63});
}

// How a view's GEMM is cut into tiles.
struct TilePlan {
  int64_t groups, rows, cols, depth;
  int64_t row_block, col_block, depth_slice;
  int64_t row_blocks, col_blocks, slices;
  int64_t tiles() const { return groups * row_blocks * col_blocks * slices; }
};

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
  int64_t row_blocks = ceil_div(rows, kMaxTileRows);
  if (groups * t.col_blocks * row_blocks < want)
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

// A run of consecutive B indices (columns, or depth indices) whose gathered
// elements step through memory evenly: index first + t sits at
// offset + t * step_offset, position (y, x + t * step_x). Pixels along an
// output row make runs (step_x = stride), and so do the images of a linear
// layer (step_offset = one image). Packing copies runs, not elements.
struct GatherRun {
  int64_t first = 0, len = 0, offset = 0, y = 0, x = 0, step_offset = 0, step_x = 0;
};

// The runs of coordinates [0, count), none crossing a multiple of `split`
// and none holding the column of ones.
inline std::vector<GatherRun> find_runs(const std::vector<GatherCoord>& coords, int64_t count,
                                        int64_t split) {
  std::vector<GatherRun> runs;
  for (int64_t i = 0; i < count;) {
    const GatherCoord& c = coords[i];
    GatherRun run{i, 1, c.offset, c.y, c.x, 0, 0};
    if (!c.ones()) {
      const int64_t end = std::min(count, (i / split + 1) * split);
      // Positions must not step backwards: copy_run clips the padding for x
      // increasing along the run.
      if (i + 1 < end && !coords[i + 1].ones() && coords[i + 1].y == c.y &&
          coords[i + 1].x >= c.x) {
        run.step_offset = coords[i + 1].offset - c.offset;
        run.step_x = coords[i + 1].x - c.x;
      }
      while (i + run.len < end) {
        const GatherCoord& next = coords[i + run.len];
        if (next.ones() || next.y != c.y || next.offset != c.offset + run.len * run.step_offset ||
            next.x != c.x + run.len * run.step_x)
          break;
        ++run.len;
      }
      if (run.len == 1) run.step_offset = run.step_x = 0;
    }
    runs.push_back(run);
    i += run.len;
  }
  return runs;
}

// dst[0, len) = from[0, len) where t is in [lo, hi), else 0: a contiguous
// run, one masked load and one masked store per vector (masked-off lanes
// never fault, so `from` may point before the tensor).
template <class T>
inline __attribute__((always_inline)) void copy_contiguous(const T* from, int64_t lo, int64_t hi,
                                                           int64_t len, T* dst) {
  if constexpr (kMaskedMoves && (std::is_same_v<T, float> || std::is_same_v<T, double>)) {
    constexpr int64_t L = kLanes<T>;
    for (int64_t t0 = 0; t0 < len; t0 += L) {
      const int64_t n = std::min(L, len - t0);
      const int64_t a = std::clamp<int64_t>(lo - t0, 0, n), b = std::clamp<int64_t>(hi - t0, a, n);
      const uint32_t store = (1u << n) - 1u, load = ((1u << b) - 1u) & ~((1u << a) - 1u);
      store_lanes(dst + t0, load_lanes(from + t0, load), store);
    }
    return;
  }
  for (int64_t t = 0; t < len; ++t) dst[t] = t >= lo && t < hi ? from[t] : T(0);
}

// dst[t * dst_step] = the run's element t, or 0 where its position falls in
// the padding (x outside [0, limit_x), or the whole row outside).
template <class T>
inline __attribute__((always_inline)) void copy_run(const T* src, const GatherRun& run, int64_t y,
                                                    int64_t x0, const GatherBounds& b, T* dst,
                                                    int64_t dst_step) {
  int64_t lo = 0, hi = 0;
  if (y >= 0 && y < b.limit_y) {
    if (run.step_x == 0) {
      hi = x0 >= 0 && x0 < b.limit_x ? run.len : 0;
    } else if (run.step_x == 1) {
      lo = std::clamp<int64_t>(-x0, 0, run.len);
      hi = std::clamp<int64_t>(b.limit_x - x0, lo, run.len);
    } else {
      lo = x0 >= 0 ? 0 : ceil_div(-x0, run.step_x);
      hi = x0 >= b.limit_x ? 0 : std::min(run.len, ceil_div(b.limit_x - x0, run.step_x));
      lo = std::min(lo, hi);
    }
  }
  const int64_t step = run.step_offset + run.step_x;
  const T* from = src + run.offset + y * b.pitch + x0;
  if (dst_step == 1 && step == 1) return copy_contiguous(from, lo, hi, run.len, dst);
  for (int64_t t = 0; t < lo; ++t) dst[t * dst_step] = T(0);
  for (int64_t t = lo; t < hi; ++t) dst[t * dst_step] = from[t * step];
  for (int64_t t = std::max(lo, hi); t < run.len; ++t) dst[t * dst_step] = T(0);
}

// The B indices of one tile: its columns, and the runs among them.
struct TileColumns {
  std::vector<GatherCoord> coords;
  std::vector<GatherRun> runs;
  int64_t count = 0;

  template <class View, class T>
  void fill(const View& view, int64_t col0, int64_t n, T) {
    count = n;
    coords.resize(n);
    for (int64_t j = 0; j < n; ++j) coords[j] = view.b_col(col0 + j);
    runs = find_runs(coords, n, kNR<T>);
  }
};

// Rough cost per element, in cycles, of packing along these runs: a fixed
// cost per run, plus the copy — masked vector moves where both sides are
// contiguous, scalar moves where the destination is strided (packing along
// the depth), more where the source is strided too.
inline double packing_cost(const std::vector<GatherRun>& runs, int64_t count,
                           bool strided_destination) {
  if (runs.empty()) return 0.0;
  int64_t unit = 0;
  for (const GatherRun& run : runs)
    if (run.len == 1 || run.step_offset + run.step_x == 1) unit += run.len;
  const double unit_share = static_cast<double>(unit) / static_cast<double>(count);
  const double copy = strided_destination ? 1.0 + 2.0 * (1.0 - unit_share)
                                          : 0.2 + 2.0 * (1.0 - unit_share);
  return 20.0 * static_cast<double>(runs.size()) / static_cast<double>(count) + copy;
}

inline uint32_t lane_range(int64_t lo, int64_t hi) {  // bits [lo, hi) ∩ [0, 32)
  const auto below = [](int64_t n) { return n >= 32 ? ~0u : n <= 0 ? 0u : (1u << n) - 1u; };
  return hi > lo ? below(hi) & ~below(lo) : 0u;
}

// A convolution's fprop packed along columns with masked moves:
// every run is a piece of an output row within one strip, contiguous in
// the source (stride 1, or a strided convolution's phases: phase_split.h),
// so one masked load and store per vector — element-by-element copies
// along the depth, the other way round, took as long as the GEMM itself.
// Store masks and destinations are worked out once per tile, load masks
// (the padding) once per depth row and run. Returns false, doing nothing,
// where the case does not apply (no masked moves, other runs).
template <class T, class View>
bool pack_pixel_runs(const View& view, const TileColumns& cols, const std::vector<GatherCoord>& depth_coords,
                     int64_t depth, T* dst) {
  if constexpr (kMaskedMoves && std::is_same_v<T, float>) {
    constexpr int64_t L = kLanes<T>, NR = kNR<T>;
    static_assert(NR == 2 * L, "a run spans at most two vectors");
    for (const GatherRun& run : cols.runs)
      if (run.step_offset != 0 || run.step_x > 1 || cols.coords[run.first].ones()) return false;
    const GatherBounds bounds = view.b_bounds();
    const T* src = view.b_source();
    const size_t runs = cols.runs.size();
    std::vector<int64_t> target(runs), base(runs);
    std::vector<uint32_t> full(runs);
    for (size_t i = 0; i < runs; ++i) {
      const GatherRun& run = cols.runs[i];  // never crosses a strip: len <= NR
      target[i] = (run.first / NR) * depth * NR + run.first % NR;
      base[i] = run.offset + run.y * bounds.pitch + run.x;
      full[i] = lane_range(0, run.len);
    }
    for (int64_t kk = 0; kk < depth; ++kk) {
      const GatherCoord& d = depth_coords[kk];
      const T* from = src + d.offset + d.y * bounds.pitch + d.x;
      T* out = dst + kk * NR;
      for (size_t i = 0; i < runs; ++i) {
        const GatherRun& run = cols.runs[i];
        const int64_t y = d.y + run.y, x0 = d.x + run.x;
        // Lanes t with 0 <= x0 + t < limit_x, on a row inside the image.
        const uint32_t load = y >= 0 && y < bounds.limit_y ? full[i] & lane_range(-x0, bounds.limit_x - x0) : 0u;
        for (int64_t half = 0; half < 2 && (full[i] >> (half * L)) != 0; ++half)
          store_lanes(out + target[i] + half * L, load_lanes(from + base[i] + half * L, load >> (half * L)),
                      full[i] >> (half * L));
      }
    }
    return true;
  }
  (void)view, (void)cols, (void)depth_coords, (void)depth, (void)dst;
  return false;
}

// Packing an operand whose rows (A) or columns (B) each lie contiguous
// along the depth — linear's x and weight, a convolution's weight — is a
// transpose: kLanes × kLanes float blocks in registers (16 × 16 with
// AVX-512, 8 × 8 with AVX2), not element-wise strided copies. `lines[i]`
// starts line i (null: a line of zeros); block row u, lane i ends up as
// element kk0 + u of line i.
constexpr int64_t kBlockLanes = kLanes<float>;
static_assert(!kMaskedMoves || kMR <= kBlockLanes, "an A strip's rows fit one transposed block");

inline void transpose_lines(const float* const* lines, int64_t kk0, int64_t depth, VectorOf<float>::type* block) {
  using V = VectorOf<float>::type;
  const uint32_t mask = (1u << std::min(kBlockLanes, depth - kk0)) - 1u;
  for (int64_t i = 0; i < kBlockLanes; ++i) block[i] = lines[i] == nullptr ? V{} : load_lanes(lines[i] + kk0, mask);
  transpose_block<float>(block);
}

// Whether every (depth, column) element of B is src[depth offset + column
// offset] with the depth offsets consecutive: 1×1 images, no padding, no
// column of ones.
template <class View>
bool b_is_depth_contiguous(const View& view, const TileColumns& cols, const std::vector<GatherCoord>& depth_coords,
                           int64_t depth) {
  const GatherBounds bounds = view.b_bounds();
  if (bounds.limit_y != 1 || bounds.limit_x != 1) return false;
  for (int64_t kk = 0; kk < depth; ++kk) {
    const GatherCoord& d = depth_coords[kk];
    if (d.ones() || d.y != 0 || d.x != 0 || d.offset != depth_coords[0].offset + kk) return false;
  }
  for (int64_t j = 0; j < cols.count; ++j) {
    const GatherCoord& c = cols.coords[j];
    if (c.ones() || c.y != 0 || c.x != 0) return false;
  }
  return true;
}

template <class T, class View>
bool pack_b_transposed(const View& view, const TileColumns& cols, const std::vector<GatherCoord>& depth_coords,
                       int64_t depth, T* dst) {
  if constexpr (kMaskedMoves && std::is_same_v<T, float>) {
    constexpr int64_t NR = kNR<float>, L = kBlockLanes;
    if (!b_is_depth_contiguous(view, cols, depth_coords, depth)) return false;
    const float* src = view.b_source() + depth_coords[0].offset;
    for (int64_t j0 = 0; j0 < cols.count; j0 += L) {
      const float* lines[L];
      for (int64_t i = 0; i < L; ++i) lines[i] = j0 + i < cols.count ? src + cols.coords[j0 + i].offset : nullptr;
      float* strip = dst + (j0 / NR) * depth * NR + j0 % NR;
      for (int64_t kk0 = 0; kk0 < depth; kk0 += L) {
        VectorOf<float>::type block[L];
        transpose_lines(lines, kk0, depth, block);
        for (int64_t u = 0; u < std::min(L, depth - kk0); ++u)
          store_vector(strip + (kk0 + u) * NR, block[u]);
      }
    }
    return true;
  }
  return false;
}

// Whether A's depth offsets are consecutive over [kd0, kd0 + depth).
template <class View>
bool a_is_depth_contiguous(const View& view, int64_t kd0, int64_t depth) {
  for (int64_t kk = 0; kk < depth; ++kk)
    if (view.a_offset(kd0 + kk) != view.a_offset(kd0) + kk) return false;
  return true;
}

template <class T, class View>
bool pack_a_transposed(const View& view, int64_t m0, int64_t rows, int64_t kd0, int64_t depth, T* dst) {
  if constexpr (kMaskedMoves && std::is_same_v<T, float>) {
    constexpr int64_t L = kBlockLanes;
    if (!a_is_depth_contiguous(view, kd0, depth)) return false;
    const float* a = view.a_rows() + m0 * view.a_row_stride() + view.a_offset(kd0);
    const float* lines[L];
    for (int64_t i = 0; i < L; ++i) lines[i] = i < kMR && m0 + i < rows ? a + i * view.a_row_stride() : nullptr;
    for (int64_t kk0 = 0; kk0 < depth; kk0 += L) {
      VectorOf<float>::type block[L];
      transpose_lines(lines, kk0, depth, block);
      for (int64_t u = 0; u < std::min(L, depth - kk0); ++u)
        std::memcpy(dst + (kk0 + u) * kMR, &block[u], kMR * sizeof(float));
    }
    return true;
  }
  return false;
}

// B[kd0 + kk][col0 + j] into dst[j / kNR][kk][j % kNR] for kk < depth and
// j < the tile's columns rounded up to kNR (the rest read 0). Copies along
// whichever runs are cheaper (packing_cost): along columns (one depth row
// at a time) or along the depth (one column at a time). Strided dgrad goes
// element by element.
template <class T, class View>
void pack_b(const View& view, const TileColumns& cols, int64_t kd0, int64_t depth, T* dst) {
  constexpr int64_t NR = kNR<T>;
  const T* src = view.b_source();
  const GatherBounds bounds = view.b_bounds();
  const int64_t padded = round_up(cols.count, NR);
  T* const last_strip = dst + (padded / NR - 1) * depth * NR;
  for (int64_t kk = 0; kk < depth; ++kk)
    for (int64_t l = cols.count % NR; l > 0 && l < NR; ++l) last_strip[kk * NR + l] = T(0);

  std::vector<GatherCoord> depth_coords(depth);
  for (int64_t kk = 0; kk < depth; ++kk) depth_coords[kk] = view.b_depth(kd0 + kk);
  const auto at = [&](int64_t kk, int64_t j) { return dst + ((j / NR) * depth + kk) * NR + j % NR; };

  if (bounds.stride_y != 1 || bounds.stride_x != 1) {
    for (int64_t kk = 0; kk < depth; ++kk)
      for (int64_t j = 0; j < cols.count; ++j)
        *at(kk, j) = static_cast<T>(gather_value(src, bounds, depth_coords[kk], cols.coords[j]));
    return;
  }
  if (pack_b_transposed(view, cols, depth_coords, depth, dst)) return;
  const std::vector<GatherRun> depth_runs = find_runs(depth_coords, depth, depth);
  if (packing_cost(cols.runs, cols.count, false) <= packing_cost(depth_runs, depth, true)) {
    if (pack_pixel_runs(view, cols, depth_coords, depth, dst)) return;
    for (int64_t kk = 0; kk < depth; ++kk) {
      const GatherCoord& d = depth_coords[kk];
      for (const GatherRun& run : cols.runs) {
        if (cols.coords[run.first].ones()) {
          *at(kk, run.first) = T(1);
          continue;
        }
        copy_run(src + d.offset, run, d.y + run.y, d.x + run.x, bounds, at(kk, run.first), 1);
      }
    }
  } else {
    for (int64_t j = 0; j < cols.count; ++j) {
      const GatherCoord& c = cols.coords[j];
      for (const GatherRun& run : depth_runs) {
        if (c.ones()) {
          for (int64_t t = 0; t < run.len; ++t) *at(run.first + t, j) = T(1);
          continue;
        }
        copy_run(src + c.offset, run, c.y + run.y, c.x + run.x, bounds, at(run.first, j), NR);
      }
    }
  }
}

// A[m0 + i][kd0 + kk] into dst[kk][i] for i < kMR (rows past `rows` read 0).
template <class T, class View>
void pack_a(const View& view, int64_t m0, int64_t rows, int64_t kd0, int64_t depth, T* dst) {
  if (pack_a_transposed(view, m0, rows, kd0, depth, dst)) return;
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

// A of a whole GEMM packed once, strip by strip ([strip][depth][kMR]), when
// more than one column block would otherwise pack it again.
template <class View>
int64_t packed_a_size(const View& view) {
  return ceil_div(view.rows(), kMR) * view.depth() * kMR;
}

template <class T, class View>
void pack_a_whole(const View& view, T* packed) {
  const int64_t strips = ceil_div(view.rows(), kMR), depth = view.depth();
  at::parallel_for(0, strips, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      pack_a(view, i * kMR, view.rows(), 0, depth, packed + i * depth * kMR);
  });
}

// A tile's working memory; C is [row strip][column strip][kMR][kNR].
template <class T>
struct TileBuffers {
  T *a, *b, *c;
  int64_t c_size;
  TileColumns cols;
  explicit TileBuffers(const TilePlan& plan)
      : a(scratch<T>(Scratch::kTileA, kDepthBlock * plan.row_block)),
        b(scratch<T>(Scratch::kTileB, kDepthBlock * plan.col_block)),
        c(scratch<T>(Scratch::kTileC, plan.row_block * plan.col_block)),
        c_size(plan.row_block * plan.col_block) {}
};

template <class T>
T* c_block(T* c, int64_t strip_row, int64_t strip_col, int64_t col_block) {
  return c + (strip_row * (col_block / kNR<T>) + strip_col) * kMR * kNR<T>;
}

// B read where it lies, unpacked: when the gather has no positions (1×1
// images, as in linear) and every full strip of the tile's columns is one
// contiguous run, B's rows are evenly spaced rows of the source (linear's
// weight, for the input gradient), `row_stride` apart.
struct DirectB {
  bool on = false;
  int64_t row_stride = 0, full_strips = 0;
};

template <class T, class View>
DirectB direct_b(const View& view, const TileColumns& cols) {
  constexpr int64_t NR = kNR<T>;
  const GatherBounds bounds = view.b_bounds();
  const int64_t depth = view.depth();
  if (bounds.limit_y != 1 || bounds.limit_x != 1 || depth < 2 || cols.count < NR) return {};
  for (const GatherRun& run : cols.runs) {
    const bool full = run.first % NR == 0 && run.len == NR;
    const bool tail = run.first >= cols.count / NR * NR;
    if (cols.coords[run.first].ones() || !(tail || (full && run.step_offset + run.step_x == 1)))
      return {};
  }
  const int64_t first = view.b_depth(0).offset, stride = view.b_depth(1).offset - first;
  if (view.b_depth(depth - 1).offset != first + (depth - 1) * stride) return {};
  return {true, stride, cols.count / NR};
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
  T* partial = plan.slices > 1 ? scratch<T>(Scratch::kSlices, plan.tiles() * tile_size) : nullptr;

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
    packed_a = scratch<T>(Scratch::kPackedA, a_size * static_cast<int64_t>(views.size()));
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
    T* sum = scratch<T>(Scratch::kSliceSum, tile_size);
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
