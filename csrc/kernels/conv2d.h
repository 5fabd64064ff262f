#pragma once
// conv2d and its backward on a GEMM engine: the CPU engine
// (csrc/cpu/implicit_gemm.h) or the tiled CUDA kernel on a launcher
// (implicit_gemm.h, on the GPU or emulated). The driver checks the
// arguments, allocates the results and hands the engine one GEMM view per
// group and operator.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <array>
#include <optional>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../common/checks.h"
#include "../common/conv2d.h"
#include "../common/winograd.h"
#include "../runtime.h"

namespace cnnfast {
namespace kernels {

// f(T{}) for the element type: 16-bit types too where the engine takes them.
template <class Engine, class F>
void dispatch_gemm_type(at::ScalarType dtype, const F& f) {
  if constexpr (Engine::kHalfTypes) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "implicit_gemm",
                                    [&] { f(scalar_t{}); });
  } else {
    AT_DISPATCH_FLOATING_TYPES(dtype, "implicit_gemm", [&] { f(scalar_t{}); });
  }
}

template <class View, class Make>
std::vector<View> per_group(const ConvProblem& p, const Make& make) {
  std::vector<View> views;
  for (int64_t g = 0; g < p.groups; ++g) views.push_back(make(g));
  return views;
}

// The gradient the backward GEMMs read: grad_output times the activation's
// derivative, formed in one elementwise pass by the engine. Both GEMMs then
// read one tensor, not two, in their inner loops (dgrad reads each element
// R·S times).
template <class Engine>
at::Tensor backward_source(const Engine& engine, const at::Tensor& grad_output,
                           const at::Tensor& output, Activation act) {
  const at::Tensor grad = grad_output.contiguous();
  if (act == Activation::kNone) return grad;
  return engine.grad_product(grad, output.contiguous(), act);
}

template <class T>
const T* data_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<T>() : nullptr;
}

// The three gradients of a problem (conv2d's or linear's), as empty tensors
// where not asked for, with the GEMM source of the gradient.
struct Gradients {
  at::Tensor grad_x, grad_w, grad_b;
};

inline Gradients allocate_gradients(const ConvProblem& p, const at::Tensor& x,
                                    const at::Tensor& weight, std::array<bool, 3> mask) {
  const auto empty = [&] { return at::empty({0}, x.options()); };
  // A strided input gradient's phases without a filter tap stay zero (DgradGemm).
  const auto grad_x = [&] { return dgrad_has_empty_phase(p) ? at::zeros(x.sizes(), x.options()) : at::empty(x.sizes(), x.options()); };
  return {mask[0] ? grad_x() : empty(),
          mask[1] ? at::empty(weight.sizes(), x.options()) : empty(),
          mask[2] ? at::empty({p.k}, x.options()) : empty()};
}

// dgrad (run_dgrad(tag, grad, weight, grad_x) runs the problem's own
// views on the engine) and wgrad (Wgrad: WgradGemm or a view of its kind) of
// a problem. The bias gradient is wgrad's column of ones, or, on an engine
// that sums it apart (kBiasGradApart), its own reduction.
template <template <class, bool> class Wgrad, class Engine, class RunDgrad>
std::tuple<at::Tensor, at::Tensor, at::Tensor> gemm_backward(
    const Engine& engine, const ConvProblem& p, const at::Tensor& grad_output,
    const at::Tensor& x, const at::Tensor& weight, const at::Tensor& output,
    std::array<bool, 3> mask, const RunDgrad& run_dgrad) {
  const at::Tensor source = backward_source(engine, grad_output, output, p.act);
  const at::Tensor input = x.contiguous(), filter = weight.contiguous();
  Gradients grads = allocate_gradients(p, x, weight, mask);
  dispatch_gemm_type<Engine>(x.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    const T* g = source.const_data_ptr<T>();
    if (mask[0]) run_dgrad(tag, g, filter.const_data_ptr<T>(), grads.grad_x.mutable_data_ptr<T>());
    constexpr bool kBiasColumn = !Engine::kBiasGradApart;
    using View = Wgrad<T, kBiasColumn>;
    T* const grad_b = mask[2] ? grads.grad_b.mutable_data_ptr<T>() : nullptr;
    if (mask[1] || (kBiasColumn && mask[2]))
      engine.run(per_group<View>(p, [&](int64_t group) {
        return View{WgradGemm<T, kBiasColumn>{
            g, input.const_data_ptr<T>(), mask[1] ? grads.grad_w.mutable_data_ptr<T>() : nullptr,
            kBiasColumn ? grad_b : nullptr, p, group}};
      }));
    if constexpr (!kBiasColumn) {
      if (mask[2]) engine.bias_grad(g, grad_b, p);
    }
  });
  return {grads.grad_x, grads.grad_w, grads.grad_b};
}

