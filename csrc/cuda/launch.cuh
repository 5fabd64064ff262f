#pragma once
// The GPU side of a kernel launch: a thin __global__ wrapper that hands the
// functor its (block, thread) index, launched on the current stream of the
// tensor's device and checked. csrc/common/launch.h has the host twin.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../common/launch.h"

namespace cnnfast {

template <class Kernel>
__global__ void run_kernel(const Kernel kernel) {
  ThreadIndex t;
  t.block_idx = {blockIdx.x, blockIdx.y, blockIdx.z};
  t.thread_idx = {threadIdx.x, threadIdx.y, threadIdx.z};
  t.block_dim = {blockDim.x, blockDim.y, blockDim.z};
  t.grid_dim = {gridDim.x, gridDim.y, gridDim.z};
  kernel(t);
}

class CudaLauncher {
 public:
  explicit CudaLauncher(const c10::Device& device) : guard_(device) {}

  template <class Kernel>
  void launch(const LaunchShape& shape, const Kernel& kernel) const {
    if (shape.empty()) return;
    const dim3 grid(static_cast<unsigned>(shape.grid.x), static_cast<unsigned>(shape.grid.y),
                    static_cast<unsigned>(shape.grid.z));
    const dim3 block(static_cast<unsigned>(shape.block.x), static_cast<unsigned>(shape.block.y),
                     static_cast<unsigned>(shape.block.z));
    run_kernel<<<grid, block, 0, c10::cuda::getCurrentCUDAStream()>>>(kernel);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

 private:
  c10::cuda::CUDAGuard guard_;
};

}  // namespace cnnfast
