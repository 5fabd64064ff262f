#pragma once
// Where an op on a CPU tensor runs: its CPU kernel, or -- while the CUDA
// emulation is on (CNNFAST_EMULATE_CUDA=1, cnnfast.testing.emulate_cuda) --
// its CUDA kernel's own code through HostLauncher. Every CPU registration
// goes through cpu_or_emulated, so this is decided here and nowhere else:
//
//   m.impl("relu", cpu_or_emulated<&relu_cpu, &kernels::relu_forward<HostLauncher>>());
#include <c10/core/CompileTimeFunctionPointer.h>

#include <type_traits>

#include "runtime.h"

namespace cnnfast {

// Whether ops on CPU tensors run the CPU kernels (the emulation is off).
inline bool runs_cpu_kernels() { return !emulating_cuda(); }

template <auto Cpu, auto Emulated, class Signature = decltype(Cpu)>
struct CpuOrEmulated;

template <auto Cpu, auto Emulated, class R, class... Args>
struct CpuOrEmulated<Cpu, Emulated, R (*)(Args...)> {
  static_assert(std::is_same_v<decltype(Cpu), decltype(Emulated)>,
                "a CPU kernel and its emulated CUDA kernel take the same arguments");
  static R call(Args... args) {
    return runs_cpu_kernels() ? Cpu(args...) : Emulated(args...);
  }
};

// The CPU-key kernel of an op: Cpu, or Emulated under the emulation.
template <auto Cpu, auto Emulated>
constexpr auto cpu_or_emulated() {
  using Call = CpuOrEmulated<Cpu, Emulated>;
  return c10::CompileTimeFunctionPointer<std::remove_pointer_t<decltype(&Call::call)>, &Call::call>();
}

}  // namespace cnnfast
