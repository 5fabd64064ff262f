// Every schema of the cnnfast library, in one place. Kernels register
// themselves per backend in csrc/cpu/ and csrc/cuda/, autograd in
// csrc/autograd/; fake kernels are registered in Python (cnnfast/ops.py).
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "composites.h"

namespace cnnfast {
namespace {

at::Tensor conv2d_avg_pool2d(const at::Tensor& x, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                             at::IntArrayRef padding, int64_t groups,
                             std::optional<std::string_view> activation, at::IntArrayRef pool) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("cnnfast::conv2d_avg_pool2d", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            at::IntArrayRef, at::IntArrayRef, int64_t, std::optional<std::string_view>,
                            at::IntArrayRef)>();
  return op.call(x, weight, bias, stride, padding, groups, activation, pool);
}

// max_pool2d is the public op; it returns the values of the op that also
// keeps the argmax offsets for backward, as torch's max_pool2d does with
// max_pool2d_with_indices.
at::Tensor max_pool2d(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                      at::IntArrayRef padding, bool ceil_mode) {
  static const auto with_offsets = c10::Dispatcher::singleton()
                                       .findSchemaOrThrow("cnnfast::_max_pool2d_with_offsets", "")
                                       .typed<std::tuple<at::Tensor, at::Tensor>(
                                           const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
                                           at::IntArrayRef, bool)>();
  return std::get<0>(with_offsets.call(x, kernel_size, stride, padding, ceil_mode));
}

// relu_lrn_max_pool2d likewise returns the values of the op that keeps the
// pooling offsets.
at::Tensor relu_lrn_max_pool2d(const at::Tensor& x, int64_t size, double alpha, double beta,
                               double k, at::IntArrayRef kernel_size, at::IntArrayRef stride) {
  static const auto with_offsets =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("cnnfast::_relu_lrn_max_pool2d_with_offsets", "")
          .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, int64_t, double, double,
                                                    double, at::IntArrayRef, at::IntArrayRef)>();
  return std::get<0>(with_offsets.call(x, size, alpha, beta, k, kernel_size, stride));
}

}  // namespace

at::Tensor conv2d_avg_pool2d_unfused(const at::Tensor& x, const at::Tensor& weight,
                                     const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                     at::IntArrayRef padding, int64_t groups,
                                     std::optional<std::string_view> activation, at::IntArrayRef pool) {
  static const auto conv2d =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("cnnfast::conv2d", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            at::IntArrayRef, at::IntArrayRef, int64_t, std::optional<std::string_view>)>();
  static const auto avg_pool2d =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("cnnfast::avg_pool2d", "")
          .typed<at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, bool,
                            bool)>();
  const int64_t no_padding[2] = {0, 0};
  return avg_pool2d.call(conv2d.call(x, weight, bias, stride, padding, groups, activation), pool, pool,
                         no_padding, /*ceil_mode=*/false, /*count_include_pad=*/true);
}

at::Tensor lenet5_forward_unfused(const at::Tensor& x, const LeNet5Parameters& params) {
  static const auto linear =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("cnnfast::linear", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            std::optional<std::string_view>)>();
  const int64_t one[2] = {1, 1}, zero[2] = {0, 0}, two[2] = {2, 2};
  const at::Tensor pool1 = conv2d_avg_pool2d(x, params.conv1_weight, params.conv1_bias, one, zero, 1, "tanh", two);
  const at::Tensor pool2 =
      conv2d_avg_pool2d(pool1, params.conv2_weight, params.conv2_bias, one, zero, 1, "tanh", two);
  const at::Tensor fc1 = linear.call(pool2.flatten(1), params.fc1_weight, params.fc1_bias, "tanh");
  const at::Tensor fc2 = linear.call(fc1, params.fc2_weight, params.fc2_bias, "tanh");
  return linear.call(fc2, params.fc3_weight, params.fc3_bias, std::nullopt);
}

