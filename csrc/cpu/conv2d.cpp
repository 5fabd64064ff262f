#include <torch/library.h>

#include "../composites.h"
#include "../emulation.h"
#include "../kernels/gemm_engine.h"
#include "../kernels/conv2d.h"
#include "direct_conv.h"
#include "implicit_gemm.h"
#include "phase_split.h"

namespace cnnfast {
namespace {

using Engine = cpu::CpuGemmEngine;

int64_t lanes_of(at::ScalarType dtype) {
  return dtype == at::kDouble ? cpu::kLanes<double> : cpu::kLanes<float>;
}

cpu::DirectConv direct_problem(const ConvProblem& p) {
  return {p.n,     p.c,     p.h,        p.w,        p.k,      p.r, p.s,
          p.p,     p.q,     p.pad_h,    p.pad_w,    p.stride_h, p.stride_w, p.groups,
          p.act};
}

// dgrad as the forward convolution of the gradient padded by (R-1-pad) with
// the weights transposed per group and flipped: stride 1 only.
bool direct_dgrad_suits(const ConvProblem& p) {
  return p.stride_h == 1 && p.stride_w == 1 && p.pad_h < p.r && p.pad_w < p.s &&
         cpu::direct_conv_suits(p, lanes_of(at::kFloat));
}

// grad_x from the interleaved gradient (cpu::interleave_gradient): the
// forward convolution of the gradient padded by (R-1-pad) with the weights
// transposed per group and flipped.
template <class T>
void direct_dgrad(const ConvProblem& p, const T* grad_groups, const at::Tensor& weight, at::Tensor& grad_x) {
  const at::Tensor flipped = weight.reshape({p.groups, p.k_group(), p.c_group(), p.r, p.s})
                                 .transpose(1, 2)
                                 .flip({3, 4})
                                 .reshape({p.c, p.k_group(), p.r, p.s})
                                 .contiguous();
  const cpu::DirectConv d{p.n, p.k, p.p, p.q, p.c, p.r, p.s, p.h, p.w,
                          p.r - 1 - p.pad_h, p.s - 1 - p.pad_w, 1, 1, p.groups,
                          Activation::kNone};
  cpu::direct_conv<T>(d, grad_groups, flipped.const_data_ptr<T>(), nullptr, grad_x.mutable_data_ptr<T>(), {},
                      /*x_interleaved=*/true);
}

at::Tensor conv2d_cpu(const at::Tensor& x, const at::Tensor& weight,
                      const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                      at::IntArrayRef padding, int64_t groups,
                      std::optional<std::string_view> activation) {
  const ConvProblem p =
      conv2d_problem(x, weight, bias, stride, padding, groups, activation, "conv2d", false);
  if (!cpu::direct_conv_suits(p, lanes_of(x.scalar_type()))) {
    if (p.stride_w > 1) return cpu::conv2d_forward_phase_split(x, weight, bias, p);
    return kernels::conv2d_forward<Engine>(x, weight, bias, stride, padding, groups, activation);
  }
  const at::Tensor input = x.contiguous(), filter = weight.contiguous();
  const at::Tensor shift = bias.has_value() ? bias->contiguous() : at::Tensor();
  at::Tensor out = at::empty(kernels::conv2d_output_size(x, p), x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv2d", [&] {
    cpu::direct_conv<scalar_t>(direct_problem(p), input.const_data_ptr<scalar_t>(),
                               filter.const_data_ptr<scalar_t>(),
                               kernels::data_or_null<scalar_t>(shift),
                               out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

// conv2d then avg_pool2d (window = stride = pool, no padding, floor). On
// the direct path the result is pooled before it is written back, so the
// full-size map never reaches memory (LeNet-5's conv + tanh + pool);
// elsewhere, and under the CUDA emulation, the two ops run in turn.
at::Tensor conv2d_avg_pool2d_cpu(const at::Tensor& x, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                 at::IntArrayRef padding, int64_t groups,
                                 std::optional<std::string_view> activation, at::IntArrayRef pool) {
  const auto unfused = [&] {
    return conv2d_avg_pool2d_unfused(x, weight, bias, stride, padding, groups, activation, pool);
  };
  if (x.dim() != 4 || pool.size() != 2 || pool[0] < 1 || pool[1] < 1) return unfused();
  const ConvProblem p =
      conv2d_problem(x, weight, bias, stride, padding, groups, activation, "conv2d_avg_pool2d", false);
  if (p.p < pool[0] || p.q < pool[1] || !cpu::direct_conv_suits(p, lanes_of(x.scalar_type()))) return unfused();
  const at::Tensor input = x.contiguous(), filter = weight.contiguous();
  const at::Tensor shift = bias.has_value() ? bias->contiguous() : at::Tensor();
  at::Tensor out = at::empty({p.n, p.k, p.p / pool[0], p.q / pool[1]}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv2d_avg_pool2d", [&] {
    cpu::direct_conv<scalar_t>(direct_problem(p), input.const_data_ptr<scalar_t>(),
                               filter.const_data_ptr<scalar_t>(), kernels::data_or_null<scalar_t>(shift),
                               out.mutable_data_ptr<scalar_t>(), {pool[0], pool[1]});
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& output, at::IntArrayRef stride, at::IntArrayRef padding, int64_t groups,
    std::optional<std::string_view> activation, std::array<bool, 3> output_mask) {
  const char* op = "_conv2d_backward";
  const ConvProblem p =
      conv2d_problem(x, weight, std::nullopt, stride, padding, groups, activation, op, false);
  check_conv_backward(grad_output, output, x, kernels::conv2d_output_size(x, p), op);
  if (!cpu::direct_conv_suits(p, lanes_of(x.scalar_type())))
    return kernels::conv2d_backward<Engine>(grad_output, x, weight, output, stride, padding,
                                            groups, activation, output_mask);
  // The gradient times act'(out) is interleaved once, for dgrad and wgrad.
  const at::Tensor input = x.contiguous(), filter = weight.contiguous();
  const at::Tensor grad = grad_output.contiguous();
  const at::Tensor saved_output = p.act == Activation::kNone ? at::Tensor() : output.contiguous();
  kernels::Gradients grads = kernels::allocate_gradients(p, x, weight, output_mask);
  const bool dgrad_direct = output_mask[0] && direct_dgrad_suits(p);
  if (output_mask[0] && !dgrad_direct)
    grads.grad_x = std::get<0>(kernels::conv2d_backward<Engine>(grad_output, x, weight, output, stride, padding,
                                                                groups, activation, {true, false, false}));
  if (!dgrad_direct && !output_mask[1] && !output_mask[2]) return {grads.grad_x, grads.grad_w, grads.grad_b};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv2d_backward", [&] {
    const cpu::DirectConv d = direct_problem(p);
    const scalar_t* grad_groups = cpu::interleave_gradient(d, grad.const_data_ptr<scalar_t>(),
                                                           kernels::data_or_null<scalar_t>(saved_output));
    if (dgrad_direct) direct_dgrad(p, grad_groups, filter, grads.grad_x);
    if (output_mask[1] || output_mask[2])
      cpu::direct_wgrad(d, grad_groups, input.const_data_ptr<scalar_t>(),
                        output_mask[1] ? grads.grad_w.mutable_data_ptr<scalar_t>() : nullptr,
                        output_mask[2] ? grads.grad_b.mutable_data_ptr<scalar_t>() : nullptr);
  });
  return {grads.grad_x, grads.grad_w, grads.grad_b};
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("conv2d", cpu_or_emulated<&conv2d_cpu, &kernels::conv2d_forward<kernels::TiledGemmEngine<HostLauncher>>>());
  m.impl("conv2d_avg_pool2d", cpu_or_emulated<&conv2d_avg_pool2d_cpu, &conv2d_avg_pool2d_unfused>());
  m.impl("_conv2d_backward", cpu_or_emulated<&conv2d_backward_cpu, &kernels::conv2d_backward<kernels::TiledGemmEngine<HostLauncher>>>());
}

}  // namespace cnnfast
