#pragma once
// Per-thread scratch buffers of the CPU kernels, kept between calls.
#include <cstdint>
#include <vector>

namespace cnnfast {
namespace cpu {

// Scratch memory each thread keeps between calls, one buffer per use and
// element type: fresh allocations of these sizes would cost page faults on
// every call. The largest size a thread asked for stays allocated for its
// lifetime. `Use` is a tag type that names the use where it is declared, so
// that two uses never share a buffer and no list of uses is kept here.
//
// The buffers start on a 64-byte boundary, so that vector loads of packed
// strips and interleaved pixels never straddle two cache lines (malloc
// gives 16).
template <class Use, class T>
T* scratch(int64_t count) {
  constexpr int64_t kSlack = 64 / sizeof(T);
  thread_local std::vector<T> buffer;
  if (static_cast<int64_t>(buffer.size()) < count + kSlack) buffer.resize(count + kSlack);
  const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
  return reinterpret_cast<T*>((address + 63) & ~std::uintptr_t{63});
}

}  // namespace cpu
}  // namespace cnnfast