TORCH_LIBRARY(cnnfast, m) {
  m.def("relu(Tensor x) -> Tensor");
  m.def("_relu_backward(Tensor grad_output, Tensor output) -> Tensor");
  // CPU only: relu's output and where its gradient passes, a bit per
  // element (uint8, bit i % 8 of byte i / 8 for element i in the output's
  // memory order), which relu's C++ autograd node saves in place of the
  // output on the CPU; and the gradient through that mask, laid out as the
  // output was (channels_last or contiguous). The backward then reads 1/8
  // byte per element where _relu_backward reads the whole output.
  m.def("_relu_with_mask(Tensor x) -> (Tensor, Tensor)");
  m.def("_relu_mask_backward(Tensor grad_output, Tensor mask, bool channels_last) -> Tensor");
  m.def("tanh(Tensor x) -> Tensor");
  m.def("_tanh_backward(Tensor grad_output, Tensor output) -> Tensor");

  m.def(
      "max_pool2d(Tensor x, int[2] kernel_size, int[2] stride=[], int[2] padding=0, "
      "bool ceil_mode=False) -> Tensor");
  m.def(
      "_max_pool2d_with_offsets(Tensor x, int[2] kernel_size, int[2] stride=[], "
      "int[2] padding=0, bool ceil_mode=False) -> (Tensor, Tensor)");
  m.def(
      "_max_pool2d_backward(Tensor grad_output, Tensor offsets, SymInt[] input_size, "
      "int[2] kernel_size, int[2] stride, int[2] padding) -> Tensor");

  m.def(
      "avg_pool2d(Tensor x, int[2] kernel_size, int[2] stride=[], int[2] padding=0, "
      "bool ceil_mode=False, bool count_include_pad=True) -> Tensor");
  m.def(
      "_avg_pool2d_backward(Tensor grad_output, SymInt[] input_size, int[2] kernel_size, "
      "int[2] stride, int[2] padding, bool count_include_pad) -> Tensor");

  m.def(
      "local_response_norm(Tensor x, int size, float alpha=1e-4, float beta=0.75, float k=1.0) "
      "-> Tensor");
  m.def(
      "_local_response_norm_backward(Tensor grad_output, Tensor x, int size, float alpha, "
      "float beta, float k) -> Tensor");

  m.def(
      "conv2d(Tensor x, Tensor weight, Tensor? bias=None, int[2] stride=1, int[2] padding=0, "
      "int groups=1, str? activation=None) -> Tensor");
  m.def(
      "_conv2d_backward(Tensor grad_output, Tensor x, Tensor weight, Tensor output, "
      "int[2] stride, int[2] padding, int groups, str? activation, bool[3] output_mask) "
      "-> (Tensor, Tensor, Tensor)");
  m.def(
      "conv2d_avg_pool2d(Tensor x, Tensor weight, Tensor? bias=None, int[2] stride=1, "
      "int[2] padding=0, int groups=1, str? activation=None, int[2] pool=2) -> Tensor");
  m.def("linear(Tensor x, Tensor weight, Tensor? bias=None, str? activation=None) -> Tensor");
  m.def(
      "_linear_backward(Tensor grad_output, Tensor x, Tensor weight, Tensor output, "
      "str? activation, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");

  m.def(
      "relu_lrn_max_pool2d(Tensor x, int size=5, float alpha=1e-4, float beta=0.75, "
      "float k=1.0, int[2] kernel_size=3, int[2] stride=2) -> Tensor");
  m.def(
      "_relu_lrn_max_pool2d_with_offsets(Tensor x, int size=5, float alpha=1e-4, "
      "float beta=0.75, float k=1.0, int[2] kernel_size=3, int[2] stride=2) -> (Tensor, Tensor)");
  m.def(
      "_relu_lrn_max_pool2d_backward(Tensor grad_output, Tensor x, Tensor offsets, int size, "
      "float alpha, float beta, float k, int[2] kernel_size, int[2] stride) -> Tensor");

  m.def(
      "lenet5_forward(Tensor x, Tensor conv1_weight, Tensor conv1_bias, Tensor conv2_weight, "
      "Tensor conv2_bias, Tensor fc1_weight, Tensor fc1_bias, Tensor fc2_weight, Tensor fc2_bias, "
      "Tensor fc3_weight, Tensor fc3_bias) -> Tensor");
}

// Test-only ops (csrc/testing/): the tensor-core GEMM and its emulation's
// parts, for tests/test_tensor_core.py.
TORCH_LIBRARY(cnnfast_testing, m) {
  m.def("tensor_core_gemm(Tensor a, Tensor b, str planted=\"\") -> Tensor");
  m.def("round_operands(Tensor x, str format) -> Tensor");
  m.def("cp_async_probe(Tensor src, bool wait) -> Tensor");
  m.def("fragment_map(str shape, str operand) -> Tensor");
}

// The CUDA path of conv2d_avg_pool2d (the CPU has its own kernel).
TORCH_LIBRARY_IMPL(cnnfast, CompositeExplicitAutograd, m) {
  m.impl("conv2d_avg_pool2d", &conv2d_avg_pool2d_unfused);
}

TORCH_LIBRARY_IMPL(cnnfast, CompositeImplicitAutograd, m) {
  m.impl("max_pool2d", &max_pool2d);
  m.impl("relu_lrn_max_pool2d", &relu_lrn_max_pool2d);
}

}  // namespace cnnfast
