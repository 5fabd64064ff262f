#include <torch/library.h>

#include "../common/checks.h"
#include "../composites.h"
#include "../emulation.h"
#include "../kernels/lenet5_forward.h"

namespace cnnfast {
namespace {

// On a CPU the layers run in turn: conv2d_avg_pool2d already pools LeNet-5's
// maps in registers, and the CPU has no launches to save.
at::Tensor lenet5_forward_cpu(const at::Tensor& x, const at::Tensor& conv1_weight,
                              const at::Tensor& conv1_bias, const at::Tensor& conv2_weight,
                              const at::Tensor& conv2_bias, const at::Tensor& fc1_weight,
                              const at::Tensor& fc1_bias, const at::Tensor& fc2_weight,
                              const at::Tensor& fc2_bias, const at::Tensor& fc3_weight,
                              const at::Tensor& fc3_bias) {
  const LeNet5Parameters params{conv1_weight, conv1_bias, conv2_weight, conv2_bias, fc1_weight,
                                fc1_bias,     fc2_weight, fc2_bias,     fc3_weight, fc3_bias};
  check_lenet5_arguments(x, params, "lenet5_forward", /*allow_16bit=*/false);
  return lenet5_forward_unfused(x, params);
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, CPU, m) { m.impl("lenet5_forward", cpu_or_emulated<&lenet5_forward_cpu, &kernels::lenet5_forward_op<HostLauncher>>()); }

}  // namespace cnnfast
