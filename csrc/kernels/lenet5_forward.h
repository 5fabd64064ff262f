#pragma once
// LeNet-5's whole forward pass for inference as one CUDA kernel: each block
// takes a few images through conv1 → tanh → pool → conv2 → tanh → pool →
// fc1 → tanh → fc2 → tanh → fc3 in shared memory and writes their 10
// scores. At LeNet-5's size the layer-by-layer path is bound by launches and
// by GEMM tiles far wider than its 6 and 16 channels; here the feature maps
// never reach global memory and the weights are read once per block.
//
// A phased kernel (csrc/common/launch.h), so the host launcher runs it in
// the emulation tests. Phases, with a barrier after each:
//   load     the block's images and both convolutions' weights;
//   conv1    one thread per pooled cell of an image: its 6×6 input patch in
//            registers, the 2×2 conv outputs of each of the 6 channels,
//            tanh, averaged;
//   conv2    one thread per pooled cell and half of the 16 channels: the
//            6×6 patch of each input channel, 2×2 outputs × 8 channels;
//   fc1..3   a dense layer in two phases: 8 threads per output neuron each
//            sum every 8th input (a warp reads 4 neurons' weights, 8
//            consecutive ones each), then one thread per (image, neuron)
//            adds the 8 partial sums, the bias and tanh.
// Each later buffer reuses the space of one the earlier phases are done
// with, which keeps a block within 48 KiB of shared memory (float: 4
// images a block; double: 1).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include "../common/checks.h"
#include "../common/kernel_table.h"
#include "../common/launch.h"
#include "../common/lenet5.h"
#include "../common/numeric.h"

namespace cnnfast {
namespace kernels {

template <class scalar_t>
struct LeNet5Pointers {
  const scalar_t *conv1_weight, *conv1_bias, *conv2_weight, *conv2_bias;
  const scalar_t *fc1_weight, *fc1_bias, *fc2_weight, *fc2_bias, *fc3_weight, *fc3_bias;
};

template <class scalar_t>
struct LeNet5ForwardKernel {
  CNNFAST_KERNEL_NAME(LeNet5ForwardKernel);
  using acc_t = acc_type<scalar_t>;
  using G = LeNet5Geometry;
  static constexpr int kImages = sizeof(acc_t) == 4 ? 4 : 1;  // per block
  static constexpr int kThreads = 256;
  static constexpr int kMinBlocksPerSM = 2;  // ≤ 128 registers: two blocks share an SM
  static constexpr int kLanes = 8;  // threads per neuron in a dense layer
  static constexpr int kTaps = G::kKernel * G::kKernel;
  static constexpr int kPatch = G::kKernel + 1;  // input rows/cols under a 2×2 pooled cell

  const scalar_t* x;  // [batch][1][32][32], contiguous
  LeNet5Pointers<scalar_t> w;
  scalar_t* out;  // [batch][10]
  int64_t batch;

  struct Shared {
    acc_t conv1_weight[G::kConv1Channels * kTaps], conv1_bias[G::kConv1Channels];
    acc_t conv2_weight[G::kConv2Channels * G::kConv1Channels * kTaps], conv2_bias[G::kConv2Channels];
    union {  // conv1's output; the dense layers' partial sums once conv2 has read it
      acc_t pool1[kImages][G::kConv1Channels][G::kPool1][G::kPool1];
      acc_t partial[kLanes][kImages][G::kFc1];
    } a;
    union {  // the images; the later layers' outputs once conv1 has read them
      acc_t image[kImages][G::kImage][G::kImage];
      struct {
        acc_t pool2[kImages][G::kFlat];
        acc_t fc1[kImages][G::kFc1];
        acc_t fc2[kImages][G::kFc2];
      } dense;
    } b;
  };
  struct Registers {};

