#include <torch/library.h>

#include "../emulation.h"
#include "../kernels/activation.h"
#include "elementwise.h"
#include "vec_math.h"

namespace cnnfast {
namespace {

at::Tensor tanh_cpu(const at::Tensor& x) {
  return cpu::unary_map(x, "tanh", [](auto v) { return cpu::tanh_lanes(v); });
}

at::Tensor tanh_backward_cpu(const at::Tensor& grad_output, const at::Tensor& output) {
  return cpu::backward_map(grad_output, output, "_tanh_backward",
                           [](auto g, auto y) { return cpu::tanh_grad_lanes(g, y); });
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) {
  m.impl("tanh", cpu_or_emulated<&tanh_cpu, &kernels::tanh_forward<HostLauncher>>());
  m.impl("_tanh_backward", cpu_or_emulated<&tanh_backward_cpu, &kernels::tanh_backward<HostLauncher>>());
}

}  // namespace cnnfast
