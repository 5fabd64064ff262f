#include <torch/library.h>

#include "../emulate/emulate.h"
#include "../runtime.h"
#include "elementwise.h"
#include "vec_math.h"

namespace cnnfast {
namespace {

at::Tensor relu_cpu(const at::Tensor& x) {
  if (emulating_cuda()) return emulate::relu(x);
  return cpu::unary_map(x, "relu", [](auto v) { return cpu::relu_lanes(v); });
}

at::Tensor relu_backward_cpu(const at::Tensor& grad_output, const at::Tensor& output) {
  if (emulating_cuda()) return emulate::relu_backward(grad_output, output);
  return cpu::backward_map(grad_output, output, "_relu_backward",
                           [](auto g, auto y) { return cpu::relu_grad_lanes(g, y); });
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("relu", &relu_cpu);
  m.impl("_relu_backward", &relu_backward_cpu);
}

}  // namespace cnnfast
