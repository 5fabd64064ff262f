#include "../kernels/local_response_norm.h"

#include "emulate.h"

namespace cnnfast {
namespace emulate {

at::Tensor local_response_norm_forward(const at::Tensor& x, int64_t size, double alpha,
                                       double beta, double k) {
  return kernels::local_response_norm_forward<HostLauncher>(x, size, alpha, beta, k);
}

at::Tensor local_response_norm_backward(const at::Tensor& grad_output, const at::Tensor& x,
                                        int64_t size, double alpha, double beta, double k) {
  return kernels::local_response_norm_backward<HostLauncher>(grad_output, x, size, alpha, beta,
                                                             k);
}

}  // namespace emulate
}  // namespace cnnfast
