#pragma once
// relu and tanh: forward from the input, backward from the saved output.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>

#include "../common/checks.h"
#include "../common/kernel_table.h"
#include "../common/launch.h"
#include "../common/numeric.h"

namespace cnnfast {
namespace kernels {

struct Relu {
  template <class T>
  static CNNFAST_HD T forward(T x) {
    return relu_value(x);
  }
  template <class T>
  static CNNFAST_HD T backward(T grad, T out) {
    return relu_grad(grad, out);
  }
};

struct Tanh {
  static CNNFAST_HD float forward(float x) { return tanh_value(x); }
  static CNNFAST_HD double forward(double x) { return tanh_value(x); }
  template <class T>
  static CNNFAST_HD T backward(T grad, T out) {
    return tanh_grad(grad, out);
  }
};

// out[i] = Op::forward(x[i]), computed in the accumulation type.
template <class scalar_t, class Op>
struct ActivationForwardKernel {
  CNNFAST_KERNEL_NAME(ActivationForwardKernel);
  const scalar_t* x;
  scalar_t* out;
  int64_t n;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    using acc_t = acc_type<scalar_t>;
    for_each_element_batched(t, n, [&](int64_t i) { return static_cast<acc_t>(x[i]); },
                             [&](int64_t i, acc_t v) { out[i] = static_cast<scalar_t>(Op::forward(v)); });
  }
};
CNNFAST_REGISTER_KERNEL(ActivationForwardKernel);

// grad_x[i] = Op::backward(grad_out[i], out[i]).
template <class scalar_t, class Op>
struct ActivationBackwardKernel {
  CNNFAST_KERNEL_NAME(ActivationBackwardKernel);
  const scalar_t* grad_out;
  const scalar_t* out;
  scalar_t* grad_x;
  int64_t n;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    using acc_t = acc_type<scalar_t>;
    struct GradAndOut {
      acc_t grad, out;
    };
    for_each_element_batched(
        t, n,
        [&](int64_t i) {
          return GradAndOut{static_cast<acc_t>(grad_out[i]), static_cast<acc_t>(out[i])};
        },
        [&](int64_t i, const GradAndOut& v) {
          grad_x[i] = static_cast<scalar_t>(Op::backward(v.grad, v.out));
        });
  }
};
CNNFAST_REGISTER_KERNEL(ActivationBackwardKernel);

template <class Launcher, class Op>
at::Tensor activation_forward(const at::Tensor& x, const char* op) {
  check_dtype(x, op, "x", /*allow_16bit=*/true);
  Launcher launcher(x.device());
  const at::Tensor input = x.contiguous(elementwise_format(x));
  at::Tensor out = at::empty_like(input);
  const int64_t n = input.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "activation", [&] {
    launcher.launch(elementwise_launch_shape(n),
                    ActivationForwardKernel<scalar_t, Op>{input.const_data_ptr<scalar_t>(),
                                                out.mutable_data_ptr<scalar_t>(), n});
  });
  return out;
}

template <class Launcher, class Op>
at::Tensor activation_backward(const at::Tensor& grad_output, const at::Tensor& output,
                               const char* op) {
  check_dtype(output, op, "output", /*allow_16bit=*/true);
  check_same_device_dtype(grad_output, output, op, "grad_output", "output");
  check_same_shape(grad_output, output, op, "grad_output", "output");
  Launcher launcher(output.device());
  const at::MemoryFormat format = elementwise_format(output);
  const at::Tensor out = output.contiguous(format);
  const at::Tensor grad = grad_output.contiguous(format);
  at::Tensor grad_x = at::empty_like(out);
  const int64_t n = out.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "activation_backward", [&] {
    launcher.launch(elementwise_launch_shape(n),
                    ActivationBackwardKernel<scalar_t, Op>{grad.const_data_ptr<scalar_t>(),
                                                 out.const_data_ptr<scalar_t>(),
                                                 grad_x.mutable_data_ptr<scalar_t>(), n});
  });
  return grad_x;
}

// The ops' entry points, for the CUDA registration and the emulation.
template <class Launcher>
at::Tensor relu_forward(const at::Tensor& x) {
  return activation_forward<Launcher, Relu>(x, "relu");
}
template <class Launcher>
at::Tensor relu_backward(const at::Tensor& grad_output, const at::Tensor& output) {
  return activation_backward<Launcher, Relu>(grad_output, output, "_relu_backward");
}
template <class Launcher>
at::Tensor tanh_forward(const at::Tensor& x) {
  return activation_forward<Launcher, Tanh>(x, "tanh");
}
template <class Launcher>
at::Tensor tanh_backward(const at::Tensor& grad_output, const at::Tensor& output) {
  return activation_backward<Launcher, Tanh>(grad_output, output, "_tanh_backward");
}

}  // namespace kernels
}  // namespace cnnfast
