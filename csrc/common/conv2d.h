#pragma once
// Convolution as implicit GEMM, in CUTLASS's vocabulary: a problem struct
// and three operators — fprop (forward), dgrad (gradient of the input) and
// wgrad (gradient of the weight) — each one GEMM per group whose operands are
// read from the tensors on the fly, never through an im2col buffer.
//
// Every operator is a "GEMM view" with the same interface, used alike by the
// CPU engine (csrc/cpu/implicit_gemm.h) and the CUDA kernel
// (csrc/kernels/implicit_gemm.h):
//   rows(), cols(), depth()      C (rows × cols) = A (rows × depth) · B (depth × cols)
//   a_rows(), a_row_stride(),    A[m][kd] sits at a_rows()[m * a_row_stride() + a_offset(kd)];
//   a_offset(kd), a_at(m, off)   a_at reads it
//   b_source(), b_bounds(),      B is a gather: a depth index and a column index each
//   b_depth(kd), b_col(col),     contribute an offset and a (y, x) position; b_at reads
//   b_at(depth, col)             the element where the summed position is inside, else 0
//   out_base(), out_col(col),    the epilogue: C[m][col] goes to
//   out_row_stride(),            out_base()[out_col(col) + m * out_row_stride()] after
//   bias_rows(), bias_cols(),    the bias (one per row, or one per column: the pointer
//   activation()                 that is not null) and the activation; store() does all
//   store(m, col, value)         of it
//   kBLoadsAlong                 the index of B (columns or depth) along which the
//                                CUDA kernel puts a warp's loads: the one that runs
//                                along memory, so that they coalesce (A's are along
//                                its depth)
// linear is the same engine with a 1×1 image and a 1×1 kernel.
#include <cstdint>

#include "macros.h"
#include "numeric.h"

namespace cnnfast {

// The fused activation. Its derivative is read off the saved output.
enum class Activation : int32_t { kNone = 0, kRelu = 1, kTanh = 2 };

// The index of a GEMM's B operand along which a warp's loads go (GEMM
// views' kBLoadsAlong).
enum class Along : int32_t { kDepth, kCols };

template <class T>
CNNFAST_INLINE T activate(T v, Activation act) {
  if (act == Activation::kRelu) return relu_value(v);
  if (act == Activation::kTanh) return tanh_value(v);
  return v;
}

// x: n × c × h × w, weight: k × (c / groups) × r × s, output: n × k × p × q.
struct ConvProblem {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t k = 0, r = 0, s = 0;
  int64_t p = 0, q = 0;
  int64_t pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1;
  int64_t groups = 1;
  // c / groups and k / groups, stored so that the views' offsets need no
  // division: nvcc cannot hoist a division out of a predicated load, so
  // each tile's loads would otherwise repeat it.
  int64_t c_per_group = 0, k_per_group = 0;
  Activation act = Activation::kNone;

  // After c and k: the group count, and the channels per group.
  void set_groups(int64_t count) {
    groups = count;
    c_per_group = c / count;
    k_per_group = k / count;
  }
  CNNFAST_HD int64_t c_group() const { return c_per_group; }
  CNNFAST_HD int64_t k_group() const { return k_per_group; }
  CNNFAST_HD int64_t in_plane() const { return h * w; }
  CNNFAST_HD int64_t out_plane() const { return p * q; }
  CNNFAST_HD int64_t filter_taps() const { return r * s; }
};

// torch's convolution output size (dilation 1).
CNNFAST_INLINE int64_t conv_output_size(int64_t in, int64_t kernel, int64_t pad, int64_t stride) {
  return (in + 2 * pad - kernel) / stride + 1;
}

// A gathered coordinate: the offset an index adds in the source tensor and
// the (y, x) position it adds. The summed position must lie on the stride
// grid and inside the limits; the element is then read at the summed offset
// plus the position's row and column (divided by the stride) in the source.
// Positions, limits and a plane's offsets are 32-bit (conv2d_problem checks
// that the padded plane has fewer than 2^31 pixels): in the CUDA kernel a
// gather is then a few 32-bit instructions instead of 64-bit multiplies.
struct GatherCoord {
  int64_t offset = 0;
  int32_t y = 0, x = 0;

