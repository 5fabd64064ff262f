#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <vector>

#include "../common/checks.h"
#include "../common/lrn.h"
#include "../emulation.h"
#include "../kernels/local_response_norm.h"
#include "lrn_blocks.h"

namespace cnnfast {
namespace {

at::Tensor local_response_norm_cpu(const at::Tensor& x, int64_t size, double alpha, double beta,
                                   double k) {
  const char* op = "local_response_norm";
  check_dtype(x, op, "x", /*allow_16bit=*/false);
  const LrnProblem p = lrn_problem(x, size, alpha, beta, k, op);
  const at::Tensor input = x.contiguous();
  at::Tensor out = at::empty_like(input);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "local_response_norm", [&] {
    using sum_t = lrn_sum_type<scalar_t>;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    cpu::dispatch_power(beta, [&](auto power) {
      cpu::for_each_pixel_block<sum_t>(p, [&](int64_t at, int64_t width, auto scratch) {
        cpu::lrn_forward_block<false, decltype(power)>(in + at, dst + at, p.pixels, width, p,
                                                       scratch);
      });
    });
  });
  return out;
}

at::Tensor local_response_norm_backward_cpu(const at::Tensor& grad_output, const at::Tensor& x,
                                            int64_t size, double alpha, double beta, double k) {
  const char* op = "_local_response_norm_backward";
  const LrnProblem p =
      lrn_backward_problem(grad_output, x, size, alpha, beta, k, op, /*allow_16bit=*/false);
  const at::Tensor input = x.contiguous(), grad = grad_output.contiguous();
  at::Tensor grad_x = at::empty_like(input);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "local_response_norm_backward", [&] {
    using sum_t = lrn_sum_type<scalar_t>;
    const scalar_t* in = input.const_data_ptr<scalar_t>();
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    scalar_t* dst = grad_x.mutable_data_ptr<scalar_t>();
    cpu::dispatch_power(beta, [&](auto power) {
      cpu::for_each_pixel_block<sum_t>(p, [&](int64_t at, int64_t width, auto scratch) {
        cpu::lrn_backward_block<false, decltype(power)>(in + at, p.pixels, g + at, dst + at,
                                                        p.pixels, width, p, scratch);
      });
    });
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("local_response_norm", cpu_or_emulated<&local_response_norm_cpu, &kernels::local_response_norm_forward<HostLauncher>>());
  m.impl("_local_response_norm_backward", cpu_or_emulated<&local_response_norm_backward_cpu, &kernels::local_response_norm_backward<HostLauncher>>());
}

}  // namespace cnnfast
