#pragma once
// The CUDA kernels' code run on the CPU through HostLauncher (see
// csrc/kernels/README.md). The CPU op entries call these instead of the CPU
// kernels while cnnfast::emulating_cuda() is on.
#include <ATen/core/Tensor.h>
#include <c10/core/SymIntArrayRef.h>

#include <array>
#include <optional>
#include <string_view>
#include <tuple>

#include "../common/checks.h"

namespace cnnfast {
namespace emulate {

at::Tensor relu(const at::Tensor& x);
at::Tensor relu_backward(const at::Tensor& grad_output, const at::Tensor& output);
at::Tensor tanh(const at::Tensor& x);
at::Tensor tanh_backward(const at::Tensor& grad_output, const at::Tensor& output);

std::tuple<at::Tensor, at::Tensor> max_pool2d_forward(const at::Tensor& x,
                                                      at::IntArrayRef kernel_size,
                                                      at::IntArrayRef stride,
                                                      at::IntArrayRef padding, bool ceil_mode);
at::Tensor max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& offsets,
                               c10::SymIntArrayRef input_size, at::IntArrayRef kernel_size,
                               at::IntArrayRef stride, at::IntArrayRef padding);

at::Tensor avg_pool2d_forward(const at::Tensor& x, at::IntArrayRef kernel_size,
                              at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                              bool count_include_pad);
at::Tensor avg_pool2d_backward(const at::Tensor& grad_output, c10::SymIntArrayRef input_size,
                               at::IntArrayRef kernel_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, bool count_include_pad);

at::Tensor local_response_norm_forward(const at::Tensor& x, int64_t size, double alpha,
                                       double beta, double k);
at::Tensor local_response_norm_backward(const at::Tensor& grad_output, const at::Tensor& x,
                                        int64_t size, double alpha, double beta, double k);

std::tuple<at::Tensor, at::Tensor> relu_lrn_max_pool2d_forward(
    const at::Tensor& x, int64_t size, double alpha, double beta, double k,
    at::IntArrayRef kernel_size, at::IntArrayRef stride);
at::Tensor relu_lrn_max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& x,
                                        const at::Tensor& offsets, int64_t size, double alpha,
                                        double beta, double k, at::IntArrayRef kernel_size,
                                        at::IntArrayRef stride);

at::Tensor conv2d_forward(const at::Tensor& x, const at::Tensor& weight,
                          const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                          at::IntArrayRef padding, int64_t groups,
                          std::optional<std::string_view> activation);
std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_backward(
    const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& output, at::IntArrayRef stride, at::IntArrayRef padding, int64_t groups,
    std::optional<std::string_view> activation, std::array<bool, 3> output_mask);

at::Tensor linear_forward(const at::Tensor& x, const at::Tensor& weight,
                          const std::optional<at::Tensor>& bias,
                          std::optional<std::string_view> activation);
std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_backward(
    const at::Tensor& grad_output, const at::Tensor& x, const at::Tensor& weight,
    const at::Tensor& output, std::optional<std::string_view> activation,
    std::array<bool, 3> output_mask);

at::Tensor lenet5_forward(const at::Tensor& x, const LeNet5Parameters& params);

}  // namespace emulate
}  // namespace cnnfast
