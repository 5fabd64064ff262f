#include "runtime.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cnnfast_build_config.h"

namespace cnnfast {
namespace {

bool env_flag(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && std::strcmp(value, "") != 0 && std::strcmp(value, "0") != 0;
}

std::atomic<bool>& emulation_flag() {
  static std::atomic<bool> flag{env_flag("CNNFAST_EMULATE_CUDA")};
  return flag;
}

}  // namespace

int64_t winograd_workspace_limit_bytes() {
  constexpr int64_t kMiB = int64_t(1) << 20, kDefaultMiB = 1024;
  const char* value = std::getenv("CNNFAST_WINOGRAD_WORKSPACE_MB");
  const int64_t mib = value != nullptr && *value != '\0' ? std::atoll(value) : kDefaultMiB;
  return (mib > 0 ? mib : kDefaultMiB) * kMiB;
}

bool winograd_enabled() {
  const char* value = std::getenv("CNNFAST_WINOGRAD");
  return value == nullptr || std::strcmp(value, "0") != 0;
}

bool emulating_cuda() { return emulation_flag().load(std::memory_order_relaxed); }
void set_emulating_cuda(bool on) { emulation_flag().store(on, std::memory_order_relaxed); }

const char* built_torch_version() { return CNNFAST_TORCH_VERSION; }

bool cuda_compiled() {
#ifdef CNNFAST_WITH_CUDA
  return true;
#else
  return false;
#endif
}

const char* cuda_archs() { return CNNFAST_CUDA_ARCHS; }
const char* cpu_isa() { return CNNFAST_CPU_ISA; }

std::string cuda_kernel_table() {
  // Every kernel below is a functor in csrc/kernels/ that the host launcher
  // runs too (the implicit GEMM as a phased kernel with shared memory and
  // barriers); none uses warp shuffles, tensor cores or async copies yet.
  static const char* const kernels[] = {
      "relu_forward",         "relu_backward",         "tanh_forward",
      "tanh_backward",        "max_pool2d_forward",    "max_pool2d_backward",
      "avg_pool2d_forward",   "avg_pool2d_backward",   "local_response_norm_forward",
      "local_response_norm_backward", "relu_lrn_max_pool2d_forward", "relu_lrn_max_pool2d_backward",
      "implicit_gemm_fprop",  "implicit_gemm_dgrad",   "implicit_gemm_wgrad",
      "gemm_slice_sum",       "winograd_filter_transform", "winograd_input_transform",
      "winograd_gemm",        "winograd_output_transform", "lenet5_forward",
  };
  std::string table;
  for (const char* name : kernels) table += std::string(name) + ":emulated\n";
  return table;
}

}  // namespace cnnfast