  // The constant column of ones (wgrad's bias column) is marked by its x:
  // a register the coordinate holds anyway, where a flag would take one
  // more (CUDA: wgrad's B loads spilled with one).
  static constexpr int32_t kOnesX = INT32_MIN;
  CNNFAST_HD bool ones() const { return x == kOnesX; }
};

CNNFAST_INLINE GatherCoord gather_coord(int64_t offset, int64_t y, int64_t x) {
  return {offset, static_cast<int32_t>(y), static_cast<int32_t>(x)};
}

struct GatherBounds {
  int32_t limit_y = 0, limit_x = 0, pitch = 0;

  // 0 <= v < limit as one unsigned compare.
  CNNFAST_HD static bool inside(int32_t v, int32_t limit) {
    return static_cast<uint32_t>(v) < static_cast<uint32_t>(limit);
  }
  // Whether the element at depth d and column c lies in the source, not in
  // the padding.
  CNNFAST_HD bool contains(const GatherCoord& d, const GatherCoord& c) const {
    return inside(d.y + c.y, limit_y) && inside(d.x + c.x, limit_x);
  }
  // Its index in the source, where it lies there.
  CNNFAST_HD int64_t index(const GatherCoord& d, const GatherCoord& c) const {
    return d.offset + c.offset + ((d.y + c.y) * pitch + (d.x + c.x));
  }
};

// A source of limit_y rows of limit_x elements, stored row after row.
CNNFAST_INLINE GatherBounds gather_bounds(int64_t limit_y, int64_t limit_x) {
  return {static_cast<int32_t>(limit_y), static_cast<int32_t>(limit_x), static_cast<int32_t>(limit_x)};
}

// The element at (depth, col), 0 in the padding; col is not the ones column.
// A cell in the padding reads the source's first element and drops it: the
// load then needs no branch around it (in the CUDA kernel: a select, where
// a branch took a convergence barrier and two jumps per load).
template <class T>
CNNFAST_INLINE acc_type<T> gathered_value(const T* src, const GatherBounds& bounds,
                                          const GatherCoord& depth, const GatherCoord& col) {
  const bool inside = bounds.contains(depth, col);
  const auto value = static_cast<acc_type<T>>(src[inside ? bounds.index(depth, col) : 0]);
  return inside ? value : acc_type<T>(0);
}

// The same where col may be the ones column (wgrad's bias column), without
// a branch: that column's x (INT32_MIN) plus a depth's x (wgrad's: at least
// 0) lies left of every source, so the gather reads the first element and
// drops it.
template <class T>
CNNFAST_INLINE acc_type<T> gather_value(const T* src, const GatherBounds& bounds,
                                        const GatherCoord& depth, const GatherCoord& col) {
  const acc_type<T> value = gathered_value(src, bounds, depth, col);
  return col.ones() ? acc_type<T>(1) : value;
}

// ---- fprop: out[n, k, p, q] = act(bias[k] + sum_{c, r, s} w[k, c, r, s] x[n, c, ...])
// rows = output channels of the group, cols = (n, p, q), depth = (c, r, s).
template <class T>
struct FpropGemm {
  using element_type = T;
  // B: an input row's pixels.
  static constexpr Along kBLoadsAlong = Along::kCols;
  const T* x;
  const T* weight;
  const T* bias;  // may be null
  T* out;
  ConvProblem p;
  int64_t group;

  CNNFAST_HD int64_t rows() const { return p.k_group(); }
  CNNFAST_HD int64_t cols() const { return p.n * p.out_plane(); }
  CNNFAST_HD int64_t depth() const { return p.c_group() * p.filter_taps(); }

  CNNFAST_HD int64_t a_row_stride() const { return depth(); }
  CNNFAST_HD const T* a_rows() const { return weight + group * p.k_group() * depth(); }
  CNNFAST_HD int64_t a_offset(int64_t kd) const { return kd; }
  CNNFAST_HD acc_type<T> a_at(int64_t m, int64_t offset) const {
    return static_cast<acc_type<T>>(a_rows()[m * a_row_stride() + offset]);
  }

