#pragma once
// Packing the CPU GEMM's operands into the microkernel's strips: A as
// [depth][kMR] per row strip, B as [depth][kNR] per column strip, gathered
// from the tensors (implicit im2col of one depth block at a time) by runs
// of evenly spaced elements, with masked vector moves where they apply.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../common/conv2d.h"
#include "gemm_microkernel.h"
#include "gemm_plan.h"
#include "transpose.h"
#include "vec_math.h"

namespace cnnfast {
namespace cpu {

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

// Rough cost per element, in cycles, of packing along these runs, to choose
// which way pack_b copies. Estimates for AVX-512, not measurements; only
// their ratios matter. A run costs kRunCycles to start (its bounds and
// padding clipped); then an element costs kVectorMoveCycles where source
// and destination are contiguous along the run (masked vector moves),
// kScalarStoreCycles where the destination is strided (packing along the
// depth stores one lane per strip row), and kGatherCycles more where the
// source is strided too. So packing along columns wins unless its runs are
// short (many runs per element) or strided and the depth's are long.
inline double packing_cost(const std::vector<GatherRun>& runs, int64_t count,
                           bool strided_destination) {
  constexpr double kRunCycles = 20.0, kVectorMoveCycles = 0.2, kScalarStoreCycles = 1.0,
                   kGatherCycles = 2.0;
  if (runs.empty()) return 0.0;
  int64_t unit = 0;
  for (const GatherRun& run : runs)
    if (run.len == 1 || run.step_offset + run.step_x == 1) unit += run.len;
  const double strided_share = 1.0 - static_cast<double>(unit) / static_cast<double>(count);
  const double copy = (strided_destination ? kScalarStoreCycles : kVectorMoveCycles) +
                      kGatherCycles * strided_share;
  return kRunCycles * static_cast<double>(runs.size()) / static_cast<double>(count) + copy;
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

static_assert(!kMaskedMoves || kMR <= kBlockLanes, "an A strip's rows fit one transposed block");

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
// at a time) or along the depth (one column at a time).
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

}  // namespace cpu
}  // namespace cnnfast
