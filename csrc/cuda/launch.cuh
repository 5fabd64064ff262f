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

// One thread's view of a phased kernel's block (csrc/common/launch.h).
template <class Registers>
class DeviceBlock {
 public:
  __device__ DeviceBlock() {
    t_.block_idx = {blockIdx.x, blockIdx.y, blockIdx.z};
    t_.thread_idx = {threadIdx.x, threadIdx.y, threadIdx.z};
    t_.block_dim = {blockDim.x, blockDim.y, blockDim.z};
    t_.grid_dim = {gridDim.x, gridDim.y, gridDim.z};
  }
  template <class F>
  __device__ void each_thread(const F& f) {
    f(static_cast<const ThreadIndex&>(t_), registers_);
  }
  template <class F>
  __device__ void each_warp(const F& f) {
    DeviceWarp<Registers> warp(registers_, static_cast<int>(t_.thread_idx.x));
    f(warp);
  }
  __device__ void barrier() const { __syncthreads(); }
  __device__ const ThreadIndex& index() const { return t_; }

 private:
  ThreadIndex t_;
  Registers registers_;
};

// A phased kernel names its block size and the blocks it wants resident on
// one SM; ptxas then fits its registers to that many (see implicit_gemm.h).
template <class Kernel>
__global__ void __launch_bounds__(Kernel::kThreads, Kernel::kMinBlocksPerSM)
    run_block_kernel(const Kernel kernel) {
  __shared__ typename Kernel::Shared shared;
  DeviceBlock<typename Kernel::Registers> block;
  kernel(block, shared);
}

class CudaLauncher {
 public:
  explicit CudaLauncher(const c10::Device& device) : guard_(device), device_(device.index()) {}

  // mma.sync with TF32, float16 and bfloat16 operands: sm_80 and newer.
  bool has_tensor_cores() const {
    int major = 0;
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_));
    return major >= 8;
  }

  template <class Kernel>
  void launch(const LaunchShape& shape, const Kernel& kernel) const {
    if (shape.empty()) return;
    run_kernel<<<dims(shape.grid), dims(shape.block), 0, c10::cuda::getCurrentCUDAStream()>>>(
        kernel);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  template <class Kernel>
  void launch_blocks(const LaunchShape& shape, const Kernel& kernel) const {
    if (shape.empty()) return;
    run_block_kernel<<<dims(shape.grid), dims(shape.block), 0,
                       c10::cuda::getCurrentCUDAStream()>>>(kernel);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

 private:
  static dim3 dims(const Dim3& d) {
    return dim3(static_cast<unsigned>(d.x), static_cast<unsigned>(d.y), static_cast<unsigned>(d.z));
  }
  c10::cuda::CUDAGuard guard_;
  int device_;
};

}  // namespace cnnfast
