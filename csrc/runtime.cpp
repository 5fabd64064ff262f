#include "runtime.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "cnnfast_build_config.h"
#include "common/kernel_table.h"

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

namespace {

struct KernelTable {
  std::mutex mutex;
  std::map<std::string, KernelEntry> entries;
};

KernelTable& kernel_table() {
  static KernelTable table;
  return table;
}

}  // namespace

bool register_cuda_kernel(const char* name, const char* header) {
  KernelTable& table = kernel_table();
  std::lock_guard<std::mutex> lock(table.mutex);
  std::string file = std::filesystem::path(header).lexically_normal().string();
  const size_t csrc = file.rfind("csrc/");
  if (csrc != std::string::npos) file = file.substr(csrc);
  table.entries.try_emplace(name, KernelEntry{name, file, 0});
  return true;
}

void count_emulated_launch(const char* name) {
  KernelTable& table = kernel_table();
  std::lock_guard<std::mutex> lock(table.mutex);
  const auto entry = table.entries.find(name);
  TORCH_CHECK(entry != table.entries.end(), "cnnfast: kernel ", name,
              " was launched but is not in the kernel table (CNNFAST_REGISTER_KERNEL)");
  ++entry->second.emulated_launches;
}

std::vector<KernelEntry> cuda_kernel_table() {
  KernelTable& table = kernel_table();
  std::lock_guard<std::mutex> lock(table.mutex);
  std::vector<KernelEntry> entries;
  for (const auto& [name, entry] : table.entries) entries.push_back(entry);
  return entries;
}

}  // namespace cnnfast