  CNNFAST_HD const T* b_source() const { return x; }
  CNNFAST_HD GatherBounds b_bounds() const { return gather_bounds(p.h, p.w); }
  CNNFAST_HD acc_type<T> b_at(const GatherCoord& d, const GatherCoord& c) const {
    return gathered_value(x, b_bounds(), d, c);
  }
  CNNFAST_HD GatherCoord b_depth(int64_t kd) const {
    const int64_t c = kd / p.filter_taps(), tap = kd % p.filter_taps();
    return gather_coord((group * p.c_group() + c) * p.in_plane(), tap / p.s - p.pad_h,
                        tap % p.s - p.pad_w);
  }
  CNNFAST_HD GatherCoord b_col(int64_t col) const {
    const int64_t n = col / p.out_plane(), pix = col % p.out_plane();
    return gather_coord(n * p.c * p.in_plane(), (pix / p.q) * p.stride_h,
                        (pix % p.q) * p.stride_w);
  }

  // Epilogue: out_base()[out_col(col) + m * out_row_stride()] = act(v + bias).
  CNNFAST_HD T* out_base() const { return out; }
  CNNFAST_HD int64_t out_row_stride() const { return p.out_plane(); }
  CNNFAST_HD int64_t out_col(int64_t col) const {
    const int64_t n = col / p.out_plane(), pix = col % p.out_plane();
    return (n * p.k + group * p.k_group()) * p.out_plane() + pix;
  }
  CNNFAST_HD const T* bias_rows() const {
    return bias == nullptr ? nullptr : bias + group * p.k_group();
  }
  CNNFAST_HD const T* bias_cols() const { return nullptr; }
  CNNFAST_HD Activation activation() const { return p.act; }
  CNNFAST_HD void store(int64_t m, int64_t col, acc_type<T> v) const {
    if (bias != nullptr) v += static_cast<acc_type<T>>(bias_rows()[m]);
    out[out_col(col) + m * out_row_stride()] = static_cast<T>(activate(v, p.act));
  }
};

// ---- dgrad: grad_x[n, c, h, w] = sum_{k, r, s} w[k, c, r, s] g[n, k, (h + pad - r) / stride, ...]
// where g is grad_output times the activation's derivative (the op driver
// forms that product before the GEMMs) and the division is exact. It runs
// one output phase at a time (a stride-1 convolution: one phase). Input
// row h receives from filter rows r with r ≡ h + pad (mod stride) only, at
// output row (h + pad - r) / stride: the rows h ≡ h0 (mod stride) form a
// stride-1 problem with the sub-filter of rows r0 + stride·j, r0 = (h0 +
// pad) mod stride, whose output row base_h + i - j feeds phase row i
// (input row h0 + stride·i), base_h = (h0 + pad - r0) / stride; columns
// alike. stride_h · stride_w such problems cover grad_x once each, every
// product they sum is a term of the sum above, and no gather tests a
// stride grid. A phase whose sub-filter is empty (a
// stride above the kernel: 1×1 stride 2) leaves its cells zero.
struct DgradPhase {
  int64_t h0 = 0, w0 = 0;          // its first input row and column
  int64_t rows = 0, cols = 0;      // input rows and columns in it
  int64_t r0 = 0, s0 = 0;          // its first filter row and column
  int64_t taps_r = 0, taps_s = 0;  // the sub-filter's size
  int64_t base_h = 0, base_w = 0;  // the output row and column of phase cell 0, tap 0
  CNNFAST_HD int64_t plane() const { return rows * cols; }
  CNNFAST_HD int64_t taps() const { return taps_r * taps_s; }
};

inline DgradPhase dgrad_phase(const ConvProblem& p, int64_t h0, int64_t w0) {
  const auto count = [](int64_t size, int64_t first, int64_t step) {
    return size > first ? (size - first + step - 1) / step : 0;
  };
  DgradPhase ph;
  ph.h0 = h0;
  ph.w0 = w0;
  ph.rows = count(p.h, h0, p.stride_h);
  ph.cols = count(p.w, w0, p.stride_w);
  ph.r0 = (h0 + p.pad_h) % p.stride_h;
  ph.s0 = (w0 + p.pad_w) % p.stride_w;
  ph.taps_r = count(p.r, ph.r0, p.stride_h);
  ph.taps_s = count(p.s, ph.s0, p.stride_w);
  ph.base_h = (h0 + p.pad_h - ph.r0) / p.stride_h;
  ph.base_w = (w0 + p.pad_w - ph.s0) / p.stride_w;
  return ph;
}

// Whether some phase has no filter taps (a stride above the kernel), so
// that its cells of grad_x are zeros no GEMM writes.
inline bool dgrad_has_empty_phase(const ConvProblem& p) {
  return p.stride_h > p.r || p.stride_w > p.s;
}

// dgrad of one phase: rows = input channels of the group, cols = (n, i, ii)
// over the phase's cells, depth = (k, j, l) over the sub-filter's taps.
template <class T>
struct DgradGemm {
  using element_type = T;
  static constexpr Along kBLoadsAlong = Along::kCols;
  const T* grad;
  const T* weight;
  T* grad_x;
  ConvProblem p;
  int64_t group;
  DgradPhase ph;

