#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <vector>

#include "../common/checks.h"
#include "../common/fused_stage.h"
#include "../emulation.h"
#include "../kernels/relu_lrn_max_pool2d.h"
#include "lrn_blocks.h"
#include "pool_rows.h"

namespace cnnfast {
namespace {

// The CPU kernel works one sample at a time: LRN(relu(x)) of all its
// channels goes to a per-thread scratch (C×H×W, a megabyte for AlexNet's
// first stage, so it stays in L2), and is max-pooled from there. Nothing of
// the whole batch's size is stored besides the pooled output and offsets.
// Backward likewise scatters one sample's pooled gradients into a scratch,
// then runs LRN's backward with relu folded in.

// Calls sample_fn(n, scratch) for every sample, in parallel, each thread
// with its own scratch of one sample's size.
template <class scalar_t, class F>
void for_each_sample(const FusedStageProblem& p, const F& sample_fn) {
  at::parallel_for(0, p.lrn.batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> sample(static_cast<size_t>(p.lrn.channels * p.lrn.pixels));
    std::vector<lrn_sum_type<scalar_t>> blocks(
        static_cast<size_t>(cpu::BlockScratch<lrn_sum_type<scalar_t>>::size(p.lrn)));
    for (int64_t n = begin; n < end; ++n) sample_fn(n, sample.data(), blocks.data());
  });
}

std::tuple<at::Tensor, at::Tensor> relu_lrn_max_pool2d_cpu(const at::Tensor& x, int64_t size,
                                                           double alpha, double beta, double k,
                                                           at::IntArrayRef kernel_size,
                                                           at::IntArrayRef stride) {
  const char* op = "relu_lrn_max_pool2d";
  check_dtype(x, op, "x", /*allow_16bit=*/false);
  const FusedStageProblem p = fused_stage_problem(x, size, alpha, beta, k, kernel_size, stride, op);
  const at::Tensor input = x.contiguous();
  const auto sizes = pooled_sizes(x.sizes(), p.pool);
  at::Tensor out = at::empty(sizes, input.options());
  at::Tensor offsets = at::empty(sizes, input.options().dtype(pool_offset_dtype(p.pool)));
  const int64_t C = p.lrn.channels, HW = p.lrn.pixels, out_plane = p.pool.out_plane();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "relu_lrn_max_pool2d", [&] {
    using sum_t = lrn_sum_type<scalar_t>;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    dispatch_offset_type(offsets.scalar_type(), [&](auto offset_tag) {
      using offset_t = decltype(offset_tag);
      offset_t* off = offsets.mutable_data_ptr<offset_t>();
      cpu::dispatch_power(beta, [&](auto power) {
        cpu::dispatch_column_stride(p.pool.stride_w, [&](auto stride_tag) {
          for_each_sample<scalar_t>(p, [&](int64_t n, scalar_t* normalized, sum_t* blocks) {
            const scalar_t* sample = in + n * C * HW;
            for (int64_t first = 0; first < HW; first += cpu::kPixelBlock)
              cpu::lrn_forward_block<true, decltype(power)>(
                  sample + first, normalized + first, HW, std::min(cpu::kPixelBlock, HW - first),
                  p.lrn, cpu::BlockScratch<sum_t>(blocks, p.lrn));
            cpu::MaxPoolScratch<scalar_t> pooling(p.pool);
            cpu::max_pool_planes<scalar_t, offset_t, decltype(stride_tag)::value>(
                normalized, dst + n * C * out_plane, off + n * C * out_plane, C, p.pool, pooling);
          });
        });
      });
    });
  });
  return {out, offsets};
}

at::Tensor relu_lrn_max_pool2d_backward_cpu(const at::Tensor& grad_output, const at::Tensor& x,
                                            const at::Tensor& offsets, int64_t size, double alpha,
                                            double beta, double k, at::IntArrayRef kernel_size,
                                            at::IntArrayRef stride) {
  const char* op = "_relu_lrn_max_pool2d_backward";
  const FusedStageProblem p = fused_stage_backward_problem(
      grad_output, x, offsets, size, alpha, beta, k, kernel_size, stride, op, /*allow_16bit=*/false);
  const at::Tensor input = x.contiguous(), grad = grad_output.contiguous(), offs = offsets.contiguous();
  at::Tensor grad_x = at::empty_like(input);
  const int64_t C = p.lrn.channels, HW = p.lrn.pixels, out_plane = p.pool.out_plane();
  const cpu::WindowCells window(p.pool);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "relu_lrn_max_pool2d_backward", [&] {
    using sum_t = lrn_sum_type<scalar_t>;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    scalar_t* dst = grad_x.mutable_data_ptr<scalar_t>();
    dispatch_offset_type(offs.scalar_type(), [&](auto offset_tag) {
      using offset_t = decltype(offset_tag);
      const offset_t* off = offs.const_data_ptr<offset_t>();
      cpu::dispatch_power(beta, [&](auto power) {
        for_each_sample<scalar_t>(p, [&](int64_t n, scalar_t* lrn_grad, sum_t* blocks) {
          for (int64_t c = 0; c < C; ++c) {
            const int64_t plane = (n * C + c) * out_plane;
            cpu::max_pool_scatter_plane(g + plane, off + plane, lrn_grad + c * HW, p.pool, window, op);
          }
          const int64_t sample = n * C * HW;
          for (int64_t first = 0; first < HW; first += cpu::kPixelBlock)
            cpu::lrn_backward_block<true, decltype(power)>(
                in + sample + first, HW, lrn_grad + first, dst + sample + first, HW,
                std::min(cpu::kPixelBlock, HW - first), p.lrn,
                cpu::BlockScratch<sum_t>(blocks, p.lrn));
        });
      });
    });
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("_relu_lrn_max_pool2d_with_offsets", cpu_or_emulated<&relu_lrn_max_pool2d_cpu, &kernels::relu_lrn_max_pool2d_forward<HostLauncher>>());
  m.impl("_relu_lrn_max_pool2d_backward", cpu_or_emulated<&relu_lrn_max_pool2d_backward_cpu, &kernels::relu_lrn_max_pool2d_backward<HostLauncher>>());
}

}  // namespace cnnfast
