#pragma once
// Argument checks shared by every backend (flash-attention's habit: check
// every argument first, then fill one problem struct). Host code only.
#include <ATen/core/Tensor.h>
#include <c10/core/SymIntArrayRef.h>

#include <optional>
#include <string_view>

#include "conv2d.h"
#include "fused_stage.h"
#include "lenet5.h"
#include "lrn.h"
#include "pool2d.h"

namespace cnnfast {

// Floating dtypes the kernels take: float32/float64 always, float16/bfloat16
// where `allow_16bit` (the CUDA kernels and their emulation).
void check_dtype(const at::Tensor& t, const char* op, const char* arg, bool allow_16bit);
void check_same_device_dtype(const at::Tensor& a, const at::Tensor& b, const char* op,
                             const char* arg_a, const char* arg_b);
void check_same_shape(const at::Tensor& a, const at::Tensor& b, const char* op,
                      const char* arg_a, const char* arg_b);

// Elementwise ops keep a channels_last input channels_last; anything else
// is computed and returned in contiguous (NCHW) order.
at::MemoryFormat elementwise_format(const at::Tensor& x);

// A forward pooling problem from the input and torch's arguments; an empty
// `stride` means stride = kernel_size.
Pool2dProblem pool2d_problem(const at::Tensor& x, at::IntArrayRef kernel_size,
                             at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                             bool count_include_pad, const char* op);

// The same problem seen from backward: the output size is the gradient's.
Pool2dProblem pool2d_backward_problem(const at::Tensor& grad_output,
                                      c10::SymIntArrayRef input_size,
                                      at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                      at::IntArrayRef padding, bool count_include_pad,
                                      const char* op);

// Sizes of a pooled tensor: the input's leading dimensions, then out_h×out_w.
std::vector<int64_t> pooled_sizes(at::IntArrayRef input_size, const Pool2dProblem& p);

// An LRN problem from the input (3 or more dims: N, C, then pixels) and
// torch's arguments.
LrnProblem lrn_problem(const at::Tensor& x, int64_t size, double alpha, double beta, double k,
                       const char* op);

// The same for LRN's backward, checking grad_output against x too.
LrnProblem lrn_backward_problem(const at::Tensor& grad_output, const at::Tensor& x, int64_t size,
                                double alpha, double beta, double k, const char* op,
                                bool allow_16bit);

// The fused relu -> LRN -> max pool stage: x must be (N, C, H, W).
FusedStageProblem fused_stage_problem(const at::Tensor& x, int64_t size, double alpha,
                                      double beta, double k, at::IntArrayRef kernel_size,
                                      at::IntArrayRef stride, const char* op);

// The same for its backward, checking grad_output and offsets against x.
FusedStageProblem fused_stage_backward_problem(const at::Tensor& grad_output,
                                               const at::Tensor& x, const at::Tensor& offsets,
                                               int64_t size, double alpha, double beta, double k,
                                               at::IntArrayRef kernel_size,
                                               at::IntArrayRef stride, const char* op,
                                               bool allow_16bit);

// "relu", "tanh" or none; anything else is an error naming the choices.
Activation parse_activation(std::optional<std::string_view> activation, const char* op);

// A convolution problem from conv2d's arguments: x is (N, C, H, W) or
// (C, H, W), weight (K, C / groups, R, S), bias (K) or absent.
ConvProblem conv2d_problem(const at::Tensor& x, const at::Tensor& weight,
                           const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                           at::IntArrayRef padding, int64_t groups,
                           std::optional<std::string_view> activation, const char* op,
                           bool allow_16bit);

// linear as a convolution: x (*, in_features) is N = prod(*) images of
// in_features channels, 1×1 pixels; weight (out_features, in_features).
ConvProblem linear_problem(const at::Tensor& x, const at::Tensor& weight,
                           const std::optional<at::Tensor>& bias,
                           std::optional<std::string_view> activation, const char* op,
                           bool allow_16bit);

// Backward of either: grad_output and the saved output must have the
// forward output's sizes (`output_size`), dtype and device.
void check_conv_backward(const at::Tensor& grad_output, const at::Tensor& output,
                         const at::Tensor& x, at::IntArrayRef output_size, const char* op);

// LeNet-5's parameters in its state_dict's order (each layer's weight, then
// its bias).
struct LeNet5Parameters {
  at::Tensor conv1_weight, conv1_bias, conv2_weight, conv2_bias;
  at::Tensor fc1_weight, fc1_bias, fc2_weight, fc2_bias, fc3_weight, fc3_bias;

  LeNet5Parameters contiguous() const;
};

// x must be (N, 1, 32, 32) and each parameter LeNet-5's shape, on x's
// device, in x's dtype.
void check_lenet5_arguments(const at::Tensor& x, const LeNet5Parameters& params, const char* op,
                            bool allow_16bit);

// The argmax offsets of max pooling: one byte while the window has at most
// 256 cells, int32 beyond.
at::ScalarType pool_offset_dtype(const Pool2dProblem& p);
void check_offsets(const at::Tensor& offsets, const at::Tensor& grad_output,
                   const Pool2dProblem& p, const char* op);

// Calls f(offset_t{}) with the C++ type of the offsets tensor.
template <class F>
void dispatch_offset_type(at::ScalarType dtype, const F& f) {
  if (dtype == at::kByte)
    f(uint8_t{});
  else
    f(int32_t{});
}

}  // namespace cnnfast