  CNNFAST_HD int64_t rows() const { return p.c_group(); }
  CNNFAST_HD int64_t cols() const { return p.n * ph.plane(); }
  CNNFAST_HD int64_t depth() const { return p.k_group() * ph.taps(); }

  CNNFAST_HD int64_t a_row_stride() const { return p.filter_taps(); }
  CNNFAST_HD const T* a_rows() const { return weight + group * p.k_group() * p.c_group() * p.filter_taps(); }
  CNNFAST_HD int64_t a_offset(int64_t kd) const {
    const int64_t k = kd / ph.taps(), tap = kd % ph.taps();
    const int64_t r = ph.r0 + p.stride_h * (tap / ph.taps_s), s = ph.s0 + p.stride_w * (tap % ph.taps_s);
    return k * p.c_group() * p.filter_taps() + r * p.s + s;
  }
  CNNFAST_HD acc_type<T> a_at(int64_t m, int64_t offset) const {
    return static_cast<acc_type<T>>(a_rows()[m * a_row_stride() + offset]);
  }

  CNNFAST_HD const T* b_source() const { return grad; }
  CNNFAST_HD GatherBounds b_bounds() const { return gather_bounds(p.p, p.q); }
  // Output row base_h + i - j, column base_w + ii - l.
  CNNFAST_HD GatherCoord b_depth(int64_t kd) const {
    const int64_t k = kd / ph.taps(), tap = kd % ph.taps();
    return gather_coord((group * p.k_group() + k) * p.out_plane(), ph.base_h - tap / ph.taps_s,
                        ph.base_w - tap % ph.taps_s);
  }
  CNNFAST_HD GatherCoord b_col(int64_t col) const {
    const int64_t n = col / ph.plane(), cell = col % ph.plane();
    return gather_coord(n * p.k * p.out_plane(), cell / ph.cols, cell % ph.cols);
  }
  CNNFAST_HD acc_type<T> b_at(const GatherCoord& d, const GatherCoord& c) const {
    return gathered_value(grad, b_bounds(), d, c);
  }

  CNNFAST_HD T* out_base() const { return grad_x; }
  CNNFAST_HD int64_t out_row_stride() const { return p.in_plane(); }
  CNNFAST_HD int64_t out_col(int64_t col) const {
    const int64_t n = col / ph.plane(), cell = col % ph.plane();
    const int64_t h = ph.h0 + p.stride_h * (cell / ph.cols), w = ph.w0 + p.stride_w * (cell % ph.cols);
    return (n * p.c + group * p.c_group()) * p.in_plane() + h * p.w + w;
  }
  CNNFAST_HD const T* bias_rows() const { return nullptr; }
  CNNFAST_HD const T* bias_cols() const { return nullptr; }
  CNNFAST_HD Activation activation() const { return Activation::kNone; }
  CNNFAST_HD void store(int64_t m, int64_t col, acc_type<T> v) const {
    grad_x[out_col(col) + m * out_row_stride()] = static_cast<T>(v);
  }
};

// ---- wgrad: grad_w[k, c, r, s] = sum_{n, p, q} g[n, k, p, q] x[n, c, p*stride - pad + r, ...]
// rows = output channels of the group, cols = (c, r, s) plus, when the bias
// gradient is wanted and kBiasColumn, one column of ones (its sum over n, p,
// q), depth = (n, p, q). Without kBiasColumn (the CUDA engine, which sums
// the bias gradient apart) the B loads have no ones to select.
template <class T, bool kBiasColumn = true>
struct WgradGemm {
  using element_type = T;
  // B: the pixels of an input row that consecutive output pixels read
  // through one filter tap, consecutive depths. B's columns
  // (channel, tap) jump between rows and channels every few taps: at
  // AlexNet's conv2–conv5, a warp reading 32 of them at one depth touches
  // 9–13 32-byte sectors on average, reading 4 of them at 8 depths 3.5–4.
  // (With a plane of one output pixel, consecutive depths are consecutive
  // images; linear's weight gradient, LinearWgradGemm, reads the other way.)
  static constexpr Along kBLoadsAlong = Along::kDepth;
  const T* grad;  // as in DgradGemm
  const T* x;
  T* grad_w;     // may be null when only the bias gradient is wanted
  T* grad_bias;  // may be null
  ConvProblem p;
  int64_t group;

