#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <vector>

#include "../common/checks.h"
#include "../common/pool2d.h"
#include "../emulation.h"
#include "../kernels/avg_pool2d.h"
#include "pool_rows.h"

namespace cnnfast {
namespace {

// Output rows shorter than this pool kPlaneGroup planes side by side. Lower
// than max pooling's: a 2x2 window does too little work per output to pay
// for interleaving the planes (LeNet's 14-wide rows: 0.55 ms row by row,
// 0.73 ms side by side; its 5-wide rows: 0.30 against 0.12 ms).
constexpr int64_t kShortRow = 8;

// Each axis's share of torch's divisor, per output index: the divisor of
// (oh, ow) is rows[oh] * cols[ow] (csrc/common/pool2d.h, avg_divisor).
struct AxisExtents {
  std::vector<int64_t> rows, cols;
  explicit AxisExtents(const Pool2dProblem& p) : rows(p.out_h), cols(p.out_w) {
    for (int64_t oh = 0; oh < p.out_h; ++oh)
      rows[oh] = avg_extent(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h, p.count_include_pad);
    for (int64_t ow = 0; ow < p.out_w; ++ow)
      cols[ow] = avg_extent(ow, p.stride_w, p.pad_w, p.kernel_w, p.in_w, p.count_include_pad);
  }
};

// 2x2 windows at stride 2 with no padding, each inside the input (LeNet-5's
// pools): every divisor is 4. The generic paths below loop over rows too
// short for the compiler's full vectors (LeNet's are 14 and 5 outputs
// wide), so this case has its own float32 AVX-512 rows: forward adds two
// input rows, then neighbouring columns pairwise (one permute apart);
// backward spreads each gradient / 4 over its 2x2 cells. Rounding: (a + c)
// + (b + d) rather than torch's ((a + b) + c) + d.
#if defined(__AVX512F__)
bool uses_2x2_rows(const Pool2dProblem& p, at::ScalarType dtype) {
  return dtype == at::kFloat && p.kernel_h == 2 && p.kernel_w == 2 && p.stride_h == 2 && p.stride_w == 2 &&
         p.pad_h == 0 && p.pad_w == 0 && 2 * p.out_h <= p.in_h && 2 * p.out_w <= p.in_w;
}

constexpr int64_t kLanes = 16;

__mmask16 first_lanes(int64_t count) {
  return static_cast<__mmask16>(count >= kLanes ? 0xFFFF : (1u << std::max<int64_t>(count, 0)) - 1);
}

void avg_pool_2x2_plane(const float* src, float* dst, const Pool2dProblem& p) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512 quarter = _mm512_set1_ps(0.25f);
  for (int64_t oh = 0; oh < p.out_h; ++oh) {
    const float* top = src + 2 * oh * p.in_w;
    const float* bottom = top + p.in_w;
    for (int64_t ow = 0; ow < p.out_w; ow += kLanes) {
      const int64_t outputs = std::min(kLanes, p.out_w - ow), in = 2 * ow;
      const __mmask16 low = first_lanes(2 * outputs), high = first_lanes(2 * outputs - kLanes);
      const __m512 left = _mm512_add_ps(_mm512_maskz_loadu_ps(low, top + in), _mm512_maskz_loadu_ps(low, bottom + in));
      const __m512 right = _mm512_add_ps(_mm512_maskz_loadu_ps(high, top + in + kLanes),
                                         _mm512_maskz_loadu_ps(high, bottom + in + kLanes));
      const __m512 pairs = _mm512_add_ps(_mm512_permutex2var_ps(left, even, right),
                                         _mm512_permutex2var_ps(left, odd, right));
      _mm512_mask_storeu_ps(dst + oh * p.out_w + ow, first_lanes(outputs), _mm512_mul_ps(pairs, quarter));
    }
  }
}

void avg_pool_2x2_backward_plane(const float* grad, float* dst, const Pool2dProblem& p) {
  const __m512i low_twice = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i high_twice = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
  const __m512 quarter = _mm512_set1_ps(0.25f);
  // Rows and columns no window covers (an odd size) get zero.
  std::fill(dst + 2 * p.out_h * p.in_w, dst + p.in_plane(), 0.0f);
  for (int64_t oh = 0; oh < p.out_h; ++oh) {
    float* top = dst + 2 * oh * p.in_w;
    float* bottom = top + p.in_w;
    for (int64_t w = 2 * p.out_w; w < p.in_w; ++w) top[w] = bottom[w] = 0.0f;
    for (int64_t ow = 0; ow < p.out_w; ow += kLanes) {
      const int64_t outputs = std::min(kLanes, p.out_w - ow), in = 2 * ow;
      const __m512 share = _mm512_mul_ps(_mm512_maskz_loadu_ps(first_lanes(outputs), grad + oh * p.out_w + ow), quarter);
      // Two-source permutes of share with itself: GCC 12's one-source
      // intrinsic reads an undefined vector (-Wmaybe-uninitialized).
      const __m512 left = _mm512_permutex2var_ps(share, low_twice, share);
      const __m512 right = _mm512_permutex2var_ps(share, high_twice, share);
      const __mmask16 low = first_lanes(2 * outputs), high = first_lanes(2 * outputs - kLanes);
      for (float* row : {top, bottom}) {
        _mm512_mask_storeu_ps(row + in, low, left);
        _mm512_mask_storeu_ps(row + in + kLanes, high, right);
      }
    }
  }
}

#endif

// One plane, row by row: interior lanes sum their window cell by cell
// (vectorized across the row), edges take the common per-window function.
template <class scalar_t, int kStride>
void avg_pool_plane(const scalar_t* src, scalar_t* dst, const Pool2dProblem& p,
                    const AxisExtents& extents, scalar_t* sum) {
  const int64_t stride = kStride > 0 ? kStride : p.stride_w;
  const OutputRange interior = cpu::interior_columns(p);
  for (int64_t oh = 0; oh < p.out_h; ++oh) {
    const WindowSpan rows = window_span(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h);
    for (int64_t ow = interior.begin; ow < interior.end; ++ow) sum[ow] = 0;
    for (int64_t h = rows.begin; h < rows.end; ++h) {
      const scalar_t* row = src + h * p.in_w;
      for (int64_t j = 0; j < p.kernel_w; ++j) {
        const int64_t shift = j - p.pad_w;
#pragma omp simd
        for (int64_t ow = interior.begin; ow < interior.end; ++ow) sum[ow] += row[ow * stride + shift];
      }
    }
    scalar_t* out_row = dst + oh * p.out_w;
    // The interior divides as one vector loop; the edges (and a row whose
    // window holds no input row) take the per-window function.
    const bool has_rows = rows.begin < rows.end;
    if (has_rows) {
      const scalar_t row_extent = static_cast<scalar_t>(extents.rows[oh]);
      const int64_t* cols = extents.cols.data();
#pragma omp simd
      for (int64_t ow = interior.begin; ow < interior.end; ++ow)
        out_row[ow] = sum[ow] / (row_extent * static_cast<scalar_t>(cols[ow]));
    }
    for (int64_t ow = 0; ow < p.out_w; ++ow)
      if (!has_rows || ow < interior.begin || ow >= interior.end) out_row[ow] = avg_in_window(src, p, oh, ow);
  }
}

// kPlaneGroup planes side by side (rows too short to fill a vector): the
// planes interleaved into `tile`, one lane per plane.
template <class scalar_t>
void avg_pool_plane_group(const scalar_t* src, scalar_t* dst, const Pool2dProblem& p,
                          const AxisExtents& extents, scalar_t* tile) {
  constexpr int64_t G = cpu::kPlaneGroup;
  cpu::interleave_planes(src, p, tile);
  for (int64_t oh = 0; oh < p.out_h; ++oh) {
    const WindowSpan rows = window_span(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h);
    for (int64_t ow = 0; ow < p.out_w; ++ow) {
      const WindowSpan cols = window_span(ow, p.stride_w, p.pad_w, p.kernel_w, p.in_w);
      scalar_t sum[G] = {};
      for (int64_t h = rows.begin; h < rows.end; ++h) {
        for (int64_t w = cols.begin; w < cols.end; ++w) {
          const scalar_t* v = tile + (h * p.in_w + w) * G;
#pragma omp simd
          for (int64_t g = 0; g < G; ++g) sum[g] += v[g];
        }
      }
      const scalar_t divisor = static_cast<scalar_t>(extents.rows[oh] * extents.cols[ow]);
      for (int64_t g = 0; g < G; ++g) dst[g * p.out_plane() + oh * p.out_w + ow] = sum[g] / divisor;
    }
  }
}

// For each input column, the output columns whose windows cover it:
// [begin, end), at most `most` of them.
struct ColumnCover {
  std::vector<int32_t> begin, end;
  int64_t most = 0;
  explicit ColumnCover(const Pool2dProblem& p) : begin(p.in_w), end(p.in_w) {
    for (int64_t w = 0; w < p.in_w; ++w) {
      const OutputRange cols = covering_outputs(w, p.by_stride_w, p.pad_w, p.kernel_w, p.out_w);
      begin[w] = static_cast<int32_t>(cols.begin);
      end[w] = static_cast<int32_t>(cols.end);
      most = std::max<int64_t>(most, cols.end - cols.begin);
    }
  }
};

// One plane of the gradient, as a gather like the CUDA kernel's (each
// input cell sums grad / divisor of the outputs covering it, in output
// order), vectorized across each input row.
template <class scalar_t>
void avg_pool_backward_plane(const scalar_t* grad, scalar_t* dst, const Pool2dProblem& p,
                             const AxisExtents& extents, const ColumnCover& cover,
                             scalar_t* share) {
  for (int64_t oh = 0; oh < p.out_h; ++oh) {
    const int64_t row_extent = extents.rows[oh];
    const scalar_t* grad_row = grad + oh * p.out_w;
    scalar_t* share_row = share + oh * p.out_w;
#pragma omp simd
    for (int64_t ow = 0; ow < p.out_w; ++ow)
      share_row[ow] = grad_row[ow] / static_cast<scalar_t>(row_extent * extents.cols[ow]);
  }
  const int32_t* begin = cover.begin.data();
  const int32_t* end = cover.end.data();
  for (int64_t h = 0; h < p.in_h; ++h) {
    scalar_t* row = dst + h * p.in_w;
    std::fill(row, row + p.in_w, scalar_t(0));
    const OutputRange rows = covering_outputs(h, p.by_stride_h, p.pad_h, p.kernel_h, p.out_h);
    for (int64_t oh = rows.begin; oh < rows.end; ++oh) {
      const scalar_t* share_row = share + oh * p.out_w;
      for (int32_t t = 0; t < cover.most; ++t) {
#pragma omp simd
        for (int64_t w = 0; w < p.in_w; ++w) {
          const int32_t ow = begin[w] + t;
          const bool covers = ow < end[w];
          const scalar_t v = share_row[covers ? ow : 0];
          row[w] += covers ? v : scalar_t(0);
        }
      }
    }
  }
}

at::Tensor avg_pool2d_cpu(const at::Tensor& x, at::IntArrayRef kernel_size,
                          at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                          bool count_include_pad) {
  check_dtype(x, "avg_pool2d", "x", /*allow_16bit=*/false);
  const Pool2dProblem p = pool2d_problem(x, kernel_size, stride, padding, ceil_mode,
                                         count_include_pad, "avg_pool2d");
  const at::Tensor input = x.contiguous();
  at::Tensor out = at::empty(pooled_sizes(x.sizes(), p), input.options());
#if defined(__AVX512F__)
  if (uses_2x2_rows(p, x.scalar_type())) {
    const float* src = input.const_data_ptr<float>();
    float* dst = out.mutable_data_ptr<float>();
    cpu::for_each_plane(p, cpu::no_scratch, [&](int64_t plane, int) {
      avg_pool_2x2_plane(src + plane * p.in_plane(), dst + plane * p.out_plane(), p);
    });
    return out;
  }
#endif
  const AxisExtents extents(p);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "avg_pool2d", [&] {
    cpu::dispatch_column_stride(p.stride_w, [&](auto stride_tag) {
      const scalar_t* in = input.const_data_ptr<scalar_t>();
      scalar_t* dst = out.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, p.planes, cpu::kPlaneGroup, [&](int64_t begin, int64_t end) {
        const bool short_rows = p.out_w < kShortRow;
        std::vector<scalar_t> sum(p.out_w), tile(short_rows ? p.in_plane() * cpu::kPlaneGroup : 0);
        int64_t plane = begin;
        if (short_rows)
          for (; plane + cpu::kPlaneGroup <= end; plane += cpu::kPlaneGroup)
            avg_pool_plane_group(in + plane * p.in_plane(), dst + plane * p.out_plane(), p,
                                 extents, tile.data());
        for (; plane < end; ++plane)
          avg_pool_plane<scalar_t, decltype(stride_tag)::value>(
              in + plane * p.in_plane(), dst + plane * p.out_plane(), p, extents, sum.data());
      });
    });
  });
  return out;
}

