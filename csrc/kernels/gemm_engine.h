#pragma once
// The engine the op drivers (conv2d.h, linear.h) use on a launcher: CUDA
// tensors, or CPU tensors under emulation. GEMM views run on the tiled
// implicit-GEMM kernel (implicit_gemm.h); stride-1 3×3 convolutions by
// Winograd's algorithm (winograd.h); the bias gradient by a reduction
// (bias_grad.h); linear's forward on tensor cores where torch's precision
// switches allow them (tensor_core_gemm.h).
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>

#include <vector>

#include "activation.h"
#include "bias_grad.h"
#include "implicit_gemm.h"
#include "tensor_core_gemm.h"
#include "winograd.h"

namespace cnnfast {
namespace kernels {

template <class Launcher>
struct TiledGemmEngine {
  static constexpr bool kHalfTypes = true;
  static constexpr bool kWinograd = true;
  // The bias gradient by its own reduction (bias_grad.h), not as wgrad's
  // column of ones.
  static constexpr bool kBiasGradApart = true;
  static constexpr bool kTensorCores = true;

  Launcher launcher;
  at::TensorOptions options;
  explicit TiledGemmEngine(const at::Tensor& like) : launcher(like.device()), options(like.options()) {}

  template <class View>
  void run(const std::vector<View>& views) const {
    for (const View& view : views) run_gemm_view(launcher, view, options);
  }

  template <class T>
  void winograd(const WinogradProblem& wp, const T* input, const T* weight, const T* bias, T* out,
                Activation act) const {
    winograd_conv(launcher, options, wp, input, weight, bias, out, act);
  }

  // Whether a matrix product in dtype t runs on tensor cores, as torch's
  // matmul would: float16 and bfloat16 always, float32 in TF32 only where
  // torch allows it (torch.backends.cuda.matmul.allow_tf32,
  // set_float32_matmul_precision "high" or "medium"); on sm_80 and newer.
  bool tensor_cores_for_matmul(at::ScalarType t) const {
    const bool precision = t == at::kHalf || t == at::kBFloat16 ||
                           (t == at::kFloat && at::globalContext().allowTF32CuBLAS());
    return precision && launcher.has_tensor_cores();
  }

  // out = act(a · bᵀ + bias), all of a's dtype, on tensor cores.
  void tensor_core_gemm(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& bias,
                        Activation act, at::Tensor& out) const {
    dispatch_mma(a.scalar_type(), "linear", [&](auto mma, auto element) {
      using Element = decltype(element);
      kernels::tensor_core_gemm<decltype(mma), Element, Element>(launcher, a, b, bias, act, out);
    });
  }

  template <class T>
  void bias_grad(const T* grad, T* grad_bias, const ConvProblem& p) const {
    launch_bias_grad(launcher, options, grad, grad_bias, p);
  }

  // grad · act'(out), elementwise: the activations' own backward kernel.
  at::Tensor grad_product(const at::Tensor& grad, const at::Tensor& out, Activation act) const {
    if (act == Activation::kRelu) return activation_backward<Launcher, Relu>(grad, out, "activation_grad");
    return activation_backward<Launcher, Tanh>(grad, out, "activation_grad");
  }
};

}  // namespace kernels
}  // namespace cnnfast