// The forward pass of a problem: run_forward(tag, x, weight, bias, out)
// runs it on the engine (bias may be null).
template <class Engine, class RunForward>
at::Tensor gemm_forward(const at::Tensor& x, const at::Tensor& weight,
                        const std::optional<at::Tensor>& bias, at::IntArrayRef output_size,
                        const RunForward& run_forward) {
  const at::Tensor input = x.contiguous(), filter = weight.contiguous();
  const at::Tensor shift = bias.has_value() ? bias->contiguous() : at::Tensor();
  at::Tensor out = at::empty(output_size, x.options());
  dispatch_gemm_type<Engine>(x.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    run_forward(tag, input.const_data_ptr<T>(), filter.const_data_ptr<T>(), data_or_null<T>(shift),
                out.mutable_data_ptr<T>());
  });
  return out;
}

inline std::vector<int64_t> conv2d_output_size(const at::Tensor& x, const ConvProblem& p) {
  if (x.dim() == 3) return {p.k, p.p, p.q};
  return {p.n, p.k, p.p, p.q};
}

// Stride-1 3×3 convolutions take Winograd's algorithm where the engine has
// it (winograd_applies: the CUDA engine) unless CNNFAST_WINOGRAD=0; the
// others the direct GEMM.
template <class Engine>
at::Tensor conv2d_forward(const at::Tensor& x, const at::Tensor& weight,
                          const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                          at::IntArrayRef padding, int64_t groups,
                          std::optional<std::string_view> activation) {
  const ConvProblem p = conv2d_problem(x, weight, bias, stride, padding, groups, activation,
                                       "conv2d", Engine::kHalfTypes);
  const Engine engine(x);
  return gemm_forward<Engine>(
      x, weight, bias, conv2d_output_size(x, p),
      [&](auto tag, auto input, auto filter, auto shift, auto out) {
        if constexpr (Engine::kWinograd) {
          if (winograd_enabled() && winograd_applies(p))
            return engine.winograd(winograd_forward_problem(p), input, filter, shift, out, p.act);
        }
        using View = FpropGemm<decltype(tag)>;
        engine.run(per_group<View>(
            p, [&](int64_t group) { return View{input, filter, shift, out, p, group}; }));
      });
}

template <class Engine>
std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward(
    const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& output, at::IntArrayRef stride, at::IntArrayRef padding, int64_t groups,
    std::optional<std::string_view> activation, std::array<bool, 3> output_mask) {
  const char* op = "_conv2d_backward";
  const ConvProblem p = conv2d_problem(x, weight, std::nullopt, stride, padding, groups,
                                       activation, op, Engine::kHalfTypes);
  check_conv_backward(grad_output, output, x, conv2d_output_size(x, p), op);
  const Engine engine(x);
  return gemm_backward<WgradGemm>(
      engine, p, grad_output, x, weight, output, output_mask,
      [&](auto tag, auto grad, auto filter, auto grad_x) {
        if constexpr (Engine::kWinograd) {
          if (winograd_enabled() && winograd_applies_to_input_grad(p))
            return engine.winograd(winograd_input_grad_problem(p), grad, filter,
                                   decltype(grad)(nullptr), grad_x, Activation::kNone);
        }
        // One GEMM per output phase: a stride-1 convolution has one.
        using View = DgradGemm<decltype(tag)>;
        for (int64_t h0 = 0; h0 < p.stride_h; ++h0)
          for (int64_t w0 = 0; w0 < p.stride_w; ++w0) {
            const DgradPhase ph = dgrad_phase(p, h0, w0);
            if (ph.plane() == 0 || ph.taps() == 0) continue;  // no cells, or zeros (allocate_gradients)
            engine.run(per_group<View>(p, [&](int64_t group) { return View{grad, filter, grad_x, p, group, ph}; }));
          }
      });
}

}  // namespace kernels
}  // namespace cnnfast
