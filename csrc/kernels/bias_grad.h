#pragma once
// The bias gradient of conv2d and linear on the CUDA engine:
//   grad_bias[k] = sum over n and the output pixels of g[n][k][pixel],
// g being the backward GEMMs' gradient (grad_output times the activation's
// derivative). The CPU engine sums it as wgrad's column of ones; in the
// tiled CUDA kernel that column's select after every B load kept the
// loads' values and predicates live through the multiply, and with 128
// registers nvcc consumed them 26-57 FMAs after issuing the loads instead
// of after the whole multiply (make sass-report: "FMAs from a load to its
// use"), so each warp waited for global memory at every depth tile.
#include <algorithm>

#include "../common/conv2d.h"
#include "../common/launch.h"

namespace cnnfast {
namespace kernels {

// One block per channel k: each thread sums every kThreads-th element of
// the channel in order, then a tree in shared memory adds the threads'
// sums. A fixed order, no atomics: deterministic.
template <class T>
struct BiasGradKernel {
  using acc_t = acc_type<T>;
  static constexpr int kThreads = 256, kMinBlocksPerSM = 1;
  struct Shared {
    acc_t partial[kThreads];
  };
  struct Registers {};

  const T* grad;  // images × channels × pixels
  T* grad_bias;
  int64_t images, channels, pixels;
  // kThreads elements as whole images and pixels: a thread's step.
  int64_t step_images, step_pixels;

  template <class Block>
  CNNFAST_HD void operator()(Block& block, Shared& sh) const {
    const int64_t k = block.index().block_idx.x;
    block.each_thread([&](const ThreadIndex& t, Registers&) {
      const int64_t first = t.thread_idx.x;
      int64_t n = first / pixels, pixel = first % pixels;
      acc_t sum = 0;
      while (n < images) {
        sum += static_cast<acc_t>(grad[(n * channels + k) * pixels + pixel]);
        n += step_images;
        pixel += step_pixels;
        if (pixel >= pixels) {
          pixel -= pixels;
          ++n;
        }
      }
      sh.partial[t.thread_idx.x] = sum;
    });
    for (int width = kThreads / 2; width > 0; width /= 2) {
      block.barrier();
      block.each_thread([&](const ThreadIndex& t, Registers&) {
        if (t.thread_idx.x < width) sh.partial[t.thread_idx.x] += sh.partial[t.thread_idx.x + width];
      });
    }
    // Thread 0 added the last pair itself.
    block.each_thread([&](const ThreadIndex& t, Registers&) {
      if (t.thread_idx.x == 0) grad_bias[k] = static_cast<T>(sh.partial[0]);
    });
  }
};

template <class Launcher, class T>
void launch_bias_grad(const Launcher& launcher, const T* grad, T* grad_bias,
                      const ConvProblem& p) {
  using Kernel = BiasGradKernel<T>;
  if (p.k == 0) return;
  // An empty output plane sums nothing, as an empty batch does.
  const int64_t pixels = std::max<int64_t>(p.out_plane(), 1);
  const int64_t images = p.out_plane() == 0 ? 0 : p.n;
  LaunchShape shape;
  shape.block.x = Kernel::kThreads;
  shape.grid.x = p.k;
  launcher.launch_blocks(shape, Kernel{grad, grad_bias, images, p.k, pixels,
                                       Kernel::kThreads / pixels, Kernel::kThreads % pixels});
}

}  // namespace kernels
}  // namespace cnnfast
