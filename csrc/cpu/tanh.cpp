#include <torch/library.h>

#include "../emulate/emulate.h"
#include "../runtime.h"
#include "elementwise.h"
#include "vec_math.h"

namespace cnnfast {
namespace {

at::Tensor tanh_cpu(const at::Tensor& x) {
  if (emulating_cuda()) return emulate::tanh(x);
  return cpu::unary_map(x, "tanh", [](auto v) { return cpu::tanh_lanes(v); });
}

at::Tensor tanh_backward_cpu(const at::Tensor& grad_output, const at::Tensor& output) {
  if (emulating_cuda()) return emulate::tanh_backward(grad_output, output);
  return cpu::backward_map(grad_output, output, "_tanh_backward",
                           [](auto g, auto y) { return cpu::tanh_grad_lanes(g, y); });
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("tanh", &tanh_cpu);
  m.impl("_tanh_backward", &tanh_backward_cpu);
}

}  // namespace cnnfast
