#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <limits>
#include <utility>
#include <vector>

#include "../common/checks.h"
#include "../common/pool2d.h"
#include "../emulate/emulate.h"
#include "../runtime.h"
#include "pool_rows.h"

namespace cnnfast {
namespace {

// One plane. Each interior lane keeps its running maximum and the window
// cell it came from, visiting cells in torch's row-major order with torch's
// update rule (larger, or NaN), so ties and NaNs resolve exactly as torch.
template <class scalar_t, class offset_t, int kStride>
void max_pool_plane(const scalar_t* src, scalar_t* dst, offset_t* offsets, const Pool2dProblem& p,
                    scalar_t* best, int32_t* cell) {
  const int64_t stride = kStride > 0 ? kStride : p.stride_w;
  const OutputRange interior = cpu::interior_columns(p);
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

std::tuple<at::Tensor, at::Tensor> max_pool2d_cpu(const at::Tensor& x,
                                                  at::IntArrayRef kernel_size,
                                                  at::IntArrayRef stride,
                                                  at::IntArrayRef padding, bool ceil_mode) {
  if (emulating_cuda())
    return emulate::max_pool2d_forward(x, kernel_size, stride, padding, ceil_mode);
  check_dtype(x, "max_pool2d", "x", /*allow_16bit=*/false);
  const Pool2dProblem p =
      pool2d_problem(x, kernel_size, stride, padding, ceil_mode, true, "max_pool2d");
  const at::Tensor input = x.contiguous();
  const auto sizes = pooled_sizes(x.sizes(), p);
  at::Tensor out = at::empty(sizes, input.options());
  at::Tensor offsets = at::empty(sizes, input.options().dtype(pool_offset_dtype(p)));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "max_pool2d", [&] {
    dispatch_offset_type(offsets.scalar_type(), [&](auto offset_tag) {
      using offset_t = decltype(offset_tag);
      cpu::dispatch_column_stride(p.stride_w, [&](auto stride_tag) {
        const scalar_t* in = input.const_data_ptr<scalar_t>();
        scalar_t* dst = out.mutable_data_ptr<scalar_t>();
        offset_t* off = offsets.mutable_data_ptr<offset_t>();
        // Per thread: each interior lane's running maximum and its cell.
        const auto make_scratch = [&] {
          return std::make_pair(std::vector<scalar_t>(p.out_w), std::vector<int32_t>(p.out_w));
        };
        cpu::for_each_plane(p, make_scratch, [&](int64_t plane, auto& scratch) {
          max_pool_plane<scalar_t, offset_t, decltype(stride_tag)::value>(
              in + plane * p.in_plane(), dst + plane * p.out_plane(), off + plane * p.out_plane(),
              p, scratch.first.data(), scratch.second.data());
        });
      });
    });
  });
  return {out, offsets};
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

// Scatter, one plane per task: each output adds its gradient to the cell
// its offset names. Within a plane the order is fixed (output order, the
// order a gather would sum in), so the result is deterministic.
at::Tensor max_pool2d_backward_cpu(const at::Tensor& grad_output, const at::Tensor& offsets,
                                   c10::SymIntArrayRef input_size, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding) {
  if (emulating_cuda())
    return emulate::max_pool2d_backward(grad_output, offsets, input_size, kernel_size, stride,
                                        padding);
  const char* op = "_max_pool2d_backward";
  check_dtype(grad_output, op, "grad_output", /*allow_16bit=*/false);
  const Pool2dProblem p =
      pool2d_backward_problem(grad_output, input_size, kernel_size, stride, padding, true, op);
  check_offsets(offsets, grad_output, p, op);
  const at::Tensor grad = grad_output.contiguous();
  const at::Tensor offs = offsets.contiguous();
  at::Tensor grad_x = at::empty(C10_AS_INTARRAYREF_SLOW(input_size), grad.options());
  const WindowCells window(p);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "pool2d_backward", [&] {
    dispatch_offset_type(offs.scalar_type(), [&](auto tag) {
      using offset_t = decltype(tag);
      const scalar_t* g = grad.const_data_ptr<scalar_t>();
      const offset_t* off = offs.const_data_ptr<offset_t>();
      scalar_t* dst = grad_x.mutable_data_ptr<scalar_t>();
      cpu::for_each_plane(p, cpu::no_scratch, [&](int64_t plane, int) {
        scalar_t* cells = dst + plane * p.in_plane();
        std::fill(cells, cells + p.in_plane(), scalar_t(0));
        const int64_t first = plane * p.out_plane();
        for (int64_t oh = 0; oh < p.out_h; ++oh) {
          const int64_t top = oh * p.stride_h - p.pad_h;
          for (int64_t ow = 0; ow < p.out_w; ++ow) {
            const int64_t o = first + oh * p.out_w + ow;
            const int64_t offset = static_cast<int64_t>(off[o]);
            // Offsets come from forward; a foreign tensor must not write out of bounds.
            TORCH_CHECK(offset >= 0 && offset < p.window_cells(), "cnnfast.", op, ": offset ",
                        offset, " at output (", oh, ", ", ow, ") lies outside its window");
            const int64_t h = top + window.row[offset];
            const int64_t w = ow * p.stride_w - p.pad_w + window.col[offset];
            TORCH_CHECK(h >= 0 && h < p.in_h && w >= 0 && w < p.in_w, "cnnfast.", op,
                        ": offset ", offset, " at output (", oh, ", ", ow,
                        ") names a padding cell");
            cells[h * p.in_w + w] += g[o];
          }
        }
      });
    });
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("_max_pool2d_with_offsets", &max_pool2d_cpu);
  m.impl("_max_pool2d_backward", &max_pool2d_backward_cpu);
}

}  // namespace cnnfast
