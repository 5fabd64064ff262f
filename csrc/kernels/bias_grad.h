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
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/ScalarType.h>

#include <algorithm>

#include "../common/conv2d.h"
#include "../common/kernel_table.h"
#include "../common/launch.h"

namespace cnnfast {
namespace kernels {

// Stage one: block b sums slice b % slices of channel b / slices, a run of
// per_slice consecutive elements of the channel's images × pixels. Each
// thread takes every kThreads-th element of the run in order, kInFlight
// loads at a time (one at a time leaves the memory system idle), and a
// tree in shared memory adds the threads' sums. One block per channel, as
// before the slices, left AlexNet's first layer 48 blocks on 132 SMs: the
// sums took 7.5% of a training step. With one slice a channel the block
// writes the bias gradient itself; otherwise BiasGradSliceSumKernel adds
// each channel's slices in order. A fixed order, no atomics: deterministic.
template <class T>
struct BiasGradKernel {
  CNNFAST_KERNEL_NAME(BiasGradKernel);
  using acc_t = acc_type<T>;
  static constexpr int kThreads = 256, kMinBlocksPerSM = 1, kInFlight = 4;
  struct Shared {
    acc_t partial[kThreads];
  };
  struct Registers {};

  const T* grad;  // images × channels × pixels
  acc_t* slice_sums;  // channels × slices; unused with one slice
  T* grad_bias;
  int64_t images, channels, pixels;
  int64_t slices, per_slice;
  // kThreads elements as whole images and pixels: a thread's step.
  int64_t step_images, step_pixels;

  template <class Block>
  CNNFAST_HD void operator()(Block& block, Shared& sh) const {
    const int64_t b = block.index().block_idx.x, k = b / slices, slice = b - k * slices;
    const int64_t end = min_of(images * pixels, (slice + 1) * per_slice);
    block.each_thread([&](const ThreadIndex& t, Registers&) {
      int64_t i = slice * per_slice + t.thread_idx.x;
      int64_t pixel = i % pixels, at = ((i / pixels) * channels + k) * pixels + pixel;
      // Where the offset goes for a step, and for a step that crosses into
      // the next image.
      const int64_t step = step_images * channels * pixels + step_pixels;
      const int64_t next_image = (channels - 1) * pixels;
      acc_t sum = 0;
      while (i < end) {
        acc_t values[kInFlight];
        CNNFAST_UNROLL
        for (int j = 0; j < kInFlight; ++j) {
          values[j] = i < end ? static_cast<acc_t>(grad[at]) : acc_t(0);
          i += kThreads;
          at += step;
          pixel += step_pixels;
          if (pixel >= pixels) {
            pixel -= pixels;
            at += next_image;
          }
        }
        CNNFAST_UNROLL
        for (int j = 0; j < kInFlight; ++j) sum += values[j];
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
      if (t.thread_idx.x != 0) return;
      if (slices == 1)
        grad_bias[k] = static_cast<T>(sh.partial[0]);
      else
        slice_sums[b] = sh.partial[0];
    });
  }
};
CNNFAST_REGISTER_KERNEL(BiasGradKernel);

// Stage two: grad_bias[k] = the sum of channel k's slices, in order.
template <class T>
struct BiasGradSliceSumKernel {
  CNNFAST_KERNEL_NAME(BiasGradSliceSumKernel);
  const acc_type<T>* slice_sums;
  T* grad_bias;
  int64_t channels, slices;
  CNNFAST_HD void operator()(const ThreadIndex& t) const {
    for (int64_t k = grid_first(t); k < channels; k += grid_step(t)) {
      acc_type<T> sum = 0;
      for (int64_t s = 0; s < slices; ++s) sum += slice_sums[k * slices + s];
      grad_bias[k] = static_cast<T>(sum);
    }
  }
};
CNNFAST_REGISTER_KERNEL(BiasGradSliceSumKernel);

// Slices enough for about kBlocksWanted blocks (a GPU's worth several
// times over), none under kMinPerThread elements a thread.
inline int64_t bias_grad_slices(int64_t channels, int64_t elements, int64_t threads) {
  constexpr int64_t kBlocksWanted = 1024, kMinPerThread = 16;
  const int64_t most = std::max<int64_t>(1, elements / (threads * kMinPerThread));
  return std::min(most, std::max<int64_t>(1, kBlocksWanted / channels));
}

template <class Launcher, class T>
void launch_bias_grad(const Launcher& launcher, const at::TensorOptions& options, const T* grad,
                      T* grad_bias, const ConvProblem& p) {
  using Kernel = BiasGradKernel<T>;
  using acc_t = acc_type<T>;
  if (p.k == 0) return;
  // An empty output plane sums nothing, as an empty batch does.
  const int64_t pixels = std::max<int64_t>(p.out_plane(), 1);
  const int64_t images = p.out_plane() == 0 ? 0 : p.n;
  const int64_t elements = images * pixels;
  int64_t slices = bias_grad_slices(p.k, elements, Kernel::kThreads);
  const int64_t per_slice = ceil_div(elements, slices);
  if (per_slice > 0) slices = ceil_div(elements, per_slice);  // none empty
  at::Tensor slice_sums;
  if (slices > 1)
    slice_sums = at::empty({p.k * slices}, options.dtype(c10::CppTypeToScalarType<acc_t>::value));
  acc_t* sums = slices > 1 ? slice_sums.mutable_data_ptr<acc_t>() : nullptr;
  LaunchShape shape;
  shape.block.x = Kernel::kThreads;
  shape.grid.x = p.k * slices;
  launcher.launch_blocks(shape, Kernel{grad, sums, grad_bias, images, p.k, pixels, slices, per_slice,
                                       Kernel::kThreads / pixels, Kernel::kThreads % pixels});
  if (slices > 1)
    launcher.launch(elementwise_launch_shape(p.k),
                    BiasGradSliceSumKernel<T>{sums, grad_bias, p.k, slices});
}

}  // namespace kernels
}  // namespace cnnfast