  CNNFAST_HD int64_t weight_cols() const {
    return grad_w == nullptr ? 0 : p.c_group() * p.filter_taps();
  }
  CNNFAST_HD int64_t rows() const { return p.k_group(); }
  CNNFAST_HD int64_t cols() const {
    return weight_cols() + (kBiasColumn && grad_bias != nullptr ? 1 : 0);
  }
  CNNFAST_HD int64_t depth() const { return p.n * p.out_plane(); }

  CNNFAST_HD int64_t a_row_stride() const { return p.out_plane(); }
  CNNFAST_HD const T* a_rows() const { return grad + group * p.k_group() * p.out_plane(); }
  CNNFAST_HD int64_t a_offset(int64_t kd) const {
    return (kd / p.out_plane()) * p.k * p.out_plane() + kd % p.out_plane();
  }
  CNNFAST_HD acc_type<T> a_at(int64_t m, int64_t offset) const {
    return static_cast<acc_type<T>>(a_rows()[m * a_row_stride() + offset]);
  }

  CNNFAST_HD const T* b_source() const { return x; }
  CNNFAST_HD GatherBounds b_bounds() const { return gather_bounds(p.h, p.w); }
  CNNFAST_HD GatherCoord b_depth(int64_t kd) const {
    const int64_t n = kd / p.out_plane(), pix = kd % p.out_plane();
    return gather_coord(n * p.c * p.in_plane(), (pix / p.q) * p.stride_h,
                        (pix % p.q) * p.stride_w);
  }
  CNNFAST_HD GatherCoord b_col(int64_t col) const {
    if (kBiasColumn && col >= weight_cols()) return gather_coord(0, 0, GatherCoord::kOnesX);
    const int64_t c = col / p.filter_taps(), tap = col % p.filter_taps();
    return gather_coord((group * p.c_group() + c) * p.in_plane(), tap / p.s - p.pad_h,
                        tap % p.s - p.pad_w);
  }
  CNNFAST_HD acc_type<T> b_at(const GatherCoord& d, const GatherCoord& c) const {
    if constexpr (kBiasColumn) return gather_value(x, b_bounds(), d, c);
    return gathered_value(x, b_bounds(), d, c);
  }

  // The weight columns are stored as a plain row-major block; out_col is -1
  // for the bias column, which only store() writes.
  CNNFAST_HD T* out_base() const { return grad_w; }
  CNNFAST_HD int64_t out_row_stride() const { return weight_cols(); }
  CNNFAST_HD int64_t out_col(int64_t col) const {
    return col < weight_cols() ? group * p.k_group() * weight_cols() + col : -1;
  }
  CNNFAST_HD const T* bias_rows() const { return nullptr; }
  CNNFAST_HD const T* bias_cols() const { return nullptr; }
  CNNFAST_HD Activation activation() const { return Activation::kNone; }
  CNNFAST_HD void store(int64_t m, int64_t col, acc_type<T> v) const {
    const int64_t at = out_col(col);
    if (at >= 0)
      grad_w[at + m * out_row_stride()] = static_cast<T>(v);
    else
      grad_bias[group * p.k_group() + m] = static_cast<T>(v);
  }
};

}  // namespace cnnfast
