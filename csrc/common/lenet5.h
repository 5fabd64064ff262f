#pragma once
// LeNet-5's fixed geometry (docs/architecture.md, "Models"): a 1×32×32 image, two 5×5
// convolutions each followed by tanh and 2×2 average pooling, then dense
// layers 400 → 120 → 84 → 10.
namespace cnnfast {

struct LeNet5Geometry {
  static constexpr int kImage = 32, kKernel = 5;
  static constexpr int kConv1Channels = 6, kPool1 = 14;
  static constexpr int kConv2Channels = 16, kPool2 = 5;
  static constexpr int kFlat = kConv2Channels * kPool2 * kPool2;
  static constexpr int kFc1 = 120, kFc2 = 84, kClasses = 10;
};

}  // namespace cnnfast
