#include "../kernels/lenet5_forward.h"

#include "emulate.h"

namespace cnnfast {
namespace emulate {

at::Tensor lenet5_forward(const at::Tensor& x, const LeNet5Parameters& params) {
  return kernels::lenet5_forward<HostLauncher>(x, params);
}

}  // namespace emulate
}  // namespace cnnfast
