#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "../common/checks.h"
#include "../common/pool2d.h"
#include "../emulate/emulate.h"
#include "../runtime.h"

namespace cnnfast {
namespace {

at::Tensor avg_pool2d_cpu(const at::Tensor& x, at::IntArrayRef kernel_size,
                          at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                          bool count_include_pad) {
  if (emulating_cuda())
    return emulate::avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode,
                                       count_include_pad);
  check_dtype(x, "avg_pool2d", "x", /*allow_16bit=*/false);
  const Pool2dProblem p = pool2d_problem(x, kernel_size, stride, padding, ceil_mode,
                                         count_include_pad, "avg_pool2d");
  const at::Tensor input = x.contiguous();
  at::Tensor out = at::empty(pooled_sizes(x.sizes(), p), input.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "avg_pool2d", [&] {
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, p.planes, 1, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* src = in + plane * p.in_plane();
        scalar_t* row = dst + plane * p.out_plane();
        for (int64_t oh = 0; oh < p.out_h; ++oh, row += p.out_w)
          for (int64_t ow = 0; ow < p.out_w; ++ow) row[ow] = avg_in_window(src, p, oh, ow);
      }
    });
  });
  return out;
}

at::Tensor avg_pool2d_backward_cpu(const at::Tensor& grad_output, c10::SymIntArrayRef input_size,
                                   at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                   at::IntArrayRef padding, bool count_include_pad) {
  if (emulating_cuda())
    return emulate::avg_pool2d_backward(grad_output, input_size, kernel_size, stride, padding,
                                        count_include_pad);
  const char* op = "_avg_pool2d_backward";
  check_dtype(grad_output, op, "grad_output", /*allow_16bit=*/false);
  const Pool2dProblem p = pool2d_backward_problem(grad_output, input_size, kernel_size, stride,
                                                  padding, count_include_pad, op);
  const at::Tensor grad = grad_output.contiguous();
  at::Tensor grad_x = at::empty(C10_AS_INTARRAYREF_SLOW(input_size), grad.options());
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "pool2d_backward", [&] {
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    scalar_t* dst = grad_x.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, p.planes, 1, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* g_plane = g + plane * p.out_plane();
        scalar_t* row = dst + plane * p.in_plane();
        for (int64_t h = 0; h < p.in_h; ++h, row += p.in_w)
          for (int64_t w = 0; w < p.in_w; ++w)
            row[w] = static_cast<scalar_t>(avg_pool_input_grad(g_plane, p, h, w));
      }
    });
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("avg_pool2d", &avg_pool2d_cpu);
  m.impl("_avg_pool2d_backward", &avg_pool2d_backward_cpu);
}

}  // namespace cnnfast
