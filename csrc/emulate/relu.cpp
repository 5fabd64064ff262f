#include "../kernels/activation.h"

#include "emulate.h"

namespace cnnfast {
namespace emulate {

at::Tensor relu(const at::Tensor& x) {
  return kernels::activation_forward<HostLauncher, kernels::Relu>(x, "relu");
}
at::Tensor relu_backward(const at::Tensor& grad_output, const at::Tensor& output) {
  return kernels::activation_backward<HostLauncher, kernels::Relu>(grad_output, output,
                                                                   "_relu_backward");
}

}  // namespace emulate
}  // namespace cnnfast