  template <class Block>
  CNNFAST_HD void operator()(Block& block, Shared& sh) const {
    const int64_t first_image = block.index().block_idx.x * kImages;
    block.each_thread([&](const ThreadIndex& t, Registers&) { load(tid(t), first_image, sh); });
    block.barrier();
    block.each_thread([&](const ThreadIndex& t, Registers&) { conv1(tid(t), sh); });
    block.barrier();
    block.each_thread([&](const ThreadIndex& t, Registers&) { conv2(tid(t), sh); });
    block.barrier();
    dense<G::kFlat, G::kFc1>(block, sh.b.dense.pool2, w.fc1_weight, w.fc1_bias, sh, sh.b.dense.fc1);
    dense<G::kFc1, G::kFc2>(block, sh.b.dense.fc1, w.fc2_weight, w.fc2_bias, sh, sh.b.dense.fc2);
    block.each_thread([&](const ThreadIndex& t, Registers&) {
      dense_partial<G::kFc2, G::kClasses>(tid(t), sh.b.dense.fc2, w.fc3_weight, sh);
    });
    block.barrier();
    block.each_thread([&](const ThreadIndex& t, Registers&) { write_scores(tid(t), first_image, sh); });
  }

 private:
  static CNNFAST_HD int tid(const ThreadIndex& t) { return static_cast<int>(t.thread_idx.x); }

  CNNFAST_HD void load(int tid, int64_t first_image, Shared& sh) const {
    constexpr int kPixels = G::kImage * G::kImage;
    acc_t* image = &sh.b.image[0][0][0];
    for (int i = tid; i < kImages * kPixels; i += kThreads) {
      const int64_t n = first_image + i / kPixels;
      image[i] = n < batch ? static_cast<acc_t>(x[first_image * kPixels + i]) : acc_t(0);
    }
    copy(tid, w.conv1_weight, sh.conv1_weight, G::kConv1Channels * kTaps);
    copy(tid, w.conv1_bias, sh.conv1_bias, G::kConv1Channels);
    copy(tid, w.conv2_weight, sh.conv2_weight, G::kConv2Channels * G::kConv1Channels * kTaps);
    copy(tid, w.conv2_bias, sh.conv2_bias, G::kConv2Channels);
  }

  static CNNFAST_HD void copy(int tid, const scalar_t* from, acc_t* to, int n) {
    for (int i = tid; i < n; i += kThreads) to[i] = static_cast<acc_t>(from[i]);
  }

  // The kPatch×kPatch input cells under pooled cell (py, px) of one plane.
  template <int Width>
  static CNNFAST_HD void read_patch(const acc_t* plane, int py, int px, acc_t (&patch)[kPatch][kPatch]) {
    CNNFAST_UNROLL
    for (int r = 0; r < kPatch; ++r)
      CNNFAST_UNROLL
      for (int c = 0; c < kPatch; ++c) patch[r][c] = plane[(2 * py + r) * Width + 2 * px + c];
  }

  // acc[dy][dx] += the 5×5 filter `weight` over the patch at offset (dy, dx).
  static CNNFAST_HD void accumulate_2x2(const acc_t* weight, const acc_t (&patch)[kPatch][kPatch],
                                        acc_t (&acc)[2][2]) {
    CNNFAST_UNROLL
    for (int ky = 0; ky < G::kKernel; ++ky)
      CNNFAST_UNROLL
      for (int kx = 0; kx < G::kKernel; ++kx) {
        const acc_t wk = weight[ky * G::kKernel + kx];
        CNNFAST_UNROLL
        for (int dy = 0; dy < 2; ++dy)
          CNNFAST_UNROLL
          for (int dx = 0; dx < 2; ++dx) acc[dy][dx] += wk * patch[ky + dy][kx + dx];
      }
  }

  // The pooled cell: the mean of tanh over the 2×2 outputs.
  static CNNFAST_HD acc_t tanh_pooled(const acc_t (&acc)[2][2]) {
    return acc_t(0.25) * ((tanh_value(acc[0][0]) + tanh_value(acc[0][1])) +
                          (tanh_value(acc[1][0]) + tanh_value(acc[1][1])));
  }

