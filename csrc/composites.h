#pragma once
// Ops written as other cnnfast ops called through the dispatcher (defined
// in csrc/ops.cpp): the CUDA path of conv2d_avg_pool2d, and its CPU path
// where the direct convolution does not apply; the CPU path of
// lenet5_forward.
#include <ATen/core/Tensor.h>

#include <optional>
#include <string_view>

#include "common/checks.h"

namespace cnnfast {

// avg_pool2d(conv2d(x, ...), kernel = stride = pool, no padding, floor).
at::Tensor conv2d_avg_pool2d_unfused(const at::Tensor& x, const at::Tensor& weight,
                                     const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                     at::IntArrayRef padding, int64_t groups,
                                     std::optional<std::string_view> activation, at::IntArrayRef pool);

// LeNet-5's forward layer by layer: conv2d_avg_pool2d twice, then the
// three linear layers.
at::Tensor lenet5_forward_unfused(const at::Tensor& x, const LeNet5Parameters& params);

}  // namespace cnnfast