at::Tensor avg_pool2d_backward_cpu(const at::Tensor& grad_output, c10::SymIntArrayRef input_size,
                                   at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                   at::IntArrayRef padding, bool count_include_pad) {
  const char* op = "_avg_pool2d_backward";
  check_dtype(grad_output, op, "grad_output", /*allow_16bit=*/false);
  const Pool2dProblem p = pool2d_backward_problem(grad_output, input_size, kernel_size, stride,
                                                  padding, count_include_pad, op);
  const at::Tensor grad = grad_output.contiguous();
  at::Tensor grad_x = at::empty(C10_AS_INTARRAYREF_SLOW(input_size), grad.options());
#if defined(__AVX512F__)
  if (uses_2x2_rows(p, grad.scalar_type())) {
    const float* g = grad.const_data_ptr<float>();
    float* dst = grad_x.mutable_data_ptr<float>();
    cpu::for_each_plane(p, cpu::no_scratch, [&](int64_t plane, int) {
      avg_pool_2x2_backward_plane(g + plane * p.out_plane(), dst + plane * p.in_plane(), p);
    });
    return grad_x;
  }
#endif
  const AxisExtents extents(p);
  const ColumnCover cover(p);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "pool2d_backward", [&] {
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    scalar_t* dst = grad_x.mutable_data_ptr<scalar_t>();
    const auto make_scratch = [&] { return std::vector<scalar_t>(p.out_plane()); };
    cpu::for_each_plane(p, make_scratch, [&](int64_t plane, std::vector<scalar_t>& share) {
      avg_pool_backward_plane(g + plane * p.out_plane(), dst + plane * p.in_plane(), p, extents,
                              cover, share.data());
    });
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("avg_pool2d", cpu_or_emulated<&avg_pool2d_cpu, &kernels::avg_pool2d_forward<HostLauncher>>());
  m.impl("_avg_pool2d_backward", cpu_or_emulated<&avg_pool2d_backward_cpu, &kernels::avg_pool2d_backward<HostLauncher>>());
}

}  // namespace cnnfast