  CNNFAST_HD void conv1(int tid, Shared& sh) const {
    constexpr int kCells = G::kPool1 * G::kPool1;
    for (int task = tid; task < kImages * kCells; task += kThreads) {
      const int n = task / kCells, cell = task % kCells, py = cell / G::kPool1, px = cell % G::kPool1;
      acc_t patch[kPatch][kPatch];
      read_patch<G::kImage>(&sh.b.image[n][0][0], py, px, patch);
      for (int c = 0; c < G::kConv1Channels; ++c) {
        acc_t acc[2][2];
        CNNFAST_UNROLL
        for (auto& row : acc) row[0] = row[1] = sh.conv1_bias[c];
        accumulate_2x2(&sh.conv1_weight[c * kTaps], patch, acc);
        sh.a.pool1[n][c][py][px] = tanh_pooled(acc);
      }
    }
  }

  CNNFAST_HD void conv2(int tid, Shared& sh) const {
    constexpr int kCells = G::kPool2 * G::kPool2, kPerTask = G::kConv2Channels / 2;
    constexpr int kDepth = G::kConv1Channels * kTaps;
    // The channel half varies slowest, so a warp's threads mostly read the same weights.
    for (int task = tid; task < 2 * kImages * kCells; task += kThreads) {
      const int half = task / (kImages * kCells), n = task / kCells % kImages, cell = task % kCells;
      const int py = cell / G::kPool2, px = cell % G::kPool2, first = half * kPerTask;
      acc_t acc[kPerTask][2][2];
      CNNFAST_UNROLL
      for (int c = 0; c < kPerTask; ++c)
        CNNFAST_UNROLL
        for (auto& row : acc[c]) row[0] = row[1] = sh.conv2_bias[first + c];
      for (int ci = 0; ci < G::kConv1Channels; ++ci) {
        acc_t patch[kPatch][kPatch];
        read_patch<G::kPool1>(&sh.a.pool1[n][ci][0][0], py, px, patch);
        CNNFAST_UNROLL
        for (int c = 0; c < kPerTask; ++c)
          accumulate_2x2(&sh.conv2_weight[(first + c) * kDepth + ci * kTaps], patch, acc[c]);
      }
      // Flattened as torch.flatten orders (channel, row, column).
      CNNFAST_UNROLL
      for (int c = 0; c < kPerTask; ++c)
        sh.b.dense.pool2[n][(first + c) * kCells + cell] = tanh_pooled(acc[c]);
    }
  }

  // partial[g][n][o] = Σ over inputs i ≡ g (mod kLanes) of weight[o][i] · in[n][i].
  // A thread issues all its weight loads before any arithmetic: they come
  // from L2, and one at a time each would cost its whole latency.
  template <int In, int Out>
  CNNFAST_HD void dense_partial(int tid, const acc_t (&in)[kImages][In], const scalar_t* weight,
                                Shared& sh) const {
    constexpr int kSteps = (In + kLanes - 1) / kLanes;
    for (int task = tid; task < Out * kLanes; task += kThreads) {
      const int o = task / kLanes, g = task % kLanes;
      acc_t weights[kSteps];
      CNNFAST_UNROLL
      for (int j = 0; j < kSteps; ++j) {
        const int i = g + j * kLanes;
        weights[j] = i < In ? static_cast<acc_t>(weight[o * In + i]) : acc_t(0);
      }
      acc_t sum[kImages] = {};
      CNNFAST_UNROLL
      for (int j = 0; j < kSteps; ++j) {
        const int i = g + j * kLanes;
        if (i >= In) continue;
        CNNFAST_UNROLL
        for (int n = 0; n < kImages; ++n) sum[n] += weights[j] * in[n][i];
      }
      CNNFAST_UNROLL
      for (int n = 0; n < kImages; ++n) sh.a.partial[g][n][o] = sum[n];
    }
  }

