#pragma once
// Launch geometry shared by the CUDA launcher and its host emulation: both
// take the grid and block from the same function, so the emulation walks
// exactly the (block, thread) pairs a GPU would run.
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernel_table.h"
#include "macros.h"
#include "numeric.h"
#include "warp.h"

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

// Grid-stride over [0, n) in batches of four of this thread's elements:
// all four loads, then all four stores, so each thread keeps four loads in
// flight (one at a time leaves a GPU's memory system mostly idle).
// load(i) returns element i's inputs, store(i, inputs) writes its output.
template <class Load, class Store>
CNNFAST_INLINE void for_each_element_batched(const ThreadIndex& t, int64_t n, const Load& load,
                                             const Store& store) {
  constexpr int kBatch = 4;
  const int64_t step = grid_step(t);
  int64_t i = grid_first(t);
  for (; i + (kBatch - 1) * step < n; i += kBatch * step) {
    decltype(load(i)) inputs[kBatch];
    for (int k = 0; k < kBatch; ++k) inputs[k] = load(i + k * step);
    for (int k = 0; k < kBatch; ++k) store(i + k * step, inputs[k]);
  }
  for (; i < n; i += step) store(i, load(i));
}

// One cell of a stack of equal planes, as a grid-stride loop hands it out.
template <class Index>
struct BasicPlaneCell {
  Index index, plane, row, col;
};
using PlaneCell = BasicPlaneCell<int64_t>;

// Grid-stride over every cell of `planes` planes of rows×cols stored one
// after the other: f(cell) for each cell this thread owns, in Index
// arithmetic. The caller makes sure n plus the grid's step fits in Index.
template <class Index, class F>
CNNFAST_INLINE void for_each_plane_cell_as(const ThreadIndex& t, Index n,
                                           const Divisor<Index>& plane_size,
                                           const Divisor<Index>& cols, const F& f) {
  const Index step = static_cast<Index>(grid_step(t));
  for (Index i = static_cast<Index>(grid_first(t)); i < n; i += step) {
    const Index plane = plane_size.divide(i), cell = i - plane * plane_size.value;
    const Index row = cols.divide(cell);
    f(BasicPlaneCell<Index>{i, plane, row, cell - row * cols.value});
  }
}

// The same with 64-bit cells, whose loop still runs in 32 bits wherever
// every index it forms fits (a GPU divides 32-bit integers several times
// faster than 64-bit ones).
template <class F>
CNNFAST_INLINE void for_each_plane_cell(const ThreadIndex& t, int64_t planes, int64_t rows,
                                        int64_t cols, const F& f) {
  const int64_t plane_size = rows * cols, n = planes * plane_size;
  if (n + grid_step(t) <= static_cast<int64_t>(UINT32_MAX))
    for_each_plane_cell_as<uint32_t>(
        t, static_cast<uint32_t>(n), Divisor<uint32_t>(static_cast<uint32_t>(plane_size)),
        Divisor<uint32_t>(static_cast<uint32_t>(cols)), [&](const BasicPlaneCell<uint32_t>& c) {
          f(PlaneCell{c.index, c.plane, c.row, c.col});
        });
  else
    for_each_plane_cell_as<int64_t>(t, n, Divisor<int64_t>(plane_size), Divisor<int64_t>(cols), f);
}

// One thread per element, grid-stride beyond max_blocks (enough blocks to
// fill a Hopper GPU several times over; more only adds scheduling).
inline LaunchShape elementwise_launch_shape(int64_t n, int64_t threads = 256,
                                            int64_t max_blocks = 8192) {
  LaunchShape shape;
  shape.block.x = threads;
  shape.grid.x = std::min<int64_t>(ceil_div(n, threads), max_blocks);
  return shape;
}

// A kernel that needs shared memory and barriers is written as phases. Its
// body, `kernel(block, shared)`, calls block.each_thread(f) once per phase
// and block.barrier() where the threads must meet; f(thread, registers) is
// one thread's share of the phase, with `registers` the state that thread
// keeps across phases. On a GPU every thread runs f once per phase and
// barrier() is __syncthreads() (csrc/cuda/launch.cuh). The host block runs f
// for every thread of the block in turn, so each phase sees shared memory as
// the whole previous phase left it. Kernel::Shared and Kernel::Registers
// name the two state types.
template <class Registers>
class HostBlock {
 public:
  HostBlock(const LaunchShape& shape, const Dim3& block_idx)
      : registers_(static_cast<size_t>(shape.block.count())) {
    t_.grid_dim = shape.grid;
    t_.block_dim = shape.block;
    t_.block_idx = block_idx;
  }

  template <class F>
  void each_thread(const F& f) {
    size_t i = 0;
    ThreadIndex t = t_;
    for (t.thread_idx.z = 0; t.thread_idx.z < t.block_dim.z; ++t.thread_idx.z)
      for (t.thread_idx.y = 0; t.thread_idx.y < t.block_dim.y; ++t.thread_idx.y)
        for (t.thread_idx.x = 0; t.thread_idx.x < t.block_dim.x; ++t.thread_idx.x)
          f(static_cast<const ThreadIndex&>(t), registers_[i++]);
  }
  // A warp phase (warp.h): f(warp) once per warp, with all its lanes. The
  // block is one-dimensional and whole warps, as DeviceBlock::each_warp
  // numbers its lanes by threadIdx.x.
  template <class F>
  void each_warp(const F& f) {
    TORCH_INTERNAL_ASSERT(t_.block_dim.y == 1 && t_.block_dim.z == 1 && t_.block_dim.x % kWarpSize == 0,
                          "a warp phase needs a one-dimensional block of whole warps");
    for (size_t w = 0; w * kWarpSize < registers_.size(); ++w) {
      HostWarp<Registers> warp(&registers_[w * kWarpSize], static_cast<int>(w));
      f(warp);
    }
  }
  void barrier() const {}
  const ThreadIndex& index() const { return t_; }

 private:
  ThreadIndex t_;
  std::vector<Registers> registers_;
};

// Host stand-in for a CUDA launch: runs the kernel body for every block and
// thread of the grid, in order, and counts the launch in the kernel table.
// Used by the emulation mode only.
struct HostLauncher {
  template <class Device>
  explicit HostLauncher(const Device&) {}

  // The emulation runs the code of an sm_80-and-newer GPU.
  bool has_tensor_cores() const { return true; }

  template <class Kernel>
  void launch(const LaunchShape& shape, const Kernel& kernel) const {
    if (shape.empty()) return;
    count_emulated_launch(Kernel::kName);
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

  // A phased kernel (see HostBlock): one block after the other.
  template <class Kernel>
  void launch_blocks(const LaunchShape& shape, const Kernel& kernel) const {
    if (shape.empty()) return;
    count_emulated_launch(Kernel::kName);
    Dim3 b;
    for (b.z = 0; b.z < shape.grid.z; ++b.z)
      for (b.y = 0; b.y < shape.grid.y; ++b.y)
        for (b.x = 0; b.x < shape.grid.x; ++b.x) {
          typename Kernel::Shared shared{};
          HostBlock<typename Kernel::Registers> block(shape, b);
          kernel(block, shared);
        }
  }
};

}  // namespace cnnfast
