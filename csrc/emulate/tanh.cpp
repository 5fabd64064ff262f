#include "../kernels/activation.h"

#include "emulate.h"

namespace cnnfast {
namespace emulate {

at::Tensor tanh(const at::Tensor& x) {
  return kernels::activation_forward<HostLauncher, kernels::Tanh>(x, "tanh");
}
at::Tensor tanh_backward(const at::Tensor& grad_output, const at::Tensor& output) {
  return kernels::activation_backward<HostLauncher, kernels::Tanh>(grad_output, output,
                                                                   "_tanh_backward");
}

}  // namespace emulate
}  // namespace cnnfast
