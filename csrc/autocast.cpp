// torch.autocast on CUDA for the ops that do the matrix work, as torch's
// own conv2d and linear behave: their floating inputs are cast to the
// autocast dtype (float16 or bfloat16) and the op runs in it. Pooling, LRN
// and the activations run in the dtype they are given, as torch's do.
// (On a CPU, cnnfast's kernels take float32 and float64 only, so CPU
// autocast leaves these ops in the dtype they are given.)
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <optional>
#include <string_view>

namespace cnnfast {
namespace {

constexpr auto kDevice = c10::DeviceType::CUDA;

using Activation = std::optional<std::string_view>;
using Conv2dSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                   at::IntArrayRef, at::IntArrayRef, int64_t, Activation);
using LinearSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                   Activation);

template <typename T>
auto to_autocast_dtype(const T& tensor) {
  return at::autocast::cached_cast(at::autocast::get_autocast_dtype(kDevice), tensor, kDevice);
}

at::Tensor conv2d_autocast(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                           at::IntArrayRef stride, at::IntArrayRef padding, int64_t groups, Activation activation) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
  static const auto conv2d =
      c10::Dispatcher::singleton().findSchemaOrThrow("cnnfast::conv2d", "").typed<Conv2dSignature>();
  return conv2d.call(to_autocast_dtype(x), to_autocast_dtype(weight), to_autocast_dtype(bias), stride, padding,
                     groups, activation);
}

at::Tensor linear_autocast(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                           Activation activation) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
  static const auto linear =
      c10::Dispatcher::singleton().findSchemaOrThrow("cnnfast::linear", "").typed<LinearSignature>();
  return linear.call(to_autocast_dtype(x), to_autocast_dtype(weight), to_autocast_dtype(bias), activation);
}

// LeNet-5's forward is convolutions and linear layers: all of it in the
// autocast dtype.
at::Tensor lenet5_forward_autocast(const at::Tensor& x, const at::Tensor& conv1_weight,
                                   const at::Tensor& conv1_bias, const at::Tensor& conv2_weight,
                                   const at::Tensor& conv2_bias, const at::Tensor& fc1_weight,
                                   const at::Tensor& fc1_bias, const at::Tensor& fc2_weight,
                                   const at::Tensor& fc2_bias, const at::Tensor& fc3_weight,
                                   const at::Tensor& fc3_bias) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
  static const auto lenet5_forward = c10::Dispatcher::singleton()
                                         .findSchemaOrThrow("cnnfast::lenet5_forward", "")
                                         .typed<decltype(lenet5_forward_autocast)>();
  return lenet5_forward.call(to_autocast_dtype(x), to_autocast_dtype(conv1_weight),
                             to_autocast_dtype(conv1_bias), to_autocast_dtype(conv2_weight),
                             to_autocast_dtype(conv2_bias), to_autocast_dtype(fc1_weight),
                             to_autocast_dtype(fc1_bias), to_autocast_dtype(fc2_weight),
                             to_autocast_dtype(fc2_bias), to_autocast_dtype(fc3_weight),
                             to_autocast_dtype(fc3_bias));
}

}  // namespace

TORCH_LIBRARY_IMPL(cnnfast, AutocastCUDA, m) {
  m.impl("conv2d", &conv2d_autocast);
  m.impl("linear", &linear_autocast);
  m.impl("lenet5_forward", &lenet5_forward_autocast);
}

}  // namespace cnnfast
