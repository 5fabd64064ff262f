#pragma once
// Launch geometry shared by the CUDA launcher and its host emulation: both
// take the grid and block from the same function, so the emulation walks
// exactly the (block, thread) pairs a GPU would run.
#include <algorithm>
#include <cstdint>

#include "macros.h"

namespace cnnfast {

struct Dim3 {
  int64_t x = 1, y = 1, z = 1;
  int64_t count() const { return x * y * z; }
};

struct LaunchShape {
  Dim3 grid;
  Dim3 block;
  bool empty() const { return grid.count() == 0 || block.count() == 0; }
};

// What a kernel body sees: CUDA's blockIdx/threadIdx/blockDim/gridDim.
struct ThreadIndex {
  Dim3 block_idx, thread_idx, block_dim, grid_dim;
};

// First element and step of a grid-stride loop over the x dimension.
CNNFAST_INLINE int64_t grid_first(const ThreadIndex& t) {
  return t.block_idx.x * t.block_dim.x + t.thread_idx.x;
}
CNNFAST_INLINE int64_t grid_step(const ThreadIndex& t) {
  return t.grid_dim.x * t.block_dim.x;
}

// One thread per element, grid-stride beyond max_blocks (enough blocks to
// fill a Hopper GPU several times over; more only adds scheduling).
inline LaunchShape elementwise_launch_shape(int64_t n, int64_t threads = 256,
                                            int64_t max_blocks = 8192) {
  LaunchShape shape;
  shape.block.x = threads;
  shape.grid.x = std::min<int64_t>((n + threads - 1) / threads, max_blocks);
  return shape;
}

// Host stand-in for a CUDA launch: runs the kernel body for every block and
// thread of the grid, in order. Used by the emulation mode only.
struct HostLauncher {
  template <class Device>
  explicit HostLauncher(const Device&) {}

  template <class Kernel>
  void launch(const LaunchShape& shape, const Kernel& kernel) const {
    if (shape.empty()) return;
    ThreadIndex t;
    t.grid_dim = shape.grid;
    t.block_dim = shape.block;
    for (t.block_idx.z = 0; t.block_idx.z < shape.grid.z; ++t.block_idx.z)
      for (t.block_idx.y = 0; t.block_idx.y < shape.grid.y; ++t.block_idx.y)
        for (t.block_idx.x = 0; t.block_idx.x < shape.grid.x; ++t.block_idx.x)
          for (t.thread_idx.z = 0; t.thread_idx.z < shape.block.z; ++t.thread_idx.z)
            for (t.thread_idx.y = 0; t.thread_idx.y < shape.block.y; ++t.thread_idx.y)
              for (t.thread_idx.x = 0; t.thread_idx.x < shape.block.x; ++t.thread_idx.x)
                kernel(t);
  }
};

}  // namespace cnnfast
