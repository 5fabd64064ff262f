#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../common/checks.h"
#include "../common/pool2d.h"
#include "../emulate/emulate.h"
#include "../runtime.h"
#include "../kernels/max_pool2d.h"

namespace cnnfast {
namespace {

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
    kernels::dispatch_offset_type(offsets.scalar_type(), [&](auto tag) {
      using offset_t = decltype(tag);
      const scalar_t* in = input.const_data_ptr<scalar_t>();
      scalar_t* dst = out.mutable_data_ptr<scalar_t>();
      offset_t* off = offsets.mutable_data_ptr<offset_t>();
      at::parallel_for(0, p.planes, 1, [&](int64_t begin, int64_t end) {
        for (int64_t plane = begin; plane < end; ++plane) {
          const scalar_t* src = in + plane * p.in_plane();
          for (int64_t oh = 0; oh < p.out_h; ++oh) {
            for (int64_t ow = 0; ow < p.out_w; ++ow) {
              const auto best = max_in_window(src, p, oh, ow);
              const int64_t o = plane * p.out_plane() + oh * p.out_w + ow;
              dst[o] = best.value;
              off[o] = static_cast<offset_t>(best.offset);
            }
          }
        }
      });
    });
  });
  return {out, offsets};
}

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
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "pool2d_backward", [&] {
    kernels::dispatch_offset_type(offs.scalar_type(), [&](auto tag) {
      using offset_t = decltype(tag);
      const scalar_t* g = grad.const_data_ptr<scalar_t>();
      const offset_t* off = offs.const_data_ptr<offset_t>();
      scalar_t* dst = grad_x.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, p.planes, 1, [&](int64_t begin, int64_t end) {
        for (int64_t plane = begin; plane < end; ++plane) {
          scalar_t* cells = dst + plane * p.in_plane();
          std::fill(cells, cells + p.in_plane(), scalar_t(0));
          for (int64_t oh = 0; oh < p.out_h; ++oh) {
            for (int64_t ow = 0; ow < p.out_w; ++ow) {
              const int64_t o = plane * p.out_plane() + oh * p.out_w + ow;
              const int32_t offset = static_cast<int32_t>(off[o]);
              TORCH_CHECK(offset >= 0 && offset < p.window_cells(), "cnnfast.", op,
                          ": offset ", offset, " lies outside its window");
              const int64_t h = offset_row(offset, oh, p), w = offset_col(offset, ow, p);
              TORCH_CHECK(h >= 0 && h < p.in_h && w >= 0 && w < p.in_w, "cnnfast.", op,
                          ": offset ", offset, " names a padding cell");
              cells[h * p.in_w + w] += g[o];
            }
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
