#pragma once
// The table of CUDA kernels that cnnfast.info()["cuda_kernels"] reads.
// Every kernel is a functor (csrc/kernels/): it names itself inside its
// struct with CNNFAST_KERNEL_NAME and enters the table once, after it, with
// CNNFAST_REGISTER_KERNEL. The host launcher counts each kernel's launches
// under the CUDA emulation, so a test can prove that every kernel in the
// table ran there, and another that every __global__ instantiation in the
// build is a functor of the table.
#include <cstdint>
#include <string>
#include <vector>

namespace cnnfast {

struct KernelEntry {
  std::string name;    // the functor's struct name
  std::string header;  // the file that defines it
  int64_t emulated_launches = 0;
};

// Adds a kernel to the table (once per name); true, for the registering
// inline variable.
bool register_cuda_kernel(const char* name, const char* header);

// One launch of a registered kernel through the host launcher; an error
// for a name the table lacks.
void count_emulated_launch(const char* name);

std::vector<KernelEntry> cuda_kernel_table();

}  // namespace cnnfast

#define CNNFAST_KERNEL_NAME(Name) static constexpr const char* kName = #Name

#if defined(__CUDA_ARCH__)
#define CNNFAST_REGISTER_KERNEL(Name)
#else
#define CNNFAST_REGISTER_KERNEL(Name) \
  inline const bool kRegistered##Name = ::cnnfast::register_cuda_kernel(#Name, __FILE__)
#endif
