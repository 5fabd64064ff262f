#pragma once
// Pooling geometry and per-window arithmetic, torch's rules exactly. Shared
// by the CPU kernels, the CUDA kernels and so by the CUDA emulation.
#include <cstdint>

#include "macros.h"
#include "numeric.h"

namespace cnnfast {

// One 2-D pooling problem over `planes` = N*C independent H×W planes, stored
// contiguously (plane-major, then rows).
struct Pool2dProblem {
  int64_t planes = 0;
  int64_t in_h = 0, in_w = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  bool count_include_pad = true;  // average pooling only

  CNNFAST_HD int64_t in_plane() const { return in_h * in_w; }
  CNNFAST_HD int64_t out_plane() const { return out_h * out_w; }
  CNNFAST_HD int64_t window_cells() const { return kernel_h * kernel_w; }
};

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
struct WindowSpan {
  int64_t first, begin, end;
};

CNNFAST_INLINE WindowSpan window_span(int64_t o, int64_t stride, int64_t pad,
                                      int64_t kernel, int64_t in) {
  const int64_t first = o * stride - pad;
  return {first, first < 0 ? 0 : first, first + kernel < in ? first + kernel : in};
}

// The outputs whose windows cover input index `i` along one axis: [begin, end).
struct OutputRange {
  int64_t begin, end;
};

CNNFAST_INLINE OutputRange covering_outputs(int64_t i, int64_t stride, int64_t pad,
                                            int64_t kernel, int64_t out) {
  const int64_t shifted = i + pad;
  const int64_t begin = shifted < kernel ? 0 : (shifted - kernel) / stride + 1;
  const int64_t last = shifted / stride + 1;
  return {begin, last < out ? last : out};
}

// The outputs whose whole window lies inside the input along one axis.
CNNFAST_INLINE OutputRange interior_outputs(int64_t stride, int64_t pad, int64_t kernel,
                                            int64_t in, int64_t out) {
  const int64_t begin = (pad + stride - 1) / stride;
  const int64_t end = in + pad >= kernel ? (in + pad - kernel) / stride + 1 : 0;
  return {min_i64(begin, out), max_i64(min_i64(end, out), min_i64(begin, out))};
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
template <class scalar_t, class Value>
CNNFAST_INLINE MaxWithOffset<scalar_t> max_in_window_of(const Value& value, const Pool2dProblem& p,
                                                        int64_t oh, int64_t ow) {
  const WindowSpan rows = window_span(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h);
  const WindowSpan cols = window_span(ow, p.stride_w, p.pad_w, p.kernel_w, p.in_w);
  auto best = value(rows.begin, cols.begin);
  int64_t best_h = rows.begin, best_w = cols.begin;
  for (int64_t h = rows.begin; h < rows.end; ++h) {
    for (int64_t w = cols.begin; w < cols.end; ++w) {
      const auto v = value(h, w);
      if (v > best || is_nan(v)) {
        best = v;
        best_h = h;
        best_w = w;
      }
    }
  }
  return {static_cast<scalar_t>(best),
          static_cast<int32_t>((best_h - rows.first) * p.kernel_w + (best_w - cols.first))};
}

template <class scalar_t>
CNNFAST_INLINE MaxWithOffset<scalar_t> max_in_window(const scalar_t* plane,
                                                     const Pool2dProblem& p,
                                                     int64_t oh, int64_t ow) {
  return max_in_window_of<scalar_t>(
      [&](int64_t h, int64_t w) { return static_cast<acc_type<scalar_t>>(plane[h * p.in_w + w]); },
      p, oh, ow);
}

// Gradient of input cell (h, w): the sum of the output gradients whose
// window chose it, in output order (deterministic, no atomics). A window
// chose the cell when its saved offset is the cell's offset inside it: a
// multiplication per window where decoding the offset would divide.
template <class scalar_t, class offset_t>
CNNFAST_INLINE acc_type<scalar_t> max_pool_input_grad(const scalar_t* grad_plane,
                                                      const offset_t* offset_plane,
                                                      const Pool2dProblem& p, int64_t h,
                                                      int64_t w) {
  const OutputRange rows = covering_outputs(h, p.stride_h, p.pad_h, p.kernel_h, p.out_h);
  const OutputRange cols = covering_outputs(w, p.stride_w, p.pad_w, p.kernel_w, p.out_w);
  acc_type<scalar_t> sum = 0;
  for (int64_t oh = rows.begin; oh < rows.end; ++oh) {
    const int64_t row_offset = (h - (oh * p.stride_h - p.pad_h)) * p.kernel_w;
    for (int64_t ow = cols.begin; ow < cols.end; ++ow) {
      const int64_t offset = static_cast<int64_t>(offset_plane[oh * p.out_w + ow]);
      if (offset == row_offset + (w - (ow * p.stride_w - p.pad_w)))
        sum += static_cast<acc_type<scalar_t>>(grad_plane[oh * p.out_w + ow]);
    }
  }
  return sum;
}

// ---- average pooling --------------------------------------------------------

// The extent one axis contributes to torch's divisor: the window clipped to
// the padded input when padding counts, clipped to the input otherwise.
CNNFAST_INLINE int64_t avg_extent(int64_t o, int64_t stride, int64_t pad, int64_t kernel,
                                  int64_t in, bool count_include_pad) {
  const int64_t first = o * stride - pad;
  const int64_t last = min_i64(first + kernel, in + pad);
  return count_include_pad ? last - first : min_i64(last, in) - max_i64(first, 0);
}

// torch's divisor for output (oh, ow): the product of both axes' extents;
// zero for a window with no input cell (the output is then 0).
CNNFAST_INLINE int64_t avg_divisor(const Pool2dProblem& p, int64_t oh, int64_t ow) {
  const WindowSpan rows = window_span(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h);
  const WindowSpan cols = window_span(ow, p.stride_w, p.pad_w, p.kernel_w, p.in_w);
  if (rows.begin >= rows.end || cols.begin >= cols.end) return 0;
  return avg_extent(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h, p.count_include_pad) *
         avg_extent(ow, p.stride_w, p.pad_w, p.kernel_w, p.in_w, p.count_include_pad);
}

template <class scalar_t>
CNNFAST_INLINE scalar_t avg_in_window(const scalar_t* plane, const Pool2dProblem& p,
                                      int64_t oh, int64_t ow) {
  using acc_t = acc_type<scalar_t>;
  const int64_t divisor = avg_divisor(p, oh, ow);
  if (divisor == 0) return scalar_t(0);
  const WindowSpan rows = window_span(oh, p.stride_h, p.pad_h, p.kernel_h, p.in_h);
  const WindowSpan cols = window_span(ow, p.stride_w, p.pad_w, p.kernel_w, p.in_w);
  acc_t sum = 0;
  for (int64_t h = rows.begin; h < rows.end; ++h)
    for (int64_t w = cols.begin; w < cols.end; ++w)
      sum += static_cast<acc_t>(plane[h * p.in_w + w]);
  return static_cast<scalar_t>(sum / static_cast<acc_t>(divisor));
}

// Gradient of input cell (h, w): each covering output passes on its
// gradient divided by its divisor.
template <class scalar_t>
CNNFAST_INLINE acc_type<scalar_t> avg_pool_input_grad(const scalar_t* grad_plane,
                                                      const Pool2dProblem& p, int64_t h,
                                                      int64_t w) {
  using acc_t = acc_type<scalar_t>;
  const OutputRange rows = covering_outputs(h, p.stride_h, p.pad_h, p.kernel_h, p.out_h);
  const OutputRange cols = covering_outputs(w, p.stride_w, p.pad_w, p.kernel_w, p.out_w);
  acc_t sum = 0;
  for (int64_t oh = rows.begin; oh < rows.end; ++oh) {
    for (int64_t ow = cols.begin; ow < cols.end; ++ow) {
      const int64_t divisor = avg_divisor(p, oh, ow);
      if (divisor != 0)
        sum += static_cast<acc_t>(grad_plane[oh * p.out_w + ow]) / static_cast<acc_t>(divisor);
    }
  }
  return sum;
}

}  // namespace cnnfast
