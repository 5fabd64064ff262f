#pragma once
// linear's own GEMM views (see conv2d.h for the interface). As a convolution
// of 1×1 images, linear would put the output features on the rows and the
// batch on the columns, which wastes most of each vector when the batch is
// small (AlexNet's fc layers at batch 8). These views put the batch on the
// rows instead: forward and the input gradient then stream the weight along
// the columns. The weight gradient is conv2d.h's WgradGemm.
#include "conv2d.h"

namespace cnnfast {

// out[n, k] = act(bias[k] + sum_c x[n, c] w[k, c]); rows = n, cols = k, depth = c.
template <class T>
struct LinearFpropGemm {
  using element_type = T;
  // B: a row of the weight, which is B's depth.
  static constexpr Along kBLoadsAlong = Along::kDepth;
  const T* x;
  const T* weight;
  const T* bias;  // may be null
  T* out;
  ConvProblem p;  // n rows of c features in, k out

  CNNFAST_HD int64_t rows() const { return p.n; }
  CNNFAST_HD int64_t cols() const { return p.k; }
  CNNFAST_HD int64_t depth() const { return p.c; }

  CNNFAST_HD const T* a_rows() const { return x; }
  CNNFAST_HD int64_t a_row_stride() const { return p.c; }
  CNNFAST_HD int64_t a_offset(int64_t kd) const { return kd; }
  CNNFAST_HD acc_type<T> a_at(int64_t m, int64_t offset) const {
    return static_cast<acc_type<T>>(x[m * p.c + offset]);
  }

  CNNFAST_HD const T* b_source() const { return weight; }
  CNNFAST_HD GatherBounds b_bounds() const { return gather_bounds(1, 1); }
  CNNFAST_HD GatherCoord b_depth(int64_t kd) const { return gather_coord(kd, 0, 0); }
  CNNFAST_HD GatherCoord b_col(int64_t col) const { return gather_coord(col * p.c, 0, 0); }
  CNNFAST_HD acc_type<T> b_at(const GatherCoord& d, const GatherCoord& c) const {
    return static_cast<acc_type<T>>(weight[d.offset + c.offset]);
  }

  CNNFAST_HD T* out_base() const { return out; }
  CNNFAST_HD int64_t out_row_stride() const { return p.k; }
  CNNFAST_HD int64_t out_col(int64_t col) const { return col; }
  CNNFAST_HD const T* bias_rows() const { return nullptr; }
  CNNFAST_HD const T* bias_cols() const { return bias; }
  CNNFAST_HD Activation activation() const { return p.act; }
  CNNFAST_HD void store(int64_t m, int64_t col, acc_type<T> v) const {
    if (bias != nullptr) v += static_cast<acc_type<T>>(bias[col]);
    out[m * p.k + col] = static_cast<T>(activate(v, p.act));
  }
};

// grad_x[n, c] = sum_k g[n, k] w[k, c], g = grad_output times the
// activation's derivative (formed before the GEMM); rows = n, cols = c,
// depth = k.
template <class T>
struct LinearDgradGemm {
  using element_type = T;
  // B: a row of the weight, which is B's columns.
  static constexpr Along kBLoadsAlong = Along::kCols;
  const T* grad;
  const T* weight;
  T* grad_x;
  ConvProblem p;

  CNNFAST_HD int64_t rows() const { return p.n; }
  CNNFAST_HD int64_t cols() const { return p.c; }
  CNNFAST_HD int64_t depth() const { return p.k; }

  CNNFAST_HD const T* a_rows() const { return grad; }
  CNNFAST_HD int64_t a_row_stride() const { return p.k; }
  CNNFAST_HD int64_t a_offset(int64_t kd) const { return kd; }
  CNNFAST_HD acc_type<T> a_at(int64_t m, int64_t offset) const {
    return static_cast<acc_type<T>>(grad[m * p.k + offset]);
  }

  CNNFAST_HD const T* b_source() const { return weight; }
  CNNFAST_HD GatherBounds b_bounds() const { return gather_bounds(1, 1); }
  CNNFAST_HD GatherCoord b_depth(int64_t kd) const { return gather_coord(kd * p.c, 0, 0); }
  CNNFAST_HD GatherCoord b_col(int64_t col) const { return gather_coord(col, 0, 0); }
  CNNFAST_HD acc_type<T> b_at(const GatherCoord& d, const GatherCoord& c) const {
    return static_cast<acc_type<T>>(weight[d.offset + c.offset]);
  }

  CNNFAST_HD T* out_base() const { return grad_x; }
  CNNFAST_HD int64_t out_row_stride() const { return p.c; }
  CNNFAST_HD int64_t out_col(int64_t col) const { return col; }
  CNNFAST_HD const T* bias_rows() const { return nullptr; }
  CNNFAST_HD const T* bias_cols() const { return nullptr; }
  CNNFAST_HD Activation activation() const { return Activation::kNone; }
  CNNFAST_HD void store(int64_t m, int64_t col, acc_type<T> v) const {
    grad_x[m * p.c + col] = static_cast<T>(v);
  }
};

// grad_w[k, c] = sum_n g[n, k] x[n, c] (and grad_bias[k] = sum_n g[n, k]):
// wgrad of 1×1 images, whose operands lie the other way round from a
// convolution's: consecutive rows of A (output features) and columns of B
// (input features) are adjacent in memory, consecutive depths (samples) a
// row of features apart. B is loaded along its columns. (A, loaded along
// its depth, takes 8 sectors a warp where along its rows it would take 4;
// tried so, each of a thread's 4 loads had its own depth to check against
// the slice's end, and in the 128-row tile nvcc used the loaded values 32
// FMAs after the loads instead of 260: make sass-report.)
template <class T, bool kBiasColumn = true>
struct LinearWgradGemm : WgradGemm<T, kBiasColumn> {
  static constexpr Along kBLoadsAlong = Along::kCols;
};

}  // namespace cnnfast
