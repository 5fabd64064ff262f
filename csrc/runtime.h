#pragma once
// Process-wide switches and what the build decided.
#include <cstdint>
#include <string>

namespace cnnfast {

// When on, ops on CPU tensors run the CUDA kernels' code through the host
// launcher instead of the CPU kernels. Starts from CNNFAST_EMULATE_CUDA=1.
bool emulating_cuda();
void set_emulating_cuda(bool on);

// The most memory Winograd's workspaces may take for one convolution
// (csrc/kernels/winograd.h): CNNFAST_WINOGRAD_WORKSPACE_MB, read at each
// call, 1024 MiB when unset. Larger batches run in chunks of images.
int64_t winograd_workspace_limit_bytes();

// Whether the CUDA engine may take Winograd's algorithm at all: off with
// CNNFAST_WINOGRAD=0 (read at each call), so that one process can time a
// layer both ways.
bool winograd_enabled();

// Build facts: the torch the extension was compiled against, whether the
// CUDA kernels were compiled, for which architectures, and the CPU ISA the
// CPU kernels were compiled for.
const char* built_torch_version();
bool cuda_compiled();
const char* cuda_archs();
const char* cpu_isa();


}  // namespace cnnfast