  static CNNFAST_HD acc_t dense_sum(const Shared& sh, const scalar_t* bias, int n, int o) {
    acc_t sum = static_cast<acc_t>(bias[o]);
    for (int g = 0; g < kLanes; ++g) sum += sh.a.partial[g][n][o];
    return sum;
  }

  // A hidden dense layer with tanh: out = tanh(in · weightᵀ + bias).
  template <int In, int Out, class Block>
  CNNFAST_HD void dense(Block& block, const acc_t (&in)[kImages][In], const scalar_t* weight,
                        const scalar_t* bias, Shared& sh, acc_t (&out)[kImages][Out]) const {
    block.each_thread([&](const ThreadIndex& t, Registers&) { dense_partial<In, Out>(tid(t), in, weight, sh); });
    block.barrier();
    block.each_thread([&](const ThreadIndex& t, Registers&) {
      for (int task = tid(t); task < kImages * Out; task += kThreads)
        out[task / Out][task % Out] = tanh_value(dense_sum(sh, bias, task / Out, task % Out));
    });
    block.barrier();
  }

  CNNFAST_HD void write_scores(int tid, int64_t first_image, const Shared& sh) const {
    for (int task = tid; task < kImages * G::kClasses; task += kThreads) {
      const int n = task / G::kClasses, o = task % G::kClasses;
      if (first_image + n < batch)
        out[(first_image + n) * G::kClasses + o] =
            static_cast<scalar_t>(dense_sum(sh, w.fc3_bias, n, o));
    }
  }
};
CNNFAST_REGISTER_KERNEL(LeNet5ForwardKernel);

template <class Launcher>
at::Tensor lenet5_forward(const at::Tensor& x, const LeNet5Parameters& params) {
  const char* op = "lenet5_forward";
  check_lenet5_arguments(x, params, op, /*allow_16bit=*/true);
  Launcher launcher(x.device());
  const at::Tensor input = x.contiguous();
  const LeNet5Parameters contiguous = params.contiguous();
  at::Tensor out = at::empty({x.size(0), LeNet5Geometry::kClasses}, input.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "lenet5_forward", [&] {
    using Kernel = LeNet5ForwardKernel<scalar_t>;
    const auto ptr = [](const at::Tensor& t) { return t.const_data_ptr<scalar_t>(); };
    const LeNet5Pointers<scalar_t> pointers{
        ptr(contiguous.conv1_weight), ptr(contiguous.conv1_bias), ptr(contiguous.conv2_weight),
        ptr(contiguous.conv2_bias),   ptr(contiguous.fc1_weight), ptr(contiguous.fc1_bias),
        ptr(contiguous.fc2_weight),   ptr(contiguous.fc2_bias),   ptr(contiguous.fc3_weight),
        ptr(contiguous.fc3_bias)};
    LaunchShape shape;
    shape.grid.x = ceil_div(x.size(0), Kernel::kImages);
    shape.block.x = Kernel::kThreads;
    launcher.launch_blocks(shape, Kernel{input.const_data_ptr<scalar_t>(), pointers,
                                         out.mutable_data_ptr<scalar_t>(), x.size(0)});
  });
  return out;
}

// The op's entry point (its schema's arguments), for the CUDA registration
// and the emulation.
template <class Launcher>
at::Tensor lenet5_forward_op(const at::Tensor& x, const at::Tensor& conv1_weight,
                             const at::Tensor& conv1_bias, const at::Tensor& conv2_weight,
                             const at::Tensor& conv2_bias, const at::Tensor& fc1_weight,
                             const at::Tensor& fc1_bias, const at::Tensor& fc2_weight,
                             const at::Tensor& fc2_bias, const at::Tensor& fc3_weight,
                             const at::Tensor& fc3_bias) {
  return lenet5_forward<Launcher>(x, {conv1_weight, conv1_bias, conv2_weight, conv2_bias,
                                      fc1_weight, fc1_bias, fc2_weight, fc2_bias, fc3_weight,
                                      fc3_bias});
}

}  // namespace kernels
}  // namespace cnnfast
