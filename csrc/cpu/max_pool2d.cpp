#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <limits>
#include <vector>

#include "../common/checks.h"
#include "../common/pool2d.h"
#include "../emulation.h"
#include "../kernels/max_pool2d.h"
#include "pool_rows.h"

namespace cnnfast {
namespace {

std::tuple<at::Tensor, at::Tensor> max_pool2d_cpu(const at::Tensor& x,
                                                  at::IntArrayRef kernel_size,
                                                  at::IntArrayRef stride,
                                                  at::IntArrayRef padding, bool ceil_mode) {
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
        at::parallel_for(0, p.planes, cpu::kPlaneGroup, [&](int64_t begin, int64_t end) {
          cpu::MaxPoolScratch<scalar_t> scratch(p);
          cpu::max_pool_planes<scalar_t, offset_t, decltype(stride_tag)::value>(
              in + begin * p.in_plane(), dst + begin * p.out_plane(), off + begin * p.out_plane(),
              end - begin, p, scratch);
        });
      });
    });
  });
  return {out, offsets};
}

at::Tensor max_pool2d_backward_cpu(const at::Tensor& grad_output, const at::Tensor& offsets,
                                   c10::SymIntArrayRef input_size, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding) {
  const char* op = "_max_pool2d_backward";
  check_dtype(grad_output, op, "grad_output", /*allow_16bit=*/false);
  const Pool2dProblem p =
      pool2d_backward_problem(grad_output, input_size, kernel_size, stride, padding, true, op);
  check_offsets(offsets, grad_output, p, op);
  const at::Tensor grad = grad_output.contiguous();
  const at::Tensor offs = offsets.contiguous();
  at::Tensor grad_x = at::empty(C10_AS_INTARRAYREF_SLOW(input_size), grad.options());
  const cpu::WindowCells window(p);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "pool2d_backward", [&] {
    dispatch_offset_type(offs.scalar_type(), [&](auto tag) {
      using offset_t = decltype(tag);
      const scalar_t* g = grad.const_data_ptr<scalar_t>();
      const offset_t* off = offs.const_data_ptr<offset_t>();
      scalar_t* dst = grad_x.mutable_data_ptr<scalar_t>();
      cpu::for_each_plane(p, cpu::no_scratch, [&](int64_t plane, int) {
        cpu::max_pool_scatter_plane(g + plane * p.out_plane(), off + plane * p.out_plane(),
                                    dst + plane * p.in_plane(), p, window, op);
      });
    });
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("_max_pool2d_with_offsets", cpu_or_emulated<&max_pool2d_cpu, &kernels::max_pool2d_forward<HostLauncher>>());
  m.impl("_max_pool2d_backward", cpu_or_emulated<&max_pool2d_backward_cpu, &kernels::max_pool2d_backward<HostLauncher>>());
}

}  // namespace cnnfast
